"""pyvfio.memory, pyvfio.iova and pyvfio.pool: DMA buffers, IOVA allocation, mapping, pools."""

from __future__ import annotations

import errno
import itertools
import random
from collections.abc import Iterator

import pytest

from pyvfio.cdev import OpenedDevice, open_device
from pyvfio.dma import IOVARange
from pyvfio.errors import DriverError, IOVAExhaustedError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.iova import DMAMapper, IOVAAllocator
from pyvfio.memory import HUGE_1G, HUGE_2M, DMABuffer, hugepage_hint
from pyvfio.pool import DMAPool

MASK28 = (1 << 28) - 1


@pytest.fixture(params=["legacy", "iommufd"])
def opened(request: pytest.FixtureRequest) -> Iterator[OpenedDevice]:
    k: FakeKernel = standard_host(iommufd=True)
    with open_device(str(k.labels["edu"]), request.param, kernel=k) as o:
        yield o
    k.assert_clean()


def test_anonymous_buffer_is_page_rounded_and_zeroed() -> None:
    with DMABuffer.anonymous(100) as buf:
        assert len(buf) == 4096 and buf.vaddr % 4096 == 0 and buf[:4] == bytes(4)
        buf[:3] = b"abc"
        assert bytes(buf.view()[:3]) == b"abc"
    assert buf.closed
    with pytest.raises(ValueError, match="closed"):
        buf[0:1]


def test_memfd_buffer_has_an_fd() -> None:
    with DMABuffer.memfd(5000) as buf:
        assert buf.kind == "memfd" and buf.fd >= 0 and len(buf) == 8192


