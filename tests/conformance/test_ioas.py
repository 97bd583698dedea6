"""IOAS: map, unmap, copy, IOVA ranges, allowed IOVAs, huge pages (no device attached).

Specification: tools/testing/selftests/iommu/iommufd.c (fixture ``iommufd_ioas``, variant
``no_domain``) and drivers/iommu/iommufd/ioas.c, io_pagetable.c.
"""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.iommufd_helpers import FIXED, PAGE, RW, U64_MAX, addr, iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

BASE = 0x100000  # a base IOVA for fixed maps, well inside an IOAS without domains


def test_fresh_ioas_reports_all_iovas(host: Host) -> None:
    """ioas.c:iommufd_ioas_iova_ranges: nothing reserved -> one range [0, U64_MAX], align 1."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        assert s.ranges(fd, s.ioas(fd)) == ([(0, U64_MAX)], 1)


def test_iova_ranges_too_small_emsgsize_with_count(host: Host) -> None:
    """ioas.c:iommufd_ioas_iova_ranges: num_iovas 0 -> EMSGSIZE, num_iovas set to the count."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_ioas_iova_ranges *", ioas_id=s.ioas(fd), num_iovas=0)
        expect_errno(errno.EMSGSIZE, s.k.ioctl, fd, uapi.IOMMU_IOAS_IOVA_RANGES, arg)
        assert arg.num_iovas == 1 and arg.out_iova_alignment == 1


def test_unmap_nothing_enoent(host: Host) -> None:
    """iommufd.c:area: unmap where nothing is mapped -> ENOENT (type1 would answer 0)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        for i in range(4):
            expect_errno(errno.ENOENT, s.unmap, fd, ioas, i * PAGE, PAGE)


def test_fixed_maps_unmap_one_by_one(host: Host) -> None:
    """iommufd.c:area: fixed-IOVA maps of one page each unmap one by one, returning the length."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf = s.ioas(fd), s.buffer()
        for i in range(4):
            assert s.map(fd, ioas, buf, PAGE, BASE + i * PAGE) == BASE + i * PAGE
        for i in range(4):
            assert s.unmap(fd, ioas, BASE + i * PAGE, PAGE) == PAGE


def test_unmap_splitting_an_area_enoent(host: Host) -> None:
    """iommufd.c:area "Split fails": unmapping either half of a two-page area -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        s.map(fd, ioas, s.buffer(2), 2 * PAGE, BASE)
        expect_errno(errno.ENOENT, s.unmap, fd, ioas, BASE, PAGE)
        expect_errno(errno.ENOENT, s.unmap, fd, ioas, BASE + PAGE, PAGE)


def test_overlapping_fixed_map_eexist(host: Host) -> None:
    """iommufd.c:area "Over map fails": any overlap with an area -> EEXIST."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf = s.ioas(fd), s.buffer(3)
        s.map(fd, ioas, buf, 2 * PAGE, BASE + PAGE)
        for length, iova in ((2 * PAGE, BASE + PAGE), (PAGE, BASE + 2 * PAGE),
                             (2 * PAGE, BASE), (3 * PAGE, BASE)):
            expect_errno(errno.EEXIST, s.map, fd, ioas, buf, length, iova)


def test_unmap_all_even_when_empty(host: Host) -> None:
    """iommufd.c:area: unmap (0, U64_MAX) removes everything, and succeeds on an empty IOAS."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf = s.ioas(fd), s.buffer()
        s.map(fd, ioas, buf, PAGE, BASE)
        s.map(fd, ioas, buf, PAGE, BASE + 8 * PAGE)
        assert s.unmap(fd, ioas, 0, U64_MAX) == 2 * PAGE
        assert expect_ok(s.unmap, fd, ioas, 0, U64_MAX) == 0


def test_unmap_covers_only_whole_areas(host: Host) -> None:
    """iommufd.c:unmap_fully_contained_areas: ranges cutting an area fail, covering ones work."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf, base = s.ioas(fd), s.buffer(8), BASE + 4 * PAGE
        for i in range(4):
            s.map(fd, ioas, buf, 8 * PAGE, base + i * 16 * PAGE)
        expect_errno(errno.ENOENT, s.unmap, fd, ioas, base - 4 * PAGE, 8 * PAGE)
        expect_errno(errno.ENOENT, s.unmap, fd, ioas, base + 3 * 16 * PAGE + 4 * PAGE, 8 * PAGE)
        length = 3 * 16 * PAGE + 8 * PAGE + 4 * PAGE
        assert s.unmap(fd, ioas, base - 4 * PAGE, length) == 32 * PAGE


def test_unmap_zero_length_einval(host: Host) -> None:
    """io_pagetable.c:iopt_unmap_iova: length 0 (and not the unmap-all pair) -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, s.unmap, fd, s.ioas(fd), BASE, 0)


def test_auto_iova_first_fit_never_zero(host: Host) -> None:
    """io_pagetable.c:iopt_alloc_iova: the lowest free aligned IOVA from PAGE_SIZE, never 0."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf = s.ioas(fd), s.buffer()
        assert [s.map(fd, ioas, buf, PAGE) for _ in range(3)] == [PAGE, 2 * PAGE, 3 * PAGE]


