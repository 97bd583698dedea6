"""A DMA allocator: arbitrary-size aligned allocations carved from a few mapped chunks.

Mapping a fresh buffer for every I/O costs two ioctls and an IOMMU entry each time (type1 allows
only ``dma_entry_limit`` = 65535 of them); SPDK's ``spdk_dma_zmalloc`` and libvfn's ``pgmap`` +
``iommu_map_vaddr`` map large chunks once and hand out pieces.  :class:`DMAAllocator` does that:
best-fit inside chunks of ``chunk_size`` bytes (an allocation larger than a chunk gets a chunk of
its own), freed space coalesced and reused, a chunk mapped once and kept until :meth:`trim` or
:meth:`close`.  Every allocation is contiguous in IOVA (one chunk), so its IOVA is ``iova`` and
``iova + n`` is byte ``n`` -- PRP lists and scatter-gather entries follow from that.

It needs only a DMA mapper: anything with ``map(buffer) -> Mapping`` that picks the IOVA
(:class:`pyvfio.iova.DMAMapper`, or a device's DMA space).  All methods are thread-safe.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyvfio.dma import PAGE_SIZE, Mapping, check_int
from pyvfio.memory import DMABuffer
from pyvfio.memview import DMAView

__all__ = ["DMAAllocation", "DMAAllocator"]


class Mapper(Protocol):
    """What the allocator maps chunks with: the mapper chooses the IOVA."""

    def map(self, buffer: DMABuffer) -> Mapping: ...


@dataclass(eq=False)
class _Chunk:
    buffer: DMABuffer
    mapping: Mapping
    holes: list[tuple[int, int]]  # free [start, end) offsets, sorted, coalesced
    used: dict[int, int] = field(default_factory=dict)  # offset -> size

    @property
    def size(self) -> int:
        return self.mapping.size


@dataclass(frozen=True, eq=False)
class DMAAllocation:
    """A piece of DMA memory: ``iova`` for the device, ``vaddr`` and ``mem`` for the driver."""

    iova: int
    vaddr: int
    size: int
    mem: DMAView
    _chunk: _Chunk = field(repr=False)
    _offset: int = field(repr=False)


class DMAAllocator:
    """Aligned DMA allocations of any size from chunks mapped once each."""

    def __init__(self, mapper: Mapper, *, chunk_size: int = 2 << 20, max_bytes: int = 1 << 30,
                 hugetlb: int = 0) -> None:
        """Create an empty allocator; chunks are allocated and mapped on demand.

        Args:
            mapper: maps a :class:`DMABuffer` and picks its IOVA (below the device's DMA mask).
            chunk_size: bytes per chunk, a page multiple.
            max_bytes: the most bytes all chunks together may hold.
            hugetlb: 0, or 2 MiB / 1 GiB: back chunks with hugepages (memfd).

        Raises:
            TypeError, ValueError: sizes out of range.
        """
        check_int("chunk_size", chunk_size, PAGE_SIZE)
        if chunk_size % PAGE_SIZE:
            raise ValueError(f"chunk_size must be a multiple of {PAGE_SIZE:#x}")
        self.mapper, self.chunk_size, self.hugetlb = mapper, chunk_size, hugetlb
        self.max_bytes = check_int("max_bytes", max_bytes, chunk_size)
        self._chunks: list[_Chunk] = []
        self._by_vaddr: list[tuple[int, _Chunk]] = []
        self._by_iova: list[tuple[int, _Chunk]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"<DMAAllocator {len(self._chunks)} chunks, {self.mapped_bytes:#x} mapped, "
                f"{self.used_bytes:#x} allocated>")

    @property
    def mapped_bytes(self) -> int:
        """Bytes held in mapped chunks."""
        return sum(c.size for c in self._chunks)

    @property
    def used_bytes(self) -> int:
        """Bytes handed out and not freed (rounded up to the allocation granule, 64 bytes)."""
        return sum(sum(c.used.values()) for c in self._chunks)

    def alloc(self, size: int, align: int = 64, *, zero: bool = True) -> DMAAllocation:
        """Return ``size`` bytes aligned to ``align`` (IOVA and vaddr alike), zeroed unless told.

        Raises:
            TypeError, ValueError: ``size`` not positive, ``align`` not a power of two in
                ``[1, chunk_size]``.
            MemoryError: ``max_bytes`` reached.
            DriverError: mapping a new chunk failed (the mapper's error, errno kept).
        """
        check_int("size", size, 1)
        check_int("align", align, 1, self.chunk_size)
        if align & (align - 1):
            raise ValueError(f"align must be a power of two, not {align:#x}")
        size = -(-size // 64) * 64
        with self._lock:
            found = self._find(size, align)
            if found is None:
                found = self._grow(size), 0
            chunk, offset = found
            _take(chunk, offset, size)
            chunk.used[offset] = size
        mem = DMAView(chunk.buffer, offset, size)
        if zero:
            mem.zero()
        return DMAAllocation(chunk.mapping.iova + offset, chunk.mapping.vaddr + offset, size,
                             mem, chunk, offset)

    def free(self, allocation: DMAAllocation) -> None:
        """Give ``allocation`` back; its space is reused (the chunk stays mapped).

        Raises:
            ValueError: ``allocation`` is not live in this allocator (double free).
        """
        chunk, offset = allocation._chunk, allocation._offset
        with self._lock:
            if chunk not in self._chunks or chunk.used.get(offset) != allocation.size:
                raise ValueError(f"{allocation!r} is not allocated from {self!r}")
            del chunk.used[offset]
            _give(chunk, offset, allocation.size)

    def _find(self, size: int, align: int) -> tuple[_Chunk, int] | None:
        best: tuple[int, _Chunk, int] | None = None
        for chunk in self._chunks:
            base = chunk.mapping.iova
            for start, end in chunk.holes:
                at = -(-(base + start) // align) * align - base
                if at + size <= end and (best is None or end - start < best[0]):
                    best = (end - start, chunk, at)
        return None if best is None else (best[1], best[2])

    def _grow(self, size: int) -> _Chunk:
        nbytes = max(self.chunk_size, -(-size // PAGE_SIZE) * PAGE_SIZE)
        if self.mapped_bytes + nbytes > self.max_bytes:
            raise MemoryError(f"{self!r}: {size:#x} more bytes would pass max_bytes "
                              f"{self.max_bytes:#x}")
        buf = (DMABuffer.memfd(nbytes, hugetlb=self.hugetlb) if self.hugetlb
               else DMABuffer.anonymous(nbytes))
        try:
            mapping = self.mapper.map(buf)
        except BaseException:
            buf.close()
            raise
        chunk = _Chunk(buf, mapping, [(0, mapping.size)])
        self._chunks.append(chunk)
        bisect.insort(self._by_vaddr, (mapping.vaddr, chunk), key=lambda t: t[0])
        bisect.insort(self._by_iova, (mapping.iova, chunk), key=lambda t: t[0])
        return chunk

    def iova(self, vaddr: int) -> int:
        """Translate a process address inside a chunk to its IOVA. Raises ValueError."""
        chunk, off = _lookup(self._by_vaddr, vaddr, "vaddr")
        return chunk.mapping.iova + off

    def vaddr(self, iova: int) -> int:
        """Translate an IOVA inside a chunk to the process address. Raises ValueError."""
        chunk, off = _lookup(self._by_iova, iova, "IOVA")
        return chunk.mapping.vaddr + off

    def trim(self) -> int:
        """Unmap and free every chunk with nothing allocated; return the bytes released."""
        with self._lock:
            idle = [c for c in self._chunks if not c.used]
            for chunk in idle:
                self._release(chunk)
        return sum(c.size for c in idle)

    def _release(self, chunk: _Chunk) -> None:
        self._chunks.remove(chunk)
        self._by_vaddr = [t for t in self._by_vaddr if t[1] is not chunk]
        self._by_iova = [t for t in self._by_iova if t[1] is not chunk]
        unmap: Any = getattr(self.mapper, "unmap", None)
        if unmap is not None and getattr(self.mapper, "kernel_chooses", None) is not None:
            unmap(chunk.mapping)  # a DMAMapper: drop it from its index and give the IOVA back
        else:
            chunk.mapping.close()
        chunk.buffer.close()

    def close(self) -> None:
        """Unmap and free every chunk (allocations still out become invalid; idempotent)."""
        with self._lock:
            for chunk in list(self._chunks):
                self._release(chunk)

    def __enter__(self) -> DMAAllocator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _take(chunk: _Chunk, at: int, size: int) -> None:
    for i, (start, end) in enumerate(chunk.holes):
        if start <= at and at + size <= end:
            pieces = [(s, e) for s, e in ((start, at), (at + size, end)) if s < e]
            chunk.holes[i : i + 1] = pieces
            return
    raise AssertionError("allocation outside every hole")  # _find guarantees a hole


def _give(chunk: _Chunk, start: int, size: int) -> None:
    end = start + size
    holes = chunk.holes
    i = bisect.bisect_left(holes, (start, end))
    if i < len(holes) and holes[i][0] == end:
        end = holes.pop(i)[1]
    if i > 0 and holes[i - 1][1] == start:
        start = holes.pop(i - 1)[0]
        i -= 1
    holes.insert(i, (start, end))


def _lookup(index: list[tuple[int, _Chunk]], addr: int, what: str) -> tuple[_Chunk, int]:
    i = bisect.bisect_right(index, addr, key=lambda t: t[0]) - 1
    if i >= 0:
        start, chunk = index[i]
        if addr < start + chunk.size:
            return chunk, addr - start
    raise ValueError(f"{what} {addr:#x} is in no chunk of this allocator")
