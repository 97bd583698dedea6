"""Benchmark 4: the fake kernel's IOVA structures from 10^3 to 10^6 mappings.

type1 (``pyvfio.fake.type1.DmaMap``): a sorted Python list of start IOVAs (``bisect``) plus a dict
start -> Mapping; lookups are O(log n) but an insert or removal in the middle shifts the list
(``list.insert``/``del``: a memmove of 8 bytes per later entry), so it is O(n) per operation.
IOAS (``pyvfio.fake.interval.IntervalMap``): buckets of at most 1024 entries under a sorted list of
bucket minima (the sortedcontainers layout): O(log n) lookups, inserts and removals shifting at
most 1024 pointers.

Each size n: fill n mappings of one page at every other page (holes everywhere), then time, at
population n, ``k`` random IOVA lookups, DMA translations, unmaps of random mappings and maps of
the same mappings back (random positions: the worst case for a sorted list).  Memory per mapping
is measured in a separate fill under tracemalloc.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from pyvfio.fake.ioas import PAGE_SIZE, Area, IOPageTable
from pyvfio.fake.type1 import DmaMap, Knobs, Mapping

VA = 0x7F0000000000


def _iova(i: int) -> int:
    return 2 * i * PAGE_SIZE + PAGE_SIZE


class _Type1:
    name = "type1 DmaMap"

    def __init__(self) -> None:
        self.m = DmaMap(Knobs(dma_entry_limit=1 << 62))

    def map(self, i: int) -> None:
        self.m.insert(Mapping(_iova(i), PAGE_SIZE, VA + i * PAGE_SIZE, True, True))

    def lookup(self, i: int) -> Any:
        return self.m.first_overlap(_iova(i) + 5, 1)

    def translate(self, i: int) -> Any:
        return self.m.translate(_iova(i) + 5, 64, write=True)

    def unmap(self, i: int) -> Any:
        return self.m.unmap_v2(_iova(i), PAGE_SIZE)


class _IOAS:
    name = "IOAS IOPageTable"

    def __init__(self) -> None:
        self.t = IOPageTable()

    def map(self, i: int) -> None:
        self.t.insert(_iova(i), PAGE_SIZE, Area(VA + i * PAGE_SIZE, 3, True))

    def lookup(self, i: int) -> Any:
        return self.t.areas.find(_iova(i) + 5)

    def translate(self, i: int) -> Any:
        return self.t.translate(_iova(i) + 5)

    def unmap(self, i: int) -> Any:
        return self.t.unmap(_iova(i), _iova(i) + PAGE_SIZE - 1)


def _per_op(fn: Callable[[int], Any], keys: list[int]) -> float:
    t0 = time.perf_counter_ns()
    for i in keys:
        fn(i)
    return (time.perf_counter_ns() - t0) / len(keys)


def measure(kind: type[_Type1] | type[_IOAS], n: int, k: int = 5000) -> dict[str, float]:
    """Return ns per op at population ``n`` and bytes per mapping for one structure."""
    tracemalloc.start()
    s = kind()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        s.map(i)
    per_map_bytes = (tracemalloc.get_traced_memory()[0] - base) / n
    tracemalloc.stop()
    del s
    s = kind()
    t0 = time.perf_counter_ns()
    for i in range(n):
        s.map(i)
    fill = (time.perf_counter_ns() - t0) / n
    keys = random.Random(n).sample(range(n), min(k, n))
    out = {"fill ns": fill, "lookup ns": _per_op(s.lookup, keys),
           "translate ns": _per_op(s.translate, keys), "unmap ns": _per_op(s.unmap, keys),
           "map ns": _per_op(s.map, keys), "bytes/mapping": per_map_bytes}
    assert all(s.lookup(i) is not None for i in keys[:100])
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    """Measure both structures at every size."""
    return [{"structure": kind.name, "n": n, **measure(kind, n)}
            for kind in (_Type1, _IOAS) for n in sizes]


HEADERS = ["structure", "mappings", "map ns", "lookup ns", "translate ns", "unmap ns",
           "fill ns", "bytes/mapping"]


def rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """Table rows of :func:`run`'s results."""
    return [[r["structure"], f"{r['n']:,}", r["map ns"], r["lookup ns"], r["translate ns"],
             r["unmap ns"], r["fill ns"], r["bytes/mapping"]] for r in results]


def growth(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per structure and op: cost at the largest n over cost at the smallest."""
    out: dict[str, dict[str, float]] = {}
    for name in {r["structure"] for r in results}:
        rs = sorted((r for r in results if r["structure"] == name), key=lambda r: r["n"])
        out[name] = {op: round(rs[-1][op] / rs[0][op], 2)
                     for op in ("map ns", "lookup ns", "translate ns", "unmap ns")}
        out[name]["bytes/mapping at max n"] = round(rs[-1]["bytes/mapping"])
    return out
