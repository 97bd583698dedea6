"""Type1 DMA mapping on the legacy container (drivers/vfio/vfio_iommu_type1.c)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import struct

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import standard_host
from tests.conformance.vfio_helpers import Session, buffer, dma_map, dma_unmap, session
from tests.conftest import Host, discover
from tests.helpers import expect_errno, expect_ok

IOVA = 0x100000
RW = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE


def test_get_info_small_argsz_reports_caps_size(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_get_info: argsz 24 -> PGSIZES|CAPS, argsz grown, cap_offset 0."""
    s, c = t1
    info = new("struct vfio_iommu_type1_info *")
    expect_ok(s.k.ioctl, c, uapi.VFIO_IOMMU_GET_INFO, info)
    assert info.flags == C.VFIO_IOMMU_INFO_PGSIZES | C.VFIO_IOMMU_INFO_CAPS
    assert info.cap_offset == 0
    assert info.argsz > 24
    assert info.iova_pgsizes & 0x1000


def test_get_info_caps_chain(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_get_info: caps MIGRATION, DMA_AVAIL, IOVA_RANGE, aligned, absolute."""
    s, c = t1
    info = new("struct vfio_iommu_type1_info *")
    s.k.ioctl(c, uapi.VFIO_IOMMU_GET_INFO, info)
    buf = ffi.new("char[]", info.argsz)
    full = ffi.cast("struct vfio_iommu_type1_info *", buf)
    full.argsz = info.argsz
    s.k.ioctl(c, uapi.VFIO_IOMMU_GET_INFO, full)
    assert full.cap_offset == 24
    raw, ids, off = bytes(ffi.buffer(buf, info.argsz)), [], 24
    while off:
        cap_id, _version, nxt = struct.unpack_from("<HHI", raw, off)
        assert off % 8 == 0
        ids.append(cap_id)
        off = nxt
    assert ids == [C.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
                   C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]


def test_get_info_argsz_too_small_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_get_info: argsz < 16 -> EINVAL."""
    s, c = t1
    info = new("struct vfio_iommu_type1_info *", argsz=12)
    expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_IOMMU_GET_INFO, info)


def test_map_unmap(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map / vfio_dma_do_unmap: map, then unmap returns the bytes unmapped."""
    s, c = t1
    buf = buffer(0x2000)
    expect_ok(dma_map, s.host, c, buf, IOVA)
    assert expect_ok(dma_unmap, s.host, c, IOVA, 0x2000) == 0x2000


def test_map_overlap_eexist(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: any overlap with an existing mapping -> EEXIST."""
    s, c = t1
    buf = buffer(0x2000)
    dma_map(s.host, c, buf, IOVA)
    expect_errno(errno.EEXIST, dma_map, s.host, c, buf, IOVA + 0x1000)
    dma_unmap(s.host, c, IOVA, 0x2000)


def test_map_unaligned_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: iova not a multiple of the smallest IOMMU page -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_map, s.host, c, buffer(), IOVA + 0x10)


def test_map_no_prot_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: neither READ nor WRITE (and no VADDR) -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_map, s.host, c, buffer(), IOVA, flags=0)


def test_map_unknown_flag_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_map_dma: unknown flag bits -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_map, s.host, c, buffer(), IOVA, flags=RW | 0x80)


def test_map_argsz_too_small_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_map_dma: argsz < 32 -> EINVAL."""
    s, c = t1
    m = new("struct vfio_iommu_type1_dma_map *", argsz=24, flags=RW, iova=IOVA, size=0x1000)
    expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)


def test_map_zero_size_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: size 0 -> EINVAL."""
    s, c = t1
    m = new("struct vfio_iommu_type1_dma_map *", flags=RW, vaddr=0x10000, iova=IOVA, size=0)
    expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)


def test_map_unmapped_vaddr_efault(t1: tuple[Session, int]) -> None:
    """vfio_pin_map_dma: a vaddr the process does not map -> EFAULT (pin_user_pages fails)."""
    s, c = t1
    buf = buffer(0x1000)
    vaddr = int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))
    buf.close()  # the page is gone now
    m = new("struct vfio_iommu_type1_dma_map *", flags=RW, vaddr=vaddr, iova=IOVA, size=0x1000)
    expect_errno(errno.EFAULT, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)


