"""A map of disjoint closed intervals with O(log n) insert, removal and lookup, for the fake's IOVA
spaces (the IOAS page table, type1's vfio_dma tree).

:class:`IntervalMap` keeps closed intervals ``[start, last]`` in sorted buckets found with
``bisect``: map, unmap and lookup are O(log n) at 10^6 entries (measured by tools/bench_ioas.py).
:func:`holes` walks what several maps leave free.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
from collections.abc import Generator, Iterator
from typing import Any, Generic, TypeVar

U64_MAX = (1 << 64) - 1

V = TypeVar("V")


Pos = tuple[int, int]
"""Where an interval sits: (bucket, index in bucket)."""
_LAST = operator.itemgetter(-1)


class IntervalMap(Generic[V]):
    """Disjoint closed intervals ``[start, last]`` with a value each, sorted by start.

    Intervals live in buckets of at most ``2 * LOAD`` entries (three parallel lists each), found
    through the sorted list of bucket minima: a lookup is two bisections, an insert or removal
    one bisection plus a ``memmove`` of at most ``2 * LOAD`` pointers (the ``sortedcontainers``
    layout), so every operation stays O(log n) in practice at 10^6 intervals.

    Each bucket also keeps an upper bound of the largest gap between its own intervals
    (``_room``), so :meth:`gaps` skips a bucket of small holes in O(1) instead of walking it: a
    kernel-chosen IOVA above 10^5 packed mappings costs a pass over ~n/LOAD bucket bounds, not
    over n intervals.  The bound only grows on insert and removal (both O(1)); a search that
    finds it stale recomputes it for that bucket (C speed, one bucket).
    """

    __slots__ = ("_lasts", "_len", "_mins", "_room", "_starts", "_values")
    LOAD = 512

    def __init__(self) -> None:
        self.clear()

    def __len__(self) -> int:
        return self._len

    def clear(self) -> None:
        """Remove every interval."""
        self._mins: list[int] = []
        self._starts: list[list[int]] = []
        self._lasts: list[list[int]] = []
        self._values: list[list[V]] = []
        self._room: list[int] = []  # per bucket: >= the largest hole between its intervals
        self._len = 0

    def _next(self, pos: Pos) -> Pos | None:
        b, j = pos
        if j + 1 < len(self._starts[b]):
            return b, j + 1
        return (b + 1, 0) if b + 1 < len(self._starts) else None

    def first_overlap(self, start: int, last: int) -> Pos | None:
        """Return the position of the lowest interval intersecting ``[start, last]``, or None."""
        if not self._len:
            return None
        b = bisect.bisect_right(self._mins, start) - 1
        if b >= 0:
            j = bisect.bisect_right(self._starts[b], start) - 1
            if self._lasts[b][j] >= start:
                return b, j
            pos = self._next((b, j))
        else:
            pos = (0, 0)
        if pos is not None and self._starts[pos[0]][pos[1]] <= last:
            return pos
        return None

    def get(self, pos: Pos) -> tuple[int, int, V]:
        """Return ``(start, last, value)`` at ``pos``."""
        b, j = pos
        return self._starts[b][j], self._lasts[b][j], self._values[b][j]

    def find(self, point: int) -> tuple[int, int, V] | None:
        """Return the interval containing ``point``, or None."""
        pos = self.first_overlap(point, point)
        return None if pos is None else self.get(pos)

    def insert(self, start: int, last: int, value: V) -> None:
        """Insert ``[start, last]``; the caller has checked that nothing overlaps it."""
        if not self._starts:
            self._mins, self._starts, self._lasts, self._values = [start], [[]], [[]], [[]]
            self._room = [0]
        b = max(bisect.bisect_right(self._mins, start) - 1, 0)
        starts, lasts = self._starts[b], self._lasts[b]
        j = bisect.bisect_left(starts, start)
        # a hole inside the bucket only shrinks, except at its ends, where the hole to the
        # neighbouring bucket (or below the first interval) becomes the bucket's own
        if j == len(starts) and j:
            self._room[b] = max(self._room[b], start - lasts[-1] - 1)
        elif j == 0 and starts:
            self._room[b] = max(self._room[b], starts[0] - last - 1)
        starts.insert(j, start)
        lasts.insert(j, last)
        self._values[b].insert(j, value)
        self._mins[b] = starts[0]
        self._len += 1
        if len(starts) > 2 * self.LOAD:
            self._split(b)

    def _split(self, b: int) -> None:
        half = self.LOAD
        self._starts.insert(b + 1, self._starts[b][half:])
        self._lasts.insert(b + 1, self._lasts[b][half:])
        self._values.insert(b + 1, self._values[b][half:])
        del self._starts[b][half:], self._lasts[b][half:], self._values[b][half:]
        self._mins.insert(b + 1, self._starts[b + 1][0])
        self._room.insert(b + 1, self._room[b])

    def pop(self, pos: Pos) -> tuple[int, int, V]:
        """Remove the interval at ``pos`` and return it."""
        b, j = pos
        starts, lasts = self._starts[b], self._lasts[b]
        item = starts.pop(j), lasts.pop(j), self._values[b].pop(j)
        self._len -= 1
        if not starts:
            for lists in (self._mins, self._starts, self._lasts, self._values, self._room):
                del lists[b]
        else:
            self._mins[b] = starts[0]
            if 0 < j < len(starts):  # two holes became one
                self._room[b] = max(self._room[b], starts[j] - lasts[j - 1] - 1)
        return item

    def gaps(self, lo: int, hi: int, min_len: int) -> Iterator[tuple[int, int]]:
        """Yield the holes ``(start, last)`` of ``[lo, hi]`` at least ``min_len`` long, lowest
        first, skipping every bucket whose holes are all shorter."""
        cur, starts_of, lasts_of = lo, self._starts, self._lasts
        b = max(bisect.bisect_right(self._mins, lo) - 1, 0)
        while b < len(starts_of) and cur <= hi and starts_of[b][0] <= hi:
            cur = yield from self._bucket_gaps(b, cur, hi, min_len)
            b = self._next_roomy(b + 1, min_len)
            cur = max(cur, lasts_of[b - 1][-1] + 1)  # the buckets skipped hold no long hole
        if cur <= hi and hi - cur + 1 >= min_len:
            yield cur, hi

    def _bucket_gaps(self, b: int, cur: int, hi: int,
                     min_len: int) -> Generator[tuple[int, int], None, int]:
        """Yield the long holes from ``cur`` through bucket ``b`` (whose first interval starts
        at most at ``hi``); return the first IOVA past them (``hi + 1`` when ``hi`` is done)."""
        starts, lasts = self._starts[b], self._lasts[b]
        if starts[0] > cur:  # the hole before this bucket
            if starts[0] - cur >= min_len:
                yield cur, starts[0] - 1
            cur = starts[0]
        if lasts[-1] < cur or not self._has_room(b, min_len):
            return cur
        for j in range(bisect.bisect_left(lasts, cur), len(starts)):
            start = starts[j]
            if start > hi:
                break
            if start - cur >= min_len:
                yield cur, start - 1
            cur = max(cur, lasts[j] + 1)
        else:
            return cur
        if hi - cur + 1 >= min_len:
            yield cur, hi
        return hi + 1

    def _has_room(self, b: int, min_len: int) -> bool:
        """Whether a hole inside bucket ``b`` is ``min_len`` long (tightening a stale bound)."""
        if self._room[b] >= min_len:
            starts, lasts = self._starts[b], self._lasts[b]
            self._room[b] = max(map(operator.sub, starts[1:], lasts), default=1) - 1
        return self._room[b] >= min_len

    def _next_roomy(self, b: int, min_len: int) -> int:
        """The first bucket from ``b`` with a hole of ``min_len`` before or (maybe) inside it,
        else the bucket count: a pass over the bucket bounds at C speed (itertools), ~n/LOAD."""
        if b >= len(self._starts):
            return b
        before = map(operator.sub, self._mins[b:], map(_LAST, self._lasts[b - 1:]))  # hole + 1
        roomy = map(operator.or_, map(operator.ge, self._room[b:], itertools.repeat(min_len)),
                    map(operator.gt, before, itertools.repeat(min_len)))
        return next(itertools.compress(itertools.count(b), roomy), len(self._starts))

    def spans(self, start: int = 0, last: int = U64_MAX) -> Iterator[tuple[int, int]]:
        """Yield the ``(start, last)`` of intervals intersecting ``[start, last]`` in order."""
        pos = self.first_overlap(start, last)
        while pos is not None and self._starts[pos[0]][pos[1]] <= last:
            yield self._starts[pos[0]][pos[1]], self._lasts[pos[0]][pos[1]]
            pos = self._next(pos)

    def items(self) -> Iterator[tuple[int, int, V]]:
        """Yield every ``(start, last, value)`` in order."""
        for starts, lasts, values in zip(self._starts, self._lasts, self._values, strict=True):
            yield from zip(starts, lasts, values, strict=True)


def holes(lo: int, hi: int, *maps: IntervalMap[Any]) -> Iterator[tuple[int, int]]:
    """Yield the ranges of ``[lo, hi]`` covered by none of ``maps``, lowest first."""
    cur = lo
    for start, last in heapq.merge(*(m.spans(lo, hi) for m in maps)):
        if start > cur:
            yield cur, min(start - 1, hi)
        if last >= hi:
            return
        cur = max(cur, last + 1)
    if cur <= hi:
        yield cur, hi
