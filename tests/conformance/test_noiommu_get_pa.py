"""iommufd's no-IOMMU mode (Linux 7.3, CONFIG_IOMMUFD_NOIOMMU): IOMMU_IOAS_NOIOMMU_GET_PA.

A device without an IOMMU in ``vfio.enable_unsafe_noiommu_mode`` gets the cdev
``/dev/vfio/devices/noiommu-vfioN``; bound to an iommufd and attached to an IOAS it gives the IOAS
a software page table, and GET_PA tells which physical address backs an IOVA and how many bytes
from there are physically contiguous (io_pagetable.c:iopt_get_phys).  The physical addresses are
checked against /proc/self/pagemap (root reads the frames): on Linux the guest's allocator decides
them, on the fake pyvfio.fake.physmem invents them and its pagemap shows the same.

Runs on the VM lane's noiommu-7.3 and on a fake laid out like it (standard_host(noiommu=True,
iommufd=True, linux="7.3")); every other profile skips.  GET_PA behind a real IOMMU is
test_map_file.py's.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.cdev import CdevDevice
from pyvfio.dma import allocate
from pyvfio.fake import standard_host
from pyvfio.iommufd import IOMMUFD
from tests.conformance.iommufd_helpers import PAGE, U64_MAX, Session, addr
from tests.conftest import Host, discover
from tests.helpers import expect_errno, expect_ok

PAGEMAP = "/proc/self/pagemap"
PFN_MASK = (1 << 55) - 1  # fs/proc/task_mmu.c: bits 0-54, bit 63 present
IOVA = 1 << 20
PAGES = 16


@pytest.fixture
def noiommu_host(host: Host) -> Iterator[Host]:
    """The lane's noiommu-7.3, or a fake laid out like it; other profiles skip."""
    if host.profile == "fake":
        kernel = standard_host(noiommu=True, iommufd=True, linux="7.3")
        yield discover(kernel, "noiommu-7.3")
        kernel.assert_clean()
        return
    if not (host.noiommu and host.linux_at_least(7, 3)):
        pytest.skip(f"{host.profile}: not iommufd's no-IOMMU mode (noiommu-7.3)")
    yield host


