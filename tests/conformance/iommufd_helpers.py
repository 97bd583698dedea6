"""Raw-ioctl helpers for the iommufd conformance tests (no pyvfio object API).

Everything speaks to ``host.kernel`` with structs from :func:`pyvfio._ffi.new`, so one test runs on
the fake and on a real kernel.  :func:`iommufd_session` skips where the profile has no iommufd
(Debian's kernels: no /dev/iommu) and gives the fake host its /dev/iommu; the session closes its
fds newest first (cdevs before the iommufd they hold) and keeps its buffers alive until then.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conftest import Host

PAGE = mmap.PAGESIZE
U64_MAX = (1 << 64) - 1
RW = C.IOMMU_IOAS_MAP_READABLE | C.IOMMU_IOAS_MAP_WRITEABLE
FIXED = C.IOMMU_IOAS_MAP_FIXED_IOVA


def addr(cdata_or_buffer: Any) -> int:
    """The user address of a cdata or a writable buffer."""
    if not isinstance(cdata_or_buffer, ffi.CData):
        cdata_or_buffer = ffi.from_buffer(cdata_or_buffer)
    return int(ffi.cast("uintptr_t", cdata_or_buffer))


class Session:
    """One test's fds and buffers on an iommufd-capable host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.k = host.kernel
        self.fds: list[int] = []
        self.buffers: list[Any] = []

    def track(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self.k.close(fd)

    def iommufd(self) -> int:
        return self.track(self.k.open("/dev/iommu"))

    def buffer(self, pages: int = 1) -> int:
        """A page-aligned anonymous buffer, alive for the session; return its address."""
        buf = mmap.mmap(-1, pages * PAGE)
        self.buffers.append(buf)
        return addr(buf)

    def ioas(self, fd: int) -> int:
        arg = new("struct iommu_ioas_alloc *")
        self.k.ioctl(fd, uapi.IOMMU_IOAS_ALLOC, arg)
        return int(arg.out_ioas_id)

    def destroy(self, fd: int, obj_id: int) -> None:
        self.k.ioctl(fd, uapi.IOMMU_DESTROY, new("struct iommu_destroy *", id=obj_id))

    def map(self, fd: int, ioas: int, user_va: int, length: int, iova: int | None = None,
            flags: int = RW) -> int:
        """IOMMU_IOAS_MAP (FIXED_IOVA when ``iova`` is given); return the IOVA."""
        flags |= FIXED if iova is not None else 0
        arg = new("struct iommu_ioas_map *", flags=flags, ioas_id=ioas, user_va=user_va,
                  length=length, iova=iova or 0)
        self.k.ioctl(fd, uapi.IOMMU_IOAS_MAP, arg)
        return int(arg.iova)

    def unmap(self, fd: int, ioas: int, iova: int, length: int) -> int:
        arg = new("struct iommu_ioas_unmap *", ioas_id=ioas, iova=iova, length=length)
        self.k.ioctl(fd, uapi.IOMMU_IOAS_UNMAP, arg)
        return int(arg.length)

    def ranges(self, fd: int, ioas: int) -> tuple[list[tuple[int, int]], int]:
        """IOMMU_IOAS_IOVA_RANGES with room for 16; return (ranges, alignment)."""
        buf = ffi.new("struct iommu_iova_range[]", 16)
        arg = new("struct iommu_ioas_iova_ranges *", ioas_id=ioas, num_iovas=16,
                  allowed_iovas=addr(buf))
        self.k.ioctl(fd, uapi.IOMMU_IOAS_IOVA_RANGES, arg)
        out = [(int(buf[i].start), int(buf[i].last)) for i in range(arg.num_iovas)]
        return out, int(arg.out_iova_alignment)

    def cdev(self, bdf: str) -> int:
        """Open the VFIO cdev of ``bdf`` (found through sysfs vfio-dev/)."""
        names = self.k.sysfs_listdir(f"bus/pci/devices/{bdf}/vfio-dev")
        return self.track(self.k.open(f"/dev/vfio/devices/{names[0]}"))

    def bind(self, cdev: int, iommufd: int, flags: int = 0) -> int:
        arg = new("struct vfio_device_bind_iommufd *", argsz=16, flags=flags, iommufd=iommufd)
        self.k.ioctl(cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        return int(arg.out_devid)

    def attach(self, cdev: int, pt_id: int) -> int:
        arg = new("struct vfio_device_attach_iommufd_pt *", argsz=12, pt_id=pt_id)
        self.k.ioctl(cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg)
        return int(arg.pt_id)

    def detach(self, cdev: int) -> None:
        arg = new("struct vfio_device_detach_iommufd_pt *", argsz=8)
        self.k.ioctl(cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, arg)

    def bound_edu(self) -> tuple[int, int, int, int]:
        """iommufd + IOAS + the lone edu's cdev bound: (iommufd, ioas, cdev, dev_id)."""
        fd = self.iommufd()
        ioas = self.ioas(fd)
        cdev = self.cdev(self.host.edu)
        return fd, ioas, cdev, self.bind(cdev, fd)

    def hwpt(self, fd: int, dev_id: int, pt_id: int, flags: int = 0) -> int:
        arg = new("struct iommu_hwpt_alloc *", flags=flags, dev_id=dev_id, pt_id=pt_id)
        self.k.ioctl(fd, uapi.IOMMU_HWPT_ALLOC, arg)
        return int(arg.out_hwpt_id)

    def teardown(self) -> None:
        while self.fds:
            self.k.close(self.fds.pop())
        for buf in self.buffers:
            buf.close()


def require_iommufd(host: Host) -> None:
    """Skip where the profile has no iommufd (no /dev/iommu)."""
    if host.noiommu:
        pytest.skip("noiommu: iommufd needs an IOMMU (no cdev in no-IOMMU mode here)")
    if not host.kernel.exists("/dev/iommu"):
        pytest.skip(f"{host.profile}: no /dev/iommu (kernel without CONFIG_IOMMUFD)")


@contextmanager
def iommufd_session(host: Host) -> Iterator[Session]:
    """A :class:`Session` on an iommufd host (skips otherwise)."""
    require_iommufd(host)
    s = Session(host)
    try:
        yield s
    finally:
        s.teardown()


def hw_capabilities(s: Session, fd: int, dev_id: int) -> int:
    """IOMMU_GET_HW_INFO's out_capabilities of a bound device."""
    arg = new("struct iommu_hw_info *", dev_id=dev_id)
    s.k.ioctl(fd, uapi.IOMMU_GET_HW_INFO, arg)
    return int(arg.out_capabilities)
