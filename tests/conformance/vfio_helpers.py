"""Raw-ioctl helpers for the legacy VFIO conformance tests (no pyvfio object API).

Everything here speaks to ``host.kernel`` with structs from :func:`pyvfio._ffi.new`, so the same
test runs on the fake and on a real kernel.  ``Session`` opens what a test needs and closes it in
reverse order, device fds first (the kernel answers EBUSY otherwise).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conftest import Host

CONFIG = 7
PCI_COMMAND = 0x04
MEMORY, MASTER = 0x2, 0x4
EDU_BAR = 0


def region_offset(index: int) -> int:
    """vfio-pci's file offset of region ``index`` (index << 40)."""
    return index << 40


def type1(host: Host) -> int:
    """The IOMMU type the profile's container takes."""
    return int(C.VFIO_NOIOMMU_IOMMU) if host.noiommu else int(C.VFIO_TYPE1v2_IOMMU)


def name_arg(bdf: str) -> Any:
    """A NUL-terminated C string for VFIO_GROUP_GET_DEVICE_FD."""
    return ffi.new("char[]", bdf.encode())


class Session:
    """Open fds of one test; :meth:`close` closes them newest first."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.k = host.kernel
        self.fds: list[int] = []
        self.maps: list[Any] = []

    def track(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def container(self) -> int:
        return self.track(self.k.open("/dev/vfio/vfio"))

    def group(self, number: int) -> int:
        return self.track(self.k.open(self.host.group_path(number)))

    def attach(self, group: int, container: int) -> None:
        self.k.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", container))

    def ready(self, number: int) -> tuple[int, int]:
        """Container + group attached + IOMMU set; return (container, group)."""
        c, g = self.container(), self.group(number)
        self.attach(g, c)
        self.k.ioctl(c, uapi.VFIO_SET_IOMMU, type1(self.host))
        return c, g

    def device(self, group: int, bdf: str) -> int:
        return self.track(self.k.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, name_arg(bdf)))

    def edu(self) -> tuple[int, int, int]:
        """The lone edu, opened: (container, group, device)."""
        c, g = self.ready(self.host.edu_group)
        return c, g, self.device(g, self.host.edu)

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self.k.close(fd)

    def close_all(self) -> None:
        for m in reversed(self.maps):
            m.close()
        self.maps.clear()
        while self.fds:
            self.close(self.fds[-1])


@contextmanager
def session(host: Host) -> Iterator[Session]:
    """A :class:`Session` closed at the end of the block."""
    s = Session(host)
    try:
        yield s
    finally:
        s.close_all()


def cfg_read(host: Host, dev: int, offset: int, size: int) -> int:
    return int.from_bytes(host.kernel.pread(dev, size, region_offset(CONFIG) + offset), "little")


def cfg_write(host: Host, dev: int, offset: int, size: int, value: int) -> None:
    host.kernel.pwrite(dev, value.to_bytes(size, "little"), region_offset(CONFIG) + offset)


def set_command(host: Host, dev: int, bits: int) -> None:
    """Set bits of the PCI command register (MEMORY, MASTER) through config space."""
    cfg_write(host, dev, PCI_COMMAND, 2, cfg_read(host, dev, PCI_COMMAND, 2) | bits)


def bar_read32(host: Host, dev: int, offset: int) -> int:
    return int(struct.unpack("<I", host.kernel.pread(dev, 4, region_offset(EDU_BAR) + offset))[0])


def bar_write32(host: Host, dev: int, offset: int, value: int) -> None:
    host.kernel.pwrite(dev, struct.pack("<I", value), region_offset(EDU_BAR) + offset)


def dma_map(host: Host, c: int, buf: Any, iova: int, flags: int | None = None) -> Any:
    """VFIO_IOMMU_MAP_DMA of ``buf`` (an mmap) at ``iova``; return the struct passed."""
    vaddr = int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))
    rw = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE
    m = new("struct vfio_iommu_type1_dma_map *", flags=rw if flags is None else flags,
            vaddr=vaddr, iova=iova, size=len(buf))
    host.kernel.ioctl(c, uapi.VFIO_IOMMU_MAP_DMA, m)
    return m


def dma_unmap(host: Host, c: int, iova: int, size: int, flags: int = 0) -> int:
    """VFIO_IOMMU_UNMAP_DMA; return the size the kernel wrote back."""
    u = new("struct vfio_iommu_type1_dma_unmap *", flags=flags, iova=iova, size=size)
    host.kernel.ioctl(c, uapi.VFIO_IOMMU_UNMAP_DMA, u)
    return int(u.size)


def buffer(size: int = 0x1000) -> mmap.mmap:
    """Page-aligned anonymous memory, as a driver would allocate for DMA."""
    return mmap.mmap(-1, size)
