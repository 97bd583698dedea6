"""Type1 range edges: ranges that wrap past 2^64, and which words of the user's dirty bitmap
the kernel writes (drivers/vfio/vfio_iommu_type1.c).

7.3 checks a range's end with ``check_add_overflow(iova, size - 1)``: a range that wraps is
EOVERFLOW, before the flag and alignment checks of vfio_dma_do_map; 6.12 said EINVAL.
``update_user_bitmap`` writes, per mapping, only the u64 words that hold that mapping's bits.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.vfio_helpers import Session, buffer, dma_map, dma_unmap
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

IOVA = 0x100000
PAGE = 0x1000
TOP = (1 << 64) - PAGE  # the last page of the IOVA space
RW = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE
GET_BITMAP = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP
PATTERN = 0xAAAA_AAAA_AAAA_AAAA


@pytest.fixture
def tracking(t1: tuple[Session, int]) -> Iterator[tuple[Session, int]]:
    """:func:`t1` with dirty page tracking started (stopped again at the end)."""
    s, c = t1
    _dirty(s, c, C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START)
    yield s, c
    _dirty(s, c, C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP)


def _dirty(s: Session, c: int, flag: int) -> None:
    s.k.ioctl(c, uapi.VFIO_IOMMU_DIRTY_PAGES,
              new("struct vfio_iommu_type1_dirty_bitmap *", flags=flag))


def _wrap_errno(host: Host) -> int:
    return errno.EOVERFLOW if host.linux_at_least(7, 3) else errno.EINVAL


def _map(s: Session, c: int, iova: int, size: int, vaddr: int, flags: int = RW) -> None:
    m = new("struct vfio_iommu_type1_dma_map *", flags=flags, vaddr=vaddr, iova=iova, size=size)
    s.k.ioctl(c, uapi.VFIO_IOMMU_MAP_DMA, m)


def _vaddr(buf: Any) -> int:
    return int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))


def _get_bitmap(s: Session, c: int, iova: int, size: int, bits: Any) -> None:
    d = new("struct vfio_iommu_type1_dirty_bitmap *", 40, flags=GET_BITMAP)
    get = ffi.cast("struct vfio_iommu_type1_dirty_bitmap_get *", d.data)
    get.iova, get.size = iova, size
    get.bitmap.pgsize, get.bitmap.size, get.bitmap.data = PAGE, ffi.sizeof(bits), bits
    s.k.ioctl(c, uapi.VFIO_IOMMU_DIRTY_PAGES, d)


def _unmap_bitmap(s: Session, c: int, iova: int, size: int, bits: Any) -> int:
    u = new("struct vfio_iommu_type1_dma_unmap *", 24,
            flags=C.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova=iova, size=size)
    bm = ffi.cast("struct vfio_bitmap *", u.data)
    bm.pgsize, bm.size, bm.data = PAGE, ffi.sizeof(bits), bits
    s.k.ioctl(c, uapi.VFIO_IOMMU_UNMAP_DMA, u)
    return int(u.size)


def test_map_iova_wrap(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: iova + size - 1 past 2^64 -> EOVERFLOW on 7.3 (6.12: EINVAL)."""
    s, c = t1
    expect_errno(_wrap_errno(s.host), _map, s, c, TOP, 2 * PAGE, _vaddr(buffer(2 * PAGE)))


