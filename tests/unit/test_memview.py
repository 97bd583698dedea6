"""pyvfio.memview and pyvfio.barrier: width-exact DMA memory access, struct overlays, barriers.

Pure userspace (no kernel call), so fake-only: there is nothing for the VM lane to compare.
"""

from __future__ import annotations

import mmap
import struct

import cffi
import pytest

from pyvfio import barrier
from pyvfio.memory import DMABuffer
from pyvfio.memview import DMAView

FFI = cffi.FFI()
FFI.cdef("struct desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };")


def test_loads_and_stores_are_little_endian_at_their_width() -> None:
    buf = mmap.mmap(-1, 4096)
    mem = DMAView(buf)
    mem.store64(8, 0x1122334455667788)
    mem.store32(16, 0xAABBCCDD)
    mem.store16(20, 0xEEFF)
    mem.store8(22, 0x7F)
    assert buf[8:23] == struct.pack("<QIHB", 0x1122334455667788, 0xAABBCCDD, 0xEEFF, 0x7F)
    assert (mem.load64(8), mem.load32(16), mem.load16(20), mem.load8(22)) == (
        0x1122334455667788, 0xAABBCCDD, 0xEEFF, 0x7F)
    assert mem.load(16, 4) == 0xAABBCCDD


@pytest.mark.parametrize(("offset", "match"), [(2, "not aligned"), (4096, "outside"),
                                               (-8, "must be in")])
def test_bad_offset_valueerror(offset: int, match: str) -> None:
    mem = DMAView(mmap.mmap(-1, 4096))
    with pytest.raises(ValueError, match=match):
        mem.load32(offset)


def test_value_that_does_not_fit_overflowerror() -> None:
    mem = DMAView(mmap.mmap(-1, 4096))
    with pytest.raises(OverflowError):
        mem.store16(0, 0x10000)


def test_readonly_buffer_typeerror() -> None:
    with pytest.raises(TypeError, match="writable"):
        DMAView(b"\0" * 64)


def test_sub_view_is_offset_and_bounded() -> None:
    buf = bytearray(256)
    sub = DMAView(buf).sub(64, 32)
    sub.store32(0, 0xDEADBEEF)
    assert buf[64:68] == b"\xef\xbe\xad\xde"
    with pytest.raises(ValueError, match="outside"):
        sub.load32(32)


def test_overlay_of_a_driver_declared_struct() -> None:
    with DMABuffer.anonymous(4096) as buf:
        mem = DMAView(buf)
        d = mem.overlay(FFI.typeof("struct desc *"), 64)
        d.addr, d.len, d.flags, d.next = 0x1000, 512, 1, 2
        assert buf[64:80] == struct.pack("<QIHH", 0x1000, 512, 1, 2)
        del d, mem


def test_array_overlay_counts_what_fits() -> None:
    mem = DMAView(bytearray(256))
    ring = mem.array(FFI.typeof("struct desc"))
    assert len(ring) == 16
    ring[15].next = 7
    assert mem.load16(15 * 16 + 14) == 7


def test_overlay_misaligned_or_too_big_valueerror() -> None:
    mem = DMAView(bytearray(64))
    with pytest.raises(ValueError, match="not aligned"):
        mem.overlay(FFI.typeof("struct desc *"), 4)
    with pytest.raises(ValueError, match="outside"):
        mem.overlay(FFI.typeof("struct desc *"), 56)
    with pytest.raises(TypeError, match="pointer type"):
        mem.overlay(FFI.typeof("struct desc"), 0)


def test_view_keeps_memory_mapped_after_buffer_close() -> None:
    buf = DMABuffer.anonymous(4096)
    mem = DMAView(buf)
    buf.close()  # the view's export keeps the mmap alive: no use after unmap
    mem.store32(0, 5)
    assert mem.load32(0) == 5


def test_read_write_zero() -> None:
    mem = DMAView(bytearray(64))
    mem.write(8, b"abc")
    assert mem.read(8, 3) == b"abc"
    mem.zero()
    assert mem.read(0, 64) == bytes(64)


def test_barriers_run_on_this_machine() -> None:
    if barrier.ARCH not in ("x86_64", "amd64", "aarch64", "arm64"):
        pytest.skip(f"barriers refuse {barrier.ARCH}")
    for name in ("mb", "rmb", "wmb", "dma_mb", "dma_rmb", "dma_wmb"):
        getattr(barrier, name)()
        assert barrier.kind(name) in ("instruction", "none needed")
    if barrier.ARCH in ("x86_64", "amd64"):
        assert barrier.kind("dma_wmb") == "none needed"  # TSO: stores stay in order
        assert barrier.kind("mb") == "instruction"  # mfence: a later load may pass a store


def test_refused_barrier_names_the_reason() -> None:
    refused = barrier._refuse("mb", "architecture 'sparc' is not supported")
    with pytest.raises(barrier.UnsupportedPlatformError, match="sparc"):
        refused()