def test_map_readonly_memory_for_write_efault(t1: tuple[Session, int]) -> None:
    """vfio_pin_pages_remote: WRITE mapping of read-only memory -> FOLL_WRITE pin fails, EFAULT."""
    s, c = t1
    buf = buffer()
    addr = int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(0x1000), mmap.PROT_READ) == 0
    m = new("struct vfio_iommu_type1_dma_map *", flags=RW, vaddr=addr, iova=IOVA, size=0x1000)
    expect_errno(errno.EFAULT, s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)
    m.flags = C.VFIO_DMA_MAP_FLAG_READ
    expect_ok(s.k.ioctl, c, uapi.VFIO_IOMMU_MAP_DMA, m)
    dma_unmap(s.host, c, IOVA, 0x1000)


def test_unmap_nothing_size_zero(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: nothing mapped in range -> success with size 0 written back."""
    s, c = t1
    assert expect_ok(dma_unmap, s.host, c, 0, 0x1000) == 0


def test_unmap_bisect_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap, v2: a range that would split a mapping -> EINVAL, nothing unmapped."""
    s, c = t1
    buf = buffer(0x2000)
    dma_map(s.host, c, buf, IOVA)
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0x1000)
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA + 0x1000, 0x1000)
    assert dma_unmap(s.host, c, IOVA, 0x2000) == 0x2000


def test_unmap_covers_several(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: one range may remove several whole mappings; size = their sum."""
    s, c = t1
    a, b = buffer(), buffer()
    dma_map(s.host, c, a, IOVA)
    dma_map(s.host, c, b, IOVA + 0x3000)
    assert dma_unmap(s.host, c, IOVA, 0x10000) == 0x2000


def test_unmap_all(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: FLAG_ALL with iova = size = 0 removes everything."""
    s, c = t1
    a, b = buffer(), buffer(0x2000)
    dma_map(s.host, c, a, IOVA)
    dma_map(s.host, c, b, 0x800000)
    assert dma_unmap(s.host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 0x3000


def test_unmap_all_with_range_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: FLAG_ALL with a non-zero iova or size -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, 0, 0x1000, C.VFIO_DMA_UNMAP_FLAG_ALL)


def test_unmap_unknown_flag_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_unmap_dma: unknown flags -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0x1000, 0x80)


def test_unmap_zero_size_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: size 0 without FLAG_ALL -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0)


def test_map_outside_iova_ranges_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_iova_dma_valid: a range inside the MSI window 0xfee00000 -> EINVAL."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_map, s.host, c, buffer(), 0xFEE00000)


def test_vaddr_invalidate_and_restore(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap VADDR marks the vaddr invalid; MAP with VADDR restores it; a second
    invalidate of an invalid vaddr -> EINVAL."""
    s, c = t1
    buf = buffer()
    dma_map(s.host, c, buf, IOVA)
    assert dma_unmap(s.host, c, IOVA, 0x1000, C.VFIO_DMA_UNMAP_FLAG_VADDR) == 0x1000
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0x1000, C.VFIO_DMA_UNMAP_FLAG_VADDR)
    expect_ok(dma_map, s.host, c, buf, IOVA, flags=C.VFIO_DMA_MAP_FLAG_VADDR)
    dma_unmap(s.host, c, IOVA, 0x1000)


def test_vaddr_update_without_mapping_enoent(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map with VADDR: no mapping at iova -> ENOENT."""
    s, c = t1
    expect_errno(errno.ENOENT, dma_map, s.host, c, buffer(), IOVA, flags=C.VFIO_DMA_MAP_FLAG_VADDR)


def test_vaddr_bisect_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap, v2: the bisect check comes before FLAG_VADDR is looked at: a VADDR
    range that would split a mapping -> EINVAL, no vaddr invalidated."""
    s, c = t1
    buf = buffer(0x2000)
    dma_map(s.host, c, buf, IOVA)
    flag = C.VFIO_DMA_UNMAP_FLAG_VADDR
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0x1000, flag)
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA + 0x1000, 0x1000, flag)
    expect_errno(errno.EINVAL, dma_map, s.host, c, buf, IOVA, flags=C.VFIO_DMA_MAP_FLAG_VADDR)
    assert dma_unmap(s.host, c, IOVA, 0x2000) == 0x2000


def test_vaddr_v1_offset_unmaps_nothing(host: Host) -> None:
    """vfio_dma_do_unmap, v1 (VFIO_TYPE1_IOMMU): the walk stops at a mapping that starts below
    iova, also with FLAG_VADDR (size 0, nothing invalidated); a range over a mapping's first
    page invalidates all of it."""
    if host.noiommu:
        pytest.skip("noiommu: no type1 DMA mapping")
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1_IOMMU)
        buf = buffer(0x2000)
        dma_map(s.host, c, buf, IOVA)
        flag = C.VFIO_DMA_UNMAP_FLAG_VADDR
        assert expect_ok(dma_unmap, s.host, c, IOVA + 0x1000, 0x1000, flag) == 0
        assert expect_ok(dma_unmap, s.host, c, IOVA, 0x1000, flag) == 0x2000
        expect_errno(errno.EINVAL, dma_unmap, s.host, c, IOVA, 0x2000, flag)
        expect_ok(dma_map, s.host, c, buf, IOVA, flags=C.VFIO_DMA_MAP_FLAG_VADDR)
        assert dma_unmap(s.host, c, IOVA, 0x2000) == 0x2000


def test_dirty_pages_start_stop(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_dirty_pages: START and STOP succeed (idempotent)."""
    s, c = t1
    for flag in (C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
                 C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP):
        d = new("struct vfio_iommu_type1_dirty_bitmap *", flags=flag)
        expect_ok(s.k.ioctl, c, uapi.VFIO_IOMMU_DIRTY_PAGES, d)


def test_dirty_pages_two_flags_einval(t1: tuple[Session, int]) -> None:
    """vfio_iommu_type1_dirty_pages: more than one flag -> EINVAL."""
    s, c = t1
    flags = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
    d = new("struct vfio_iommu_type1_dirty_bitmap *", flags=flags)
    expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.VFIO_IOMMU_DIRTY_PAGES, d)


