"""The mapping table of a DMA space: the open :class:`~pyvfio.dma.Mapping` s and their indexes.

One dict by IOVA, and two :class:`~pyvfio._sorted.SortedKeys` indexes (by IOVA, and by process
address) with insert, remove and lookup O(log n), so translating ``vaddr <-> iova`` and unmapping
cost the same with 10^5 mappings as with 10; each index is built on its first use and kept from
then on: a driver that maps and unmaps whole mappings never pays for them (tools/bench part 6).
The table also forgets what the kernel unmapped, as type1 and iommufd's compat container do,
and gives the IOVAs back to the space's :class:`~pyvfio.iova.IOVAAllocator`.
:class:`pyvfio.space.DMASpace` builds on it; its underscore methods run under the space's lock.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from pyvfio._sorted import SortedKeys
from pyvfio.dma import Mapping, _hooks
from pyvfio.errors import NotMappedError
from pyvfio.iova import IOVAAllocator

U64_MAX = (1 << 64) - 1
_object_new = object.__new__


class MappingTable(ABC):
    """The open mappings of one DMA space, indexed by IOVA and by process address."""

    #: True where an unmap may cut a mapping and unmap only the requested part of it (iommufd's
    #: compat container in type1 v1 mode); type1 itself removes whole mappings only.
    _cuts_mappings = False

    @abstractmethod
    def _unmap_mapping(self, mapping: Mapping) -> None:
        """Unmap ``mapping`` in the kernel and forget it (the space's: it issues the ioctl)."""

    def _init_table(self) -> None:
        self._lock = threading.RLock()
        self._table: dict[int, Mapping] = {}
        # start IOVAs, built by _index() on the first lookup or range unmap; (vaddr, iova) keys
        # (one buffer may be mapped twice), built on the first iova(vaddr) call
        self._iovas: SortedKeys | None = None
        self._vaddrs: SortedKeys | None = None
        self._allocator: IOVAAllocator | None = None

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