def _first_fit(used: list[tuple[int, int]], length: int, align: int) -> int:
    """The lowest ``align``-aligned IOVA from PAGE_SIZE whose range misses every used one."""
    iova = PAGE
    for start, end in sorted(used):
        iova = -(-iova // align) * align
        if iova + length <= start:
            break
        iova = max(iova, end)
    return -(-iova // align) * align


def test_auto_iova_alignment(host: Host) -> None:
    """io_pagetable.c:iopt_alloc_iova: first fit from PAGE_SIZE, aligned to
    min(roundup_pow_of_two(length), the address's alignment), capped at HPAGE_SIZE with
    CONFIG_TRANSPARENT_HUGEPAGE and at PAGE_SIZE without (the VM lane's built kernel)."""
    thp = host.kernel.sysfs_exists("kernel/mm/transparent_hugepage")
    cap = (2 << 20) if thp else PAGE
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        used: list[tuple[int, int]] = []
        for pages in (1, 2, 3, 4, 7, 1, 16, 5):
            length = pages * PAGE
            align = min(1 << (length - 1).bit_length(), cap)
            # no domain: nothing is pinned, so the selftest's fake address is fine
            iova = s.map(fd, ioas, 1 << 31, length)
            assert iova == _first_fit(used, length, align), (pages, used)
            used.append((iova, iova + length))


@pytest.mark.fake_only("the VM lane's built kernel has no CONFIG_TRANSPARENT_HUGEPAGE")
def test_auto_iova_alignment_without_thp() -> None:
    """io_pagetable.c:iopt_alloc_iova: without THP every automatic IOVA is first fit by page."""
    from pyvfio.fake import standard_host

    kernel = standard_host(iommufd=True, transparent_hugepage=False)
    assert not kernel.sysfs_exists("kernel/mm/transparent_hugepage")
    fd = kernel.open("/dev/iommu")
    try:
        alloc = new("struct iommu_ioas_alloc *")
        kernel.ioctl(fd, uapi.IOMMU_IOAS_ALLOC, alloc)
        iovas = []
        for pages in (1, 3, 4):
            arg = new("struct iommu_ioas_map *", flags=RW, ioas_id=alloc.out_ioas_id,
                      user_va=1 << 31, length=pages * PAGE)
            kernel.ioctl(fd, uapi.IOMMU_IOAS_MAP, arg)
            iovas.append(int(arg.iova))
        assert iovas == [PAGE, 2 * PAGE, 5 * PAGE]
    finally:
        kernel.close(fd)
    kernel.assert_clean()


def test_allowed_iovas_constrain_auto_iova(host: Host) -> None:
    """iommufd.c:area_auto_iova: with an allowed range, automatic IOVAs fall inside it."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas, buf = s.ioas(fd), s.buffer(4)
        allow(s, fd, ioas, [(200 * PAGE, 600 * PAGE - 1)])
        for pages in (1, 2, 4):
            iova = s.map(fd, ioas, buf, pages * PAGE)
            assert iova >= 200 * PAGE and iova + pages * PAGE <= 600 * PAGE


def allow(s: object, fd: int, ioas: int, ranges: list[tuple[int, int]]) -> None:
    buf = ffi.new("struct iommu_iova_range[]", max(len(ranges), 1))
    for i, (start, last) in enumerate(ranges):
        buf[i].start, buf[i].last = start, last
    arg = new("struct iommu_ioas_allow_iovas *", ioas_id=ioas, num_iovas=len(ranges),
              allowed_iovas=addr(buf))
    s.k.ioctl(fd, uapi.IOMMU_IOAS_ALLOW_IOVAS, arg)  # type: ignore[attr-defined]


def test_allowed_iovas_start_not_below_last_einval(host: Host) -> None:
    """ioas.c:iommufd_ioas_load_iovas: a range with start >= last -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, allow, s, fd, s.ioas(fd), [(BASE, BASE)])


def test_allowed_iovas_overlapping_einval(host: Host) -> None:
    """ioas.c:iommufd_ioas_load_iovas: ranges overlapping each other -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ranges = [(BASE, BASE + 2 * PAGE), (BASE + PAGE, BASE + 4 * PAGE)]
        expect_errno(errno.EINVAL, allow, s, fd, s.ioas(fd), ranges)


def test_map_without_read_or_write_einval(host: Host) -> None:
    """ioas.c:iommufd_ioas_map: neither READABLE nor WRITEABLE -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, s.map, fd, s.ioas(fd), s.buffer(), PAGE, BASE, 0)


