"""Several threads on one container or one IOAS: each ioctl is atomic (issue 15 item 3).

Linux takes the container's ``iommu->lock`` around a type1 map or unmap and the IOAS's
``iova_rwsem`` around an iommufd one, so concurrent callers never see half-done state: overlap
checks hold, kernel-chosen IOVAs are real, every mapped IOVA unmaps.  The threads here switch as
often as the interpreter allows, to give a missing lock every chance to show.
"""

from __future__ import annotations

import errno
import random
import sys
import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import buffer, dma_unmap, session
from tests.conftest import Host

THREADS = 4
ROUNDS = 200
PAGE = 0x1000


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run(workers: list[Callable[[], Any]]) -> None:
    """Start the workers together; re-raise the first exception one of them raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def wrap(fn: Callable[[], Any]) -> None:
        start.wait()
        try:
            fn()
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_type1_concurrent_maps_never_overlap(host: Host) -> None:
    """vfio_dma_do_map under iommu->lock: of threads mapping overlapping ranges, exactly the
    non-overlapping winners succeed (the others EEXIST), and unmapping them all returns their
    total size."""
    if host.noiommu:
        pytest.skip("noiommu: no type1 to map into")
    with session(host) as s:
        c, _, _ = s.edu()
        buf = buffer(8 * PAGE)
        vaddr = int(ffi.cast("uintptr_t", ffi.from_buffer(buf)))
        won: list[tuple[int, int]] = []
        lock = threading.Lock()

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(ROUNDS):
                iova = 0x100000 + rnd.randrange(64) * PAGE
                size = rnd.randrange(1, 9) * PAGE
                m = new("struct vfio_iommu_type1_dma_map *", iova=iova, size=size, vaddr=vaddr,
                        flags=C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE)
                try:
                    s.k.ioctl(c, uapi.VFIO_IOMMU_MAP_DMA, m)
                except OSError as exc:
                    assert exc.errno == errno.EEXIST, exc
                    continue
                with lock:
                    won.append((iova, iova + size))

        try:
            _run([lambda i=i: worker(i) for i in range(THREADS)])
            spans = sorted(won)
            assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
            total = sum(end - start for start, end in spans)
            assert dma_unmap(host, c, 0, 0, C.VFIO_DMA_UNMAP_FLAG_ALL) == total
        finally:
            s.close_all()
            buf.close()


def test_ioas_concurrent_auto_iova_maps_unmap(host: Host) -> None:
    """iopt_map_user_pages / iopt_unmap_iova under iova_rwsem: threads mapping with
    kernel-chosen IOVAs and unmapping them again never collide, never miss (no ENOENT)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        base = s.buffer(16)

        def worker(seed: int) -> None:
            rnd = random.Random(seed)
            mine: list[tuple[int, int]] = []
            for _ in range(ROUNDS):
                if mine and rnd.random() < 0.4:
                    iova, length = mine.pop(rnd.randrange(len(mine)))
                    assert s.unmap(fd, ioas, iova, length) == length
                    continue
                length = rnd.randrange(1, 5) * PAGE
                mine.append((s.map(fd, ioas, base + rnd.randrange(8) * PAGE, length), length))
            for iova, length in mine:
                assert s.unmap(fd, ioas, iova, length) == length

        _run([lambda i=i: worker(i) for i in range(THREADS)])
        expect = new("struct iommu_ioas_unmap *", ioas_id=ioas, iova=0, length=(1 << 64) - 1)
        s.k.ioctl(fd, uapi.IOMMU_IOAS_UNMAP, expect)
        assert expect.length == 0  # nothing left behind
