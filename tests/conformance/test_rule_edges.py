"""Rules at their edges, where a mutation of the fake survived the suite (tools/mutate_fake.py).

Each test pins one side of a comparison or a membership the fake's handlers make; the kernel
function is named in the docstring.
"""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import standard_host
from tests.conformance.iommufd_helpers import PAGE, RW, U64_MAX, addr, iommufd_session
from tests.conformance.vfio_helpers import session
from tests.conftest import Host, discover
from tests.helpers import expect_errno, expect_ok


def _noiommu_set(host: Host) -> None:
    """After VFIO_SET_IOMMU(NOIOMMU) the noiommu driver answers CHECK_EXTENSION
    (container.c:vfio_noiommu_ioctl): its own type only."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_NOIOMMU_IOMMU)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_NOIOMMU_IOMMU) == 1
        for ext in (C.VFIO_TYPE1v2_IOMMU, C.VFIO_TYPE1_IOMMU, C.VFIO_UNMAP_ALL):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 0


def test_noiommu_driver_checks_only_its_type(host: Host) -> None:
    if not host.noiommu:
        pytest.skip(f"{host.profile}: not a no-IOMMU host (the fake's runs below)")
    _noiommu_set(host)


@pytest.mark.fake_only("the real host has no noiommu-mode switch per test")
def test_noiommu_driver_checks_only_its_type_fake() -> None:
    host = discover(standard_host(noiommu=True), "noiommu")
    _noiommu_set(host)
    host.kernel.assert_clean()  # type: ignore[attr-defined]


def test_type1_driver_checks_its_extensions(host: Host) -> None:
    """vfio_iommu_type1_check_extension once set: TYPE1, TYPE1v2, UNMAP_ALL and UPDATE_VADDR
    are 1; NOIOMMU and an unknown id 0."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        for ext in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL,
                    C.VFIO_UPDATE_VADDR):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 1, ext
        for ext in (C.VFIO_NOIOMMU_IOMMU, 0x7F):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 0, ext


def test_iova_ranges_exact_room_succeeds(host: Host) -> None:
    """ioas.c:iommufd_ioas_iova_ranges: EMSGSIZE only when the ranges exceed num_iovas; with
    exactly as many entries as ranges the call succeeds."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        count = len(s.ranges(fd, ioas)[0])
        buf = ffi.new("struct iommu_iova_range[]", count)
        arg = new("struct iommu_ioas_iova_ranges *", ioas_id=ioas, num_iovas=count,
                  allowed_iovas=addr(buf))
        expect_ok(s.k.ioctl, fd, uapi.IOMMU_IOAS_IOVA_RANGES, arg)
        arg.num_iovas = count - 1
        expect_errno(errno.EMSGSIZE, s.k.ioctl, fd, uapi.IOMMU_IOAS_IOVA_RANGES, arg)
        assert arg.num_iovas == count


@pytest.mark.parametrize(("iova", "length"), [(U64_MAX, PAGE), (PAGE, U64_MAX)])
def test_ioas_unmap_either_at_ulong_max_eoverflow(host: Host, iova: int, length: int) -> None:
    """ioas.c:iommufd_ioas_unmap: iova or length >= ULONG_MAX -> EOVERFLOW (only (0, U64_MAX)
    means everything)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        arg = new("struct iommu_ioas_unmap *", ioas_id=ioas, iova=iova, length=length)
        expect_errno(errno.EOVERFLOW, s.k.ioctl, fd, uapi.IOMMU_IOAS_UNMAP, arg)


def test_ioas_map_length_past_size_max_minus_page_einval(host: Host) -> None:
    """pages.c:iopt_alloc_pages: length > SIZE_MAX - PAGE_SIZE -> EINVAL (below ULONG_MAX, so
    not ioas.c's EOVERFLOW), when the user range does not wrap."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        arg = new("struct iommu_ioas_map *", ioas_id=ioas, user_va=0, length=U64_MAX - 1,
                  flags=RW)
        expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.IOMMU_IOAS_MAP, arg)


def test_ioas_map_huge_length_that_wraps_the_user_range(host: Host) -> None:
    """A length past SIZE_MAX - PAGE_SIZE whose user range also wraps: 6.12 answers
    iopt_alloc_pages' EINVAL first; from 6.13 pages.c:iopt_alloc_user_pages checks
    check_add_overflow(uptr, length) first and answers EOVERFLOW (seen on real 7.3)."""
    want = errno.EOVERFLOW if host.linux_at_least(6, 13) else errno.EINVAL
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        arg = new("struct iommu_ioas_map *", ioas_id=ioas, user_va=PAGE, length=U64_MAX - 1,
                  flags=RW)
        expect_errno(want, s.k.ioctl, fd, uapi.IOMMU_IOAS_MAP, arg)
