"""Unit tests of pyvfio.iommufd / pyvfio.hwpt on the fake iommufd (no PCI needed)."""

from __future__ import annotations

import errno
import random

import pytest

import pyvfio.fake.hwpt  # noqa: F401 - registers the HWPT ioctls of the fake
from pyvfio import dma
from pyvfio.dma import DMASpace
from pyvfio.fake.interval import IntervalMap, holes
from pyvfio.fake.ioas import Area, IOPageTable
from pyvfio.fake.iommufd import IOMMUModel
from pyvfio.hwpt import FaultQueue
from pyvfio.iommufd import IOAS, IOMMUFD
from tests.helpers import expect_errno
from tests.unit.iommufd_kernel import IommuOnlyKernel

PAGE = 4096


@pytest.fixture
def kernel() -> IommuOnlyKernel:
    k = IommuOnlyKernel(IOMMUModel(dirty_tracking=True, nesting=True))
    yield k
    k.assert_clean()


@pytest.fixture
def iommufd(kernel: IommuOnlyKernel) -> IOMMUFD:
    with IOMMUFD(kernel) as fd:
        yield fd


def test_ioas_is_a_dma_space(iommufd: IOMMUFD) -> None:
    assert isinstance(iommufd.ioas(), DMASpace)


def test_map_auto_iova_first_fit_aligned(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    a = ioas.map(dma.allocate(PAGE))
    b = ioas.map(dma.allocate(PAGE))
    assert (a.iova, b.iova) == (PAGE, 2 * PAGE)  # never 0, lowest first


def test_mapping_close_unmaps_and_releases(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    m = ioas.map(dma.allocate(PAGE), 0x10000)
    m.close()
    assert m.closed
    expect_errno(errno.ENOENT, ioas.unmap, 0x10000, PAGE)


def test_unmap_failure_keeps_mapping_bookkeeping_exact(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    first = ioas.map(dma.allocate(PAGE), 0x10000)
    second = ioas.map(dma.allocate(2 * PAGE), 0x20000)
    expect_errno(errno.ENOENT, ioas.unmap, 0x10000, 0x11000)  # second sticks out
    assert first.closed and not second.closed  # the kernel removed the first one


def test_map_arguments_checked_before_syscall(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    with pytest.raises(TypeError):
        ioas.map(dma.allocate(PAGE), "0")
    with pytest.raises(ValueError):
        ioas.map(dma.allocate(PAGE), readable=False, writable=False)
    with pytest.raises(TypeError):
        ioas.map("not a buffer")


def test_copy_keeps_buffer_and_iova(iommufd: IOMMUFD) -> None:
    src, dst = iommufd.ioas(), iommufd.ioas()
    m = src.map(dma.allocate(PAGE), 0x40000)
    c = src.copy(m, dst, 0x80000)
    assert (c.iova, c.buffer) == (0x80000, m.buffer)
    m.close()
    assert dst.unmap(0x80000, PAGE) == PAGE and c.closed


def test_iova_ranges_two_call_sizing(kernel: IommuOnlyKernel, iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    ctx = next(iter(kernel.files.values())).ctx
    iopt = ctx.table.get(ioas.id).iopt
    for i in range(6):  # more holes than the first call's room of 4
        iopt.reserve(0x100000 * (i + 1), 0x100000 * (i + 1) + 0xFFF, "test")
    assert len(ioas.iova_ranges()) == 7


def test_allow_iovas_steers_auto_iova(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    ioas.allow_iovas([(0x100000, 0x1FFFFF)])
    assert ioas.map(dma.allocate(PAGE)).iova == 0x100000


def test_options(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    assert ioas.huge_pages
    ioas.huge_pages = False
    assert not ioas.huge_pages and ioas.iova_alignment == PAGE
    assert iommufd.rlimit_mode_mm is False
    expect_errno(errno.EBUSY, setattr, iommufd, "rlimit_mode_mm", True)  # objects exist


def test_vfio_ioas_get_set_clear(iommufd: IOMMUFD) -> None:
    ioas = iommufd.ioas()
    assert iommufd.vfio_ioas() is None
    iommufd.set_vfio_ioas(ioas)
    assert iommufd.vfio_ioas() == ioas.id
    iommufd.set_vfio_ioas(None)
    assert iommufd.vfio_ioas() is None


def test_destroy_frees_lowest_id(iommufd: IOMMUFD) -> None:
    a, b = iommufd.ioas(), iommufd.ioas()
    a.destroy()
    assert iommufd.ioas().id == a.id and b.id == a.id + 1


def test_fault_queue_fd_closed_with_iommufd(kernel: IommuOnlyKernel) -> None:
    fd = IOMMUFD(kernel)
    q = FaultQueue(fd)
    assert q.id >= 1 and q.fileno() != fd.fileno()
    fd.close()
    assert q.closed


def test_fault_queue_reads_reported_faults(kernel: IommuOnlyKernel, iommufd: IOMMUFD) -> None:
    q = FaultQueue(iommufd)
    fault = kernel.files[q.fileno()].fault
    fault.report(dev_id=7, addr=0x5000, perm=2)
    [pf] = q.read()
    cookie = pf.cookie
    assert (pf.dev_id, pf.addr, pf.perm, cookie) == (7, 0x5000, 2, 1)  # xa_alloc from 1
    q.respond(cookie)
    assert fault.responses == [(cookie, 0)]
    expect_errno(errno.EINVAL, q.respond, cookie)
    q.close()


def test_closed_iommufd_refuses(kernel: IommuOnlyKernel) -> None:
    fd = IOMMUFD(kernel)
    ioas = fd.ioas()
    m = ioas.map(dma.allocate(PAGE))
    fd.close()
    fd.close()  # idempotent
    assert fd.closed and m.closed
    with pytest.raises(ValueError):
        fd.ioas()
    ioas.destroy()  # nothing left to destroy


def test_forgotten_iommufd_warns(kernel: IommuOnlyKernel) -> None:
    with pytest.warns(ResourceWarning, match="unclosed"):
        IOMMUFD(kernel)  # dropped at once: the finalizer closes the fd and warns


def test_interval_map_buckets_split_and_merge() -> None:
    m: IntervalMap[int] = IntervalMap()
    for i in range(3000):
        m.insert(i * 10, i * 10 + 4, i)
    assert len(m) == 3000 and m.find(12345) is None and m.find(12342) == (12340, 12344, 1234)
    for i in range(0, 3000, 2):
        pos = m.first_overlap(i * 10, i * 10)
        assert pos is not None
        m.pop(pos)
    assert [s for s, _, _ in m.items()][:3] == [10, 30, 50] and len(m) == 1500
    assert list(m.spans(25, 55)) == [(30, 34), (50, 54)]


def test_ioas_repr_and_context(iommufd: IOMMUFD) -> None:
    with iommufd.ioas() as ioas:
        assert isinstance(ioas, IOAS) and str(ioas.id) in repr(ioas)
    expect_errno(errno.ENOENT, iommufd.destroy, ioas.id)


def _holes_by_walking(m: IntervalMap[int], lo: int, hi: int, min_len: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in holes(lo, hi, m) if e - s + 1 >= min_len]


def test_interval_map_gaps_match_a_walk_through_random_churn() -> None:
    # the per-bucket hole bounds skip buckets; they must never skip a hole a walk finds
    class SmallBuckets(IntervalMap[int]):
        LOAD = 4  # dozens of buckets: splits, emptied buckets, holes between buckets

    rng = random.Random(11)
    m = SmallBuckets()
    live: dict[int, int] = {}
    for step in range(6000):
        if live and rng.random() < 0.3:
            start = rng.choice(list(live))
            pos = m.first_overlap(start, start)
            assert pos is not None
            m.pop(pos)
            del live[start]
        else:
            start, length = rng.randrange(0, 1 << 20, 16), rng.choice((16, 32, 64, 256))
            if m.first_overlap(start, start + length - 1) is None:
                m.insert(start, start + length - 1, step)
                live[start] = length
        if step % 37 == 0:
            assert len(m._starts) > 8 or step < 500
            lo, hi = sorted(rng.randrange(0, 1 << 20) for _ in range(2))
            for min_len in (1, 16, 100, 300, 5000):
                assert list(m.gaps(lo, hi, min_len)) == _holes_by_walking(m, lo, hi, min_len)


def test_kernel_chosen_iova_is_the_first_fit_among_many_areas() -> None:
    t = IOPageTable()
    t.reserve(0x3000, 0x3FFF, "resv")
    for i in range(5000):  # packed pages from PAGE_SIZE, one page hole left at 0x2000
        iova = 0x1000 + i * 0x1000
        if iova not in (0x2000, 0x3000):
            t.insert(iova, 0x1000, Area(0, 3, True))
    assert t.alloc_iova(0x10000000, 0x1000) == 0x2000
    # 0x2000-0x3fff holds the reserved page; past the areas, the next 0x2000-aligned IOVA
    assert t.alloc_iova(0x10000000, 0x2000) == 0x138A000
    t.unmap(0x800000, 0x801FFF)  # a two-page hole deep inside a bucket
    assert t.alloc_iova(0x10000000, 0x2000) == 0x800000
