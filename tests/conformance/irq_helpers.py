"""SET_IRQS and eventfd helpers for the interrupt and edu tests (raw ioctls)."""

from __future__ import annotations

import select
import struct

from pyvfio import uapi
from pyvfio._ffi import C, new
from tests.conftest import Host

INTX, MSI, MSIX, ERR, REQ = range(5)
TRIGGER = C.VFIO_IRQ_SET_ACTION_TRIGGER
EVENTFD = C.VFIO_IRQ_SET_DATA_EVENTFD
NONE = C.VFIO_IRQ_SET_DATA_NONE
BOOL = C.VFIO_IRQ_SET_DATA_BOOL


def set_irqs(host: Host, dev: int, index: int, flags: int, start: int = 0,
             fds: list[int] | None = None, count: int | None = None) -> int:
    """VFIO_DEVICE_SET_IRQS with eventfds (or bools) ``fds``; ``count`` defaults to len(fds)."""
    data = fds or []
    size = 4 if flags & EVENTFD else 1 if flags & BOOL else 0
    n = len(data) if count is None else count
    irq = new("struct vfio_irq_set *", len(data) * size, flags=flags, index=index, start=start,
              count=n)
    if size:
        raw = struct.pack(f"<{len(data)}{'i' if size == 4 else 'B'}", *data)
        for i, b in enumerate(raw):
            irq.data[i] = b
    return host.kernel.ioctl(dev, uapi.VFIO_DEVICE_SET_IRQS, irq)


def irq_info(host: Host, dev: int, index: int):  # type: ignore[no-untyped-def]
    info = new("struct vfio_irq_info *", index=index)
    host.kernel.ioctl(dev, uapi.VFIO_DEVICE_GET_IRQ_INFO, info)
    return info


def wait_event(host: Host, efd: int, timeout: float = 2.0) -> int:
    """Wait for an eventfd to fire; return its counter (0 on timeout)."""
    ready, _, _ = select.select([efd], [], [], timeout)
    if not ready:
        return 0
    return int(struct.unpack("<Q", host.kernel.read(efd, 8))[0])
