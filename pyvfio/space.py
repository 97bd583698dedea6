"""The one DMA space: argument checks, IOVA choice and Mapping lifecycle of every IOMMU mode.

A legacy :class:`~pyvfio.container.Container` (type1, and iommufd's compat container) and an
iommufd :class:`~pyvfio.ioas.IOAS` are DMA spaces: each supplies only three raw operations
(``_raw_map``, ``_raw_unmap``, ``iova_ranges``) and this class does the rest the same way for all:

- ``map(buffer, iova=None)``: with no IOVA, iommufd lets the kernel choose (``IOMMU_IOAS_MAP``
  without ``FIXED_IOVA``); type1 has no such call, so an :class:`~pyvfio.iova.IOVAAllocator` picks
  one inside the kernel's IOVA ranges and below :attr:`DMASpace.dma_mask`;
- one table of the open :class:`~pyvfio.dma.Mapping` s, :class:`~pyvfio.space_table.MappingTable`
  (insert, remove, lookup and translation O(log n));
- one lock around table and ioctl: two threads mapping into one space never get overlapping
  IOVAs, and an unmap the kernel refused leaves the mapping open and indexed.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from typing import Any

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
from pyvfio.iova import IOVAAllocator
from pyvfio.space_table import U64_MAX, MappingTable

_object_new = object.__new__
_HUGE_ALIGN = 2 << 20  # the largest alignment the allocator gives a big buffer (a 2 MiB page)


class DMASpace(MappingTable, ABC):
    """An IOMMU address space: map buffers for a device, unmap them, translate addresses.

    Attributes:
        dma_mask: the highest IOVA a chosen IOVA may reach (the device's DMA mask; default all
            64 bits).  A given IOVA is not checked against it: the caller knows best.
        kernel_chooses_iova: True where the kernel picks IOVAs (iommufd).
    """

    kernel_chooses_iova = False
    dma_mask = U64_MAX

    def _init_space(self) -> None:
        self._init_table()

    # -- what each IOMMU mode supplies -----------------------------------------------------

    @abstractmethod
    def _raw_map(self, vaddr: int, size: int, iova: int | None, readable: bool,
                 writable: bool) -> int:
        """Map ``[vaddr, +size)`` at ``iova`` (None: the kernel chooses); return the IOVA."""

    @abstractmethod
    def _raw_unmap(self, iova: int, size: int) -> int:
        """Unmap ``[iova, +size)``; return the bytes unmapped."""

    @abstractmethod
    def iova_ranges(self) -> tuple[IOVARange, ...]:
        """Return the IOVA ranges the devices may use."""

    def _space_alive(self) -> bool:
        """False once the kernel object is gone (its mappings went with it)."""
        return True

    # -- mapping and unmapping --------------------------------------------------------------

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



__all__ = ["PAGE_SIZE", "DMASpace", "IOVARange", "Mapping"]
