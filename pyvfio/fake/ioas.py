"""The IOVA side of the fake iommufd: the IOAS page table, built on :mod:`pyvfio.fake.interval`.

:class:`IOPageTable` follows drivers/iommu/iommufd/io_pagetable.c: areas (mappings), reserved
ranges (device regions, domain apertures) and allowed ranges (constrain automatic IOVAs only).
Errors are raised as ``OSError`` with the kernel's errno; the caller adds the ioctl name.
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio.fake.interval import IntervalMap, holes
from pyvfio.fake.memory import kerr

PAGE_SIZE = 4096
HPAGE_SIZE = 2 << 20  # x86 PMD size
U64_MAX = (1 << 64) - 1
ULONG_MAX = U64_MAX


class Area:
    """One mapping: where its bytes come from and what the device may do with them."""

    __slots__ = ("pages_writable", "prot", "uptr")

    def __init__(self, uptr: int, prot: int, pages_writable: bool) -> None:
        self.uptr = uptr
        self.prot = prot  # IOMMU_IOAS_MAP_{READABLE,WRITEABLE} bits
        self.pages_writable = pages_writable  # as pinned by the original MAP (iopt_alloc_pages)

    def alloc_hint(self) -> int:
        """The address iopt_alloc_iova keeps the alignment and page offset of: the user address
        (a file's or dma-buf's offset for those, io_pagetable.c:iopt_alloc_area_pages)."""
        return self.uptr

    def pin(self, memory: Any, length: int) -> None:
        """Pin the area's pages for a domain (pages.c: user memory through pin_user_pages).
        Raises EFAULT (a page not mapped, or read-only for a writable mapping)."""
        memory.check_pinnable(self.uptr, length, write=self.pages_writable)


def _fit(start: int, last: int, length: int, align: int, offset: int) -> int | None:
    """Return the first ``align``-aligned IOVA (with ``offset``) in ``[start, last]`` that fits."""
    if last - start < length - 1:
        return None
    iova = (-(-start // align) * align) | offset
    if iova > last or last - iova < length - 1:
        return None
    return iova


class IOPageTable:
    """An IOAS's IOVA space (io_pagetable.c)."""

    def __init__(self, max_alignment: int = HPAGE_SIZE) -> None:
        # iopt_alloc_iova caps the automatic alignment at HPAGE_SIZE when the kernel has
        # CONFIG_TRANSPARENT_HUGEPAGE, at PAGE_SIZE otherwise
        self.max_alignment = max_alignment
        self.areas: IntervalMap[Area] = IntervalMap()
        self.reserved: IntervalMap[object] = IntervalMap()
        self._ranges: list[tuple[int, int]] | None = None  # iova_ranges() until reserved changes
        self.allowed: IntervalMap[None] = IntervalMap()
        self.iova_alignment = 1  # iopt_init_table
        self.disable_large_pages = False
        self.domain_alignment = 1  # largest minimum page size of the attached domains

    # -- queries -----------------------------------------------------------------------------

    def iova_ranges(self) -> list[tuple[int, int]]:
        """Return the holes of the reserved ranges (ioas.c:iommufd_ioas_iova_ranges)."""
        if self._ranges is None:  # recomputed only after reserve/unreserve
            self._ranges = list(holes(0, ULONG_MAX, self.reserved))
        return list(self._ranges)

    def mapped_bytes(self) -> int:
        """Return the total length of all areas."""
        return sum(last - start + 1 for start, last, _ in self.areas.items())

    # -- allocation --------------------------------------------------------------------------

    def alloc_iova(self, uptr: int, length: int) -> int:
        """Choose an IOVA as io_pagetable.c:iopt_alloc_iova does (first fit, never 0).

        Raises:
            OSError: EOVERFLOW for absurd lengths, EINVAL if the natural alignment is below the
                table's, ENOSPC if nothing fits.
        """
        if length == 0 or length >= ULONG_MAX // 2:
            raise kerr(errno.EOVERFLOW)
        align = 1 << (length - 1).bit_length()  # roundup_pow_of_two
        if uptr:
            align = min(align, uptr & -uptr)  # keep the THP-friendly alignment of the address
        align = min(align, self.max_alignment)
        if align < self.iova_alignment:
            raise kerr(errno.EINVAL)
        offset = uptr % PAGE_SIZE
        lo, hi = PAGE_SIZE, ULONG_MAX - PAGE_SIZE
        spans = list(self.allowed.spans(lo, hi)) if len(self.allowed) else [(lo, hi)]
        for span_start, span_last in spans:
            a_start, a_last = max(span_start, lo), min(span_last, hi)
            if _fit(a_start, a_last, length, align, offset) is None:
                continue
            # the holes between areas long enough for ``length`` (shorter ones are skipped a
            # bucket at a time), minus the reserved ranges (a few): the holes of both, in order
            for g_start, g_last in self.areas.gaps(a_start, a_last, length):
                for h_start, h_last in holes(g_start, g_last, self.reserved):
                    iova = _fit(h_start, h_last, length, align, offset)
                    if iova is not None:
                        return iova
        raise kerr(errno.ENOSPC)

    def check_iova(self, iova: int, length: int) -> None:
        """Check a fixed IOVA (io_pagetable.c:iopt_check_iova).

        Raises:
            OSError: EINVAL unaligned or reserved, EOVERFLOW wrap-around, EEXIST over a mapping.
        """
        if iova % self.iova_alignment:
            raise kerr(errno.EINVAL)
        last = iova + length - 1
        if last > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        if self.reserved.first_overlap(iova, last) is not None:
            raise kerr(errno.EINVAL)
        if self.areas.first_overlap(iova, last) is not None:
            raise kerr(errno.EEXIST)

    def insert(self, iova: int | None, length: int, area: Area) -> int:
        """Place ``area`` at ``iova`` (None: choose one); return the IOVA.

        Raises:
            OSError: see :meth:`insert_pieces`.
        """
        return self.insert_pieces(iova, [(length, area)])

    def insert_pieces(self, iova: int | None, pieces: list[tuple[int, Area]]) -> int:
        """Place contiguous areas at ``iova`` (None: choose one); return the IOVA.

        Raises:
            OSError: EINVAL (length or page offset vs alignment), EPERM (writable area over
                read-only pages), and the errors of :meth:`alloc_iova` / :meth:`check_iova`.
        """
        length = sum(n for n, _ in pieces)
        if length == 0 or length % self.iova_alignment:
            raise kerr(errno.EINVAL)
        if iova is None:
            iova = self.alloc_iova(pieces[0][1].alloc_hint(), length)
        else:
            self.check_iova(iova, length)
        for _, area in pieces:
            if area.prot & 2 and not area.pages_writable:  # IOMMU_IOAS_MAP_WRITEABLE
                raise kerr(errno.EPERM)
            if (area.uptr % PAGE_SIZE) % self.iova_alignment:
                raise kerr(errno.EINVAL)
        cur = iova
        for n, area in pieces:
            self.areas.insert(cur, cur + n - 1, area)
            cur += n
        return iova

    # -- removal and lookup ------------------------------------------------------------------

    def unmap(self, start: int, last: int) -> int:
        """Remove the areas inside ``[start, last]`` in ascending order; return the bytes removed.

        Raises:
            OSError: ENOENT if an area sticks out of the range (the areas before it stay
                removed, as in iopt_unmap_iova_range) or nothing was mapped there.
        """
        unmapped = 0
        while (pos := self.areas.first_overlap(start, last)) is not None:
            a_start, a_last, _ = self.areas.get(pos)
            if a_start < start or a_last > last:
                raise kerr(errno.ENOENT)
            self.areas.pop(pos)
            unmapped += a_last - a_start + 1
        if not unmapped:
            raise kerr(errno.ENOENT)
        return unmapped

    def get_pages(self, iova: int, length: int) -> list[tuple[int, Area]]:
        """Return ``(length, area slice)`` pieces covering ``[iova, iova+length)`` contiguously.

        Raises:
            OSError: EINVAL for length 0, EOVERFLOW on wrap, ENOENT if any byte is unmapped.
        """
        if length == 0:
            raise kerr(errno.EINVAL)
        last = iova + length - 1
        if last > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        pieces: list[tuple[int, Area]] = []
        cur = iova
        while cur <= last:
            hit = self.areas.find(cur)
            if hit is None:
                raise kerr(errno.ENOENT)
            a_start, a_last, area = hit
            end = min(a_last, last)
            piece = Area(area.uptr + (cur - a_start), area.prot, area.pages_writable)
            pieces.append((end - cur + 1, piece))
            cur = end + 1
        return pieces

    def translate(self, iova: int) -> tuple[int, int, int] | None:
        """Return ``(user address, bytes left in the area, prot)`` for ``iova``, or None."""
        hit = self.areas.find(iova)
        if hit is None:
            return None
        start, last, area = hit
        return area.uptr + (iova - start), last - iova + 1, area.prot

    # -- reserved and allowed ranges ---------------------------------------------------------

    def reserve(self, start: int, last: int, owner: object) -> None:
        """Reserve ``[start, last]`` for ``owner`` (io_pagetable.c:iopt_reserve_iova).

        Raises:
            OSError: EADDRINUSE over a mapping or an allowed range.
        """
        if self.areas.first_overlap(start, last) is not None:
            raise kerr(errno.EADDRINUSE)
        if self.allowed.first_overlap(start, last) is not None:
            raise kerr(errno.EADDRINUSE)
        self._ranges = None
        if self.reserved.first_overlap(start, last) is None:
            self.reserved.insert(start, last, owner)
            return
        # overlapping reservations of different owners are merged in the kernel's tree too;
        # keep the owner list simple: store a separate piece for the uncovered parts
        for h_start, h_last in holes(start, last, self.reserved):
            self.reserved.insert(h_start, h_last, owner)

    def unreserve(self, owner: object) -> None:
        """Drop every reservation of ``owner``."""
        keep = [(s, last, o) for s, last, o in self.reserved.items() if o is not owner]
        self.reserved.clear()
        self._ranges = None
        for s, last, o in keep:
            self.reserved.insert(s, last, o)

    def set_allowed(self, ranges: list[tuple[int, int]]) -> None:
        """Replace the allowed ranges (ioas.c:iommufd_ioas_allow_iovas).

        Raises:
            OSError: EINVAL for an empty/inverted or overlapping range, EADDRINUSE over a
                reserved range (the old list is kept).
        """
        new: IntervalMap[None] = IntervalMap()
        for start, last in ranges:
            if start >= last or new.first_overlap(start, last) is not None:
                raise kerr(errno.EINVAL)
            new.insert(start, last, None)
        for start, last in new.spans():
            if self.reserved.first_overlap(start, last) is not None:
                raise kerr(errno.EADDRINUSE)
        self.allowed = new

    def update_alignment(self, domain_alignment: int) -> None:
        """Recompute ``iova_alignment`` from the domains (iopt_calculate_iova_alignment).

        Raises:
            OSError: EADDRINUSE if an existing area does not satisfy the new alignment.
        """
        align = max(domain_alignment, PAGE_SIZE if self.disable_large_pages else 1)
        for start, last, area in self.areas.items():
            if start % align or (last + 1) % align or (area.uptr % PAGE_SIZE) % align:
                raise kerr(errno.EADDRINUSE)
        self.domain_alignment = domain_alignment
        self.iova_alignment = align
