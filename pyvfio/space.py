"""The one DMA space: the mapping table, argument checks and Mapping lifecycle of every IOMMU mode.

A legacy :class:`~pyvfio.container.Container` (type1, and iommufd's compat container) and an
iommufd :class:`~pyvfio.ioas.IOAS` are DMA spaces: each supplies only three raw operations
(``_raw_map``, ``_raw_unmap``, ``iova_ranges``) and this class does the rest the same way for all:

- ``map(buffer, iova=None)``: with no IOVA, iommufd lets the kernel choose (``IOMMU_IOAS_MAP``
  without ``FIXED_IOVA``); type1 has no such call, so an :class:`~pyvfio.iova.IOVAAllocator` picks
  one inside the kernel's IOVA ranges and below :attr:`DMASpace.dma_mask`;
- one table of the open :class:`~pyvfio.dma.Mapping` s (a dict by IOVA), indexed by IOVA and by
  process address in :class:`~pyvfio._sorted.SortedKeys` (insert, remove and lookup O(log n)),
  so translating ``vaddr <-> iova`` and unmapping cost the same with 10^5 mappings as with 10;
  each index is built on its first use and kept from then on: a driver that maps and unmaps
  whole mappings never pays for them (the hot path: tools/bench part 6);
- one lock around table and ioctl: two threads mapping into one space never get overlapping
  IOVAs, and an unmap the kernel refused leaves the mapping open and indexed.
"""

from __future__ import annotations

import errno
import threading
from abc import ABC, abstractmethod
from typing import Any

from pyvfio._sorted import SortedKeys
from pyvfio.dma import (
    _CHARS,
    _HOOKS,
    _UINTPTR,
    PAGE_SIZE,
    IOVARange,
    Mapping,
    _cast,
    _from_buffer,
    _hooks,
    allocate,
    buffer_address,
    check_int,
)
from pyvfio.errors import NotMappedError
from pyvfio.iova import IOVAAllocator

U64_MAX = (1 << 64) - 1
_object_new = object.__new__
_HUGE_ALIGN = 2 << 20  # the largest alignment the allocator gives a big buffer (a 2 MiB page)


