"""vfio-pci interrupts: VFIO_DEVICE_SET_IRQS and the eventfds it wires (vfio_pci_intrs.c).

Only one of INTx, MSI and MSI-X is enabled at a time.  INTx is level-triggered and AUTOMASKED:
each assertion signals the trigger eventfd once and masks until UNMASK; an UNMASK while the line is
still asserted fires again.  Eventfds are held by a ``dup`` of the caller's fd, as the kernel holds
an ``eventfd_ctx``, so closing the caller's fd does not disturb a live trigger.
"""

from __future__ import annotations

import errno
import os
import struct

from pyvfio._ffi import C
from pyvfio.fake.memory import kerr
from pyvfio.fake.pci import PCI_CAP_ID_EXP, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCIDevice

INTX, MSI, MSIX, ERR, REQ = (C.VFIO_PCI_INTX_IRQ_INDEX, C.VFIO_PCI_MSI_IRQ_INDEX,
                              C.VFIO_PCI_MSIX_IRQ_INDEX, C.VFIO_PCI_ERR_IRQ_INDEX,
                              C.VFIO_PCI_REQ_IRQ_INDEX)
_DATA = C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_DATA_BOOL | C.VFIO_IRQ_SET_DATA_EVENTFD
_ACTION = C.VFIO_IRQ_SET_ACTION_MASK | C.VFIO_IRQ_SET_ACTION_UNMASK | C.VFIO_IRQ_SET_ACTION_TRIGGER


# The fds fake kernels have open (FakeKernel adds and removes them): such an fd given where an
# eventfd is expected is an open file of the wrong kind (EINVAL), not a closed one (EBADF).
FAKE_FDS: set[int] = set()


def eventfd_get(fd: int) -> int:
    """eventfd_ctx_fdget: hold a reference (a dup). Raises EBADF, EINVAL (not an eventfd: a
    real file, or one of a fake kernel's fds)."""
    if fd in FAKE_FDS:
        raise kerr(errno.EINVAL)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        raise kerr(errno.EBADF) from None
    if target != "anon_inode:[eventfd]":
        raise kerr(errno.EINVAL)
    return os.dup(fd)


def signal(fd: int | None) -> None:
    """eventfd_signal: add 1 to the counter."""
    if fd is not None:
        os.write(fd, struct.pack("<Q", 1))


def put(fd: int | None) -> None:
    """eventfd_ctx_put: drop the held reference."""
    if fd is not None:
        os.close(fd)


