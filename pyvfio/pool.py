"""A pool of many small DMA blocks carved out of a few large mapped buffers.

Mapping every descriptor or packet buffer on its own costs one ioctl (and one IOMMU entry: type1
allows only ``dma_entry_limit`` = 65535 of them) per buffer; a pool maps one chunk and hands out
fixed-size blocks of it, the way DPDK's mempool and SPDK's ``spdk_dma_malloc`` do.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvfio.dma import PAGE_SIZE, Mapping, check_int
from pyvfio.iova import DMAMapper
from pyvfio.memory import DMABuffer


@dataclass(frozen=True)
class Block:
    """One block of a :class:`DMAPool`: its IOVA for the device, its view for the driver."""

    iova: int
    vaddr: int
    view: memoryview
    chunk: int
    index: int

    @property
    def size(self) -> int:
        """Bytes in the block."""
        return len(self.view)


class DMAPool:
    """Fixed-size DMA blocks from chunks that are mapped once each, grown on demand."""

    def __init__(self, mapper: DMAMapper, block_size: int, *, chunk_size: int = 64 * PAGE_SIZE,
                 max_chunks: int = 64) -> None:
        """Create an empty pool; memory is allocated and mapped on the first :meth:`get`.

        Args:
            mapper: where chunks get mapped (decides the IOVAs).
            block_size: bytes per block; a power of two from 64 up to ``chunk_size``, so blocks
                never straddle a page boundary they would not need to.
            chunk_size: bytes per mapped chunk (a multiple of the page size).
            max_chunks: the most chunks the pool may map.

        Raises:
            TypeError, ValueError: sizes out of range.
        """
        check_int("block_size", block_size, 64, chunk_size)
        check_int("chunk_size", chunk_size, PAGE_SIZE)
        if block_size & (block_size - 1) or chunk_size % PAGE_SIZE:
            raise ValueError("block_size must be a power of two, chunk_size a page multiple")
        self.mapper, self.block_size, self.chunk_size = mapper, block_size, chunk_size
        self.max_chunks = check_int("max_chunks", max_chunks, 1)
        self._chunks: list[tuple[DMABuffer, Mapping]] = []
        self._free: list[tuple[int, int]] = []
        self._out: set[tuple[int, int]] = set()

    def __repr__(self) -> str:
        return f"<DMAPool {self.block_size}-byte blocks, {len(self._out)} in use>"

    @property
    def in_use(self) -> int:
        """Blocks handed out and not yet put back."""
        return len(self._out)

    def get(self) -> Block:
        """Return a free block (zeroing is the caller's business), mapping a chunk if needed.

        Raises:
            MemoryError: ``max_chunks`` chunks are mapped and every block is in use.
            DriverError: mapping a new chunk failed (see :meth:`DMAMapper.map`).
        """
        if not self._free:
            self._grow()
        chunk, index = self._free.pop()
        self._out.add((chunk, index))
        buf, mapping = self._chunks[chunk]
        offset = index * self.block_size
        view = buf.view()[offset : offset + self.block_size]
        return Block(mapping.iova + offset, mapping.vaddr + offset, view, chunk, index)

    def put(self, block: Block) -> None:
        """Give ``block`` back to the pool.

        Raises:
            ValueError: ``block`` is not a block of this pool that is in use.
        """
        key = (block.chunk, block.index)
        if key not in self._out or block.size != self.block_size:
            raise ValueError(f"block {block.iova:#x} is not in use in {self!r}")
        self._out.remove(key)
        block.view.release()
        self._free.append(key)

    def _grow(self) -> None:
        if len(self._chunks) >= self.max_chunks:
            raise MemoryError(f"{self!r} is exhausted ({self.max_chunks} chunks)")
        buf = DMABuffer.anonymous(self.chunk_size)
        try:
            mapping = self.mapper.map(buf)
        except BaseException:
            buf.close()
            raise
        chunk = len(self._chunks)
        self._chunks.append((buf, mapping))
        per_chunk = self.chunk_size // self.block_size
        self._free.extend((chunk, i) for i in reversed(range(per_chunk)))

    def close(self) -> None:
        """Unmap and free every chunk (blocks still out become invalid)."""
        for buf, mapping in self._chunks:
            self.mapper.unmap(mapping)
            buf.close()
        self._chunks.clear()
        self._free.clear()
        self._out.clear()

    def __enter__(self) -> DMAPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
