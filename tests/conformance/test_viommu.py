"""vIOMMU, vDEVICE, nested HWPTs from a vIOMMU and their invalidation, on the IOMMUFD_TEST mock.

Specification: Linux 7.3 tools/testing/selftests/iommu/iommufd.c (fixture ``iommufd_viommu``:
viommu_negative_tests, vdevice_alloc, vdevice_cache, vdevice_tombstone, hw_queue;
``iommufd_ioas.alloc_hwpt_nested``), drivers/iommu/iommufd/viommu.c, hw_pagetable.c, selftest.c.
Runs on the fake and on 7.x kernels with CONFIG_IOMMUFD_TEST where mock devices can be created
(the lane's mock profiles); skips on 6.12 (ENOTTY) and next to intel-iommu.
"""

from __future__ import annotations

import errno
import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from pyvfio import uapi
from pyvfio._ffi import C, new
from pyvfio.hwpt import HWPT
from pyvfio.iommufd import IOAS, IOMMUFD
from pyvfio.viommu import VIOMMU, HWQueue, VDevice
from tests.conformance.mock_helpers import (
    MockDevice,
    mock_iommufd,
    nest_parent,
    since,
    test_cmd,
)
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

SELFTEST = C.IOMMU_VIOMMU_TYPE_SELFTEST
IOTLB_DEFAULT = C.IOMMU_TEST_IOTLB_DEFAULT
CACHE_DEFAULT = C.IOMMU_TEST_DEV_CACHE_DEFAULT
PAGE = mmap.PAGESIZE


def selftest_data(iotlb: int = IOTLB_DEFAULT) -> bytes:
    """struct iommu_hwpt_selftest."""
    return struct.pack("<II", iotlb, 0)


@contextmanager
def viommu_fixture(host: Host) -> Iterator[tuple[IOMMUFD, IOAS, MockDevice, HWPT, VIOMMU]]:
    """FIXTURE(iommufd_viommu) variant mock_viommu: mock device, NEST_PARENT HWPT, vIOMMU."""
    with mock_iommufd(host) as (fd, ioas, dev):
        parent = nest_parent(fd, ioas, dev)
        viommu = since(host, "6.13", VIOMMU.alloc, fd, dev.idev, parent, SELFTEST)
        yield fd, ioas, dev, parent, viommu


def nested(fd: IOMMUFD, dev: MockDevice, pt: HWPT | VIOMMU, **kw: object) -> HWPT:
    return HWPT.alloc(fd, dev.idev, pt, data_type=C.IOMMU_HWPT_DATA_SELFTEST,
                      data=selftest_data(), **kw)  # type: ignore[arg-type]


def test_viommu_negative(host: Host) -> None:
    """viommu_negative_tests: no HWPT -> ENOENT, not a nesting parent -> EINVAL, unknown type ->
    EOPNOTSUPP; a vIOMMU holds its parent (EBUSY) and is held by nothing yet."""
    with viommu_fixture(host) as (fd, ioas, dev, parent, viommu):
        expect_errno(errno.ENOENT, VIOMMU.alloc, fd, dev.idev, HWPT(fd, 0), SELFTEST)
        plain = HWPT.alloc(fd, dev.idev, ioas)
        expect_errno(errno.EINVAL, VIOMMU.alloc, fd, dev.idev, plain, SELFTEST)
        plain.destroy()
        expect_errno(errno.EOPNOTSUPP, VIOMMU.alloc, fd, dev.idev, parent, 0xDEAD)
        expect_errno(errno.EOPNOTSUPP, VIOMMU.alloc, fd, dev.idev, parent,
                     C.IOMMU_VIOMMU_TYPE_DEFAULT)
        expect_errno(errno.EBUSY, parent.destroy)
        expect_ok(viommu.destroy)
        expect_ok(parent.destroy)


