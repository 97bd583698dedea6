"""IOVAs for DMA: an allocator for the legacy container, and a mapper for either IOMMU mode.

Under iommufd the kernel chooses IOVAs (``IOMMU_IOAS_MAP`` without ``FIXED_IOVA``); the legacy
container has no such call, so :class:`IOVAAllocator` picks them: best fit inside the IOVA ranges
the kernel reports (``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE``, reserved regions already cut out),
minus what the driver reserves, with freed space reused and coalesced.  :class:`DMAMapper` maps
:class:`~pyvfio.memory.DMABuffer` s into any :class:`~pyvfio.dma.DMASpace` below a device's DMA
mask and translates between process addresses and IOVAs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from pyvfio.dma import PAGE_SIZE, DMASpace, IOVARange, Mapping, check_int
from pyvfio.errors import DriverError
from pyvfio.memory import DMABuffer

U64_MAX = (1 << 64) - 1


class IOVAAllocator:
    """Best-fit allocation of aligned IOVA blocks from a set of free ranges.

    Free space is a sorted list of disjoint ``[start, end)`` holes: allocation scans for the
    smallest hole that fits (O(holes)), freeing merges with both neighbours (O(log holes)).
    """

    def __init__(self, ranges: Iterable[IOVARange], *, limit: int = U64_MAX,
                 reserved: Iterable[tuple[int, int]] = ()) -> None:
        """Start with ``ranges`` (inclusive ends) clipped to ``[PAGE_SIZE, limit]`` as free.

        IOVA 0 is never handed out: a device address of 0 is too often a bug.

        Args:
            ranges: the usable IOVA ranges (``space.iova_ranges()``).
            limit: the highest IOVA the device can address (its DMA mask).
            reserved: ``(start, size)`` blocks never to hand out.
        """
        self._holes: list[tuple[int, int]] = []
        for r in sorted(ranges, key=lambda r: r.start):
            start, end = max(r.start, PAGE_SIZE), min(r.last, limit) + 1
            if start < end:
                self._holes.append((start, end))
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

    def allocate(self, size: int, align: int = PAGE_SIZE) -> int:
        """Return the start of a free block of ``size`` bytes aligned to ``align`` (best fit).

        Raises:
            ValueError: ``size`` not a positive multiple of the page, ``align`` not a power of 2.
            MemoryError: no hole is big enough.
        """
        _check_block(size, align)
        best: tuple[int, int, int] | None = None  # (hole size, index, aligned start)
        for i, (start, end) in enumerate(self._holes):
            at = -(-start // align) * align
            if at + size <= end and (best is None or end - start < best[0]):
                best = (end - start, i, at)
        if best is None:
            raise MemoryError(f"no free IOVA block of {size:#x} bytes aligned to {align:#x} "
                              f"({self.free_bytes:#x} bytes free in {len(self._holes)} holes)")
        self._take(best[1], best[2], size)
        self._used[best[2]] = size
        return best[2]

    def reserve(self, start: int, size: int) -> None:
        """Take ``[start, start + size)`` out of the free space (no-op where already taken)."""
        check_int("start", start)
        check_int("size", size, 1)
        end, holes = start + size, []
        for lo, hi in self._holes:
            holes += [p for p in ((lo, min(hi, start)), (max(lo, end), hi)) if p[0] < p[1]]
        self._holes = holes

    def _take(self, i: int, at: int, size: int) -> None:
        start, end = self._holes[i]
        pieces = [p for p in ((start, at), (at + size, end)) if p[0] < p[1]]
        self._holes[i : i + 1] = pieces

    def free(self, iova: int) -> None:
        """Give back the block :meth:`allocate` returned at ``iova``, merging with neighbours.

        Raises:
            KeyError: ``iova`` is not an allocated block.
        """
        self.release(iova, self._used.pop(iova))

    def release(self, start: int, size: int) -> None:
        """Make ``[start, start + size)`` free again (a block :meth:`reserve` took)."""
        end = start + size
        i = bisect.bisect_left(self._holes, (start, 0))
        if i < len(self._holes) and self._holes[i][0] == end:
            end = self._holes.pop(i)[1]
        if i > 0 and self._holes[i - 1][1] == start:
            i -= 1
            start = self._holes.pop(i)[0]
        self._holes.insert(i, (start, end))


def _check_block(size: int, align: int) -> None:
    check_int("size", size, 1)
    check_int("align", align, 1)
    if size % PAGE_SIZE:
        raise ValueError(f"size must be a multiple of {PAGE_SIZE:#x}, not {size:#x}")
    if align & (align - 1) or align < PAGE_SIZE:
        raise ValueError(f"align must be a power of two >= {PAGE_SIZE:#x}, not {align:#x}")


class DMAMapper:
    """Maps :class:`DMABuffer` s into a DMA space below a DMA mask; translates vaddr <-> IOVA.

    Under iommufd the kernel picks the IOVA (and the mapper checks it against the mask); on a
    legacy container the mapper's :class:`IOVAAllocator` does, from the container's IOVA ranges.
    """

    def __init__(self, space: DMASpace, *, dma_mask: int = U64_MAX) -> None:
        """Create a mapper for ``space``; ``dma_mask``: the highest IOVA the device can use."""
        self.space = space
        self.dma_mask = dma_mask
        self.kernel_chooses = _kernel_chooses(space)
        self._allocator: IOVAAllocator | None = None
        self._by_iova: list[tuple[int, Mapping]] = []
        self._by_vaddr: list[tuple[int, Mapping]] = []
        self._reserved: set[int] = set()  # kernel-chosen IOVAs taken out of the allocator

    @property
    def allocator(self) -> IOVAAllocator:
        """The IOVA allocator (legacy container; built from the space's IOVA ranges)."""
        if self._allocator is None:
            self._allocator = IOVAAllocator(self.space.iova_ranges(), limit=self.dma_mask)
        return self._allocator

    def map(self, buffer: DMABuffer, *, readable: bool = True, writable: bool = True) -> Mapping:
        """Map all of ``buffer`` for the device; the mapping keeps the buffer alive.

        Raises:
            DriverError: step ``map``: no IOVA below the DMA mask, or the kernel refused
                (``cause`` is the ``OSError`` with the errno, e.g. ENOMEM for RLIMIT_MEMLOCK).
        """
        raw = buffer._open()
        try:
            mapping = self._map(raw, len(raw), readable, writable)
        except (OSError, MemoryError) as exc:
            raise DriverError("map", f"mapping {len(raw):#x} bytes for DMA failed", exc) from exc
        mapping._buffer = buffer  # the Mapping keeps the DMABuffer, not just its mmap, alive
        buffer._track(mapping)
        self._index(mapping)
        return mapping

    def _map(self, raw: object, size: int, readable: bool, writable: bool) -> Mapping:
        rw = {"readable": readable, "writable": writable}
        if self.kernel_chooses:
            mapping = self.space.map(raw, None, **rw)  # type: ignore[arg-type]
            if mapping.iova + size - 1 <= self.dma_mask:
                return mapping
            mapping.close()  # above the mask: fall back to an IOVA of our choice
        align = min(1 << (size.bit_length() - 1), 2 << 20)
        for m in self._kernel_placed():  # the kernel's earlier choices are taken, too
            self.allocator.reserve(m.iova, m.size)
            self._reserved.add(m.iova)
        iova = self.allocator.allocate(size, align)
        try:
            return self.space.map(raw, iova, **rw)
        except BaseException:
            self.allocator.free(iova)
            raise

    def _kernel_placed(self) -> list[Mapping]:
        used = self._allocator._used if self._allocator else {}
        return [m for _, m in self._by_iova if m.iova not in used and m.iova not in self._reserved]

    def _index(self, mapping: Mapping) -> None:
        bisect.insort(self._by_iova, (mapping.iova, mapping), key=lambda t: t[0])
        bisect.insort(self._by_vaddr, (mapping.vaddr, mapping), key=lambda t: t[0])

    def unmap(self, mapping: Mapping) -> None:
        """Unmap ``mapping`` and give its IOVA back (idempotent)."""
        for index in (self._by_iova, self._by_vaddr):
            index[:] = [t for t in index if t[1] is not mapping]
        if mapping.closed:
            return
        mapping.close()
        if self._allocator is not None and mapping.iova in self._allocator._used:
            self._allocator.free(mapping.iova)
        elif mapping.iova in self._reserved:
            self._reserved.discard(mapping.iova)
            self.allocator.release(mapping.iova, mapping.size)

    def close(self) -> None:
        """Unmap every mapping made by this mapper."""
        for _, mapping in list(self._by_iova):
            self.unmap(mapping)

    def iova(self, vaddr: int) -> int:
        """Translate a process address inside a mapped buffer to the device's IOVA.

        Raises:
            DriverError: step ``translate``: no mapping of this mapper covers ``vaddr``.
        """
        m = _lookup(self._by_vaddr, vaddr)
        return m.iova + vaddr - m.vaddr

    def vaddr(self, iova: int) -> int:
        """Translate an IOVA of this mapper's mappings back to the process address.

        Raises:
            DriverError: step ``translate``: no mapping of this mapper covers ``iova``.
        """
        m = _lookup(self._by_iova, iova)
        return m.vaddr + iova - m.iova


def _lookup(index: list[tuple[int, Mapping]], addr: int) -> Mapping:
    i = bisect.bisect_right(index, addr, key=lambda t: t[0]) - 1
    if i >= 0:
        start, m = index[i]
        if start <= addr < start + m.size and not m.closed:
            return m
    raise DriverError("translate", f"address {addr:#x} is in no DMA mapping (mapping missing)")


def _kernel_chooses(space: DMASpace) -> bool:
    from pyvfio.iommufd import IOAS  # noqa: PLC0415 - iommufd imports dma; keep layers acyclic

    return isinstance(space, IOAS)
