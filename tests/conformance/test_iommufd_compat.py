"""/dev/iommu as a VFIO container: the type1 ioctls on the compat IOAS, and how they differ.

Specification: drivers/iommu/iommufd/vfio_compat.c and the selftest's ``vfio_compat_*`` cases
(tools/testing/selftests/iommu/iommufd.c: ``map_cmd``, ``unmap_cmd``, ``info_cmd``,
``set_iommu_cmd``).  No device is needed: IOMMU_VFIO_IOAS picks the compat IOAS.
"""

from __future__ import annotations

import errno
import importlib.util
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.container import _decode_info
from pyvfio.group import Group
from pyvfio.iommufd import IOMMUFD
from pyvfio.vfio_compat import CompatContainer
from tests.conformance.iommufd_helpers import PAGE, U64_MAX, Session, iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

READ, WRITE = C.VFIO_DMA_MAP_FLAG_READ, C.VFIO_DMA_MAP_FLAG_WRITE


def _set_compat(s: Session, fd: int, ioas: int) -> None:
    arg = new("struct iommu_vfio_ioas *", op=C.IOMMU_VFIO_IOAS_SET, ioas_id=ioas)
    s.k.ioctl(fd, uapi.IOMMU_VFIO_IOAS, arg)


@contextmanager
def compat(host: Host) -> Iterator[tuple[Session, int, int]]:
    """An iommufd whose compat IOAS is a fresh IOAS: (session, fd, ioas)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        _set_compat(s, fd, ioas)
        yield s, fd, ioas


def map_dma(s: Session, fd: int, vaddr: int, iova: int, size: int,
            flags: int = READ | WRITE) -> None:
    arg = new("struct vfio_iommu_type1_dma_map *", flags=flags, vaddr=vaddr, iova=iova,
              size=size)
    s.k.ioctl(fd, uapi.VFIO_IOMMU_MAP_DMA, arg)


def unmap_dma(s: Session, fd: int, iova: int, size: int, flags: int = 0) -> int:
    arg = new("struct vfio_iommu_type1_dma_unmap *", flags=flags, iova=iova, size=size)
    s.k.ioctl(fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
    return int(arg.size)


def test_no_compat_ioas_is_enodev(host: Host) -> None:
    """vfio_compat.c:get_compat_ioas: MAP, UNMAP, GET_INFO and SET_IOMMU need the compat IOAS."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        buf = s.buffer()
        expect_errno(errno.ENODEV, map_dma, s, fd, buf, 1 << 20, PAGE)
        expect_errno(errno.ENODEV, unmap_dma, s, fd, 1 << 20, PAGE)
        expect_errno(errno.ENODEV, _ioctl.query_info, s.k, fd, uapi.VFIO_IOMMU_GET_INFO,
                     "struct vfio_iommu_type1_info *")
        expect_errno(errno.ENODEV, s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        expect_errno(errno.ENODEV, s.k.ioctl, fd, uapi.VFIO_CHECK_EXTENSION,
                     C.VFIO_DMA_CC_IOMMU)


def test_api_version_and_extensions(host: Host) -> None:
    """iommufd_vfio_check_extension: type1, type1v2 and UNMAP_ALL yes; NESTING, UPDATE_VADDR no."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        assert s.k.ioctl(fd, uapi.VFIO_GET_API_VERSION) == C.VFIO_API_VERSION
        for ext in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL):
            assert s.k.ioctl(fd, uapi.VFIO_CHECK_EXTENSION, ext) == 1, ext
        for ext in (C.__VFIO_RESERVED_TYPE1_NESTING_IOMMU, C.VFIO_UPDATE_VADDR, 12345):
            assert s.k.ioctl(fd, uapi.VFIO_CHECK_EXTENSION, ext) == 0, ext


def test_dirty_pages_is_enotty(host: Host) -> None:
    """VFIO_IOMMU_DIRTY_PAGES is not implemented by the compat layer: ENOIOCTLCMD -> ENOTTY."""
    with compat(host) as (s, fd, _):
        arg = new("struct vfio_iommu_type1_dirty_bitmap *",
                  flags=C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
        expect_errno(errno.ENOTTY, s.k.ioctl, fd, uapi.VFIO_IOMMU_DIRTY_PAGES, arg)


def test_set_iommu(host: Host) -> None:
    """iommufd_vfio_set_iommu: only TYPE1/TYPE1v2 (EINVAL otherwise), as often as wished."""
    with compat(host) as (s, fd, _):
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        for bad in (C.__VFIO_RESERVED_TYPE1_NESTING_IOMMU, 7, 42):
            expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, bad)
        assert s.k.ioctl(fd, uapi.VFIO_CHECK_EXTENSION, C.VFIO_DMA_CC_IOMMU) == 1


def test_get_info(host: Host) -> None:
    """GET_INFO: PGSIZES|CAPS, DMA_AVAIL U32_MAX, the IOAS's IOVA ranges, no MIGRATION cap."""
    with compat(host) as (s, fd, _):
        info, raw = _ioctl.query_info(s.k, fd, uapi.VFIO_IOMMU_GET_INFO,
                                      "struct vfio_iommu_type1_info *")
        decoded = _decode_info(info, raw)
        assert decoded.flags == C.VFIO_IOMMU_INFO_PGSIZES | C.VFIO_IOMMU_INFO_CAPS
        assert decoded.min_page_size == PAGE  # no domain: every size from PAGE_SIZE up
        assert decoded.page_sizes == U64_MAX & ~(PAGE - 1)
        assert decoded.dma_avail == (1 << 32) - 1
        assert [(r.start, r.last) for r in decoded.iova_ranges] == [(0, U64_MAX)]
        assert decoded.migration is None
        small = new("struct vfio_iommu_type1_info *", argsz=16)
        s.k.ioctl(fd, uapi.VFIO_IOMMU_GET_INFO, small)
        assert small.argsz == info.argsz and small.flags & C.VFIO_IOMMU_INFO_CAPS


INFO = ffi.sizeof("struct vfio_iommu_type1_info")
DMA_AVAIL_CAP = 16  # vfio_iommu_type1_info_dma_avail, 8-byte aligned
IOVA_CAP_ONE = 32  # vfio_iommu_type1_info_cap_iova_range with one range


def _info_raw(s: Session, fd: int, argsz: int) -> bytes:
    """GET_INFO into a 0xa5-filled buffer of 256 bytes with ``argsz``; the buffer after."""
    buf = ffi.new("uint8_t[256]")
    ffi.memmove(buf, b"\xa5" * 256, 256)
    ffi.cast("uint32_t *", buf)[0] = argsz
    s.k.ioctl(fd, uapi.VFIO_IOMMU_GET_INFO, buf)
    return bytes(ffi.buffer(buf))


def test_get_info_argsz_is_always_the_full_size(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_iommu_get_info: argsz is set to the chain's full size even
    when the caller gave more (type1 keeps a larger argsz), cap_offset is sizeof(info)."""
    with compat(host) as (s, fd, _):
        raw = _info_raw(s, fd, 200)
        argsz, flags, _, cap_offset, pad = struct.unpack_from("<IIQII", raw)
        total = INFO + DMA_AVAIL_CAP + IOVA_CAP_ONE
        assert (argsz, cap_offset, pad) == (total, INFO, 0)
        assert flags == C.VFIO_IOMMU_INFO_PGSIZES | C.VFIO_IOMMU_INFO_CAPS
        assert raw[total:] == b"\xa5" * (256 - total)  # nothing written past the chain


def test_get_info_writes_each_cap_that_fits(host: Host) -> None:
    """vfio_compat.c: each fill function writes its capability when it fits in what argsz
    leaves; with room for DMA_AVAIL only, that one is written (with next pointing past it), the
    IOVA_RANGE header is not, cap_offset stays 0, argsz becomes the full size, CAPS is set."""
    with compat(host) as (s, fd, _):
        raw = _info_raw(s, fd, INFO + DMA_AVAIL_CAP)
        argsz, flags, _, cap_offset = struct.unpack_from("<IIQI", raw)
        assert (argsz, cap_offset) == (INFO + DMA_AVAIL_CAP + IOVA_CAP_ONE, 0)
        assert flags & C.VFIO_IOMMU_INFO_CAPS
        cap_id, version, nxt, avail = struct.unpack_from("<HHII", raw, INFO)
        assert (cap_id, version, nxt, avail) == (C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1,
                                                 INFO + DMA_AVAIL_CAP, (1 << 32) - 1)
        assert raw[INFO + DMA_AVAIL_CAP:] == b"\xa5" * (256 - INFO - DMA_AVAIL_CAP)


def test_get_info_minimal_argsz_copies_minsz(host: Host) -> None:
    """vfio_compat.c: the struct is copied back up to min(argsz, sizeof): with argsz 16 the
    cap_offset word is left alone, no capability is written."""
    with compat(host) as (s, fd, _):
        raw = _info_raw(s, fd, 16)
        argsz, flags = struct.unpack_from("<II", raw)
        assert argsz == INFO + DMA_AVAIL_CAP + IOVA_CAP_ONE and flags & C.VFIO_IOMMU_INFO_CAPS
        assert raw[16:] == b"\xa5" * 240


def test_map_without_access_fails_with_a_domain(host: Host) -> None:
    """A compat MAP_DMA without READ/WRITE works while the IOAS has no domain, but a VT-d
    domain cannot map it (intel/iommu.c:__domain_mapping EINVAL): a domain then cannot join that
    IOAS (HWPT_ALLOC's iopt_table_add_domain fills it: EINVAL), and once a domain is there such
    a MAP_DMA fails (READ alone works)."""
    with iommufd_session(host) as s:
        fd, ioas, _, dev_id = s.bound_edu()
        _set_compat(s, fd, ioas)
        buf = s.buffer(2)
        map_dma(s, fd, buf, 1 << 20, PAGE, 0)
        expect_errno(errno.EINVAL, s.hwpt, fd, dev_id, ioas)
        assert unmap_dma(s, fd, 1 << 20, PAGE) == PAGE
        hwpt = s.hwpt(fd, dev_id, ioas)
        expect_errno(errno.EINVAL, map_dma, s, fd, buf, 1 << 20, PAGE, 0)
        expect_ok(map_dma, s, fd, buf, 1 << 20, PAGE, READ)
        assert unmap_dma(s, fd, 1 << 20, PAGE) == PAGE
        s.destroy(fd, hwpt)


def test_unmap_error_still_writes_size(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_unmap_dma copies the struct back after iopt_unmap_iova even
    when it failed (size 0: ENOENT for a range cutting a mapping, EOVERFLOW for a wrapping
    one); an error before the unmap (bad flags) leaves the caller's size."""
    with compat(host) as (s, fd, _):
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        map_dma(s, fd, s.buffer(2), 1 << 20, 2 * PAGE)
        for iova, size, want in (((1 << 20), PAGE, errno.ENOENT),
                                 (U64_MAX - PAGE + 1, 3 * PAGE, errno.EOVERFLOW)):
            arg = new("struct vfio_iommu_type1_dma_unmap *", iova=iova, size=size)
            expect_errno(want, s.k.ioctl, fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
            assert arg.size == 0
        arg = new("struct vfio_iommu_type1_dma_unmap *", flags=1 << 7, iova=1 << 20, size=PAGE)
        expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
        assert arg.size == PAGE


def test_map_rules(host: Host) -> None:
    """MAP_DMA: fixed IOVA, overlap EEXIST, VADDR (or any unknown flag) EINVAL."""
    with compat(host) as (s, fd, ioas):
        buf = s.buffer(2)
        expect_ok(map_dma, s, fd, buf, 1 << 20, 2 * PAGE)
        assert s.ranges(fd, ioas)[0] == [(0, U64_MAX)]
        expect_errno(errno.EEXIST, map_dma, s, fd, buf, (1 << 20) + PAGE, PAGE)
        expect_errno(errno.EINVAL, map_dma, s, fd, buf, 1 << 24, PAGE,
                     READ | C.VFIO_DMA_MAP_FLAG_VADDR)
        assert s.unmap(fd, ioas, 1 << 20, 2 * PAGE) == 2 * PAGE  # the native API sees it


def test_unmap_rules(host: Host) -> None:
    """UNMAP_DMA: splitting ENOENT (type1v2: EINVAL), nothing mapped 0, bad flags EINVAL."""
    with compat(host) as (s, fd, _):
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        buf = s.buffer(2)
        map_dma(s, fd, buf, 1 << 20, 2 * PAGE)
        expect_errno(errno.ENOENT, unmap_dma, s, fd, 1 << 20, PAGE)
        for flag in (C.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, C.VFIO_DMA_UNMAP_FLAG_VADDR):
            expect_errno(errno.EINVAL, unmap_dma, s, fd, 1 << 20, 2 * PAGE, flag)
        expect_errno(errno.EINVAL, unmap_dma, s, fd, 1 << 20, 0)
        expect_errno(errno.EINVAL, unmap_dma, s, fd, 0, PAGE, C.VFIO_DMA_UNMAP_FLAG_ALL)
        assert unmap_dma(s, fd, 1 << 20, 2 * PAGE) == 2 * PAGE
        assert unmap_dma(s, fd, 1 << 20, 2 * PAGE) == 0  # as type1; IOAS_UNMAP says ENOENT
        map_dma(s, fd, buf, 1 << 20, 2 * PAGE)
        assert unmap_dma(s, fd, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 2 * PAGE
        assert unmap_dma(s, fd, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 0


def test_type1_v1_unmaps_inside_a_mapping(host: Host) -> None:
    """SET_IOMMU(VFIO_TYPE1_IOMMU) turns huge pages off, so an unmap may cut a mapping."""
    with compat(host) as (s, fd, ioas):
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1_IOMMU)
        opt = new("struct iommu_option *", option_id=C.IOMMU_OPTION_HUGE_PAGES,
                  op=C.IOMMU_OPTION_OP_GET, object_id=ioas)
        s.k.ioctl(fd, uapi.IOMMU_OPTION, opt)
        assert opt.val64 == 0
        buf = s.buffer(4)
        map_dma(s, fd, buf, 1 << 20, 4 * PAGE)
        assert unmap_dma(s, fd, (1 << 20) + PAGE, PAGE) == PAGE
        assert unmap_dma(s, fd, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 3 * PAGE


def test_type1_v1_unaligned_cut_einval(host: Host) -> None:
    """vfio_compat.c:iommufd_vfio_unmap_dma cuts the IOAS at iova + size - 1 and iova - 1 before
    unmapping (type1 v1: huge pages off); io_pagetable.c:iopt_area_split refuses a cut whose
    second part would start off the page alignment: EINVAL, size not written back."""
    with compat(host) as (s, fd, _):
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1_IOMMU)
        map_dma(s, fd, s.buffer(4), 1 << 20, 4 * PAGE)
        for iova in ((1 << 20) + 0x234, (1 << 20) + PAGE + 0x800):
            arg = new("struct vfio_iommu_type1_dma_unmap *", iova=iova, size=PAGE)
            expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
            assert arg.size == PAGE
        assert unmap_dma(s, fd, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 4 * PAGE


def test_map_without_read_or_write(host: Host) -> None:
    """The compat MAP_DMA has no READ/WRITE check of its own (IOMMU_IOAS_MAP has: EINVAL)."""
    with compat(host) as (s, fd, _):
        buf = s.buffer()
        expect_ok(map_dma, s, fd, buf, 1 << 20, PAGE, 0)
        assert unmap_dma(s, fd, 1 << 20, PAGE) == PAGE


@pytest.mark.parametrize("argsz", [8, 31])
def test_map_argsz_too_small(host: Host, argsz: int) -> None:
    """argsz below offsetofend(size) -> EINVAL, before the compat IOAS is looked up."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        arg = new("struct vfio_iommu_type1_dma_map *", argsz=argsz, flags=READ, vaddr=s.buffer(),
                  iova=1 << 20, size=PAGE)
        expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.VFIO_IOMMU_MAP_DMA, arg)


def _group_on_iommufd(s: Session, fd: int) -> int:
    group = s.track(s.k.open(s.host.group_path(s.host.edu_group)))
    s.k.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", fd))
    return group


def test_group_set_container_with_an_iommufd(host: Host) -> None:
    """group.c: SET_CONTAINER(iommufd) creates the compat IOAS; GET_DEVICE_FD needs no SET_IOMMU
    and attaches the device to the compat IOAS (its reserved ranges and alignment appear);
    UNSET_CONTAINER does not wait for the device fds (vfio_group_ioctl_unset_container)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        group = _group_on_iommufd(s, fd)
        status = new("struct vfio_group_status *")
        s.k.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == C.VFIO_GROUP_FLAGS_VIABLE | C.VFIO_GROUP_FLAGS_CONTAINER_SET
        expect_errno(errno.EINVAL, s.k.ioctl, group, uapi.VFIO_GROUP_SET_CONTAINER,
                     ffi.new("int32_t *", fd))
        get = new("struct iommu_vfio_ioas *", op=C.IOMMU_VFIO_IOAS_GET)
        s.k.ioctl(fd, uapi.IOMMU_VFIO_IOAS, get)
        ioas = int(get.ioas_id)
        assert s.ranges(fd, ioas) == ([(0, U64_MAX)], 1)
        device = s.track(s.k.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD,
                                   ffi.new("char[]", host.edu.encode())))
        ranges, alignment = s.ranges(fd, ioas)
        assert alignment == PAGE and len(ranges) > 1  # the device's MSI window is reserved
        info, raw = _ioctl.query_info(s.k, fd, uapi.VFIO_IOMMU_GET_INFO,
                                      "struct vfio_iommu_type1_info *")
        decoded = _decode_info(info, raw)
        assert [(r.start, r.last) for r in decoded.iova_ranges] == ranges
        assert decoded.page_sizes == 0x40201000  # the VT-d domain's 4K | 2M | 1G
        # unlike a legacy container (EBUSY), an iommufd leaves with the device still open
        expect_ok(s.k.ioctl, group, uapi.VFIO_GROUP_UNSET_CONTAINER)
        expect_errno(errno.EINVAL, s.k.ioctl, group, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     ffi.new("char[]", host.edu.encode()))
        assert s.ranges(fd, ioas)[1] == PAGE  # the open device is still attached
        s.close(device)
        assert s.ranges(fd, ioas) == ([(0, U64_MAX)], 1)
        s.k.ioctl(fd, uapi.IOMMU_VFIO_IOAS, get)
        assert get.ioas_id == ioas  # the compat IOAS stays with the iommufd


def test_edu_dma_through_the_compat_container(host: Host) -> None:
    """The object API: pyvfio's Container methods over an iommufd drive a real edu's DMA."""
    with iommufd_session(host):
        bdf = host.edu
        path = Path(__file__).resolve().parents[2] / "examples" / "edu_dma.py"
        spec = importlib.util.spec_from_file_location("edu_dma_compat_conformance", path)
        assert spec is not None and spec.loader is not None
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        with IOMMUFD(host.kernel) as fd:
            container = CompatContainer(fd)
            group = Group(host.edu_group, kernel=host.kernel)
            group.set_container(container)
            assert container.set_iommu() == uapi.IOMMUType.TYPE1v2
            with group.open_device(bdf) as device:
                back = example.exercise(device)
        assert back == bytes(i * 7 % 251 for i in range(example.COUNT))
