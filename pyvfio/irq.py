"""Device interrupts: ``VFIO_DEVICE_GET_IRQ_INFO``, ``VFIO_DEVICE_SET_IRQS`` and eventfds."""

from __future__ import annotations

import os
import select
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.dma import check_int
from pyvfio.kernel import Kernel, default

if TYPE_CHECKING:
    import asyncio


@dataclass(frozen=True)
class IrqInfo:
    """``VFIO_DEVICE_GET_IRQ_INFO`` decoded: ``flags`` are ``VFIO_IRQ_INFO_*`` bits."""

    index: int
    flags: uapi.IrqInfoFlag
    count: int

    @property
    def eventfd(self) -> bool:
        """Interrupts can be signalled through eventfds."""
        return bool(self.flags & C.VFIO_IRQ_INFO_EVENTFD)

    @property
    def maskable(self) -> bool:
        """The interrupt can be masked and unmasked."""
        return bool(self.flags & C.VFIO_IRQ_INFO_MASKABLE)

    @property
    def automasked(self) -> bool:
        """The interrupt stays masked after firing until unmasked (INTx)."""
        return bool(self.flags & C.VFIO_IRQ_INFO_AUTOMASKED)

    @property
    def noresize(self) -> bool:
        """All vectors must be set up at once (disable before adding vectors)."""
        return bool(self.flags & C.VFIO_IRQ_INFO_NORESIZE)


def irq_info(kernel: Kernel, fd: int, index: int) -> IrqInfo:
    """Return the interrupt info of index ``index`` of device ``fd``.

    Raises:
        TypeError, ValueError: ``index`` is not a u32.
        OSError: EINVAL for an index the device does not have (ERR on conventional PCI).
    """
    check_int("index", index, 0, 0xFFFFFFFF)
    arg = new("struct vfio_irq_info *", index=index)
    _ioctl.call(kernel, fd, uapi.VFIO_DEVICE_GET_IRQ_INFO, arg)
    return IrqInfo(int(arg.index), uapi.IrqInfoFlag(int(arg.flags)), int(arg.count))


def set_irqs(
    kernel: Kernel,
    fd: int,
    index: int,
    flags: int,
    *,
    start: int = 0,
    fds: Sequence[int] = (),
    count: int | None = None,
) -> int:
    """Issue ``VFIO_DEVICE_SET_IRQS``; ``fds`` fill the data when ``DATA_EVENTFD`` is in ``flags``.

    Returns:
        The ioctl's result: 0, or, when enabling MSI/MSI-X, the number of vectors available if
        fewer than requested could be allocated (then nothing was enabled).

    Raises:
        TypeError, ValueError: index, start or an fd out of range.
        OSError: EINVAL (bad index/start/count, other MSI type enabled), ENOTTY (action not
            supported for the index), EBADF (bad eventfd), ENODEV (no IRQ line).
    """
    check_int("index", index, 0, 0xFFFFFFFF)
    check_int("start", start, 0, 0xFFFFFFFF)
    for i, efd in enumerate(fds):
        check_int(f"eventfds[{i}]", efd, -1, 0x7FFFFFFF)
    n = len(fds) if count is None else count
    arg = new("struct vfio_irq_set *", 4 * len(fds), flags=flags, index=index, start=start, count=n)
    if fds:
        data = ffi.cast("int32_t *", arg.data)
        for i, efd in enumerate(fds):
            data[i] = efd
    return _ioctl.call(kernel, fd, uapi.VFIO_DEVICE_SET_IRQS, arg)


TRIGGER_EVENTFD = C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER
TRIGGER_NONE = C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_TRIGGER
MASK_NONE = C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_MASK
UNMASK_NONE = C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_UNMASK


class EventFD(FdOwner):
    """A non-blocking eventfd: give it to :meth:`pyvfio.device.Device.enable_irq` and wait on it."""

    def __init__(self, kernel: Kernel | None = None) -> None:
        """Create the eventfd.

        Raises:
            OSError: EMFILE/ENFILE when out of fds.
        """
        kernel = default() if kernel is None else kernel
        self._own(kernel, kernel.eventfd(0, os.EFD_NONBLOCK))

    def __repr__(self) -> str:
        return f"<EventFD fd={self._fd}>"

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until signalled; return the count of signals (and reset it), or None on timeout.

        Raises:
            ValueError: the eventfd is closed, or ``timeout`` is negative.
        """
        self._check_open()
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return self.read() if ready else None

    async def wait_async(self, timeout: float | None = None) -> int | None:
        """Await a signal on the running asyncio loop (``loop.add_reader``); like :meth:`wait`.

        Raises:
            ValueError: the eventfd is closed, or ``timeout`` is negative.
            RuntimeError: no running event loop.
        """
        self._check_open()
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
        import asyncio  # noqa: PLC0415 - asyncio costs ~30 ms to import; only async users pay

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()

        def readable() -> None:
            count = self.read()
            if count is not None and not fut.done():
                fut.set_result(count)

        loop.add_reader(self._fd, readable)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            loop.remove_reader(self._fd)

    def read(self) -> int | None:
        """Return the pending count (resetting it) without waiting, or None if none is pending."""
        self._check_open()
        try:
            data = self._kernel.read(self._fd, 8)
        except BlockingIOError:
            return None
        return int.from_bytes(data, "little")

    def signal(self, value: int = 1) -> None:
        """Add ``value`` to the counter, as the kernel does on an interrupt.

        Raises:
            TypeError, ValueError: ``value`` is not an int in [1, 2**64 - 2].
        """
        check_int("value", value, 1, (1 << 64) - 2)
        self._check_open()
        self._kernel.write(self._fd, value.to_bytes(8, "little"))