def test_map_unknown_flag_eopnotsupp(host: Host) -> None:
    """ioas.c:iommufd_ioas_map: a flag bit outside FIXED|WRITEABLE|READABLE -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EOPNOTSUPP, s.map, fd, s.ioas(fd), s.buffer(), PAGE, BASE, RW | 8)


def test_map_reserved_field_eopnotsupp(host: Host) -> None:
    """ioas.c:iommufd_ioas_map: __reserved != 0 -> EOPNOTSUPP."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct iommu_ioas_map *", flags=RW | FIXED, ioas_id=s.ioas(fd),
                  user_va=s.buffer(), length=PAGE, iova=BASE, __reserved=1)
        expect_errno(errno.EOPNOTSUPP, s.k.ioctl, fd, uapi.IOMMU_IOAS_MAP, arg)


def test_map_zero_length_einval(host: Host) -> None:
    """pages.c:iopt_alloc_pages: length 0 -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, s.map, fd, s.ioas(fd), s.buffer(), 0, BASE)


def test_map_iova_ulong_max_eoverflow(host: Host) -> None:
    """ioas.c:iommufd_ioas_map: iova >= ULONG_MAX -> EOVERFLOW."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EOVERFLOW, s.map, fd, s.ioas(fd), s.buffer(), PAGE, U64_MAX)


def test_map_unknown_ioas_enoent(host: Host) -> None:
    """ioas.c:iommufd_ioas_map: an id that is no IOAS -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.ENOENT, s.map, fd, 99, s.buffer(), PAGE, BASE)


def _copy(s: object, fd: int, src: int, dst: int, length: int, src_iova: int,
          dst_iova: int | None, flags: int = RW) -> int:
    flags |= FIXED if dst_iova is not None else 0
    arg = new("struct iommu_ioas_copy *", flags=flags, dst_ioas_id=dst, src_ioas_id=src,
              length=length, dst_iova=dst_iova or 0, src_iova=src_iova)
    s.k.ioctl(fd, uapi.IOMMU_IOAS_COPY, arg)  # type: ignore[attr-defined]
    return int(arg.dst_iova)


def test_copy_inside_and_between_ioas(host: Host) -> None:
    """iommufd.c:copy_area: copy within one IOAS and to another one at fixed IOVAs (even 0)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        s.map(fd, ioas, s.buffer(), PAGE, BASE)
        assert _copy(s, fd, ioas, ioas, PAGE, BASE, BASE + PAGE) == BASE + PAGE
        other = s.ioas(fd)
        assert _copy(s, fd, ioas, other, PAGE, BASE, 0) == 0
        assert s.unmap(fd, other, 0, PAGE) == PAGE


def test_copy_of_unmapped_source_enoent(host: Host) -> None:
    """io_pagetable.c:iopt_get_pages: a source range not fully mapped -> ENOENT."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        s.map(fd, ioas, s.buffer(), PAGE, BASE)
        expect_errno(errno.ENOENT, _copy, s, fd, ioas, ioas, 2 * PAGE, BASE, None)


def test_copy_writable_from_read_only_eperm(host: Host) -> None:
    """io_pagetable.c:iopt_insert_area: a WRITEABLE copy of read-only pages -> EPERM."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        s.map(fd, ioas, s.buffer(), PAGE, BASE, C.IOMMU_IOAS_MAP_READABLE)
        expect_errno(errno.EPERM, _copy, s, fd, ioas, ioas, PAGE, BASE, BASE + PAGE)


def test_destroy_ioas_with_mappings(host: Host) -> None:
    """iommufd.c:ioas_area_destroy (no_domain): mappings do not keep an IOAS alive."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        s.map(fd, ioas, s.buffer(), PAGE, BASE)
        expect_ok(s.destroy, fd, ioas)


def _huge(s: object, fd: int, ioas: int, op: int, val: int = 0) -> int:
    arg = new("struct iommu_option *", option_id=C.IOMMU_OPTION_HUGE_PAGES, op=op,
              object_id=ioas, val64=val)
    s.k.ioctl(fd, uapi.IOMMU_OPTION, arg)  # type: ignore[attr-defined]
    return int(arg.val64)


def test_huge_pages_default_on(host: Host) -> None:
    """ioas.c:iommufd_ioas_option_huge_pages: GET on a fresh IOAS -> 1."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        assert _huge(s, fd, s.ioas(fd), C.IOMMU_OPTION_OP_GET) == 1


def test_huge_pages_off_forces_page_alignment(host: Host) -> None:
    """io_pagetable.c:iopt_disable_large_pages: SET 0 makes iova_alignment PAGE_SIZE."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        _huge(s, fd, ioas, C.IOMMU_OPTION_OP_SET, 0)
        assert s.ranges(fd, ioas)[1] == PAGE
        expect_errno(errno.EINVAL, s.map, fd, ioas, s.buffer(), PAGE // 2, BASE)


def test_huge_pages_bad_value_einval(host: Host) -> None:
    """ioas.c:iommufd_ioas_option_huge_pages: SET of a value other than 0/1 -> EINVAL."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, _huge, s, fd, s.ioas(fd), C.IOMMU_OPTION_OP_SET, 2)
