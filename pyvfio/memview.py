"""Typed DMA memory: width-exact loads and stores, and struct overlays, on a span of DMA memory.

A device reads what a driver wrote into DMA memory, often while the driver is still writing it, so
how each store is made matters: an NVMe doorbell protocol assumes the 16-bit status/phase word of a
completion entry is read in one load, a descriptor's 64-bit address written in one store.
:class:`DMAView` gives exactly that: ``load32(offset)`` is one 32-bit load, ``store64(offset, v)``
one 64-bit store (a cffi typed pointer: ``_cffi_backend``'s ``*(uintN_t *)p``; aligned, so
single-copy atomic on x86-64 and arm64), and :meth:`DMAView.overlay` puts a C struct a driver
declares with its own ``cffi.FFI`` on the memory, each primitive field read or written in one
access of its width.  Order accesses against the device with :mod:`pyvfio.barrier`.

    ffi = cffi.FFI()
    ffi.cdef("struct desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };")
    mem = DMAView(buffer)                      # a DMABuffer, an allocation, any writable buffer
    d = mem.overlay(ffi.typeof("struct desc *"), 0x40)
    d.addr, d.len = iova, 4096                 # one 64-bit store, one 32-bit store
    barrier.dma_wmb()
    mem.store16(0x4e, 1)

Values are little-endian on every architecture pyvfio supports (x86-64, arm64 little-endian), as
PCI devices expect.  A view keeps its buffer exported (and so mapped) for as long as it lives.
"""

from __future__ import annotations

from typing import Any

import _cffi_backend as _backend

from pyvfio._ffi import CData, ffi
from pyvfio.dma import check_int
from pyvfio.memory import DMABuffer

__all__ = ["DMAView"]


