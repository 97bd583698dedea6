"""Benchmark of the fake IOAS interval map: map, lookup and unmap with 10^6 mappings.

Run: python3 tools/bench_ioas.py [count]   (prints per-operation times and bytes per mapping)
Not a timed test: the numbers are for the issue note and for spotting regressions by eye.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from pyvfio.fake.ioas import PAGE_SIZE, Area, IOPageTable


def main(count: int = 1_000_000) -> None:
    tracemalloc.start()
    iopt = IOPageTable()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for i in range(count):  # every other page: holes everywhere, worst case for the tree walk
        area = Area(0x7F0000000000 + i * PAGE_SIZE, 6, True)
        iopt.insert(2 * i * PAGE_SIZE + PAGE_SIZE, PAGE_SIZE, area)
    t_fill = time.perf_counter() - t0
    per_map = (tracemalloc.get_traced_memory()[0] - base) / count
    tracemalloc.stop()
    rnd = random.Random(1)
    probes = [2 * rnd.randrange(count) * PAGE_SIZE + PAGE_SIZE for _ in range(10_000)]
    t0 = time.perf_counter()
    for iova in probes:
        assert iopt.translate(iova + 5) is not None
    t_lookup = (time.perf_counter() - t0) / len(probes)
    t0 = time.perf_counter()
    for iova in probes[:5000]:
        if iopt.areas.find(iova):
            iopt.unmap(iova, iova + PAGE_SIZE - 1)
    t_unmap = (time.perf_counter() - t0) / 5000
    t0 = time.perf_counter()
    for iova in probes[:5000]:
        if not iopt.areas.find(iova):
            iopt.insert(iova, PAGE_SIZE, Area(0x7E0000000000, 6, True))
    t_map = (time.perf_counter() - t0) / 5000
    print(f"{count} mappings: fill {t_fill:.1f} s, {per_map:.0f} bytes/mapping (tracemalloc)")
    print(f"per op at {len(iopt.areas)} mappings: lookup {t_lookup * 1e6:.1f} us, "
          f"unmap {t_unmap * 1e6:.1f} us, fixed map {t_map * 1e6:.1f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
