"""pyvfio.space.DMASpace: one mapping table for every IOMMU mode, shared safely between threads."""

from __future__ import annotations

import errno
import random
import sys
import threading

import pytest

import pyvfio
from pyvfio._sorted import SortedKeys
from pyvfio.fake import FakeKernel
from pyvfio.iova import DMAMapper
from tests.helpers import expect_errno


@pytest.fixture
def kernel(fake_kernel: FakeKernel) -> FakeKernel:
    return fake_kernel  # the pytest plugin's (pyvfio.testing): iommufd on, leak check at teardown


@pytest.fixture
def dev(fake_device: pyvfio.Device) -> pyvfio.Device:
    return fake_device  # the plugin's: the edu opened once per IOMMU mode


def test_dma_mask_bounds_chosen_iovas_and_exhaustion_is_a_pyvfio_error(
        dev: pyvfio.Device) -> None:
    assert dev.dma is not None
    dev.dma.dma_mask = 0x3FFF  # pages 1..3 (IOVA 0 is never handed out)
    maps = [dev.dma.allocate(4096) for _ in range(3)]
    assert all(m.iova + m.size - 1 <= 0x3FFF for m in maps)
    with pytest.raises(pyvfio.IOVAExhaustedError) as info:
        dev.dma.allocate(4096)
    assert not isinstance(info.value, MemoryError) and info.value.limit == 0x3FFF
    maps[1].close()
    assert dev.dma.allocate(4096).iova == maps[1].iova  # freed IOVAs are reused


def test_translation_outside_any_mapping_is_not_mapped(dev: pyvfio.Device) -> None:
    assert dev.dma is not None
    m = dev.dma.allocate(4096)
    with pytest.raises(pyvfio.NotMappedError):
        dev.dma.vaddr(m.iova + 4096)
    with pytest.raises(pyvfio.NotMappedError):
        dev.dma.iova(m.vaddr - 1)
    with pytest.raises(LookupError):
        dev.dma.lookup(0)


def test_dma_buffer_maps_on_this_python(dev: pyvfio.Device) -> None:
    """Issue 15 item 13: before 3.12 a Python class exports no buffer (no ``__buffer__``)."""
    assert dev.dma is not None
    with pyvfio.DMABuffer.anonymous(8192) as buf:
        m = dev.dma.map(buf)
        assert m.buffer is buf and m.vaddr == buf.vaddr and m.size == 8192
        with pytest.raises(BufferError, match="still mapped"):
            buf.close()
        m.close()
    if sys.version_info < (3, 12):
        with pytest.raises(TypeError):
            memoryview(buf)  # type: ignore[arg-type]  # what used to break the map


def test_bad_arguments_are_refused_before_any_syscall(dev: pyvfio.Device,
                                                      kernel: FakeKernel) -> None:
    assert dev.dma is not None
    before = len(kernel.calls)
    with pytest.raises(TypeError, match="buffer protocol"):
        dev.dma.map("abc")
    with pytest.raises(TypeError, match="readable and writable"):
        dev.dma.map(pyvfio.allocate(4096), readable=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="readable or writable"):
        dev.dma.map(pyvfio.allocate(4096), readable=False, writable=False)
    with pytest.raises(ValueError, match="page aligned"):
        dev.dma.map(memoryview(pyvfio.allocate(8192))[1:4097])  # unaligned address
    with pytest.raises(TypeError, match="iova"):
        dev.dma.map(pyvfio.allocate(4096), "0x1000")  # type: ignore[arg-type]
    assert len(kernel.calls) == before


def test_a_shared_mapper_maps_from_two_threads(kernel: FakeKernel) -> None:
    with pyvfio.open_device(kernel.labels["edu"], mode="legacy", kernel=kernel) as dev:
        assert dev.dma is not None
        mapper = DMAMapper(dev.dma, dma_mask=(1 << 28) - 1)
        bufs = [[pyvfio.DMABuffer.anonymous(4096) for _ in range(100)] for _ in range(2)]
        got: list[list[pyvfio.Mapping]] = [[], []]

        def worker(i: int) -> None:
            got[i].extend(mapper.map(b) for b in bufs[i])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        iovas = [m.iova for ms in got for m in ms]
        assert len(iovas) == 200 and len(set(iovas)) == 200
        mapper.close()
        for b in bufs[0] + bufs[1]:
            b.close()


def test_mapper_unmap_refused_keeps_its_index(kernel: FakeKernel) -> None:
    with pyvfio.open_device(kernel.labels["edu"], mode="legacy", kernel=kernel) as dev:
        assert dev.dma is not None
        mapper = DMAMapper(dev.dma)
        buf = pyvfio.DMABuffer.anonymous(4096)
        m = mapper.map(buf)
        kernel.inject("VFIO_IOMMU_UNMAP_DMA", errno.EIO)
        expect_errno(errno.EIO, mapper.unmap, m)
        assert mapper.iova(buf.vaddr) == m.iova  # still mapped, still found
        mapper.close()
        buf.close()


def test_sorted_keys_insert_remove_floor_and_range() -> None:
    keys = SortedKeys()
    rng = random.Random(7)
    values = rng.sample(range(10**6), 5000)
    for v in values:
        keys.add(v)
    ref = sorted(values)
    assert list(keys) == ref and len(keys) == 5000
    for v in values[:2500]:
        keys.remove(v)
    ref = sorted(values[2500:])
    assert list(keys) == ref
    for probe in rng.sample(range(10**6), 200):
        below = [v for v in ref if v <= probe]
        assert keys.floor(probe) == (below[-1] if below else None)
        assert keys.irange(probe, probe + 5000) == [v for v in ref if probe <= v < probe + 5000]
        assert (probe in keys) == (probe in set(ref))
    with pytest.raises(KeyError):
        keys.remove(-1)
