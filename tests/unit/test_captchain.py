"""The VFIO capability-chain walker on crafted buffers: well-formed, backwards, outside, looping."""

from __future__ import annotations

import struct

import pytest

from pyvfio._ffi import ffi
from pyvfio._ioctl import Capability, walk_caps
from pyvfio.container import _decode_info
from pyvfio.devinfo import decode_cap as _decode_cap
from pyvfio.region import decode_region_info

HDR = 32  # sizeof(struct vfio_region_info)


def cap(cap_id: int, nxt: int, body: bytes = b"", version: int = 1) -> bytes:
    return struct.pack("<HHI", cap_id, version, nxt) + body


def buffer(*caps: tuple[int, bytes]) -> bytes:
    """Lay out caps at the given offsets after a zeroed HDR-byte struct."""
    end = max(off + len(data) for off, data in caps)
    buf = bytearray(end)
    for off, data in caps:
        buf[off : off + len(data)] = data
    return bytes(buf)


def test_walk_caps_no_chain_is_empty() -> None:
    assert walk_caps(bytes(HDR), 0, HDR) == []


def test_walk_caps_ok_two_caps_in_order() -> None:
    buf = buffer((32, cap(2, 48, struct.pack("<II", 7, 9))), (48, cap(3, 0)))
    caps = walk_caps(buf, 32, HDR)
    assert [(c.id, c.offset) for c in caps] == [(2, 32), (3, 48)]
    assert caps[0].data == buf[32:48]
    assert caps[1] == Capability(3, 1, 48, buf[48:56])


def test_walk_caps_backwards_raises() -> None:
    buf = buffer((32, cap(2, 48)), (48, cap(3, 32)))
    with pytest.raises(ValueError, match="malformed capability chain"):
        walk_caps(buf, 32, HDR)


def test_walk_caps_self_loop_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(buffer((32, cap(1, 32))), 32, HDR)


def test_walk_caps_next_inside_own_header_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(buffer((32, cap(1, 36, bytes(8)))), 32, HDR)


def test_walk_caps_outside_buffer_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(buffer((32, cap(1, 4096))), 32, HDR)


def test_walk_caps_first_offset_inside_struct_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(buffer((32, cap(1, 0))), 8, HDR)


def test_walk_caps_truncated_header_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(bytes(36), 32, HDR)


def test_walk_caps_unaligned_raises() -> None:
    with pytest.raises(ValueError, match="malformed"):
        walk_caps(buffer((34, cap(1, 0))), 34, HDR)


def _region(flags: int, raw: bytearray) -> object:
    info = ffi.from_buffer("struct vfio_region_info *", raw)
    info.argsz, info.flags, info.index, info.cap_offset = len(raw), flags, 0, 32
    info.size, info.offset = 0x10000, 0
    return info


def test_decode_region_info_sparse_type_msix() -> None:
    sparse = cap(1, 80, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 0, 0x1000, 0x8000, 0x2000))
    raw = buffer((32, sparse), (80, cap(2, 96, struct.pack("<II", 0x80008086, 1))), (96, cap(3, 0)))
    buf = bytearray(raw)
    info = decode_region_info(_region(0xF, buf), bytes(buf))
    assert [(a.offset, a.size) for a in info.sparse_areas or ()] == [(0, 0x1000), (0x8000, 0x2000)]
    assert info.type is not None and (info.type.type, info.type.subtype) == (0x80008086, 1)
    assert info.msix_mappable and info.mmappable and info.readable and info.writable
    assert info.mmap_allowed(0x8000, 0x1000) and not info.mmap_allowed(0x1000, 0x1000)


def test_decode_region_info_sparse_count_overflow_raises() -> None:
    buf = bytearray(buffer((32, cap(1, 0, struct.pack("<II", 1000, 0)))))
    with pytest.raises(ValueError, match="sparse"):
        decode_region_info(_region(0xF, buf), bytes(buf))


def test_decode_iommu_info_type1_order() -> None:
    mig = cap(2, 56, struct.pack("<IIQQ", 0, 0, 0x1000, 1 << 28))
    avail = cap(3, 72, struct.pack("<II", 65535, 0))
    ranges = cap(
        1, 0, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 0, 0xFEDFFFFF, 0xFEF00000, 2**47 - 1)
    )
    raw = bytearray(buffer((24, mig), (56, avail), (72, ranges)))
    info = ffi.from_buffer("struct vfio_iommu_type1_info *", raw)
    info.argsz, info.flags, info.iova_pgsizes, info.cap_offset = len(raw), 3, 0x40201000, 24
    decoded = _decode_info(info, bytes(raw))
    assert decoded.min_page_size == 0x1000
    assert decoded.dma_avail == 65535
    assert decoded.migration is not None and decoded.migration.max_dirty_bitmap_size == 1 << 28
    assert [(r.start, r.last) for r in decoded.iova_ranges] == [
        (0, 0xFEDFFFFF),
        (0xFEF00000, 2**47 - 1),
    ]
    assert 0xFEE00000 not in decoded.iova_ranges[0] and decoded.iova_ranges[0].size == 0xFEE00000


def test_decode_device_caps_zpci_and_atomics() -> None:
    util = cap(3, 64, struct.pack("<I", 5) + b"hello" + bytes(3))  # util_str of 5 bytes
    atomic = cap(5, 0, struct.pack("<II", 0x3, 0))
    caps = walk_caps(buffer((24, cap(1, 40, bytes(8))), (40, util), (64, atomic)), 24, 24)
    decoded = [_decode_cap(c) for c in caps]
    assert [d.id for d in decoded] == [1, 3, 5]
    assert decoded[0].fields["start_dma"] == 0  # short cap zero-padded to its struct
    assert decoded[1].payload == b"hello" and decoded[1].fields["size"] == 5
    assert decoded[2].fields == {"flags": 3}


def _iommu_info(*ranges: tuple[int, int]) -> bytes:
    body = struct.pack("<II", len(ranges), 0) + b"".join(struct.pack("<QQ", *r) for r in ranges)
    return bytes(buffer((24, cap(1, 0, body))))


def _decode_ranges(raw: bytes) -> list[tuple[int, int]]:
    buf = bytearray(raw)
    info = ffi.from_buffer("struct vfio_iommu_type1_info *", buf)
    info.argsz, info.flags, info.iova_pgsizes, info.cap_offset = len(buf), 3, 0x1000, 24
    return [(r.start, r.last) for r in _decode_info(info, bytes(buf)).iova_ranges]


def test_decode_iommu_info_inverted_iova_range_raises() -> None:
    with pytest.raises(ValueError, match="inverted"):
        _decode_ranges(_iommu_info((0x2000, 0x1000)))


def test_decode_iommu_info_one_page_range_is_fine() -> None:
    assert _decode_ranges(_iommu_info((0x1000, 0x1000), (0x2000, 0x2FFF))) == [
        (0x1000, 0x1000), (0x2000, 0x2FFF)]