class DMAView:
    """Width-exact access to ``size`` bytes of a writable buffer from ``offset``."""

    __slots__ = ("_base", "_buffer", "_keep", "_last", "_p8", "_p16", "_p32", "_p64", "size",
                 "vaddr")

    def __init__(self, buffer: Any, offset: int = 0, size: int | None = None) -> None:
        """View ``buffer[offset:offset + size]`` (to the end when ``size`` is None).

        Raises:
            TypeError: ``buffer`` exports no writable buffer.
            ValueError: the span is empty or leaves the buffer, or ``offset`` is not 8-aligned.
        """
        raw = buffer._open() if isinstance(buffer, DMABuffer) else buffer  # no PEP 688 < 3.12
        try:
            whole = ffi.from_buffer(raw, require_writable=True)
        except (TypeError, BufferError) as exc:
            raise TypeError(f"buffer must be a writable buffer, not {type(buffer).__name__}: "
                            f"{exc}") from None
        length = len(ffi.buffer(whole))
        check_int("offset", offset, 0, length)
        size = length - offset if size is None else check_int("size", size, 1, length - offset)
        if size == 0:
            raise ValueError("the view must not be empty")
        if offset % 8:
            raise ValueError(f"offset {offset:#x} must be 8-byte aligned (typed access alignment)")
        self._buffer = buffer
        self._base = whole + offset  # pointer arithmetic on the exporting cdata: whole stays alive
        self.size = size
        self.vaddr = int(ffi.cast("uintptr_t", self._base))
        self._last = {w: size - w for w in (1, 2, 4, 8)}
        self._p8 = ffi.cast("uint8_t *", self._base)
        self._p16 = ffi.cast("uint16_t *", self._base)
        self._p32 = ffi.cast("uint32_t *", self._base)
        self._p64 = ffi.cast("uint64_t *", self._base)
        self._keep = whole  # holds the buffer export

    def __repr__(self) -> str:
        return f"<DMAView {self.size:#x} bytes at {self.vaddr:#x}>"

    def __len__(self) -> int:
        return self.size

    @property
    def buffer(self) -> Any:
        """The buffer viewed."""
        return self._buffer

    def _at(self, offset: int, width: int) -> int:
        if type(offset) is int and not offset % width and 0 <= offset <= self._last[width]:
            return offset // width
        check_int("offset", offset)
        if offset % width:
            raise ValueError(f"offset {offset:#x} is not aligned to the access width {width}")
        raise ValueError(f"offset {offset:#x} + {width} is outside the view of {self.size:#x}")

    def load8(self, offset: int) -> int:
        """Load one byte at ``offset``. Raises TypeError, ValueError (out of the view)."""
        return int(self._p8[self._at(offset, 1)])

    def load16(self, offset: int) -> int:
        """Load 16 bits at ``offset`` in one access. Raises ValueError: unaligned, outside."""
        return int(self._p16[self._at(offset, 2)])

    def load32(self, offset: int) -> int:
        """Load 32 bits at ``offset`` in one access. Raises ValueError: unaligned, outside."""
        return int(self._p32[self._at(offset, 4)])

    def load64(self, offset: int) -> int:
        """Load 64 bits at ``offset`` in one access. Raises ValueError: unaligned, outside."""
        return int(self._p64[self._at(offset, 8)])

    def store8(self, offset: int, value: int) -> None:
        """Store one byte. Raises ValueError (outside), OverflowError (``value`` does not fit)."""
        self._p8[self._at(offset, 1)] = value

    def store16(self, offset: int, value: int) -> None:
        """Store 16 bits in one access. Raises ValueError, OverflowError (does not fit)."""
        self._p16[self._at(offset, 2)] = value

    def store32(self, offset: int, value: int) -> None:
        """Store 32 bits in one access. Raises ValueError, OverflowError (does not fit)."""
        self._p32[self._at(offset, 4)] = value

    def store64(self, offset: int, value: int) -> None:
        """Store 64 bits in one access. Raises ValueError, OverflowError (does not fit)."""
        self._p64[self._at(offset, 8)] = value

    def load(self, offset: int, width: int) -> int:
        """Load ``width`` (1, 2, 4, 8) bytes in one access. Raises ValueError."""
        return int(self._ptr(width)[self._at(offset, width)])

    def store(self, offset: int, width: int, value: int) -> None:
        """Store ``value`` as ``width`` bytes in one access. Raises ValueError, OverflowError."""
        self._ptr(width)[self._at(offset, width)] = value

    def _ptr(self, width: int) -> CData:
        ptr = {1: self._p8, 2: self._p16, 4: self._p32, 8: self._p64}.get(width)
        if ptr is None:
            raise ValueError(f"width must be 1, 2, 4 or 8, not {width!r}")
        return ptr

    def read(self, offset: int, size: int) -> bytes:
        """Copy ``size`` bytes out (accesses of unspecified width). Raises ValueError."""
        self._span(offset, size)
        return bytes(ffi.buffer(self._base + offset, size))

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` in (``memmove``: accesses of unspecified width). Raises ValueError."""
        self._span(offset, len(data))
        ffi.memmove(self._base + offset, data, len(data))

    def zero(self, offset: int = 0, size: int | None = None) -> None:
        """Fill ``[offset, offset + size)`` (to the end by default) with zeros."""
        size = self.size - offset if size is None else size
        self._span(offset, size)
        ffi.memmove(self._base + offset, bytes(size), size)

    def memoryview(self) -> memoryview:
        """Return a writable memoryview of the span (no width guarantee on its accesses)."""
        return memoryview(ffi.buffer(self._base, self.size))

    def overlay(self, ctype: Any, offset: int = 0) -> CData:
        """Return a pointer to a C struct (or scalar) at ``offset``, declared in any ``cffi.FFI``.

        ``ctype`` is a pointer type (``ffi.typeof("struct x *")``) or, for pyvfio's own FFI, its
        name.  Field accesses are single accesses of the field's width; the pointer keeps this
        memory alive.

        Raises:
            TypeError: ``ctype`` is not a pointer type.
            ValueError: the struct does not fit at ``offset``, or ``offset`` is not aligned to it.
        """
        t = ffi.typeof(ctype) if isinstance(ctype, str) else ctype
        if getattr(t, "kind", None) != "pointer":
            raise TypeError(f"ctype must be a cffi pointer type, not {ctype!r}")
        size, align = ffi.sizeof(t.item), ffi.alignof(t.item)
        self._span(offset, size)
        if offset % align:
            raise ValueError(f"offset {offset:#x} is not aligned to {t.item.cname} ({align})")
        return self._from(t, offset, size)

    def array(self, ctype: Any, offset: int = 0, count: int | None = None) -> CData:
        """Return ``count`` items of ``ctype`` (an item type such as ``ffi.typeof("struct x")``
        or ``"uint32_t"``) from ``offset`` as a cffi array; by default as many as fit.

        Raises:
            ValueError: the array does not fit, or ``offset`` is misaligned.
        """
        t = ffi.typeof(ctype) if isinstance(ctype, str) else ctype
        size, align = ffi.sizeof(t), ffi.alignof(t)
        count = (self.size - offset) // size if count is None else count
        check_int("count", count, 1)
        self._span(offset, size * count)
        if offset % align:
            raise ValueError(f"offset {offset:#x} is not aligned to {t.cname} ({align})")
        # the array type of an item type from any FFI (ffi.getctype would re-parse the name)
        array_type = _backend.new_array_type(_backend.new_pointer_type(t), None)
        return self._from(array_type, offset, size * count)

    def _from(self, ctype: Any, offset: int, size: int) -> CData:
        # from_buffer of a slice keeps the exporting buffer alive as long as the cdata lives
        view = memoryview(ffi.buffer(self._keep))
        start = self.vaddr - int(ffi.cast("uintptr_t", self._keep)) + offset
        return ffi.from_buffer(ctype, view[start : start + size], require_writable=True)

    def sub(self, offset: int, size: int) -> DMAView:
        """Return a view of ``[offset, offset + size)`` of this view (8-aligned ``offset``)."""
        self._span(offset, size)
        start = self.vaddr - int(ffi.cast("uintptr_t", self._keep)) + offset
        return DMAView(self._buffer, start, size)

    def _span(self, offset: int, size: int) -> None:
        if type(offset) is int and type(size) is int and 0 <= offset <= offset + size <= self.size:
            return  # the common case in one line: rings zero and copy entries per command
        check_int("offset", offset)
        check_int("size", size)
        if offset + size > self.size:
            raise ValueError(f"[{offset:#x}, +{size:#x}) is outside the view of {self.size:#x}")