def test_hugetlb_without_free_pages_says_how_to_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pages(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr("pyvfio.memory.mmap.mmap", no_pages)
    with pytest.raises(OSError, match=r"echo 2 > /proc/sys/vm/nr_hugepages") as info:
        DMABuffer.hugetlb(3 << 20)
    assert info.value.errno == errno.ENOMEM
    assert "hugepagesz=1G" in hugepage_hint(HUGE_1G, 1)
    with pytest.raises(ValueError, match="2 MiB or 1 GiB"):
        DMABuffer.hugetlb(4096, page_size=4096)


def test_hugetlb_when_pages_are_reserved() -> None:
    try:
        buf = DMABuffer.hugetlb(HUGE_2M)
    except OSError as exc:
        assert "nr_hugepages" in str(exc)
        pytest.skip(f"no free hugepages on this host: {exc.strerror}")
    with buf:
        assert len(buf) == HUGE_2M and buf.vaddr % HUGE_2M == 0


def test_allocator_best_fit_reuse_and_coalesce() -> None:
    a = IOVAAllocator([IOVARange(0, 0xFFFFF)])  # page 0 is never handed out
    x, y, z = a.allocate(0x1000), a.allocate(0x2000), a.allocate(0x1000)
    assert (x, y, z) == (0x1000, 0x2000, 0x4000)
    a.free(y)
    assert a.allocate(0x1000) == 0x2000  # best fit: the 8 KiB hole, not the big tail
    a.free(0x2000)
    a.free(x)
    a.free(z)
    assert a.holes() == [(0x1000, 0x100000)]


def test_allocator_respects_ranges_limit_reserved_and_alignment() -> None:
    ranges = [IOVARange(0, 0xFEDFFFFF), IOVARange(0xFEF00000, 0x7FFFFFFFFFFF)]
    a = IOVAAllocator(ranges, limit=MASK28, reserved=[(0, 0x200000)])
    assert a.holes() == [(0x200000, MASK28 + 1)]
    assert a.allocate(0x200000, 0x200000) % 0x200000 == 0
    with pytest.raises(IOVAExhaustedError, match="no free IOVA block"):
        a.allocate(1 << 28)
    assert not issubclass(IOVAExhaustedError, MemoryError)
    with pytest.raises(ValueError, match="multiple"):
        a.allocate(100)
    with pytest.raises(KeyError):
        a.free(0x999000)


def test_mapper_maps_below_mask_and_translates(opened: OpenedDevice) -> None:
    mapper = DMAMapper(opened.dma, dma_mask=MASK28)
    bufs = [DMABuffer.anonymous(8192) for _ in range(3)]
    maps = [mapper.map(b) for b in bufs]
    assert len({m.iova for m in maps}) == 3
    for b, m in zip(bufs, maps, strict=True):
        assert m.iova + m.size - 1 <= MASK28 and m.buffer is b
        assert mapper.iova(b.vaddr + 100) == m.iova + 100
        assert mapper.vaddr(m.iova + 4097) == b.vaddr + 4097
    with pytest.raises(DriverError, match="mapping missing"):
        mapper.vaddr(0xFFFFFFF000)
    mapper.close()
    for b in bufs:
        b.close()


def test_a_mapping_keeps_its_buffer(opened: OpenedDevice) -> None:
    mapper = DMAMapper(opened.dma)
    buf = DMABuffer.anonymous(4096)
    mapping = mapper.map(buf)
    with pytest.raises(BufferError, match="still mapped"):
        buf.close()
    del buf
    mapping.buffer[:2] = b"ok"  # still alive through the mapping
    mapper.unmap(mapping)
    mapping.buffer.close()


def test_legacy_mapper_reuses_freed_iovas(opened: OpenedDevice) -> None:
    mapper = DMAMapper(opened.dma, dma_mask=MASK28)
    buf = DMABuffer.anonymous(4096)
    first = mapper.map(buf)
    iova = first.iova
    mapper.unmap(first)
    assert mapper.map(buf).iova == iova
    mapper.close()
    buf.close()


def test_mapper_error_names_the_step(opened: OpenedDevice) -> None:
    mapper = DMAMapper(opened.dma, dma_mask=0x1FFF)  # room for one page only (page 0 unused)
    a, b = DMABuffer.anonymous(4096), DMABuffer.anonymous(4096)
    mapper.map(a)
    with pytest.raises(DriverError, match=r"^map: mapping 0x1000 bytes for DMA failed") as info:
        mapper.map(b)
    assert info.value.step == "map"
    mapper.close()
    a.close()
    b.close()


def test_pool_hands_out_mapped_blocks(opened: OpenedDevice) -> None:
    mapper = DMAMapper(opened.dma, dma_mask=MASK28)
    with DMAPool(mapper, 256, chunk_size=4096, max_chunks=2) as pool:
        blocks = [pool.get() for _ in range(32)]
        assert pool.in_use == 32 and len({b.iova for b in blocks}) == 32
        assert all(mapper.iova(b.vaddr) == b.iova for b in blocks)
        with pytest.raises(MemoryError, match="exhausted"):
            pool.get()
        blocks[5].view[:4] = b"data"
        pool.put(blocks[5])
        with pytest.raises(ValueError, match="not in use"):
            pool.put(blocks[5])
        assert pool.get().iova == blocks[5].iova


def test_iommufd_fallback_below_mask_avoids_kernel_choices() -> None:
    k: FakeKernel = standard_host(iommufd=True)
    with open_device(str(k.labels["edu"]), "iommufd", kernel=k) as o:
        mapper = DMAMapper(o.dma, dma_mask=0x3FFF)  # the kernel picks the lowest free IOVA
        a, b, c = (DMABuffer.anonymous(4096) for _ in range(3))
        ma, mb, mc = mapper.map(a), mapper.map(b), mapper.map(c)
        assert (ma.iova, mb.iova, mc.iova) == (0x1000, 0x2000, 0x3000)
        mapper.unmap(mb)
        big = DMABuffer.anonymous(8192)  # the kernel would choose 0x4000, above the mask
        with pytest.raises(DriverError, match="no free IOVA block") as info:
            mapper.map(big)
        assert isinstance(info.value.cause, IOVAExhaustedError)
        assert mapper.allocator.holes()[0] == (0x2000, 0x3000)  # a and c reserved
        assert mapper.map(b).iova == 0x2000
        mapper.close()
        assert mapper.allocator.holes()[0][0] == 0x1000
        for buf in (a, b, c, big):
            buf.close()
    k.assert_clean()


def test_allocator_churn_keeps_holes_sorted_coalesced_and_blocks_apart() -> None:
    rng = random.Random(5)
    a = IOVAAllocator([IOVARange(0, 0x3FFFFF), IOVARange(0x500000, 0x7FFFFF)])
    total, live = a.free_bytes, {}
    for _ in range(3000):
        if live and rng.random() < 0.45:
            at = rng.choice(list(live))
            a.free(at)
            del live[at]
            continue
        size = rng.choice([1, 2, 3, 4, 8, 16]) * 4096
        try:
            at = a.allocate(size, 4096 * rng.choice([1, 2, 4]), rng.choice([0x3FFFFF, 0x7FFFFF]))
        except IOVAExhaustedError:
            continue
        assert all(at + size <= s or s + z <= at for s, z in live.items())
        live[at] = size
        holes = a.holes()
        assert all(x[1] < y[0] for x, y in itertools.pairwise(holes))  # sorted, merged
        assert a.free_bytes + sum(live.values()) == total


class _PageModel:
    """Best fit over a set of free pages, by brute force: the reference the allocator's
    holes, deferred give-backs and fast paths must agree with, address for address."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self.free = {p for lo, hi in ranges for p in range(max(lo, 4096), hi + 1, 4096)}
        self.bounds = set(self.free)

    def holes(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in sorted(self.free):
            if out and out[-1][1] == p:
                out[-1] = (out[-1][0], p + 4096)
            else:
                out.append((p, p + 4096))
        return out

    def allocate(self, size: int, align: int, limit: int) -> int | None:
        best = None
        for lo, hi in self.holes():
            at = -(-lo // align) * align
            if at + size <= min(hi, limit + 1) and (best is None or hi - lo < best[0]):
                best = (hi - lo, at)
        if best is not None:
            self.free -= set(range(best[1], best[1] + size, 4096))
        return None if best is None else best[1]

    def reserve(self, start: int, size: int) -> None:
        self.free -= set(range(start, start + size, 4096))

    def release(self, start: int, size: int) -> None:
        self.free |= set(range(start, start + size, 4096)) & self.bounds


def test_allocator_matches_brute_force_best_fit_through_churn_and_reuse() -> None:  # noqa: C901
    # map/unmap/map-again (the deferred give-back), given blocks reserved and released, and
    # random frees that fragment the space: every address and every hole as the model says
    rng = random.Random(11)
    ranges = [(0, 0x7FFFF), (0xA0000, 0xFFFFF)]
    a, model = IOVAAllocator([IOVARange(lo, hi) for lo, hi in ranges]), _PageModel(ranges)
    live: dict[int, int] = {}  # allocated blocks, newest last
    last: tuple[int, int, int] | None = None
    given: tuple[int, int] | None = None
    for step in range(4000):
        op = rng.random()
        if live and op < 0.3:  # free the newest block (then often allocate its like again)
            at = next(reversed(live))
            a.free(at)
            model.release(at, live.pop(at))
        elif live and op < 0.45:
            at = rng.choice(list(live))
            a.free(at)
            model.release(at, live.pop(at))
        elif op < 0.55:  # a given IOVA (free, or the kernel refuses): reserved, often given back
            start, size = rng.randrange(1, 0x100) * 4096, rng.choice([1, 2, 4]) * 4096
            if given and rng.random() < 0.5:  # the same IOVA again, or a longer block there
                start, size = given[0], rng.choice([given[1], given[1] + 4096])
            given = (start, size)
            if not set(range(start, start + size, 4096)) <= model.free:
                continue
            a.reserve(start, size)
            model.reserve(start, size)
            if rng.random() < 0.7:
                a.release(start, size)
                model.release(start, size)
        else:
            size, align, limit = (rng.choice([1, 2, 3, 8]) * 4096, 4096 * rng.choice([1, 2, 8]),
                                  rng.choice([0x3FFFF, 0x7FFFF, 0xFFFFF]))
            if last and op < 0.8:  # the last block's like, or all but one of its parameters
                size, align, limit = [rng.choice(p) for p in zip(last, (size, align, limit),
                                                                 strict=True)]
            want = model.allocate(size, align, limit)
            try:
                got = a.allocate(size, align, limit)
            except IOVAExhaustedError:
                got = None
            assert got == want, step
            if got is not None:
                live[got] = size
                last = (size, align, limit)
        if step % 10 == 9:  # holes() does a deferred give-back: not after every step
            assert a.holes() == model.holes(), step
