"""The interrupts of a VFIO device: eventfds owned by the device, vectors enabled by name, and
the raw ``VFIO_DEVICE_SET_IRQS`` actions.  A part of :class:`pyvfio.device.Device`."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyvfio import irq
from pyvfio._ffi import C
from pyvfio.dma import check_int
from pyvfio.irq import EventFD, IrqInfo
from pyvfio.kernel import Kernel

_IRQ_NAMES = {"intx": C.VFIO_PCI_INTX_IRQ_INDEX, "msi": C.VFIO_PCI_MSI_IRQ_INDEX,
              "msix": C.VFIO_PCI_MSIX_IRQ_INDEX}


class DeviceInterrupts:
    """Interrupts of an open device fd (``_kernel``, ``_fd``, ``_eventfds`` and ``_irqs_on`` come
    from :class:`pyvfio.device.Device`, which disables and closes them on close)."""

    _kernel: Kernel
    _fd: int
    _eventfds: list[EventFD]
    _irqs_on: set[int]

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...

    def eventfd(self) -> EventFD:
        """Return a new eventfd on the device's kernel, closed with the device."""
        self._check_open()
        efd = EventFD(self._kernel)
        self._eventfds.append(efd)
        return efd

    def enable_interrupts(self, index: int | str = "msi", count: int = 1) -> list[EventFD]:
        """Signal ``count`` new eventfds for vectors 0.. of ``index`` (``"intx"``, ``"msi"``,
        ``"msix"``, or a ``VFIO_PCI_*_IRQ_INDEX``); disabled and closed with the device.

        Returns:
            The eventfds, one per vector: ``wait()`` on them.

        Raises:
            ValueError: an unknown index name, ``count`` out of range.
            OSError: EINVAL (no such vectors, another MSI type on), and as :meth:`enable_irq`.
        """
        idx = _IRQ_NAMES.get(index) if isinstance(index, str) else index
        if idx is None:
            raise ValueError(f"index must be one of {sorted(_IRQ_NAMES)} or an int, not {index!r}")
        check_int("count", count, 1, 2048)
        efds = [self.eventfd() for _ in range(count)]
        try:
            got = self.enable_irq(idx, efds)
            if got:  # fewer vectors available: nothing was enabled
                raise OSError(errno.ENOSPC, f"only {got} vectors available",
                              "VFIO_DEVICE_SET_IRQS")
        except BaseException:
            for efd in efds:
                self._eventfds.remove(efd)
                efd.close()
            raise
        self._irqs_on.add(idx)
        return efds

    def irq_info(self, index: int) -> IrqInfo:
        """Return interrupt info of ``index`` (see :func:`pyvfio.irq.irq_info` for errors)."""
        self._check_open()
        return irq.irq_info(self._kernel, self._fd, index)

    def enable_irq(self, index: int, eventfds: Sequence[EventFD | None], *, start: int = 0) -> int:
        """Signal ``eventfds`` for vectors ``start..`` of ``index`` (None: detach that vector).

        Returns:
            0; for MSI/MSI-X, the vectors available if fewer could be allocated (none enabled).

        Raises:
            OSError: as :func:`pyvfio.irq.set_irqs`.
        """
        if not eventfds:
            raise ValueError("eventfds must not be empty (use disable_irq)")
        fds = [-1 if e is None else e.fileno() for e in eventfds]
        self._check_open()
        flags = irq.TRIGGER_EVENTFD
        return irq.set_irqs(self._kernel, self._fd, index, flags, start=start, fds=fds)

    def disable_irq(self, index: int) -> None:
        """Disable every vector of ``index`` (DATA_NONE|ACTION_TRIGGER, count 0).

        Raises:
            OSError: EINVAL if the index has no interrupts or is not enabled.
        """
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.TRIGGER_NONE, count=0)
        self._irqs_on.discard(index)

    def mask_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Mask vectors of a maskable index (INTx). Raises OSError: EINVAL, ENOTTY (MSI/MSI-X)."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.MASK_NONE, start=start, count=count)

    def unmask_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Unmask vectors (INTx is automasked after each interrupt). Raises OSError as mask_irq."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.UNMASK_NONE, start=start, count=count)

    def trigger_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Signal vectors' eventfds from the kernel (loopback). Raises OSError EINVAL if off."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.TRIGGER_NONE, start=start, count=count)