def test_map_vaddr_wrap(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: vaddr + size - 1 past 2^64 -> EOVERFLOW on 7.3 (6.12: EINVAL)."""
    s, c = t1
    expect_errno(_wrap_errno(s.host), _map, s, c, IOVA, 2 * PAGE, TOP)


def test_map_wrap_before_prot_and_alignment(t1: tuple[Session, int]) -> None:
    """7.3 vfio_dma_do_map checks the wrap before READ/WRITE and alignment: a wrapping range
    with no access flag and an unaligned size is still EOVERFLOW (6.12: EINVAL)."""
    s, c = t1
    expect_errno(_wrap_errno(s.host), _map, s, c, TOP, PAGE + 0x10, 0x10000, flags=0)


def test_map_zero_size_before_wrap_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_map: size 0 is EINVAL before any wrap check (size - 1 would wrap)."""
    s, c = t1
    expect_errno(errno.EINVAL, _map, s, c, TOP, 0, TOP)


def test_unmap_wrap(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: iova + size - 1 past 2^64 -> EOVERFLOW on 7.3 (6.12: EINVAL)."""
    s, c = t1
    expect_errno(_wrap_errno(s.host), dma_unmap, s.host, c, TOP, 2 * PAGE)


def test_unmap_last_page_of_iova_space(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: a range ending at 2^64 - 1 does not wrap; nothing there: 0 bytes."""
    s, c = t1
    assert expect_ok(dma_unmap, s.host, c, TOP, PAGE) == 0


def test_unmap_unaligned_size_before_wrap_einval(t1: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap: a size off the page size is EINVAL before the wrap check."""
    s, c = t1
    expect_errno(errno.EINVAL, dma_unmap, s.host, c, TOP, 2 * PAGE + 0x10)


def test_get_bitmap_wrap(tracking: tuple[Session, int]) -> None:
    """vfio_iommu_type1_dirty_pages GET_BITMAP: a range that wraps -> EOVERFLOW on 7.3
    (6.12: EINVAL)."""
    s, c = tracking
    bits = ffi.new("uint64_t[1]")
    expect_errno(_wrap_errno(s.host), _get_bitmap, s, c, TOP, 2 * PAGE, bits)


def test_get_bitmap_last_page_of_iova_space(tracking: tuple[Session, int]) -> None:
    """GET_BITMAP of the last IOVA page: 6.12 tests ``iova + size < iova`` in u64 (the end,
    2^64, wraps to 0: EINVAL); 7.3 tests iova + size - 1 and finds nothing mapped (0)."""
    s, c = tracking
    bits = ffi.new("uint64_t[1]", [PATTERN])
    if s.host.linux_at_least(7, 3):
        expect_ok(_get_bitmap, s, c, TOP, PAGE, bits)
    else:
        expect_errno(errno.EINVAL, _get_bitmap, s, c, TOP, PAGE, bits)
    assert bits[0] == PATTERN


def test_get_bitmap_writes_only_the_words_of_mappings(tracking: tuple[Session, int]) -> None:
    """update_user_bitmap, per mapping: the u64 words holding its bits are written (bits past
    it in its last word 0); a first word starting below the mapping is ORed with the user's
    whole word (bitmap_or over whole longs); other words are untouched."""
    s, c = tracking
    first, second = buffer(2 * PAGE), buffer(2 * PAGE)
    dma_map(s.host, c, first, IOVA)
    dma_map(s.host, c, second, IOVA + 130 * PAGE)  # bits 130-131: word 2, shift 2
    try:
        bits = ffi.new("uint64_t[4]", [PATTERN] * 4)
        expect_ok(_get_bitmap, s, c, IOVA, 192 * PAGE, bits)
        assert list(bits) == [0b11, PATTERN, PATTERN | 0b11 << 2, PATTERN]
    finally:
        dma_unmap(s.host, c, IOVA, 192 * PAGE)


def test_get_bitmap_of_nothing_leaves_the_bitmap(tracking: tuple[Session, int]) -> None:
    """vfio_iova_dirty_bitmap over a range with no mapping writes nothing."""
    s, c = tracking
    bits = ffi.new("uint64_t[1]", [PATTERN])
    expect_ok(_get_bitmap, s, c, IOVA, 64 * PAGE, bits)
    assert bits[0] == PATTERN


def test_unmap_bitmap_of_nothing_leaves_the_bitmap(tracking: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap with GET_DIRTY_BITMAP over no mapping: 0 bytes unmapped and the user
    bitmap untouched (it is written per vfio_dma removed)."""
    s, c = tracking
    bits = ffi.new("uint64_t[1]", [PATTERN])
    assert expect_ok(_unmap_bitmap, s, c, IOVA, 2 * PAGE, bits) == 0
    assert bits[0] == PATTERN


def test_unmap_bitmap_writes_the_words_of_what_it_unmaps(tracking: tuple[Session, int]) -> None:
    """vfio_dma_do_unmap with GET_DIRTY_BITMAP: the removed mapping's words, as GET_BITMAP."""
    s, c = tracking
    dma_map(s.host, c, buffer(2 * PAGE), IOVA + 66 * PAGE)  # bits 66-67: word 1, shift 2
    bits = ffi.new("uint64_t[3]", [PATTERN] * 3)
    assert expect_ok(_unmap_bitmap, s, c, IOVA, 128 * PAGE, bits) == 2 * PAGE
    assert list(bits) == [PATTERN, PATTERN | 0b11 << 2, PATTERN]
