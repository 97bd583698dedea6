"""The IOVA side of the fake iommufd: an interval map and the IOAS page table built on it.

:class:`IntervalMap` keeps closed intervals ``[start, last]`` in sorted buckets found with
``bisect``: map, unmap and lookup are O(log n) at 10^6 entries (measured by tools/bench_ioas.py).

:class:`IOPageTable` follows drivers/iommu/iommufd/io_pagetable.c: areas (mappings), reserved
ranges (device regions, domain apertures) and allowed ranges (constrain automatic IOVAs only).
Errors are raised as ``OSError`` with the kernel's errno; the caller adds the ioctl name.
"""

from __future__ import annotations

import bisect
import errno
import heapq
import itertools
import operator
from collections.abc import Generator, Iterator
from typing import Any, Generic, TypeVar

from pyvfio.fake.memory import kerr

PAGE_SIZE = 4096
HPAGE_SIZE = 2 << 20  # x86 PMD size
U64_MAX = (1 << 64) - 1
ULONG_MAX = U64_MAX

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


class Area:
    """One mapping: where its bytes come from and what the device may do with them."""

    __slots__ = ("pages_writable", "prot", "uptr")

    def __init__(self, uptr: int, prot: int, pages_writable: bool) -> None:
        self.uptr = uptr
        self.prot = prot  # IOMMU_IOAS_MAP_{READABLE,WRITEABLE} bits
        self.pages_writable = pages_writable  # as pinned by the original MAP (iopt_alloc_pages)

    def alloc_hint(self) -> int:
        """The address iopt_alloc_iova keeps the alignment and page offset of: the user address
        (a file's or dma-buf's offset for those, io_pagetable.c:iopt_alloc_area_pages)."""
        return self.uptr

    def pin(self, memory: Any, length: int) -> None:
        """Pin the area's pages for a domain (pages.c: user memory through pin_user_pages).
        Raises EFAULT (a page not mapped, or read-only for a writable mapping)."""
        memory.check_pinnable(self.uptr, length, write=self.pages_writable)


