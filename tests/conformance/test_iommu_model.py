"""One IOMMU behind every API: type1, iommufd and the compat container see the same IOVA ranges.

The usable ranges come from the IOMMU domain's aperture minus the devices' reserved regions, in
vfio_iommu_type1.c (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) as in iommufd's io_pagetable.c
(IOMMU_IOAS_IOVA_RANGES once a domain is attached) and its VFIO compat GET_INFO.
"""

from __future__ import annotations

import struct

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import standard_host
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import session
from tests.conftest import Host, discover


def _info_ranges(k: object, fd: int) -> list[tuple[int, int]]:
    """VFIO_IOMMU_GET_INFO's IOVA_RANGE capability, walked from the raw buffer."""
    buf = ffi.new("char[]", 4096)
    info = ffi.cast("struct vfio_iommu_type1_info *", buf)
    info.argsz = 4096
    k.ioctl(fd, uapi.VFIO_IOMMU_GET_INFO, info)  # type: ignore[attr-defined]
    raw = bytes(ffi.buffer(buf, 4096))
    off = info.cap_offset
    while off:
        cap_id, _, nxt = struct.unpack_from("<HHI", raw, off)
        if cap_id == C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
            (n,) = struct.unpack_from("<I", raw, off + 8)
            return [struct.unpack_from("<QQ", raw, off + 16 + 16 * i) for i in range(n)]
        off = nxt
    raise AssertionError("no IOVA_RANGE capability")


def _type1_ranges(host: Host) -> list[tuple[int, int]]:
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        return _info_ranges(s.k, c)


def _ioas_ranges(host: Host) -> list[tuple[int, int]]:
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        return s.ranges(fd, ioas)[0]


def test_type1_and_iommufd_report_the_same_iova_ranges(host: Host) -> None:
    """The same device behind the same IOMMU: type1's IOVA_RANGE cap equals the ranges of an
    IOAS it is attached to."""
    if host.noiommu:
        pytest.skip("noiommu: no IOMMU, no ranges")
    if not host.kernel.exists("/dev/iommu"):
        pytest.skip(f"{host.profile}: no /dev/iommu")
    assert _type1_ranges(host) == _ioas_ranges(host)


def test_compat_container_reports_the_ioas_ranges(host: Host) -> None:
    """iommufd_vfio_iommu_get_info: /dev/iommu as a container reports its compat IOAS's ranges,
    the same as type1's for a group of that IOMMU."""
    if host.noiommu or not host.kernel.exists("/dev/iommu"):
        pytest.skip(f"{host.profile}: needs /dev/iommu and an IOMMU")
    want = _type1_ranges(host)
    with session(host) as s:
        fd = s.track(s.k.open("/dev/iommu"))
        g = s.group(host.edu_group)
        s.k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", fd))
        s.k.ioctl(fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        s.device(g, host.edu)  # the first open attaches the device to the compat IOAS
        assert _info_ranges(s.k, fd) == want


@pytest.mark.fake_only("the fake's iova_ranges knob: a real host's ranges come from its IOMMU")
def test_iova_ranges_knob_reaches_every_api() -> None:
    ranges = [(0, 0xFFFFF), (0x200000, 0xFFFFFFFF)]
    host = discover(standard_host(iommufd=True, iova_ranges=tuple(ranges)), "fake")
    assert _type1_ranges(host) == ranges
    assert _ioas_ranges(host) == ranges
    host.kernel.assert_clean()  # type: ignore[attr-defined]


@pytest.mark.fake_only("the fake's pgsize_bitmap knob: a real host's sizes come from its IOMMU")
def test_pgsize_bitmap_knob_reaches_every_api() -> None:
    host = discover(standard_host(iommufd=True, pgsize_bitmap=0x10000 | 0x200000), "fake")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        info = new("struct vfio_iommu_type1_info *", argsz=24)
        s.k.ioctl(c, uapi.VFIO_IOMMU_GET_INFO, info)
        assert info.iova_pgsizes == 0x210000
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        assert s.ranges(fd, ioas)[1] == 0x10000  # the IOAS alignment is the smallest page