class Interrupts:
    """The interrupt state of one open vfio-pci device; also the device model's IrqSink."""

    def __init__(self, dev: PCIDevice) -> None:
        self.dev = dev
        self.irq_type: int | None = None
        self.intx_fd: int | None = None
        self.intx_masked = False
        self.intx_level = False
        self.unmask_fd: int | None = None
        self.vectors: dict[int, int | None] = {}
        self.ctx: dict[int, int | None] = {ERR: None, REQ: None}
        self.signals: list[tuple[int, int]] = []  # (index, vector) of every interrupt delivered
        # vfio_msi_enable: log2 of the MSI vectors enabled, the QMASK vfio's config space shows
        # (the kernel keeps it per bound device; the fake per open, from 0 at the first open)
        self.msi_qmax = 0

    def count(self, index: int, *, err_always: bool = False) -> int:
        """vfio_pci_get_irq_count.  ``err_always``: 7.3 gives every device one ERR IRQ, 6.12
        only PCIe ones (``if (pci_is_pcie(vdev->pdev)) return 1``)."""
        caps, cfg = self.dev.caps, self.dev.cfg
        return {INTX: int(bool(self.dev.config[0x3D])),
                MSI: cfg.msi_vectors if PCI_CAP_ID_MSI in caps else 0,
                MSIX: cfg.msix_vectors if PCI_CAP_ID_MSIX in caps else 0,
                ERR: 1 if err_always else int(PCI_CAP_ID_EXP in caps), REQ: 1}.get(index, 0)

    def held(self) -> list[int]:
        """Return every eventfd dup held (for the leak check)."""
        fds = [self.intx_fd, self.unmask_fd, *self.vectors.values(), *self.ctx.values()]
        return [fd for fd in fds if fd is not None]

    # -- the device model's side (IrqSink) -------------------------------------------------

    def intx(self, dev: PCIDevice, level: bool) -> None:
        self.intx_level = level
        if level and self.irq_type == INTX and not self.intx_masked:
            self.intx_masked = True  # VFIO_IRQ_INFO_AUTOMASKED
            self.signals.append((INTX, 0))
            signal(self.intx_fd)

    def msi(self, dev: PCIDevice, vector: int) -> None:
        irq = self.irq_type
        if irq is not None and irq in (MSI, MSIX) and self.vectors.get(vector) is not None:
            self.signals.append((irq, vector))
            signal(self.vectors[vector])

    # -- SET_IRQS --------------------------------------------------------------------------

    def set_irqs(self, flags: int, index: int, start: int, data: list[int], *,
                 err_always: bool = False) -> int:
        """Dispatch one validated VFIO_DEVICE_SET_IRQS (vfio_pci_set_irqs_ioctl); ERR and REQ
        have TRIGGER only (ENOTTY), ERR on 6.12 only for a PCIe device (``err_always``: 7.3)."""
        action = flags & _ACTION
        kind = flags & _DATA
        if index == INTX and action == C.VFIO_IRQ_SET_ACTION_TRIGGER:
            return self._intx_trigger(kind, start, data)
        if index == INTX and action in (C.VFIO_IRQ_SET_ACTION_MASK, C.VFIO_IRQ_SET_ACTION_UNMASK):
            return self._intx_mask(action == C.VFIO_IRQ_SET_ACTION_MASK, kind, start, data)
        if index in (MSI, MSIX) and action == C.VFIO_IRQ_SET_ACTION_TRIGGER:
            return self._msi_trigger(index, kind, start, data)
        if index in (ERR, REQ) and action == C.VFIO_IRQ_SET_ACTION_TRIGGER:
            if index == ERR and not err_always and PCI_CAP_ID_EXP not in self.dev.caps:
                raise kerr(errno.ENOTTY)
            return self._ctx_trigger(index, kind, start, data)
        raise kerr(errno.ENOTTY)

    def _intx_trigger(self, kind: int, start: int, data: list[int]) -> int:
        if self.irq_type == INTX and not data and kind == C.VFIO_IRQ_SET_DATA_NONE:
            self.disable()
            return 0
        if self.irq_type not in (None, INTX) or start != 0 or len(data) != 1:
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_EVENTFD:
            fd = eventfd_get(data[0]) if data[0] >= 0 else None
            if self.irq_type is None and not self.count(INTX):
                put(fd)
                raise kerr(errno.ENODEV)
            put(self.intx_fd)
            self.intx_fd = fd
            if self.irq_type is None:
                self.irq_type, self.intx_masked = INTX, False
                self.intx(self.dev, self.intx_level)
            return 0
        if self.irq_type != INTX:
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_NONE or data[0]:
            signal(self.intx_fd)
        return 0

    def _intx_mask(self, mask: bool, kind: int, start: int, data: list[int]) -> int:
        if self.irq_type != INTX or start != 0 or len(data) != 1:
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_EVENTFD:
            if mask:
                raise kerr(errno.ENOTTY)
            fd = eventfd_get(data[0]) if data[0] >= 0 else None
            put(self.unmask_fd)
            self.unmask_fd = fd
            return 0
        if kind == C.VFIO_IRQ_SET_DATA_NONE or data[0]:
            self.intx_masked = mask
            if not mask:
                self.intx(self.dev, self.intx_level)  # still asserted: fires again
        return 0

    def _msi_trigger(self, index: int, kind: int, start: int, data: list[int]) -> int:
        if self.irq_type == index and not data and kind == C.VFIO_IRQ_SET_DATA_NONE:
            self.disable()
            return 0
        if self.irq_type not in (None, index):
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_EVENTFD:
            self._msi_assign(index, start, data)
            return 0
        if self.irq_type != index:
            raise kerr(errno.EINVAL)
        for vector, flag in enumerate(data, start):
            if kind == C.VFIO_IRQ_SET_DATA_NONE or flag:
                signal(self.vectors.get(vector))
        return 0

    def _msi_assign(self, index: int, start: int, data: list[int]) -> None:
        """vfio_msi_set_block: enable if needed, then (re)assign [start, start+count); any bad
        fd undoes the whole block."""
        fds: list[int | None] = []
        try:
            for fd in data:
                fds.append(eventfd_get(fd) if fd >= 0 else None)
        except OSError:
            for held in fds:
                put(held)
            raise
        if self.irq_type is None:
            if start + len(data) == 0:
                # vfio_msi_enable(nvec = start + count = 0): pci_alloc_irq_vectors(1, 0)
                raise kerr(errno.ERANGE)
            self.irq_type = index
            self.dev.set_msi_enable(True, msix=index == MSIX)
            if index == MSI:
                self.msi_qmax = (2 * (start + len(data)) - 1).bit_length() - 1
        for vector, held in enumerate(fds, start):
            put(self.vectors.pop(vector, None))
            self.vectors[vector] = held

    def _ctx_trigger(self, index: int, kind: int, start: int, data: list[int]) -> int:
        if start != 0 or len(data) > 1:
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_NONE:
            if self.ctx[index] is None:
                raise kerr(errno.EINVAL)
            if data:
                signal(self.ctx[index])
            else:
                put(self.ctx.pop(index))
                self.ctx[index] = None
            return 0
        if not data or (kind == C.VFIO_IRQ_SET_DATA_EVENTFD and data[0] < -1):
            raise kerr(errno.EINVAL)
        if kind == C.VFIO_IRQ_SET_DATA_BOOL:
            if data[0]:
                signal(self.ctx[index])
            return 0
        fd = eventfd_get(data[0]) if data[0] >= 0 else None
        put(self.ctx[index])
        self.ctx[index] = fd
        return 0

    def disable(self) -> None:
        """Disable INTx/MSI/MSI-X and release their eventfds (SET_IRQS with count 0)."""
        if self.irq_type in (MSI, MSIX):
            self.dev.set_msi_enable(False, msix=self.irq_type == MSIX)
        for fd in [self.intx_fd, self.unmask_fd, *self.vectors.values()]:
            put(fd)
        self.intx_fd = self.unmask_fd = None
        self.vectors.clear()
        self.irq_type = None

    def close(self) -> None:
        """The last close of the device: everything off, ERR/REQ eventfds released."""
        self.disable()
        for index in (ERR, REQ):
            put(self.ctx[index])
            self.ctx[index] = None
