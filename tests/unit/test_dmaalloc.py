"""pyvfio.dmaalloc: aligned allocations from mapped chunks, translation, reuse, thread safety."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from pyvfio.cdev import open_device
from pyvfio.dmaalloc import DMAAllocator
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.iova import DMAMapper


@pytest.fixture(params=["legacy", "iommufd", "legacy-space", "iommufd-space"])
def alloc(request: pytest.FixtureRequest) -> Iterator[tuple[DMAAllocator, FakeKernel]]:
    """An allocator on a DMAMapper, or straight on the device handle's DMA space."""
    mode, _, direct = request.param.partition("-")
    k = standard_host(iommufd=True)
    with open_device(str(k.labels["edu"]), mode, kernel=k) as opened:
        mapper = opened.dma if direct else DMAMapper(opened.dma)
        a = DMAAllocator(mapper, chunk_size=64 << 10, max_bytes=1 << 20)  # type: ignore[arg-type]
        yield a, k
        a.close()
        if not direct:
            mapper.close()
        assert not opened.dma.mappings()  # every chunk unmapped
    k.assert_clean()


def test_allocations_are_aligned_zeroed_and_translate(alloc: tuple[DMAAllocator, FakeKernel]
                                                      ) -> None:
    a, _ = alloc
    x = a.alloc(100)
    y = a.alloc(4096, align=4096)
    assert x.size == 128 and x.iova % 64 == 0
    assert y.iova % 4096 == 0 and y.vaddr % 4096 == 0
    assert y.mem.read(0, 4096) == bytes(4096)
    assert a.iova(y.vaddr + 5) == y.iova + 5
    assert a.vaddr(x.iova + 3) == x.vaddr + 3
    assert len(a._chunks) == 1  # one mapping for both


def test_freed_space_is_reused_and_coalesced(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    blocks = [a.alloc(1024) for _ in range(64)]  # fills the 64 KiB chunk
    for b in blocks:
        a.free(b)
    assert a.used_bytes == 0 and a._chunks[0].holes == [(0, 64 << 10)]
    big = a.alloc(64 << 10)
    assert len(a._chunks) == 1 and big.iova == blocks[0].iova


def test_larger_than_a_chunk_gets_its_own(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    big = a.alloc(200 << 10, align=4096)
    assert big.size == 200 << 10 and a.mapped_bytes == 200 << 10
    big.mem.store64(big.size - 8, 1)


def test_double_free_valueerror(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    x = a.alloc(64)
    a.free(x)
    with pytest.raises(ValueError, match="not allocated"):
        a.free(x)


def test_max_bytes_memoryerror_and_trim(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    xs = [a.alloc(64 << 10) for _ in range(16)]
    with pytest.raises(MemoryError, match="max_bytes"):
        a.alloc(64)
    for x in xs:
        a.free(x)
    assert a.trim() == 1 << 20 and a.mapped_bytes == 0


def test_unknown_address_valueerror(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    a.alloc(64)
    with pytest.raises(ValueError, match="no chunk"):
        a.iova(0x10)


def test_bad_align_valueerror(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    with pytest.raises(ValueError, match="power of two"):
        alloc[0].alloc(64, align=48)


def test_threads_never_get_overlapping_blocks(alloc: tuple[DMAAllocator, FakeKernel]) -> None:
    a, _ = alloc
    got: list[tuple[int, int]] = []

    def work() -> None:
        for _ in range(50):
            x = a.alloc(256)
            got.append((x.iova, x.size))
            if len(got) % 3 == 0:
                a.free(x)
                got.remove((x.iova, x.size))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted(got)
    assert all(s + n <= t for (s, n), (t, _) in itertools.pairwise(spans))
