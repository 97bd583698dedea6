"""The IOMMUFD_TEST mock domain: HWPT and dirty tracking on a mock device (CONFIG_IOMMUFD_TEST).

Specification: tools/testing/selftests/iommu/iommufd.c (fixtures ``iommufd_ioas`` with mock
domains, ``iommufd_mock_domain``, ``iommufd_dirty_tracking``) and drivers/iommu/iommufd/selftest.c.
Runs on the fake and on kernels built with CONFIG_IOMMUFD_TEST (the VM lane's ``mock`` and
``iommufd`` profiles: the mock device needs no vIOMMU); Debian's kernels skip.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, CData, ffi, new
from tests.conformance.iommufd_helpers import PAGE, Session, addr, hw_capabilities, iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

TEST_CMD = uapi.TEST_IOCTLS["IOMMU_TEST_CMD"]
MOCK_PAGE = PAGE // 2  # MOCK_IO_PAGE_SIZE
APERTURE = (C.MOCK_APERTURE_START, C.MOCK_APERTURE_LAST)


def test_cmd(s: Session, fd: int, op: int, obj_id: int = 0, **union: dict[str, int]) -> CData:
    """IOMMU_TEST_CMD ``op`` on object ``obj_id``; ``union`` = {member: {field: value}}."""
    cmd = new("struct iommu_test_cmd *", op=op, id=obj_id)
    for member, fields in union.items():
        for name, value in fields.items():
            setattr(getattr(cmd, member), name, value)
    s.k.ioctl(fd, TEST_CMD, cmd)
    return cmd


test_cmd.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


@contextmanager
def mock_session(host: Host) -> Iterator[tuple[Session, int]]:
    """An iommufd on a kernel whose mock domain works (skips otherwise): (session, fd).

    Debian's kernels have no IOMMU_TEST_CMD (ENOTTY).  The lane's built kernel has it, but with
    QEMU's intel-iommu present (profile ``iommufd``) MOCK_DOMAIN answers EINVAL: only the ``mock``
    profile (no vIOMMU) can create mock devices.
    """
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        try:
            stdev, _, _ = mock_domain(s, fd, ioas)
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                pytest.skip(f"{host.profile}: kernel without CONFIG_IOMMUFD_TEST "
                            "(IOMMU_TEST_CMD is ENOTTY)")
            if exc.errno == errno.EINVAL:
                pytest.skip(f"{host.profile}: IOMMU_TEST_CMD MOCK_DOMAIN is EINVAL (the mock "
                            "IOMMU cannot serve devices next to a real IOMMU driver; use the "
                            "mock profile)")
            raise
        s.destroy(fd, stdev)
        s.destroy(fd, ioas)
        yield s, fd


def mock_domain(s: Session, fd: int, pt_id: int, dev_flags: int = 0) -> tuple[int, int, int]:
    """MOCK_DOMAIN(_FLAGS): a mock device bound and attached to ``pt_id``: (stdev, hwpt, idev)."""
    op = C.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS if dev_flags else C.IOMMU_TEST_OP_MOCK_DOMAIN
    cmd = test_cmd(s, fd, op, pt_id, mock_domain_flags={"dev_flags": dev_flags})
    md = cmd.mock_domain
    return int(md.out_stdev_id), int(md.out_hwpt_id), int(md.out_idev_id)


def replace(s: Session, fd: int, stdev: int, pt_id: int) -> int:
    cmd = test_cmd(s, fd, C.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev,
                   mock_domain_replace={"pt_id": pt_id})
    return int(cmd.mock_domain_replace.pt_id)


def test_mock_domain_ids_and_destroy(host: Host) -> None:
    """MOCK_DOMAIN: a selftest object, a DEVICE (never destroyable) and an auto HWPT; destroying
    the selftest object unbinds the device and frees the HWPT, then the IOAS can go."""
    with mock_session(host) as (s, fd):
        ioas = s.ioas(fd)
        stdev, hwpt, idev = mock_domain(s, fd, ioas)
        assert len({ioas, stdev, hwpt, idev}) == 4
        expect_errno(errno.EBUSY, s.destroy, fd, idev)
        expect_errno(errno.EBUSY, s.destroy, fd, ioas)
        expect_errno(errno.EBUSY, s.destroy, fd, hwpt)
        expect_ok(s.destroy, fd, stdev)
        expect_errno(errno.ENOENT, s.destroy, fd, hwpt)
        expect_ok(s.destroy, fd, ioas)


def test_mock_domain_aperture_and_alignment(host: Host) -> None:
    """The mock domain's aperture [2^24, 2^31-1] bounds the IOAS; its 2 KiB page aligns it."""
    with mock_session(host) as (s, fd):
        ioas = s.ioas(fd)
        mock_domain(s, fd, ioas)
        ranges, alignment = s.ranges(fd, ioas)
        assert ranges == [APERTURE] and alignment == MOCK_PAGE
        buf = s.buffer()
        expect_errno(errno.EINVAL, s.map, fd, ioas, buf, PAGE, APERTURE[0] - PAGE)
        assert s.map(fd, ioas, buf, PAGE) >= APERTURE[0]  # auto IOVA inside the aperture


