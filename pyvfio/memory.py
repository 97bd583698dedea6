"""DMA memory: page-aligned buffers from anonymous memory, hugetlbfs and memfd.

A device reads and writes a driver's memory through the IOMMU, so the buffer must stay put while it
is mapped: :class:`DMABuffer` owns one ``mmap`` (never resized, never moved) and refuses to close
while a :class:`~pyvfio.dma.Mapping` of it is open (the mapping holds the buffer, the buffer knows
its mappings).  Map it with :class:`pyvfio.iova.DMAMapper` or any DMA space's ``map``.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import weakref
from typing import Any

from pyvfio._ffi import ffi
from pyvfio.dma import PAGE_SIZE, Mapping, check_int

MAP_HUGETLB = 0x40000  # <asm-generic/mman-common.h>; Python's mmap module does not export it
MAP_HUGE_SHIFT = 26  # <linux/mman.h>: log2(page size) << MAP_HUGE_SHIFT selects the pool
MFD_HUGETLB = 0x4
HUGE_2M, HUGE_1G = 2 << 20, 1 << 30
_HUGE_SIZES = {HUGE_2M: "2048kB", HUGE_1G: "1048576kB"}
SYSFS_HUGEPAGES = "/sys/kernel/mm/hugepages"


def hugepage_hint(page_size: int, pages: int) -> str:
    """Return how to reserve ``pages`` hugepages of ``page_size``, with what is free now."""
    name = _HUGE_SIZES.get(page_size, f"{page_size // 1024}kB")
    path = f"{SYSFS_HUGEPAGES}/hugepages-{name}"
    try:
        with open(f"{path}/free_hugepages", encoding="ascii") as f:
            free = f"{int(f.read())} free"
    except OSError:
        free = "this kernel has no pool of that size"
    if page_size == HUGE_2M:
        how = f"echo {pages} > /proc/sys/vm/nr_hugepages (or {path}/nr_hugepages)"
    else:
        how = f"boot with hugepagesz=1G hugepages={pages}, or echo {pages} > {path}/nr_hugepages"
    return f"{pages} x {page_size >> 20} MiB hugepages needed, {free}; reserve them as root: {how}"


class DMABuffer:
    """A page-aligned buffer for DMA: anonymous, hugetlb-backed or memfd-backed.

    Use the constructors :meth:`anonymous`, :meth:`hugetlb` and :meth:`memfd`.  The buffer supports
    the buffer protocol (``memoryview(buf)``), slicing (``buf[0:4] = b"abcd"``) and ``len``.

    Attributes:
        kind: ``"anonymous"``, ``"hugetlb"`` or ``"memfd"``.
        page_size: the page size backing it (4 KiB, 2 MiB or 1 GiB).
        fd: the memfd (``"memfd"`` only; for ``IOAS.map_file``), else -1.
    """

    def __init__(self, map_: mmap.mmap, kind: str, page_size: int, fd: int = -1) -> None:
        self._map: mmap.mmap | None = map_
        self.kind, self.page_size, self.fd = kind, page_size, fd
        self._mappings: weakref.WeakSet[Mapping] = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _release, map_, fd)

    @classmethod
    def anonymous(cls, size: int) -> DMABuffer:
        """Return a zeroed buffer of ``size`` bytes rounded up to whole pages.

        Raises:
            TypeError, ValueError: ``size`` is not a positive int.
        """
        return cls(mmap.mmap(-1, _round(size, PAGE_SIZE)), "anonymous", PAGE_SIZE)

    @classmethod
    def hugetlb(cls, size: int, page_size: int = HUGE_2M) -> DMABuffer:
        """Return a buffer backed by 2 MiB or 1 GiB hugepages, ``size`` rounded up to pages.

        Raises:
            ValueError: ``page_size`` is neither 2 MiB nor 1 GiB.
            OSError: ENOMEM when the pool has too few free pages; the message says how to
                reserve them (``echo N > /proc/sys/vm/nr_hugepages``).
        """
        size = _round(size, _huge(page_size))
        flags = mmap.MAP_PRIVATE | MAP_HUGETLB | (page_size.bit_length() - 1) << MAP_HUGE_SHIFT
        try:
            map_ = mmap.mmap(-1, size, flags=flags)
        except OSError as exc:
            raise _no_hugepages(exc, page_size, size, "mmap(MAP_HUGETLB)") from None
        return cls(map_, "hugetlb", page_size)

    @classmethod
    def memfd(cls, size: int, *, name: str = "pyvfio-dma", hugetlb: int = 0) -> DMABuffer:
        """Return a shared mapping of a new memfd (``hugetlb``: 0, 2 MiB or 1 GiB pages).

        Raises:
            OSError: EMFILE, ENOMEM (hugetlb pool empty, with the hint of :meth:`hugetlb`).
        """
        page = _huge(hugetlb) if hugetlb else PAGE_SIZE
        size = _round(size, page)
        flags = MFD_HUGETLB | (page.bit_length() - 1) << MAP_HUGE_SHIFT if hugetlb else 0
        fd = os.memfd_create(name, os.MFD_CLOEXEC | flags)
        try:
            os.ftruncate(fd, size)
            map_ = mmap.mmap(fd, size, mmap.MAP_SHARED)
        except OSError as exc:
            os.close(fd)
            raise _no_hugepages(exc, page, size, "memfd mmap") if hugetlb else exc from None
        return cls(map_, "memfd", page, fd)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self):#x} bytes at {self.vaddr:#x}"
        return f"<DMABuffer {self.kind} {state}>"

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._map is None

    @property
    def vaddr(self) -> int:
        """The buffer's address in this process."""
        return int(ffi.cast("uintptr_t", ffi.from_buffer(self._open())))

    @property
    def mappings(self) -> list[Mapping]:
        """The open DMA mappings of this buffer."""
        return [m for m in self._mappings if not m.closed]

    def __len__(self) -> int:
        return len(self._open())

    def __buffer__(self, flags: int) -> memoryview:  # PEP 688 (Python >= 3.12)
        return memoryview(self._open())

    def _dma_export(self) -> mmap.mmap:
        """The object whose buffer a DMA space maps (Python < 3.12 has no ``__buffer__``)."""
        return self._open()

    def view(self) -> memoryview:
        """Return a writable memoryview of the whole buffer."""
        return memoryview(self._open())

    def __getitem__(self, key: Any) -> Any:
        return self._open()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._open()[key] = value

    def _track(self, mapping: Mapping) -> None:
        self._mappings.add(mapping)

    def _open(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError(f"I/O operation on closed {self!r}")
        return self._map

    def close(self) -> None:
        """Free the memory (idempotent).

        Raises:
            BufferError: a DMA mapping of it is still open (the device may still write there).
        """
        if self.mappings:
            raise BufferError(f"{self!r} is still mapped for DMA: {self.mappings}; unmap first")
        if self._map is not None:
            self._map = None
            self._finalizer()

    def __enter__(self) -> DMABuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(map_: mmap.mmap, fd: int) -> None:
    with contextlib.suppress(BufferError):  # still exported: the mmap frees itself later
        map_.close()
    if fd >= 0:
        os.close(fd)


def _round(size: int, page: int) -> int:
    check_int("size", size, 1)
    return -(-size // page) * page


def _huge(page_size: int) -> int:
    if page_size not in _HUGE_SIZES:
        raise ValueError(f"page_size must be 2 MiB or 1 GiB, not {page_size:#x}")
    return page_size


def _no_hugepages(exc: OSError, page_size: int, size: int, what: str) -> OSError:
    if exc.errno not in (errno.ENOMEM, errno.EINVAL):
        return exc
    hint = hugepage_hint(page_size, size // page_size)
    return OSError(exc.errno, f"{exc.strerror}: {hint}", what)