def _fit(start: int, last: int, length: int, align: int, offset: int) -> int | None:
    """Return the first ``align``-aligned IOVA (with ``offset``) in ``[start, last]`` that fits."""
    if last - start < length - 1:
        return None
    iova = (-(-start // align) * align) | offset
    if iova > last or last - iova < length - 1:
        return None
    return iova


class IOPageTable:
    """An IOAS's IOVA space (io_pagetable.c)."""

    def __init__(self, max_alignment: int = HPAGE_SIZE) -> None:
        # iopt_alloc_iova caps the automatic alignment at HPAGE_SIZE when the kernel has
        # CONFIG_TRANSPARENT_HUGEPAGE, at PAGE_SIZE otherwise
        self.max_alignment = max_alignment
        self.areas: IntervalMap[Area] = IntervalMap()
        self.reserved: IntervalMap[object] = IntervalMap()
        self._ranges: list[tuple[int, int]] | None = None  # iova_ranges() until reserved changes
        self.allowed: IntervalMap[None] = IntervalMap()
        self.iova_alignment = 1  # iopt_init_table
        self.disable_large_pages = False
        self.domain_alignment = 1  # largest minimum page size of the attached domains

    # -- queries -----------------------------------------------------------------------------

    def iova_ranges(self) -> list[tuple[int, int]]:
        """Return the holes of the reserved ranges (ioas.c:iommufd_ioas_iova_ranges)."""
        if self._ranges is None:  # recomputed only after reserve/unreserve
            self._ranges = list(holes(0, ULONG_MAX, self.reserved))
        return list(self._ranges)

    def mapped_bytes(self) -> int:
        """Return the total length of all areas."""
        return sum(last - start + 1 for start, last, _ in self.areas.items())

    # -- allocation --------------------------------------------------------------------------

    def alloc_iova(self, uptr: int, length: int) -> int:
        """Choose an IOVA as io_pagetable.c:iopt_alloc_iova does (first fit, never 0).

        Raises:
            OSError: EOVERFLOW for absurd lengths, EINVAL if the natural alignment is below the
                table's, ENOSPC if nothing fits.
        """
        if length == 0 or length >= ULONG_MAX // 2:
            raise kerr(errno.EOVERFLOW)
        align = 1 << (length - 1).bit_length()  # roundup_pow_of_two
        if uptr:
            align = min(align, uptr & -uptr)  # keep the THP-friendly alignment of the address
        align = min(align, self.max_alignment)
        if align < self.iova_alignment:
            raise kerr(errno.EINVAL)
        offset = uptr % PAGE_SIZE
        lo, hi = PAGE_SIZE, ULONG_MAX - PAGE_SIZE
        spans = list(self.allowed.spans(lo, hi)) if len(self.allowed) else [(lo, hi)]
        for span_start, span_last in spans:
            a_start, a_last = max(span_start, lo), min(span_last, hi)
            if _fit(a_start, a_last, length, align, offset) is None:
                continue
            # the holes between areas long enough for ``length`` (shorter ones are skipped a
            # bucket at a time), minus the reserved ranges (a few): the holes of both, in order
            for g_start, g_last in self.areas.gaps(a_start, a_last, length):
                for h_start, h_last in holes(g_start, g_last, self.reserved):
                    iova = _fit(h_start, h_last, length, align, offset)
                    if iova is not None:
                        return iova
        raise kerr(errno.ENOSPC)

    def check_iova(self, iova: int, length: int) -> None:
        """Check a fixed IOVA (io_pagetable.c:iopt_check_iova).

        Raises:
            OSError: EINVAL unaligned or reserved, EOVERFLOW wrap-around, EEXIST over a mapping.
        """
        if iova % self.iova_alignment:
            raise kerr(errno.EINVAL)
        last = iova + length - 1
        if last > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        if self.reserved.first_overlap(iova, last) is not None:
            raise kerr(errno.EINVAL)
        if self.areas.first_overlap(iova, last) is not None:
            raise kerr(errno.EEXIST)

    def insert(self, iova: int | None, length: int, area: Area) -> int:
        """Place ``area`` at ``iova`` (None: choose one); return the IOVA.

        Raises:
            OSError: see :meth:`insert_pieces`.
        """
        return self.insert_pieces(iova, [(length, area)])

    def insert_pieces(self, iova: int | None, pieces: list[tuple[int, Area]]) -> int:
        """Place contiguous areas at ``iova`` (None: choose one); return the IOVA.

        Raises:
            OSError: EINVAL (length or page offset vs alignment), EPERM (writable area over
                read-only pages), and the errors of :meth:`alloc_iova` / :meth:`check_iova`.
        """
        length = sum(n for n, _ in pieces)
        if length == 0 or length % self.iova_alignment:
            raise kerr(errno.EINVAL)
        if iova is None:
            iova = self.alloc_iova(pieces[0][1].alloc_hint(), length)
        else:
            self.check_iova(iova, length)
        for _, area in pieces:
            if area.prot & 2 and not area.pages_writable:  # IOMMU_IOAS_MAP_WRITEABLE
                raise kerr(errno.EPERM)
            if (area.uptr % PAGE_SIZE) % self.iova_alignment:
                raise kerr(errno.EINVAL)
        cur = iova
        for n, area in pieces:
            self.areas.insert(cur, cur + n - 1, area)
            cur += n
        return iova

    # -- removal and lookup ------------------------------------------------------------------

    def unmap(self, start: int, last: int) -> int:
        """Remove the areas inside ``[start, last]`` in ascending order; return the bytes removed.

        Raises:
            OSError: ENOENT if an area sticks out of the range (the areas before it stay
                removed, as in iopt_unmap_iova_range) or nothing was mapped there.
        """
        unmapped = 0
        while (pos := self.areas.first_overlap(start, last)) is not None:
            a_start, a_last, _ = self.areas.get(pos)
            if a_start < start or a_last > last:
                raise kerr(errno.ENOENT)
            self.areas.pop(pos)
            unmapped += a_last - a_start + 1
        if not unmapped:
            raise kerr(errno.ENOENT)
        return unmapped

    def get_pages(self, iova: int, length: int) -> list[tuple[int, Area]]:
        """Return ``(length, area slice)`` pieces covering ``[iova, iova+length)`` contiguously.

        Raises:
            OSError: EINVAL for length 0, EOVERFLOW on wrap, ENOENT if any byte is unmapped.
        """
        if length == 0:
            raise kerr(errno.EINVAL)
        last = iova + length - 1
        if last > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        pieces: list[tuple[int, Area]] = []
        cur = iova
        while cur <= last:
            hit = self.areas.find(cur)
            if hit is None:
                raise kerr(errno.ENOENT)
            a_start, a_last, area = hit
            end = min(a_last, last)
            piece = Area(area.uptr + (cur - a_start), area.prot, area.pages_writable)
            pieces.append((end - cur + 1, piece))
            cur = end + 1
        return pieces

    def translate(self, iova: int) -> tuple[int, int, int] | None:
        """Return ``(user address, bytes left in the area, prot)`` for ``iova``, or None."""
        hit = self.areas.find(iova)
        if hit is None:
            return None
        start, last, area = hit
        return area.uptr + (iova - start), last - iova + 1, area.prot

    # -- reserved and allowed ranges ---------------------------------------------------------

    def reserve(self, start: int, last: int, owner: object) -> None:
        """Reserve ``[start, last]`` for ``owner`` (io_pagetable.c:iopt_reserve_iova).

        Raises:
            OSError: EADDRINUSE over a mapping or an allowed range.
        """
        if self.areas.first_overlap(start, last) is not None:
            raise kerr(errno.EADDRINUSE)
        if self.allowed.first_overlap(start, last) is not None:
            raise kerr(errno.EADDRINUSE)
        self._ranges = None
        if self.reserved.first_overlap(start, last) is None:
            self.reserved.insert(start, last, owner)
            return
        # overlapping reservations of different owners are merged in the kernel's tree too;
        # keep the owner list simple: store a separate piece for the uncovered parts
        for h_start, h_last in holes(start, last, self.reserved):
            self.reserved.insert(h_start, h_last, owner)

    def unreserve(self, owner: object) -> None:
        """Drop every reservation of ``owner``."""
        keep = [(s, last, o) for s, last, o in self.reserved.items() if o is not owner]
        self.reserved.clear()
        self._ranges = None
        for s, last, o in keep:
            self.reserved.insert(s, last, o)

    def set_allowed(self, ranges: list[tuple[int, int]]) -> None:
        """Replace the allowed ranges (ioas.c:iommufd_ioas_allow_iovas).

        Raises:
            OSError: EINVAL for an empty/inverted or overlapping range, EADDRINUSE over a
                reserved range (the old list is kept).
        """
        new: IntervalMap[None] = IntervalMap()
        for start, last in ranges:
            if start >= last or new.first_overlap(start, last) is not None:
                raise kerr(errno.EINVAL)
            new.insert(start, last, None)
        for start, last in new.spans():
            if self.reserved.first_overlap(start, last) is not None:
                raise kerr(errno.EADDRINUSE)
        self.allowed = new

    def update_alignment(self, domain_alignment: int) -> None:
        """Recompute ``iova_alignment`` from the domains (iopt_calculate_iova_alignment).

        Raises:
            OSError: EADDRINUSE if an existing area does not satisfy the new alignment.
        """
        align = max(domain_alignment, PAGE_SIZE if self.disable_large_pages else 1)
        for start, last, area in self.areas.items():
            if start % align or (last + 1) % align or (area.uptr % PAGE_SIZE) % align:
                raise kerr(errno.EADDRINUSE)
        self.domain_alignment = domain_alignment
        self.iova_alignment = align
