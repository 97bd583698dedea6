"""DMA helpers that need no kernel: buffer checks, allocation, IOVA ranges."""

from __future__ import annotations

import mmap

import pytest

from pyvfio.container import Container
from pyvfio.dma import PAGE_SIZE, DMASpace, IOVARange, allocate, buffer_address, check_int


def test_allocate_rounds_up_to_pages_and_is_aligned() -> None:
    buf = allocate(100)
    cdata, address, size = buffer_address(buf)
    assert size == PAGE_SIZE and address % PAGE_SIZE == 0
    del cdata  # the export pins the mmap
    buf.close()


@pytest.mark.parametrize("size", [0, -1])
def test_allocate_bad_size_valueerror(size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        allocate(size)


def test_buffer_address_unaligned_bytearray_valueerror() -> None:
    with pytest.raises(ValueError, match="page aligned"):
        buffer_address(bytearray(PAGE_SIZE + 1))


def test_buffer_address_readonly_refused_when_writable() -> None:
    with pytest.raises(TypeError, match="buffer"):
        buffer_address(bytes(PAGE_SIZE))


@pytest.mark.parametrize("obj", ["text", 42, None])
def test_buffer_address_not_a_buffer_typeerror(obj: object) -> None:
    with pytest.raises(TypeError, match="buffer"):
        buffer_address(obj)


def test_buffer_address_memoryview_of_mmap() -> None:
    m = mmap.mmap(-1, 2 * PAGE_SIZE)
    view = memoryview(m)
    cdata, _, size = buffer_address(view)
    assert size == 2 * PAGE_SIZE
    del cdata
    view.release()
    m.close()


def test_check_int_refuses_bool_and_out_of_range() -> None:
    with pytest.raises(TypeError, match="iova"):
        check_int("iova", True)
    with pytest.raises(ValueError, match="iova"):
        check_int("iova", -1)
    assert check_int("iova", 5) == 5


def test_iova_range_inclusive_end() -> None:
    r = IOVARange(0x1000, 0x1FFF)
    assert r.size == 0x1000 and 0x1FFF in r and 0x2000 not in r and "x" not in r


def test_container_is_a_dma_space() -> None:
    assert all(hasattr(Container, name) for name in ("map", "unmap", "iova_ranges"))
    assert DMASpace is not None