class DMASpace(ABC):
    """An IOMMU address space: map buffers for a device, unmap them, translate addresses.

    Attributes:
        dma_mask: the highest IOVA a chosen IOVA may reach (the device's DMA mask; default all
            64 bits).  A given IOVA is not checked against it: the caller knows best.
        kernel_chooses_iova: True where the kernel picks IOVAs (iommufd).
    """

    kernel_chooses_iova = False
    dma_mask = U64_MAX

    def _init_space(self) -> None:
        self._lock = threading.RLock()
        self._table: dict[int, Mapping] = {}
        # start IOVAs, built by _index() on the first lookup or range unmap; (vaddr, iova) keys
        # (one buffer may be mapped twice), built on the first iova(vaddr) call
        self._iovas: SortedKeys | None = None
        self._vaddrs: SortedKeys | None = None
        self._allocator: IOVAAllocator | None = None

    # -- what each IOMMU mode supplies -----------------------------------------------------

    @abstractmethod
    def _raw_map(self, vaddr: int, size: int, iova: int | None, readable: bool,
                 writable: bool) -> int:
        """Map ``[vaddr, +size)`` at ``iova`` (None: the kernel chooses); return the IOVA."""
        raise NotImplementedError

    @abstractmethod
    def _raw_unmap(self, iova: int, size: int) -> int:
        """Unmap ``[iova, +size)``; return the bytes unmapped."""
        raise NotImplementedError

    @abstractmethod
    def iova_ranges(self) -> tuple[IOVARange, ...]:
        """Return the IOVA ranges the devices may use."""
        raise NotImplementedError

    def _space_alive(self) -> bool:
        """False once the kernel object is gone (its mappings went with it)."""
        return True

    # -- the table -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._table)

    def mappings(self) -> list[Mapping]:
        """Return the open mappings, lowest IOVA first."""
        with self._lock:
            return [self._table[i] for i in sorted(self._table)]

    def _index(self) -> SortedKeys:
        """The IOVA index, built from the table on first use (call under the lock)."""
        if self._iovas is None:
            self._iovas = SortedKeys()
            for iova in sorted(self._table):
                self._iovas.add(iova)
        return self._iovas

    def map(self, buffer: Any, iova: int | None = None, *,  # noqa: C901, PLR0912, PLR0915
            readable: bool = True, writable: bool = True,
            dma_mask: int | None = None) -> Mapping:
        """Map all of ``buffer`` (page aligned: :func:`pyvfio.dma.allocate`, a
        :class:`~pyvfio.memory.DMABuffer`) at ``iova``, or at an IOVA chosen for it (None).

        With no ``iova`` the kernel chooses under iommufd (the lowest free IOVA aligned like the
        buffer, retried below :attr:`dma_mask` if it chose above); on a legacy container pyvfio
        allocates one (best fit, page aligned, up to 2 MiB aligned for big buffers).
        ``dma_mask`` bounds a chosen IOVA for this call instead of :attr:`dma_mask` (a device
        with a narrower mask sharing the space).

        Returns:
            The mapping; it keeps ``buffer`` alive until closed.

        Raises:
            TypeError: ``buffer`` exports no (writable, when ``writable``) buffer; a bad ``iova``.
            ValueError: neither readable nor writable, unaligned or empty buffer, ``iova`` or
                ``dma_mask`` out of range.
            IOVAExhaustedError: no free IOVA block fits below :attr:`dma_mask`.
            OSError: the kernel's refusal (EEXIST overlap, EINVAL unaligned or outside the IOVA
                ranges, ENOSPC entry limit, ENOMEM memlock, EFAULT bad memory, ...).
        """
        # The hot path of a driver (tools/bench part 6): buffer_address, _place, Mapping() and
        # _insert inlined for the common case; anything unusual takes the general helpers.
        limit = self.dma_mask if dma_mask is None else check_int("dma_mask", dma_mask,
                                                                  PAGE_SIZE - 1)
        if (readable is not True and readable is not False) or \
                (writable is not True and writable is not False):
            raise TypeError("readable and writable must be bools")
        if not (readable or writable):
            raise ValueError("readable or writable must be True")
        if iova is not None and (type(iova) is not int or not 0 <= iova <= U64_MAX):
            check_int("iova", iova)
        kind = type(buffer)
        export, track = _HOOKS.get(kind) or _hooks(kind)
        cdata = None
        if export is None:  # a plain buffer (mmap, bytearray, ...): no DMABuffer export
            try:
                cdata = _from_buffer(_CHARS, buffer, writable)
            except (TypeError, BufferError):
                pass  # buffer_address says what is wrong
            else:
                vaddr, size = int(_cast(_UINTPTR, cdata)), len(cdata)
        if cdata is None or not size or (vaddr | size) % PAGE_SIZE:
            cdata, vaddr, size = buffer_address(buffer, writable=writable)
        lock = self._lock
        lock.acquire()  # not `with`: acquire/release cost half as much (the hot path)
        try:
            if iova is not None:
                self._raw_map(vaddr, size, iova, readable, writable)
                at = iova
                if self._allocator is not None:
                    self._allocator._reserve(iova, iova + size)
            elif not self.kernel_chooses_iova:
                at = self._place(vaddr, size, readable, writable, limit)
            else:
                at = self._raw_map(vaddr, size, None, readable, writable)
                if at + size - 1 > limit:  # above the device's mask: choose ourselves
                    self._raw_unmap(at, size)
                    at = self._place(vaddr, size, readable, writable, limit)
                elif self._allocator is not None:
                    self._allocator._reserve(at, at + size)
            mapping = _object_new(Mapping)
            mapping._owner, mapping._buffer, mapping._cdata = self, buffer, cdata
            mapping.iova, mapping.size, mapping.vaddr = at, size, vaddr
            mapping.readable, mapping.writable = readable, writable
            self._table[at] = mapping
            if self._iovas is not None:
                self._iovas.add(at)
            if self._vaddrs is not None:
                self._vaddrs.add((vaddr, at))
        finally:
            lock.release()
        if track is not None:
            track(buffer, mapping)  # a DMABuffer refuses to close while mapped
        return mapping

    def allocate(self, size: int, *, readable: bool = True, writable: bool = True) -> Mapping:
        """Allocate ``size`` bytes of zeroed, page-aligned memory (rounded up to pages) and map
        it as :meth:`map` does with no IOVA; ``mapping.buffer`` is the memory (an ``mmap``).

        Raises:
            TypeError, ValueError: ``size`` is not a positive int.
            And as :meth:`map`.
        """
        return self.map(allocate(size), readable=readable, writable=writable)

    def _place(self, vaddr: int, size: int, readable: bool, writable: bool, limit: int) -> int:
        """Allocate an IOVA for ``[vaddr, +size)`` at or below ``limit`` and map it there."""
        allocator = self._allocator or self._iova_allocator()
        align = 1 << (size.bit_length() - 1)  # size and align are whole pages
        at = allocator._alloc(size, align if align < _HUGE_ALIGN else _HUGE_ALIGN, limit)
        try:
            self._raw_map(vaddr, size, at, readable, writable)
        except BaseException as exc:  # _collided re-raises what it must
            return self._collided(exc, at, vaddr, size, readable, writable, limit)
        return at

    def _collided(self, exc: BaseException, at: int, vaddr: int, size: int, readable: bool,
                  writable: bool, limit: int) -> int:
        """Map at a chosen IOVA again after the map at ``at`` failed with ``exc``; return the
        IOVA mapped, or give ``at`` back and raise ``exc`` if it is not EEXIST."""
        allocator = self._iova_allocator()
        align = min(1 << (size.bit_length() - 1), _HUGE_ALIGN)
        collisions = 0
        while True:
            if not isinstance(exc, OSError) or exc.errno != errno.EEXIST:
                allocator.release(at, size)
                raise exc
            # Mapped outside this space (another IOAS object, IOAS.map_file, a raw ioctl).
            # Neither type1 nor iommufd has a call listing the mappings, so pyvfio learns
            # by retrying: the block stays taken, the next collision takes twice as much
            # beyond it (a foreign area of n bytes costs log2(n / size) tries), and the
            # free space shrinks each time, so this ends, at worst in IOVAExhaustedError.
            # IOVAs taken that way stay taken until the space forgets everything.
            allocator._reserve(at, at + (size << collisions))
            collisions += 1
            at = allocator._alloc(size, align, limit)
            try:
                self._raw_map(vaddr, size, at, readable, writable)
            except BaseException as again:  # the loop re-raises what it must
                exc = again
                continue
            return at

    def _iova_allocator(self) -> IOVAAllocator:
        if self._allocator is None:
            allocator = IOVAAllocator(self.iova_ranges())
            for m in self._table.values():
                allocator.reserve(m.iova, m.size)
            self._allocator = allocator
        return self._allocator

    def _insert(self, mapping: Mapping) -> None:
        self._table[mapping.iova] = mapping
        if self._iovas is not None:
            self._iovas.add(mapping.iova)
        if self._vaddrs is not None:
            self._vaddrs.add((mapping.vaddr, mapping.iova))

    def _remove(self, mapping: Mapping) -> None:
        """Forget ``mapping`` (the kernel no longer has it) and give its IOVAs back."""
        self._unindex(mapping)
        if self._allocator is not None:
            self._allocator.release(mapping.iova, mapping.size)
        mapping._release()

    #: True where an unmap may cut a mapping and unmap only the requested part of it (iommufd's
    #: compat container in type1 v1 mode); type1 itself removes whole mappings only.
    _cuts_mappings = False

    def _forget_unmapped(self, iova: int, size: int, done: int) -> None:
        """Forget what the kernel just unmapped of ``[iova, iova + size)``: ``done`` bytes.

        type1 removes whole mappings, those starting inside the range, lowest first, and stops
        early where v1 finds a mapping starting below ``iova`` (nothing unmapped; one starting
        inside and reaching past the end goes whole): vfio_iommu_type1.c:vfio_dma_do_unmap.  So
        the mappings forgotten are the prefix the ``done`` bytes pay for.  Where the kernel cuts
        (:attr:`_cuts_mappings`), the unmapped part of each mapping is cut out of it instead.
        """
        if self._cuts_mappings:
            first = self._index().floor(iova)
            starts = ([first] if first is not None and first < iova else [])
            for start in starts + self._index().irange(iova, iova + size):
                self._cut(self._table[start], iova, iova + size)
            return
        for start in self._index().irange(iova, iova + size):
            mapping = self._table[start]
            if mapping.size > done:
                break
            done -= mapping.size
            self._remove(mapping)

    def _cut(self, mapping: Mapping, lo: int, hi: int) -> None:
        """Take ``[lo, hi)`` out of ``mapping``: what remains stays mapped and open (the
        mapping keeps its buffer), a remainder past the hole becomes a mapping of its own."""
        start, end = mapping.iova, mapping.iova + mapping.size
        lo, hi = max(lo, start), min(hi, end)
        if lo >= hi:
            return
        if lo == start and hi == end:
            self._remove(mapping)
            return
        if self._allocator is not None:
            self._allocator._release(lo, hi)
        vaddr = mapping.vaddr
        self._unindex(mapping)
        if lo > start:  # the mapping keeps its head; a tail past the hole is a new mapping
            mapping.size = lo - start
            if hi < end:
                self._add_piece(mapping, hi, end - hi, vaddr + hi - start)
        else:  # the head went: the mapping is its tail now
            mapping.iova, mapping.size, mapping.vaddr = hi, end - hi, vaddr + hi - start
        self._insert(mapping)

    def _add_piece(self, whole: Mapping, iova: int, size: int, vaddr: int) -> None:
        piece: Mapping = _object_new(Mapping)
        piece._owner, piece._buffer, piece._cdata = self, whole._buffer, whole._cdata
        piece.iova, piece.size, piece.vaddr = iova, size, vaddr
        piece.readable, piece.writable = whole.readable, whole.writable
        self._insert(piece)
        track = _hooks(type(whole._buffer))[1]
        if track is not None:
            track(whole._buffer, piece)  # a DMABuffer stays open while any piece is mapped

    def _unindex(self, mapping: Mapping) -> None:
        del self._table[mapping.iova]
        if self._iovas is not None:
            self._iovas.remove(mapping.iova)
        if self._vaddrs is not None:
            self._vaddrs.remove((mapping.vaddr, mapping.iova))

    def _release_all(self) -> None:
        """Forget every mapping: the kernel dropped them all (last group gone, fd closed)."""
        with self._lock:
            for mapping in self._table.values():
                mapping._release()
            self._table.clear()
            self._iovas = self._vaddrs = None
            self._allocator = None  # the IOVA ranges may differ next time

    def _unmap_mapping(self, mapping: Mapping) -> None:
        iova = mapping.iova
        lock = self._lock
        lock.acquire()  # as in _map
        try:
            if self._table.get(iova) is not mapping:
                mapping._release()  # forgotten already (an unmap of its range)
            else:
                try:
                    self._raw_unmap(iova, mapping.size)
                except Exception:
                    if self._space_alive():
                        raise  # the kernel refused: it stays mapped, indexed
                    self._release_all()  # the space is gone, and its mappings with it
                    return
                del self._table[iova]  # _remove, inlined: the hot path
                if self._iovas is not None:
                    self._iovas.remove(iova)
                if self._vaddrs is not None:
                    self._vaddrs.remove((mapping.vaddr, iova))
                if self._allocator is not None:
                    self._allocator._release(iova, iova + mapping.size)
                mapping._owner = mapping._cdata = None
        finally:
            lock.release()

    def unmap(self, iova: int, size: int) -> int:
        """Unmap the mappings starting inside ``[iova, iova + size)``; return the bytes unmapped.

        The table keeps what the kernel says it did: type1 v1 unmaps nothing when a mapping
        starts below ``iova`` (0 bytes), and iommufd's compat container in v1 mode cuts
        mappings (what remains of one stays open; a remainder past the hole is a new mapping).

        Raises:
            TypeError, ValueError: ``iova``/``size`` not ints in range, ``size`` 0.
            OSError: the kernel's refusal (type1v2: EINVAL to split a mapping; iommufd: ENOENT
                for nothing mapped or a split).
        """
        check_int("iova", iova)
        check_int("size", size, 1, U64_MAX - iova + 1 if iova else U64_MAX)
        with self._lock:
            done = self._raw_unmap(iova, size)
            self._forget_unmapped(iova, size, done)
        return done

    def unmap_dma_all(self) -> list[tuple[str, BaseException]]:
        """Unmap each open mapping; return the failures (the close path: it never raises)."""
        failures: list[tuple[str, BaseException]] = []
        for mapping in self.mappings():
            try:
                mapping.close()
            except Exception as exc:
                failures.append((f"unmap IOVA {mapping.iova:#x}+{mapping.size:#x}", exc))
        return failures

    # -- translation -----------------------------------------------------------------------

    def lookup(self, iova: int) -> Mapping:
        """Return the open mapping that covers ``iova``.

        Raises:
            NotMappedError: no mapping covers it.
        """
        with self._lock:
            start = self._index().floor(iova)
            if start is not None:
                m = self._table[start]
                if iova < start + m.size:
                    return m
        raise NotMappedError(f"IOVA {iova:#x} is in no DMA mapping of {self!r}")

    def vaddr(self, iova: int) -> int:
        """Translate an IOVA of an open mapping to the process address.

        Raises:
            NotMappedError: no mapping covers ``iova``.
        """
        m = self.lookup(iova)
        return m.vaddr + iova - m.iova

    def iova(self, vaddr: int) -> int:
        """Translate a process address inside a mapped buffer to the device's IOVA.

        Raises:
            NotMappedError: no mapping covers ``vaddr``.
        """
        with self._lock:
            if self._vaddrs is None:
                self._vaddrs = SortedKeys()
                for m in self._table.values():
                    self._vaddrs.add((m.vaddr, m.iova))
            key = self._vaddrs.floor((vaddr, U64_MAX))
            if key is not None:
                m = self._table[key[1]]
                if vaddr < key[0] + m.size:
                    return m.iova + vaddr - int(key[0])
        raise NotMappedError(f"address {vaddr:#x} is in no DMA mapping of {self!r}")


__all__ = ["PAGE_SIZE", "DMASpace", "IOVARange", "Mapping"]