def test_dirty_pages_get_bitmap(t1: tuple[Session, int]) -> None:
    """vfio_iova_dirty_bitmap: tracking on, pages of an IOMMU-backed group all read dirty."""
    s, c = t1
    buf = buffer(0x2000)
    dma_map(s.host, c, buf, IOVA)
    start = new("struct vfio_iommu_type1_dirty_bitmap *",
                flags=C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
    s.k.ioctl(c, uapi.VFIO_IOMMU_DIRTY_PAGES, start)
    bits = ffi.new("uint64_t[1]")
    d = new("struct vfio_iommu_type1_dirty_bitmap *", 40,
            flags=C.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)
    get = ffi.cast("struct vfio_iommu_type1_dirty_bitmap_get *", d.data)
    get.iova, get.size = IOVA, 0x2000
    get.bitmap.pgsize, get.bitmap.size, get.bitmap.data = 0x1000, 8, bits
    expect_ok(s.k.ioctl, c, uapi.VFIO_IOMMU_DIRTY_PAGES, d)
    assert bits[0] == 0b11
    dma_unmap(s.host, c, IOVA, 0x2000)


def test_mappings_dropped_when_last_group_leaves(t1: tuple[Session, int]) -> None:
    """container.c:vfio_group_detach_container: the last group out drops all mappings."""
    s, c = t1
    g = s.fds[1]
    dma_map(s.host, c, buffer(), IOVA)
    s.k.ioctl(g, uapi.VFIO_GROUP_UNSET_CONTAINER)
    s.attach(g, c)
    s.k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    assert dma_unmap(s.host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == 0


@pytest.mark.fake_only("dma_entry_limit is a module parameter")
def test_dma_entry_limit_enospc() -> None:
    """vfio_dma_do_map: no dma_avail left -> ENOSPC; the DMA_AVAIL cap counts down."""
    host = discover(standard_host(dma_entry_limit=2), "fake")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        buf = buffer()
        dma_map(host, c, buf, IOVA)
        dma_map(host, c, buf, IOVA + 0x1000)
        expect_errno(errno.ENOSPC, dma_map, host, c, buf, IOVA + 0x2000)
        dma_unmap(host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL)
    host.kernel.assert_clean()  # type: ignore[attr-defined]


@pytest.mark.fake_only("root has CAP_IPC_LOCK: RLIMIT_MEMLOCK does not apply")
def test_memlock_enomem() -> None:
    """vfio_pin_pages_remote: locked_vm + new > RLIMIT_MEMLOCK without CAP_IPC_LOCK -> ENOMEM."""
    host = discover(standard_host(memlock_limit=0x1000), "fake")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        dma_map(host, c, buffer(), IOVA)
        expect_errno(errno.ENOMEM, dma_map, host, c, buffer(), IOVA + 0x1000)
        dma_unmap(host, c, IOVA, 0x1000)
