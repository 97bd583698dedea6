"""IOVAs for DMA: an allocator for the legacy container, and a mapper for either IOMMU mode.

Under iommufd the kernel chooses IOVAs (``IOMMU_IOAS_MAP`` without ``FIXED_IOVA``); the legacy
container has no such call, so :class:`IOVAAllocator` picks them: best fit inside the IOVA ranges
the kernel reports (``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE``, reserved regions already cut out),
minus what the driver reserves, with freed space reused and coalesced.  :class:`DMAMapper` maps
:class:`~pyvfio.memory.DMABuffer` s into any :class:`~pyvfio.space.DMASpace` below a device's DMA
mask and translates between process addresses and IOVAs.
"""

from __future__ import annotations

import bisect
import threading
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

    Free space is a sorted list of disjoint ``[start, end)`` holes: allocation scans for the
    smallest hole that fits (O(holes); a space filled in order keeps one or two holes), taking
    and giving back a given block bisect to its hole (O(log holes)).  Not thread-safe by itself:
    :class:`pyvfio.space.DMASpace` calls it under its lock.
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
        self._holes: list[tuple[int, int]] = []
        for r in sorted(ranges, key=lambda r: r.start):
            start, end = max(r.start, PAGE_SIZE), min(r.last, limit) + 1
            if start < end:
                self._holes.append((start, end))
        self._bounds = list(self._holes)  # what release() may give back
        self._used: dict[int, int] = {}
        for start, size in reserved:
            self.reserve(start, size)

    def __repr__(self) -> str:
        return f"<IOVAAllocator {len(self._holes)} holes, {self.free_bytes:#x} bytes free>"

    @property
    def free_bytes(self) -> int:
        """Bytes not allocated or reserved."""
        return sum(end - start for start, end in self._holes)

    def holes(self) -> list[tuple[int, int]]:
        """Return the free ``(start, end)`` ranges (end exclusive), lowest first."""
        return list(self._holes)

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
        best, best_len, best_at, top = -1, 0, 0, limit + 1
        for i, (start, end) in enumerate(self._holes):
            at = -(-start // align) * align
            if at + size <= (end if end < top else top) and (best < 0 or end - start < best_len):
                best, best_len, best_at = i, end - start, at
        if best < 0:
            raise IOVAExhaustedError(
                size, align, limit, f"no free IOVA block of {size:#x} bytes aligned to "
                f"{align:#x} at or below {limit:#x} ({self.free_bytes:#x} bytes free in "
                f"{len(self._holes)} holes)")
        self._take(best, best_at, size)
        return best_at

    def reserve(self, start: int, size: int) -> None:
        """Take ``[start, start + size)`` out of the free space (no-op where already taken)."""
        check_int("start", start)
        check_int("size", size, 1)
        self._reserve(start, start + size)

    def _reserve(self, start: int, end: int) -> None:
        holes = self._holes
        i = max(bisect.bisect_right(holes, (start, U64_MAX + 1)) - 1, 0)
        while i < len(holes) and holes[i][0] < end:
            lo, hi = holes[i]
            if hi <= start:
                i += 1
                continue
            pieces = [p for p in ((lo, min(hi, start)), (max(lo, end), hi)) if p[0] < p[1]]
            holes[i : i + 1] = pieces
            i += len(pieces)

    def _take(self, i: int, at: int, size: int) -> None:
        holes, (start, end), stop = self._holes, self._holes[i], at + size
        if start < at:
            if stop < end:
                holes[i : i + 1] = [(start, at), (stop, end)]
            else:
                holes[i] = (start, at)
        elif stop < end:
            holes[i] = (stop, end)
        else:
            del holes[i]

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
        bounds = self._bounds
        i = max(bisect.bisect_right(bounds, (start, U64_MAX + 1)) - 1, 0)
        if bounds and bounds[i][0] <= start and end <= bounds[i][1]:
            self._give(start, end)  # inside one range: every block the DMA space allocated
            return
        while i < len(bounds) and bounds[i][0] < end:
            lo, hi = max(bounds[i][0], start), min(bounds[i][1], end)
            if lo < hi:
                self._give(lo, hi)
            i += 1

    def _give(self, start: int, end: int) -> None:
        holes = self._holes
        i = bisect.bisect_left(holes, (start, 0))
        after = i < len(holes) and holes[i][0] == end  # merges with the hole after it
        if i > 0 and holes[i - 1][1] == start:  # ... and/or the one before: in place
            holes[i - 1] = (holes[i - 1][0], holes.pop(i)[1] if after else end)
        elif after:
            holes[i] = (start, holes[i][1])
        else:
            holes.insert(i, (start, end))


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
            mapping = self.space._map(buffer, None, readable, writable, self.dma_mask)
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