def test_mock_domain_of_unknown_or_wrong_object(host: Host) -> None:
    with mock_session(host) as (s, fd):
        expect_errno(errno.ENOENT, mock_domain, s, fd, 99)
        ioas = s.ioas(fd)
        stdev, _, idev = mock_domain(s, fd, ioas)
        expect_errno(errno.EINVAL, mock_domain, s, fd, idev)  # a DEVICE is no page table
        expect_errno(errno.ENOENT, replace, s, fd, idev, ioas)  # not a selftest object
        expect_ok(s.destroy, fd, stdev)


def test_mock_domain_replace(host: Host) -> None:
    """MOCK_DOMAIN_REPLACE moves the device to another HWPT or IOAS and returns the HWPT."""
    with mock_session(host) as (s, fd):
        first, second = s.ioas(fd), s.ioas(fd)
        stdev, auto, idev = mock_domain(s, fd, first)
        manual = s.hwpt(fd, idev, second)
        assert replace(s, fd, stdev, manual) == manual
        expect_errno(errno.ENOENT, s.destroy, fd, auto)  # the auto HWPT went with its device
        expect_errno(errno.EBUSY, s.destroy, fd, manual)
        back = replace(s, fd, stdev, first)
        assert back not in (manual, idev)
        expect_ok(s.destroy, fd, manual)
        expect_ok(s.destroy, fd, stdev)


def test_mock_hw_info(host: Host) -> None:
    """GET_HW_INFO of a mock device: type SELFTEST, test_reg 0xdeadbeef, dirty capability."""
    with mock_session(host) as (s, fd):
        ioas = s.ioas(fd)
        _, _, idev = mock_domain(s, fd, ioas)
        data = ffi.new("uint32_t[2]")
        arg = new("struct iommu_hw_info *", dev_id=idev, data_len=8, data_uptr=addr(data))
        s.k.ioctl(fd, uapi.IOMMU_GET_HW_INFO, arg)
        assert arg.out_data_type == 0xFEEDBEEF and data[1] == 0xDEADBEEF
        assert hw_capabilities(s, fd, idev) & C.IOMMU_HW_CAP_DIRTY_TRACKING
        _, _, plain = mock_domain(s, fd, ioas, C.MOCK_FLAGS_DEVICE_NO_DIRTY)
        assert not hw_capabilities(s, fd, plain) & C.IOMMU_HW_CAP_DIRTY_TRACKING
        flags = C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
        expect_errno(errno.EOPNOTSUPP, s.hwpt, fd, plain, ioas, flags)


def test_md_check_map(host: Host) -> None:
    """MD_CHECK_MAP: the mock domain maps the IOVA onto the buffer's pages (EINVAL otherwise)."""
    with mock_session(host) as (s, fd):
        ioas = s.ioas(fd)
        _, hwpt, _ = mock_domain(s, fd, ioas)
        buf, other = s.buffer(2), s.buffer(2)
        iova = s.map(fd, ioas, buf, 2 * PAGE, APERTURE[0])
        check = {"iova": iova, "length": 2 * PAGE, "uptr": buf}
        expect_ok(test_cmd, s, fd, C.IOMMU_TEST_OP_MD_CHECK_MAP, hwpt, check_map=check)
        check["uptr"] = other
        expect_errno(errno.EINVAL, test_cmd, s, fd, C.IOMMU_TEST_OP_MD_CHECK_MAP, hwpt,
                     check_map=check)
        expect_errno(errno.ENOENT, test_cmd, s, fd, C.IOMMU_TEST_OP_MD_CHECK_MAP, ioas,
                     check_map=check)