class NoiommuSession(Session):
    """A Session whose edu cdev is the noiommu one, bound and attached to an IOAS."""

    def bound(self) -> tuple[int, int, int, int]:
        fd, ioas, cdev, dev_id = self.bound_edu()
        assert self.k.sysfs_listdir(f"bus/pci/devices/{self.host.edu}/vfio-dev")[0].startswith(
            "noiommu-vfio")
        return fd, ioas, cdev, dev_id

    def get_pa(self, fd: int, ioas: int, iova: int, length: int, **fields: int) -> tuple[int, int]:
        arg = new("struct iommu_ioas_noiommu_get_pa *", ioas_id=ioas, iova=iova, length=length,
                  **fields)
        self.k.ioctl(fd, uapi.IOMMU_IOAS_NOIOMMU_GET_PA, arg)
        return int(arg.out_phys), int(arg.length)

    def frames(self, va: int, pages: int) -> list[int]:
        """Physical address of each page from ``va`` (/proc/self/pagemap; all present: pinned)."""
        pm = self.k.open(PAGEMAP, os.O_RDONLY)
        try:
            raw = self.k.pread(pm, 8 * pages, va // PAGE * 8)
        finally:
            self.k.close(pm)
        entries = struct.unpack(f"<{pages}Q", raw)
        assert all(e >> 63 for e in entries), [hex(e) for e in entries]
        return [(e & PFN_MASK) * PAGE for e in entries]


def _session(host: Host) -> NoiommuSession:
    return NoiommuSession(host)


def expected(frames: list[int], page: int, offset: int, length: int) -> tuple[int, int]:
    """iopt_get_phys over one area of ``frames``: the address, then the physically contiguous
    run from it to the area's end, capped by ``length``."""
    run, last = PAGE - offset, page
    while run < length and last + 1 < len(frames) and frames[last + 1] == frames[last] + PAGE:
        last += 1
        run += PAGE
    return frames[page] + offset, min(run, length)


def _mapped(s: NoiommuSession, fd: int, ioas: int) -> int:
    """A touched PAGES-page buffer mapped at IOVA; return its user address."""
    va = s.buffer(PAGES)
    ffi.memmove(ffi.cast("char *", va), b"\1" * PAGES * PAGE, PAGES * PAGE)
    assert s.map(fd, ioas, va, PAGES * PAGE, IOVA) == IOVA
    return va


def test_get_pa_matches_pagemap(noiommu_host: Host) -> None:
    """Every page's physical address is pagemap's frame; the length is the physically
    contiguous run from it inside the mapping, capped by the caller's length."""
    s = _session(noiommu_host)
    try:
        fd, ioas, cdev, _ = s.bound()
        s.attach(cdev, ioas)
        va = _mapped(s, fd, ioas)
        frames = s.frames(va, PAGES)
        for page in range(PAGES):
            rest = (PAGES - page) * PAGE
            got = s.get_pa(fd, ioas, IOVA + page * PAGE, rest)
            assert got == expected(frames, page, 0, rest), (page, [hex(f) for f in frames])
            assert s.get_pa(fd, ioas, IOVA + page * PAGE, 1) == (frames[page], 1)
        assert s.get_pa(fd, ioas, IOVA + 100, PAGE) == expected(frames, 0, 100, PAGE)
        assert s.get_pa(fd, ioas, IOVA + PAGE - 1, 10) == expected(frames, 0, PAGE - 1, 10)
        last = IOVA + (PAGES - 1) * PAGE  # a huge length stops at the mapping's end
        assert s.get_pa(fd, ioas, last, 1 << 30) == (frames[-1], PAGE)
        assert s.frames(va, PAGES) == frames  # pinned pages stay where they are
    finally:
        s.teardown()


def test_get_pa_wrapper(noiommu_host: Host) -> None:
    """pyvfio's object API on a noiommu cdev: CdevDevice binds and attaches, IOAS.noiommu_get_pa
    answers (physical address, contiguous length) as pagemap says."""
    k = noiommu_host.kernel
    with IOMMUFD(k) as fd, CdevDevice(noiommu_host.edu, kernel=k) as dev:
        dev.bind(fd)
        ioas = fd.ioas()
        dev.attach(ioas)
        buf = allocate(PAGES * PAGE)
        buf[:] = b"\1" * len(buf)
        mapping = ioas.map(buf, IOVA)
        frames = _session(noiommu_host).frames(addr(buf), PAGES)
        assert ioas.noiommu_get_pa(IOVA + 8, PAGE) == expected(frames, 0, 8, PAGE)
        expect_errno(errno.ENOENT, ioas.noiommu_get_pa, IOVA + PAGES * PAGE, PAGE)
        with pytest.raises(ValueError):
            ioas.noiommu_get_pa(IOVA, 0)
        mapping.close()
        dev.detach()


def test_get_pa_needs_the_noiommu_domain(noiommu_host: Host) -> None:
    """ioas.c:iommufd_ioas_noiommu_get_pa + iopt_get_phys: EOPNOTSUPP while no noiommu domain
    stores the area (before the attach, after the detach); ENOENT unmapped; EOPNOTSUPP flags or
    __reserved; EINVAL length 0; EOVERFLOW iova ULONG_MAX; ENOENT an unknown IOAS."""
    s = _session(noiommu_host)
    try:
        fd, ioas, cdev, _ = s.bound()
        _mapped(s, fd, ioas)
        expect_errno(errno.EOPNOTSUPP, s.get_pa, fd, ioas, IOVA, PAGE)
        s.attach(cdev, ioas)
        expect_ok(s.get_pa, fd, ioas, IOVA, PAGE)
        expect_errno(errno.ENOENT, s.get_pa, fd, ioas, IOVA + PAGES * PAGE, PAGE)
        expect_errno(errno.ENOENT, s.get_pa, fd, ioas, IOVA - 1, PAGE)
        expect_errno(errno.EOPNOTSUPP, s.get_pa, fd, ioas, IOVA, PAGE, flags=1)
        expect_errno(errno.EOPNOTSUPP, s.get_pa, fd, ioas, IOVA, PAGE, __reserved=1)
        expect_errno(errno.EINVAL, s.get_pa, fd, ioas, IOVA, 0)
        expect_errno(errno.EOVERFLOW, s.get_pa, fd, ioas, U64_MAX, PAGE)
        expect_errno(errno.ENOENT, s.get_pa, fd, ioas + 100, IOVA, PAGE)
        s.detach(cdev)
        expect_errno(errno.EOPNOTSUPP, s.get_pa, fd, ioas, IOVA, PAGE)
        s.unmap(fd, ioas, IOVA, PAGES * PAGE)
        expect_errno(errno.ENOENT, s.get_pa, fd, ioas, IOVA, PAGE)
    finally:
        s.teardown()


def test_noiommu_device_has_no_iommu(noiommu_host: Host) -> None:
    """What a bound noiommu device answers: GET_HW_INFO EOPNOTSUPP (device.c:
    iommufd_get_hw_info); HWPT_ALLOC without flags succeeds, with any flag EOPNOTSUPP
    (hwpt_noiommu.c:noiommu_alloc_paging_flags); a PASID cannot attach to the IOAS (EINVAL: the
    automatic domain is not PASID-compatible) and detaching a free one is fine."""
    s = _session(noiommu_host)
    try:
        fd, ioas, cdev, dev_id = s.bound()
        data = ffi.new("char[]", 64)
        info = new("struct iommu_hw_info *", dev_id=dev_id, data_len=64, data_uptr=addr(data))
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_GET_HW_INFO, info)
        hwpt = s.hwpt(fd, dev_id, ioas)
        for flag in (C.IOMMU_HWPT_ALLOC_NEST_PARENT, C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
                     C.IOMMU_HWPT_ALLOC_PASID):
            expect_errno(errno.EOPNOTSUPP, s.hwpt, fd, dev_id, ioas, flag)
        assert s.attach(cdev, hwpt) == hwpt
        auto = s.attach(cdev, ioas)
        assert auto != hwpt
        size = ffi.sizeof("struct vfio_device_attach_iommufd_pt")
        pasid = new("struct vfio_device_attach_iommufd_pt *", argsz=size,
                    flags=C.VFIO_DEVICE_ATTACH_PASID, pasid=1, pt_id=ioas)
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, pasid)
        free = new("struct vfio_device_detach_iommufd_pt *", argsz=12,
                   flags=C.VFIO_DEVICE_DETACH_PASID, pasid=1)
        expect_ok(s.k.ioctl, cdev, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, free)
        s.detach(cdev)
        s.destroy(fd, hwpt)
    finally:
        s.teardown()
