"""A region mapped where the kernel lets it be: its sparse mmap areas, with pread/pwrite between.

vfio-pci (and mdev or variant drivers) may report that only parts of a BAR can be mmapped
(``VFIO_REGION_INFO_CAP_SPARSE_MMAP``): kernels before 4.16, or without MSI-X mapping support,
keep the MSI-X table page for themselves.  :class:`SparseMMIO` maps every allowed area and serves
the holes with ``pread``/``pwrite`` of the region, which the kernel virtualizes (an MSI-X table
reads all-ones and drops writes): one object with the :class:`~pyvfio.kernel.MMIO` interface, and
:attr:`SparseMMIO.holes` saying which spans are not mapped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from pyvfio.kernel import MMIO, check_access


class SparseMMIO:
    """``length`` bytes of a region: ``areas`` are ``(offset, mapping)`` pairs, sorted, disjoint;
    the rest goes through ``pread(offset, size)`` / ``pwrite(offset, data)``."""

    def __init__(self, areas: Sequence[tuple[int, MMIO]], length: int,
                 pread: Callable[[int, int], bytes], pwrite: Callable[[int, bytes], int]) -> None:
        self.areas = sorted(areas, key=lambda a: a[0])
        self._starts = [start for start, _ in self.areas]
        self._len, self._pread, self._pwrite = length, pread, pwrite
        self._closed = False
        holes, at = [], 0
        for start, m in self.areas:
            if start > at:
                holes.append((at, start))
            at = start + len(m)
        if at < length:
            holes.append((at, length))
        self.holes: tuple[tuple[int, int], ...] = tuple(holes)
        """The ``[start, end)`` spans served by pread/pwrite instead of a mapping."""

    def __repr__(self) -> str:
        holes = ", ".join(f"[{a:#x}, {b:#x})" for a, b in self.holes)
        return f"<SparseMMIO {self._len:#x} bytes, {len(self.areas)} mapped areas, holes {holes}>"

    def __len__(self) -> int:
        return self._len

    @property
    def closed(self) -> bool:
        return self._closed

    def _area(self, offset: int, size: int) -> tuple[int, MMIO] | None:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0:
            start, m = self.areas[i]
            if offset + size <= start + len(m):
                return start, m
        return None

    def _check(self, offset: int, width: int) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed mapping")
        check_access(self._len, offset, width)

    def read(self, offset: int, width: int) -> int:
        """One load in a mapped area, or a pread of ``width`` bytes in a hole."""
        self._check(offset, width)
        area = self._area(offset, width)
        if area is not None:
            return area[1].read(offset - area[0], width)
        return int.from_bytes(self._pread(offset, width), "little")

    def write(self, offset: int, width: int, value: int) -> None:
        """One store in a mapped area, or a pwrite of ``width`` bytes in a hole."""
        self._check(offset, width)
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
            raise ValueError(f"value must be an int in [0, 2**{8 * width}), not {value!r}")
        area = self._area(offset, width)
        if area is not None:
            area[1].write(offset - area[0], width, value)
        else:
            self._pwrite(offset, value.to_bytes(width, "little"))

    def read_bytes(self, offset: int, size: int) -> bytes:
        """Copy bytes out, area by area and hole by hole."""
        return b"".join(self._pieces(offset, size, None))

    def write_bytes(self, offset: int, data: bytes) -> None:
        """Copy bytes in, area by area and hole by hole."""
        self._pieces(offset, len(data), data)

    def _pieces(self, offset: int, size: int, data: bytes | None) -> list[bytes]:
        if self._closed or not 0 <= offset <= offset + size <= self._len:
            raise ValueError(f"[{offset:#x}, +{size:#x}) is outside the mapping or it is closed")
        out, at, end = [], offset, offset + size
        while at < end:
            i = bisect.bisect_right(self._starts, at) - 1
            start, m = self.areas[i] if i >= 0 else (0, None)
            if m is not None and at < start + len(m):
                n = min(end, start + len(m)) - at
                if data is None:
                    out.append(m.read_bytes(at - start, n))
                else:
                    m.write_bytes(at - start, data[at - offset : at - offset + n])
            else:
                nxt = self._starts[i + 1] if i + 1 < len(self._starts) else self._len
                n = min(end, nxt) - at
                if data is None:
                    out.append(self._pread(at, n))
                else:
                    self._pwrite(at, data[at - offset : at - offset + n])
            at += n
        return out

    def pointer_at(self, offset: int, width: int) -> Any:
        """The typed pointer to ``offset`` if it lies in a mapped area with typed pointers
        (the bound-register fast path), else None."""
        area = self._area(offset, width)
        pointer = getattr(area[1], "pointer", None) if area is not None else None
        if area is None or pointer is None:
            return None
        return pointer(width) + (offset - area[0]) // width

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` before the areas are unmapped."""
        for _, m in self.areas:
            hook = getattr(m, "on_close", None)
            if hook is not None:
                hook(callback)
                return

    def close(self) -> None:
        """Unmap every area (idempotent)."""
        self._closed = True
        for _, m in self.areas:
            m.close()