def test_viommu_alloc_with_data_loops_back(host: Host) -> None:
    """viommu_alloc_with_data: the mock copies in_data to out_data and offers two pages to mmap
    at an offset past the first page."""
    with viommu_fixture(host) as (fd, _, dev, parent, _):
        data = struct.pack("<IIQQ", 0xBEEF, 0, 0, 0)
        viommu = VIOMMU.alloc(fd, dev.idev, parent, SELFTEST, data)
        in_data, out_data, offset, length = struct.unpack("<IIQQ", viommu.data)
        assert (in_data, out_data, length) == (0xBEEF, 0xBEEF, 2 * PAGE)
        assert offset >= PAGE and offset % PAGE == 0
        for off, n in ((offset + PAGE, length), (offset + 2 * PAGE, length),
                       (offset, length // 2), (offset, length * 2)):
            expect_errno(errno.ENXIO, viommu.mmap, off, n)  # only the exact region maps
        pages = viommu.mmap(offset, length)
        try:
            assert pages.read(0, 4) == 0xBEEF  # the loopback page
            expect_errno(errno.EBUSY, viommu.destroy)  # the mmap holds the vIOMMU
        finally:
            pages.close()
        viommu.destroy()


def test_nested_from_parent_iotlb_invalidate(host: Host) -> None:
    """alloc_hwpt_nested: a nested mock HWPT starts with its IOTLB entries at the given value;
    HWPT_INVALIDATE clears one entry or all, and counts the records handled up to a bad one."""
    with viommu_fixture(host) as (fd, _, dev, parent, _):
        hwpt = nested(fd, dev, parent)
        expect_errno(errno.EBUSY, parent.destroy)

        def iotlb(i: int, value: int) -> None:
            test_cmd(fd, C.IOMMU_TEST_OP_MD_CHECK_IOTLB, hwpt.id,
                     check_iotlb={"id": i, "iotlb": value})

        for i in range(4):
            iotlb(i, IOTLB_DEFAULT)
        expect_errno(errno.EINVAL, iotlb, 4, IOTLB_DEFAULT)
        rec = struct.Struct("<II")  # struct iommu_hwpt_invalidate_selftest: flags, iotlb_id
        sel = C.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST
        assert hwpt.invalidate(rec.pack(0, 1), rec.size, sel) == 1
        iotlb(1, 0)
        iotlb(0, IOTLB_DEFAULT)
        err = expect_errno(errno.EOPNOTSUPP, hwpt.invalidate, rec.pack(0, 2) + rec.pack(2, 3),
                           rec.size, sel)
        assert err.handled == 1  # type: ignore[attr-defined]
        iotlb(2, 0)
        err = expect_errno(errno.EINVAL, hwpt.invalidate, rec.pack(0, 4), rec.size, sel)
        assert err.handled == 0  # type: ignore[attr-defined]
        expect_errno(errno.EINVAL, hwpt.invalidate, rec.pack(0, 0), rec.size,
                     C.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID)
        assert hwpt.invalidate(rec.pack(C.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0), rec.size, sel) == 1
        for i in range(4):
            iotlb(i, 0)
        hwpt.destroy()


def test_nested_needs_nest_parent_and_data(host: Host) -> None:
    """iommufd_hwpt_nested_alloc: a non-parent HWPT -> EINVAL; no data -> EINVAL (size rule);
    an unknown data type -> EOPNOTSUPP; an unknown flag -> EOPNOTSUPP."""
    with viommu_fixture(host) as (fd, ioas, dev, _, _):
        plain = HWPT.alloc(fd, dev.idev, ioas)
        expect_errno(errno.EINVAL, nested, fd, dev, plain)
        parent = nest_parent(fd, ioas, dev)
        expect_errno(errno.EINVAL, HWPT.alloc, fd, dev.idev, parent,
                     data_type=C.IOMMU_HWPT_DATA_SELFTEST)
        expect_errno(errno.EOPNOTSUPP, HWPT.alloc, fd, dev.idev, parent,
                     data_type=C.IOMMU_HWPT_DATA_VTD_S1, data=bytes(24))
        expect_errno(errno.EOPNOTSUPP, HWPT.alloc, fd, dev.idev, parent, dirty_tracking=True,
                     data_type=C.IOMMU_HWPT_DATA_SELFTEST, data=selftest_data())
        plain.destroy()
        parent.destroy()


def test_vdevice_alloc_and_attach(host: Host) -> None:
    """vdevice_alloc: a nested HWPT of a vIOMMU takes the device only with a vDEVICE there
    (ENOENT before); one vDEVICE per device and per virt_id (EEXIST)."""
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        hwpt = nested(fd, dev, viommu)
        expect_errno(errno.ENOENT, dev.replace, fd, hwpt.id)
        vdev = VDevice.alloc(viommu, dev.idev, 0x99)
        assert dev.replace(fd, hwpt.id) == hwpt.id
        expect_errno(errno.EEXIST, VDevice.alloc, viommu, dev.idev, 0x88)
        expect_errno(errno.EBUSY, viommu.destroy)
        expect_errno(errno.EBUSY, hwpt.destroy)
        dev.replace(fd, ioas.id)
        vdev.destroy()
        hwpt.destroy()
        expect_ok(viommu.destroy)


def test_vdevice_unknown_objects(host: Host) -> None:
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        expect_errno(errno.ENOENT, VDevice.alloc, viommu, ioas.id, 1)
        expect_errno(errno.ENOENT, VDevice.alloc, VIOMMU(fd, ioas.id, viommu.parent, 0),
                     dev.idev, 1)


def test_vdevice_tombstone(host: Host) -> None:
    """vdevice_tombstone: destroying the device destroys its vDEVICE; the id answers ENOENT."""
    with viommu_fixture(host) as (fd, _, dev, _, viommu):
        vdev = VDevice.alloc(viommu, dev.idev, 0x99)
        fd.destroy(dev.stdev)
        expect_errno(errno.ENOENT, fd.destroy, vdev.id)


def _check_cache(fd: IOMMUFD, dev: MockDevice, values: list[int]) -> None:
    for i, value in enumerate(values):
        test_cmd(fd, C.IOMMU_TEST_OP_DEV_CHECK_CACHE, dev.idev,
                 check_dev_cache={"id": i, "cache": value})


def test_viommu_cache_invalidate(host: Host) -> None:
    """vdevice_cache: invalidations sent to the vIOMMU clear the vDEVICE's device cache."""
    with viommu_fixture(host) as (fd, _, dev, _, viommu):
        VDevice.alloc(viommu, dev.idev, 0x99)
        _check_cache(fd, dev, [CACHE_DEFAULT] * 4)
        rec = struct.Struct("<III")  # flags, vdev_id, cache_id
        sel = C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST
        assert viommu.invalidate(b"", rec.size, sel) == 0  # an empty array checks the type
        expect_errno(errno.EINVAL, viommu.invalidate, rec.pack(0, 0x99, 0), rec.size,
                     C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID)
        # entries are copied with copy_struct_from_user: a longer one needs a zero tail (E2BIG)
        expect_errno(errno.E2BIG, viommu.invalidate, rec.pack(0, 0x99, 0) + b"\1", rec.size + 1,
                     sel)
        expect_errno(errno.EINVAL, viommu.invalidate, rec.pack(0, 0, 0), rec.size, sel)  # vdev 0
        expect_errno(errno.EOPNOTSUPP, viommu.invalidate, rec.pack(0xFFFFFFFF, 0x99, 0),
                     rec.size, sel)
        expect_errno(errno.EINVAL, viommu.invalidate, rec.pack(0, 0x99, 4), rec.size, sel)
        expect_errno(errno.EINVAL, viommu.invalidate, rec.pack(0, 0x9, 0), rec.size, sel)
        err = expect_errno(errno.EOPNOTSUPP, viommu.invalidate,
                           rec.pack(0, 0x99, 0) + rec.pack(0xFFFFFFFF, 0x99, 1), rec.size, sel)
        assert err.handled == 1  # type: ignore[attr-defined]
        _check_cache(fd, dev, [0, CACHE_DEFAULT, CACHE_DEFAULT, CACHE_DEFAULT])
        assert viommu.invalidate(rec.pack(0, 0x99, 2) + rec.pack(0, 0x99, 3), rec.size, sel) == 2
        _check_cache(fd, dev, [0, CACHE_DEFAULT, 0, 0])
        assert viommu.invalidate(rec.pack(C.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0), rec.size,
                                 sel) == 1
        _check_cache(fd, dev, [0, 0, 0, 0])


def test_viommu_invalidate_entry_len(host: Host) -> None:
    """A longer entry with a zero tail is taken whole; a shorter one is zero-extended."""
    with viommu_fixture(host) as (fd, _, dev, _, viommu):
        VDevice.alloc(viommu, dev.idev, 0x99)
        rec = struct.Struct("<III")
        sel = C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST
        assert viommu.invalidate(rec.pack(0, 0x99, 1) + b"\0", rec.size + 1, sel) == 1
        _check_cache(fd, dev, [CACHE_DEFAULT, 0, CACHE_DEFAULT, CACHE_DEFAULT])
        assert viommu.invalidate(rec.pack(0, 0x99, 0)[:8], 8, sel) == 1  # cache_id 0 implied
        _check_cache(fd, dev, [0, 0, CACHE_DEFAULT, CACHE_DEFAULT])


def test_viommu_invalidate_array_checks(host: Host) -> None:
    """iommufd_hwpt_invalidate: entries without data_uptr or entry_len -> EINVAL, count 0."""
    with viommu_fixture(host) as (fd, _, _, _, viommu):
        for uptr, entry_len in ((0, 12), (0x1000, 0)):
            arg = new("struct iommu_hwpt_invalidate *", hwpt_id=viommu.id, data_uptr=uptr,
                      data_type=C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, entry_len=entry_len,
                      entry_num=1)
            expect_errno(errno.EINVAL, fd.call, uapi.IOMMU_HWPT_INVALIDATE, arg)
            assert arg.entry_num == 0


def test_hw_queue(host: Host) -> None:
    """hw_queue: type/length/overflow/unmapped checks, index order, the queue pins its page
    (UNMAP EBUSY) and the next index depends on it (EBUSY) until destroyed in reverse."""
    with viommu_fixture(host) as (_, ioas, _, _, viommu):
        typ = C.IOMMU_HW_QUEUE_TYPE_SELFTEST
        iova = C.MOCK_APERTURE_START
        expect_errno(errno.EOPNOTSUPP, since, host, "6.17", HWQueue.alloc, viommu,
              C.IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, iova, PAGE)
        expect_errno(errno.EINVAL, HWQueue.alloc, viommu, typ, 0, iova, 0)
        expect_errno(errno.EOVERFLOW, HWQueue.alloc, viommu, typ, 0, (1 << 64) - 1, PAGE)
        expect_errno(errno.ENOENT, HWQueue.alloc, viommu, typ, 0, iova, PAGE)
        pages = [mmap.mmap(-1, PAGE), mmap.mmap(-1, PAGE)]
        try:
            ioas.map(pages[0], iova=iova)
            ioas.map(pages[1], iova=iova + PAGE)
            expect_errno(errno.EIO, HWQueue.alloc, viommu, typ, 1, iova, PAGE)
            expect_errno(errno.EINVAL, HWQueue.alloc, viommu, typ, C.IOMMU_TEST_HW_QUEUE_MAX,
                         iova, PAGE)
            q0 = HWQueue.alloc(viommu, typ, 0, iova, PAGE)
            expect_errno(errno.EEXIST, HWQueue.alloc, viommu, typ, 0, iova, PAGE)
            expect_errno(errno.EBUSY, ioas.unmap, iova, PAGE)
            expect_ok(ioas.unmap, iova + PAGE, PAGE)  # not pinned
            q1 = HWQueue.alloc(viommu, typ, 1, iova + PAGE // 2, PAGE // 2)
            expect_errno(errno.EBUSY, q0.destroy)
            q1.destroy()
            q0.destroy()
            expect_ok(ioas.unmap, iova, PAGE)
        finally:
            ioas.unmap_all()
            for page in pages:
                page.close()
