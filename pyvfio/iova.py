"""IOVAs for DMA: an allocator for the legacy container, and a mapper for either IOMMU mode.

Under iommufd the kernel chooses IOVAs (``IOMMU_IOAS_MAP`` without ``FIXED_IOVA``); the legacy
container has no such call, so :class:`IOVAAllocator` picks them: best fit inside the IOVA ranges
the kernel reports (``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE``, reserved regions already cut out),
minus what the driver reserves, with freed space reused and coalesced.  :class:`DMAMapper` maps
:class:`~pyvfio.memory.DMABuffer` s into any :class:`~pyvfio.space.DMASpace` below a device's DMA
mask and translates between process addresses and IOVAs.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pyvfio.dma import PAGE_SIZE, IOVARange, Mapping, check_int
from pyvfio.errors import DriverError, IOVAExhaustedError, NotMappedError

if TYPE_CHECKING:
    from pyvfio.memory import DMABuffer
    from pyvfio.space import DMASpace

U64_MAX = (1 << 64) - 1


class IOVAAllocator:
    """Best-fit allocation of aligned IOVA blocks from a set of free ranges.

    Free space is a sorted set of disjoint ``[start, end)`` holes, kept as two parallel lists of
    ints (starts, ends: bisecting ints is cheaper than building and comparing tuples, and this is
    the legacy hot path, tools/bench part 6): allocation scans for the smallest hole that fits
    (O(holes); a space filled in order keeps one or two holes), taking and giving back a given
    block bisect to its hole (O(log holes) plus a list insert).  Not thread-safe by itself:
    :class:`pyvfio.space.DMASpace` calls it under its lock.

    A driver's commonest pattern, map a buffer, unmap it, map one like it again, costs no hole
    arithmetic: giving back the block the last allocation (or reservation) took only defers the
    give-back, and the next allocation of the same size, alignment and limit (or reservation of
    the same block) takes the deferred block as it is.  That is exactly the best fit: giving the
    block back would restore the holes the allocation saw, where best fit chose this block.
    Anything else first does the deferred give-back.
    """

    def __init__(self, ranges: Iterable[IOVARange], *, limit: int = U64_MAX,
                 reserved: Iterable[tuple[int, int]] = ()) -> None:
        """Start with ``ranges`` (inclusive ends) clipped to ``[PAGE_SIZE, limit]`` as free.

        IOVA 0 is never handed out: a device address of 0 is too often a bug.

        Args:
            ranges: the usable IOVA ranges (``space.iova_ranges()``).
            limit: the highest IOVA any block may reach.
            reserved: ``(start, size)`` blocks never to hand out.
        """
        self._starts: list[int] = []
        self._ends: list[int] = []
        for r in sorted(ranges, key=lambda r: r.start):
            start, end = max(r.start, PAGE_SIZE), min(r.last, limit) + 1
            if start < end:
                self._starts.append(start)
                self._ends.append(end)
        # what release() may give back
        self._bound_starts, self._bound_ends = list(self._starts), list(self._ends)
        self._used: dict[int, int] = {}
        # the last change, if an allocation (start, size, align, limit) or a reservation
        # (start, end); a give-back of exactly that block is deferred as _pending
        self._last: tuple[int, ...] | None = None
        self._pending: tuple[int, ...] | None = None
        for start, size in reserved:
            self.reserve(start, size)

    def __repr__(self) -> str:
        self._flush()
        return f"<IOVAAllocator {len(self._starts)} holes, {self.free_bytes:#x} bytes free>"

    @property
    def free_bytes(self) -> int:
        """Bytes not allocated or reserved."""
        self._flush()
        return sum(self._ends) - sum(self._starts)

    def holes(self) -> list[tuple[int, int]]:
        """Return the free ``(start, end)`` ranges (end exclusive), lowest first."""
        self._flush()
        return list(zip(self._starts, self._ends, strict=True))

    def allocate(self, size: int, align: int = PAGE_SIZE, limit: int = U64_MAX) -> int:
        """Return the start of a free block of ``size`` bytes aligned to ``align`` (best fit),
        ending at or below ``limit`` (a device's DMA mask).

        Raises:
            ValueError: ``size`` not a positive multiple of the page, ``align`` not a power of 2.
            IOVAExhaustedError: no hole is big enough.
        """
        _check_block(size, align)
        at = self._alloc(size, align, limit)
        self._used[at] = size
        return at

    def _alloc(self, size: int, align: int, limit: int) -> int:
        """:meth:`allocate` without the argument checks (the DMA space's own, checked sizes)."""
        pending = self._pending
        if pending is not None:
            if len(pending) == 4 and pending[1] == size and pending[2] == align and \
                    pending[3] == limit:  # the block given back last: the best fit again
                self._pending, self._last = None, pending
                return pending[0]
            self._flush()
        starts, ends, mask = self._starts, self._ends, align - 1
        if len(starts) == 1:  # a space filled in order keeps one hole: it is the best fit
            start = starts[0]
            stop = start + size
            if not start & mask and stop < ends[0] and stop <= limit + 1:  # its aligned head
                starts[0] = stop
                self._last = (start, size, align, limit)
                return start
        return self._best_fit(size, align, limit)

    def _best_fit(self, size: int, align: int, limit: int) -> int:
        starts, ends, mask = self._starts, self._ends, align - 1
        best, best_len, best_at, top = -1, 0, 0, limit + 1
        for i, start in enumerate(starts):
            end = ends[i]
            at = (start + mask) & ~mask
            if at + size <= (end if end < top else top) and (best < 0 or end - start < best_len):
                best, best_len, best_at = i, end - start, at
        if best < 0:
            raise IOVAExhaustedError(
                size, align, limit, f"no free IOVA block of {size:#x} bytes aligned to "
                f"{align:#x} at or below {limit:#x} ({self.free_bytes:#x} bytes free in "
                f"{len(starts)} holes)")
        stop, end = best_at + size, ends[best]
        if starts[best] < best_at:  # an aligned block leaves a head
            ends[best] = best_at
            if stop < end:
                starts.insert(best + 1, stop)
                ends.insert(best + 1, end)
        elif stop < end:
            starts[best] = stop
        else:
            del starts[best], ends[best]
        self._last = (best_at, size, align, limit)
        return best_at

    def reserve(self, start: int, size: int) -> None:
        """Take ``[start, start + size)`` out of the free space (no-op where already taken)."""
        check_int("start", start)
        check_int("size", size, 1)
        self._reserve(start, start + size)

    def _reserve(self, start: int, end: int) -> None:
        pending = self._pending
        if pending is not None:
            if len(pending) == 2 and pending[0] == start and pending[1] == end:
                self._pending, self._last = None, pending  # given back, deferred: taken again
                return
            self._flush()
        self._last = (start, end)
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, start) - 1
        if i < 0 or ends[i] <= start:
            i += 1  # the hole holding start, else the first after it
        while i < len(starts) and starts[i] < end:
            lo, hi = starts[i], ends[i]
            if lo < start:  # the hole keeps its head
                ends[i] = start
                if hi > end:  # ... and its tail: the block was inside it
                    starts.insert(i + 1, end)
                    ends.insert(i + 1, hi)
                    return
                i += 1
            elif hi > end:  # the hole keeps its tail
                starts[i] = end
                return
            else:
                del starts[i], ends[i]

    def free(self, iova: int) -> None:
        """Give back the block :meth:`allocate` returned at ``iova``, merging with neighbours.

        Raises:
            KeyError: ``iova`` is not an allocated block.
        """
        self.release(iova, self._used.pop(iova))

    def release(self, start: int, size: int) -> None:
        """Make ``[start, start + size)`` free again, as far as it lies in the allocator's ranges
        (a block :meth:`reserve` or :meth:`allocate` took)."""
        self._used.pop(start, None)
        self._release(start, start + size)

    def _release(self, start: int, end: int) -> None:
        last = self._last
        if last is not None and last[0] == start and \
                end == (last[1] if len(last) == 2 else start + last[1]):
            self._pending, self._last = last, None  # the block just taken: defer (class doc)
            return
        self._flush()
        self._last = None
        self._give_back(start, end)

    def _flush(self) -> None:
        """Do the deferred give-back, if any."""
        pending = self._pending
        if pending is not None:
            self._pending = None
            start = pending[0]
            self._give_back(start, pending[1] if len(pending) == 2 else start + pending[1])

    def _give_back(self, start: int, end: int) -> None:
        i = bisect_right(self._bound_starts, start) - 1
        if i < 0 or end > self._bound_ends[i]:  # not inside one range: give back each part
            self._release_parts(start, end)
            return
        starts, ends = self._starts, self._ends
        i = bisect_left(starts, start)
        if i and ends[i - 1] == start:  # merges with the hole before it, in place
            if i < len(starts) and starts[i] == end:  # ... and the one after it
                ends[i - 1] = ends[i]
                del starts[i], ends[i]
            else:
                ends[i - 1] = end
        elif i < len(starts) and starts[i] == end:  # merges with the hole after it
            starts[i] = start
        else:
            starts.insert(i, start)
            ends.insert(i, end)

    def _release_parts(self, start: int, end: int) -> None:
        for first, last in zip(self._bound_starts, self._bound_ends, strict=True):
            lo, hi = max(first, start), min(last, end)
            if lo < hi:
                self._give_back(lo, hi)  # inside that range now


def _check_block(size: int, align: int) -> None:
    check_int("size", size, 1)
    check_int("align", align, 1)
    if size % PAGE_SIZE:
        raise ValueError(f"size must be a multiple of {PAGE_SIZE:#x}, not {size:#x}")
    if align & (align - 1) or align < PAGE_SIZE:
        raise ValueError(f"align must be a power of two >= {PAGE_SIZE:#x}, not {align:#x}")


class DMAMapper:
    """Maps :class:`DMABuffer` s into a DMA space below a DMA mask; translates vaddr <-> IOVA.

    A thin user of :class:`pyvfio.space.DMASpace` (which chooses the IOVAs and owns the table):
    the mapper adds its own DMA mask, wraps failures as a :class:`DriverError` naming the step,
    and remembers its mappings so :meth:`close` unmaps exactly those.  Safe to share between
    threads.
    """

    def __init__(self, space: DMASpace, *, dma_mask: int = U64_MAX) -> None:
        """Create a mapper for ``space``; ``dma_mask``: the highest IOVA the device can use."""
        self.space = space
        self.dma_mask = check_int("dma_mask", dma_mask, PAGE_SIZE - 1)
        self.kernel_chooses = space.kernel_chooses_iova
        self._mine: dict[int, Mapping] = {}  # id(mapping) -> mapping
        self._lock = threading.Lock()

    @property
    def allocator(self) -> IOVAAllocator:
        """The space's IOVA allocator (built from its IOVA ranges on first use)."""
        with self.space._lock:
            return self.space._iova_allocator()

    def map(self, buffer: DMABuffer, *, readable: bool = True, writable: bool = True) -> Mapping:
        """Map all of ``buffer`` for the device; the mapping keeps the buffer alive.

        Raises:
            DriverError: step ``map``: no IOVA below the DMA mask (``cause`` an
                :class:`IOVAExhaustedError`), or the kernel refused (``cause`` the ``OSError``
                with the errno, e.g. ENOMEM for RLIMIT_MEMLOCK).
        """
        try:
            mapping = self.space.map(buffer, readable=readable, writable=writable,
                                     dma_mask=self.dma_mask)
        except (OSError, IOVAExhaustedError) as exc:
            raise DriverError("map", f"mapping {len(buffer):#x} bytes for DMA failed",
                              exc) from exc
        with self._lock:
            self._mine[id(mapping)] = mapping
        return mapping

    def unmap(self, mapping: Mapping) -> None:
        """Unmap ``mapping`` and give its IOVA back (idempotent).

        Raises:
            OSError: the kernel refused; the mapping stays open and the mapper keeps it.
        """
        mapping.close()
        with self._lock:
            self._mine.pop(id(mapping), None)

    def close(self) -> None:
        """Unmap every mapping made by this mapper (each one tried; the first error raised)."""
        with self._lock:
            mine = list(self._mine.values())
        first: OSError | None = None
        for mapping in mine:
            try:
                self.unmap(mapping)
            except OSError as exc:
                first = first or exc
        if first is not None:
            raise first

    def iova(self, vaddr: int) -> int:
        """Translate a process address inside a mapped buffer to the device's IOVA.

        Raises:
            DriverError: step ``translate``: no mapping covers ``vaddr``.
        """
        try:
            return self.space.iova(vaddr)
        except NotMappedError as exc:
            raise DriverError("translate", f"{exc} (mapping missing)") from exc

    def vaddr(self, iova: int) -> int:
        """Translate an IOVA of a mapping back to the process address.

        Raises:
            DriverError: step ``translate``: no mapping covers ``iova``.
        """
        try:
            return self.space.vaddr(iova)
        except NotMappedError as exc:
            raise DriverError("translate", f"{exc} (mapping missing)") from exc