def _mark(s: Session, fd: int, hwpt: int, iova: int, pages: int, dirty: list[int]) -> int:
    """DIRTY: the mock device writes mock pages ``dirty`` (indexes); return how many counted."""
    bits = ffi.new("uint8_t[]", (pages + 7) // 8 or 1)
    for i in dirty:
        bits[i // 8] |= 1 << (i % 8)
    cmd = test_cmd(s, fd, C.IOMMU_TEST_OP_DIRTY, hwpt, dirty={
        "iova": iova, "length": pages * MOCK_PAGE, "page_size": MOCK_PAGE, "uptr": addr(bits)})
    return int(cmd.dirty.out_nr_dirty)


def _bitmap(s: Session, fd: int, hwpt: int, iova: int, length: int, flags: int = 0) -> list[int]:
    """GET_DIRTY_BITMAP in PAGE_SIZE pages; return the dirty page indexes."""
    npages = length // PAGE
    data = ffi.new("uint64_t[]", (npages + 63) // 64)
    arg = new("struct iommu_hwpt_get_dirty_bitmap *", hwpt_id=hwpt, flags=flags, iova=iova,
              length=length, page_size=PAGE, data=addr(data))
    s.k.ioctl(fd, uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, arg)
    return [i for i in range(npages) if data[i // 64] >> (i % 64) & 1]


def _tracking(s: Session, fd: int, hwpt: int, on: bool) -> None:
    arg = new("struct iommu_hwpt_set_dirty_tracking *", hwpt_id=hwpt,
              flags=C.IOMMU_HWPT_DIRTY_TRACKING_ENABLE if on else 0)
    s.k.ioctl(fd, uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)


@contextmanager
def dirty_hwpt(host: Host, pages: int) -> Iterator[tuple[Session, int, int, int]]:
    """The selftest's iommufd_dirty_tracking fixture: a mock device moved to a HWPT allocated
    with DIRTY_TRACKING, ``pages`` pages mapped at the aperture start: (s, fd, hwpt, iova).

    Huge pages are off in the IOAS, as in the selftest (iommufd.c FIXTURE_SETUP
    (iommufd_dirty_tracking)): otherwise iopt maps physically contiguous pages as one larger
    PTE, and 7.3's mock (a generic AMDv1 page table, selftest.c mock_domain_alloc_pgtable)
    reports a whole contiguous PTE dirty when one mock page in it is, so which pages read
    dirty would depend on where the guest's allocator put the buffer."""
    with mock_session(host) as (s, fd):
        ioas = s.ioas(fd)
        option = new("struct iommu_option *", option_id=C.IOMMU_OPTION_HUGE_PAGES,
                     op=C.IOMMU_OPTION_OP_SET, object_id=ioas, val64=0)
        s.k.ioctl(fd, uapi.IOMMU_OPTION, option)
        stdev, _, idev = mock_domain(s, fd, ioas)
        hwpt = s.hwpt(fd, idev, ioas, C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        replace(s, fd, stdev, hwpt)
        iova = s.map(fd, ioas, s.buffer(pages), pages * PAGE, APERTURE[0])
        yield s, fd, hwpt, iova
        s.destroy(fd, stdev)
        s.destroy(fd, hwpt)


def test_dirty_needs_tracking_enabled(host: Host) -> None:
    with dirty_hwpt(host, 4) as (s, fd, hwpt, iova):
        expect_errno(errno.EINVAL, _mark, s, fd, hwpt, iova, 8, [0])
        _tracking(s, fd, hwpt, True)
        assert _mark(s, fd, hwpt, iova, 8, [0]) == 1
        expect_errno(errno.EINVAL, test_cmd, s, fd, C.IOMMU_TEST_OP_DIRTY, hwpt,
                     dirty={"iova": iova + 1, "length": MOCK_PAGE, "page_size": MOCK_PAGE,
                            "uptr": s.buffer()})


def test_dirty_bitmap_read_and_clear(host: Host) -> None:
    """Mark mock pages dirty, read the bitmap in PAGE_SIZE units, and it reads clean after."""
    pages = 16
    with dirty_hwpt(host, pages) as (s, fd, hwpt, iova):
        _tracking(s, fd, hwpt, True)
        assert _bitmap(s, fd, hwpt, iova, pages * PAGE) == []
        marked = [i for i in range(2 * pages) if i % 4 == 0 or i == 2 * pages - 1]
        assert _mark(s, fd, hwpt, iova, 2 * pages, marked) == len(marked)
        want = sorted({i // 2 for i in marked})  # two mock pages per page
        no_clear = C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
        assert _bitmap(s, fd, hwpt, iova, pages * PAGE, no_clear) == want
        assert _bitmap(s, fd, hwpt, iova, pages * PAGE) == want
        assert _bitmap(s, fd, hwpt, iova, pages * PAGE) == []  # read and cleared


def test_dirty_outside_mappings(host: Host) -> None:
    """Unmapped IOVAs never read dirty.  selftest.c:iommufd_test_dirty's count differs: 6.12
    counts only IOVAs the mock domain maps (0 here); 7.3 (the mock domain is a generic page table,
    whose set_dirty on a hole fails unseen) counts every bit the caller set (3 here)."""
    with dirty_hwpt(host, 2) as (s, fd, hwpt, iova):
        _tracking(s, fd, hwpt, True)
        beyond = iova + 2 * PAGE
        counted = _mark(s, fd, hwpt, beyond, 8, [0, 1, 2])
        assert counted == (3 if host.linux_at_least(7, 3) else 0)
        assert _bitmap(s, fd, hwpt, iova, 2 * PAGE) == []


def test_enabling_tracking_clears_old_dirt(host: Host) -> None:
    with dirty_hwpt(host, 2) as (s, fd, hwpt, iova):
        _tracking(s, fd, hwpt, True)
        _mark(s, fd, hwpt, iova, 4, [0, 3])
        _tracking(s, fd, hwpt, False)
        _tracking(s, fd, hwpt, True)
        assert _bitmap(s, fd, hwpt, iova, 2 * PAGE) == []
