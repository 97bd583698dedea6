"""The IOAS: an iommufd IOVA address space (iommufd/ioas.c, io_pagetable.c).

An :class:`IOAS` is a :class:`pyvfio.space.DMASpace`, so a driver maps its buffers the same way
in both IOMMU modes; the differences are the kernel's: unmapping nothing is ENOENT here (type1:
success, size 0) and a range that would split a mapping is ENOENT (type1v2: EINVAL).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, ffi, new
from pyvfio.dma import IOVARange, Mapping, buffer_address, check_int
from pyvfio.space import DMASpace

if TYPE_CHECKING:
    from pyvfio.iommufd import IOMMUFD

U64_MAX = (1 << 64) - 1
_READ, _WRITE = int(C.IOMMU_IOAS_MAP_READABLE), int(C.IOMMU_IOAS_MAP_WRITEABLE)
_FIXED = int(C.IOMMU_IOAS_MAP_FIXED_IOVA)


class IOAS(DMASpace):
    """An I/O address space of an :class:`IOMMUFD`: a :class:`pyvfio.space.DMASpace` whose
    :meth:`map` lets the kernel choose the IOVA when none is given."""

    kernel_chooses_iova = True

    def __init__(self, iommufd: IOMMUFD, ioas_id: int) -> None:
        self.iommufd = iommufd  # keeps the fd alive
        self.id = ioas_id
        self._destroyed = False
        self._init_space()
        self._map_arg = new("struct iommu_ioas_map *", ioas_id=ioas_id)
        self._unmap_arg = new("struct iommu_ioas_unmap *", ioas_id=ioas_id)

    def __repr__(self) -> str:
        return f"<IOAS {self.id} of {self.iommufd!r}>"

    def _forget(self) -> None:
        self._destroyed = True
        self._release_all()

    def _space_alive(self) -> bool:
        return not (self._destroyed or self.iommufd.closed)

    def _call(self, request: int, arg: CData) -> int:
        if self._destroyed:
            raise ValueError(f"operation on destroyed {self!r}")
        return self.iommufd.call(request, arg)

    def destroy(self) -> None:
        """Destroy the IOAS and forget its mappings (idempotent).

        Raises:
            OSError: EBUSY while a HWPT or device uses it.
        """
        if not self._destroyed and not self.iommufd.closed:
            self.iommufd.destroy(self.id)
        self._forget()

    close = destroy

    def __enter__(self) -> IOAS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def _raw_map(self, vaddr: int, size: int, iova: int | None, readable: bool,
                 writable: bool) -> int:
        if self._destroyed:
            raise ValueError(f"operation on destroyed {self!r}")
        arg = self._map_arg  # reused: DMASpace holds its lock around every raw call
        arg.flags = (_READ if readable else 0) | (_WRITE if writable else 0) | (
            _FIXED if iova is not None else 0)
        arg.user_va, arg.length, arg.iova = vaddr, size, iova or 0
        fd = self.iommufd  # IOMMUFD.call inlined: two frames less on the hot path
        if fd._fd < 0:
            fd._check_open()
        _ioctl.call(fd._kernel, fd._fd, uapi.IOMMU_IOAS_MAP, arg)
        return int(arg.iova)

    def _raw_unmap(self, iova: int, size: int) -> int:
        if self._destroyed:
            raise ValueError(f"operation on destroyed {self!r}")
        arg = self._unmap_arg
        arg.iova, arg.length = iova, size
        fd = self.iommufd
        if fd._fd < 0:
            fd._check_open()
        _ioctl.call(fd._kernel, fd._fd, uapi.IOMMU_IOAS_UNMAP, arg)
        return int(arg.length)

    def map_file(self, fd: int, start: int, length: int, iova: int | None = None, *,
                 readable: bool = True, writable: bool = True) -> int:
        """Map ``length`` bytes of file ``fd`` (a memfd) from ``start``; return the IOVA.

        Raises:
            OSError: ENOTTY on kernels before 6.13, EBADF, and the errors of :meth:`map`.
        """
        check_int("fd", fd, 0, (1 << 31) - 1)
        check_int("start", start)
        check_int("length", length, 1)
        flags = _rw_flags(readable, writable)
        if iova is not None:
            check_int("iova", iova)
            flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA
        arg = new("struct iommu_ioas_map_file *", flags=flags, ioas_id=self.id, fd=fd,
                  start=start, length=length, iova=iova or 0)
        self._call(uapi.IOMMU_IOAS_MAP_FILE, arg)
        return int(arg.iova)

    def noiommu_get_pa(self, iova: int, length: int) -> tuple[int, int]:
        """``IOMMU_IOAS_NOIOMMU_GET_PA`` (7.3, CONFIG_IOMMUFD_NOIOMMU): the physical address
        behind ``iova`` and how many bytes from it are physically contiguous (at most
        ``length``), for a device doing DMA without an IOMMU.

        Raises:
            OSError: ENOTTY (before 7.3 or without CONFIG_IOMMUFD_NOIOMMU), EPERM (no
                CAP_SYS_RAWIO), ENOENT (not mapped), EOPNOTSUPP (the IOAS is not stored by a
                noiommu domain: a real IOMMU translates), EINVAL (length 0, a revoked dma-buf).
        """
        check_int("iova", iova)
        check_int("length", length, 1)
        arg = new("struct iommu_ioas_noiommu_get_pa *", ioas_id=self.id, iova=iova,
                  length=length)
        self._call(uapi.IOMMU_IOAS_NOIOMMU_GET_PA, arg)
        return int(arg.out_phys), int(arg.length)

    def unmap(self, iova: int, size: int) -> int:
        """Unmap the mappings inside ``[iova, iova + size)``; return the bytes unmapped.

        Raises:
            TypeError, ValueError: ``iova``/``size`` not ints in range, ``size`` 0.
            OSError: ENOENT if nothing is mapped there or a mapping sticks out of the range
                (mappings before that one are already gone: the kernel does not roll back).
        """
        check_int("iova", iova)
        check_int("size", size, 1, U64_MAX - iova + 1 if iova else U64_MAX)
        with self._lock:
            try:
                done = self._raw_unmap(iova, size)
            except OSError:
                self._drop_gone(iova, size, probe=True)  # ENOENT may follow partial progress
                raise
            self._drop_gone(iova, size, probe=False)
        return done

    def unmap_all(self) -> int:
        """Unmap everything (``iova 0, length U64_MAX``); return the bytes unmapped."""
        with self._lock:
            done = self._raw_unmap(0, U64_MAX)
            self._release_all()
        return done

    def _drop_gone(self, iova: int, size: int, *, probe: bool) -> None:
        """Forget the Mappings inside ``[iova, iova+size)`` the kernel no longer has."""
        for start in self._index().irange(iova, iova + size):
            m = self._table[start]
            if m.iova + m.size <= iova + size and not (probe and self._still_mapped(m)):
                self._remove(m)

    def _still_mapped(self, m: Mapping) -> bool:
        return still_mapped(self.iommufd, self.id, m.iova, m.size)

    def copy(self, mapping: Mapping, dst: IOAS | None = None, iova: int | None = None, *,
             readable: bool = True, writable: bool = True) -> Mapping:
        """Map the pages of ``mapping`` (of this IOAS) again in ``dst`` (default: this IOAS).

        Returns:
            A mapping of ``dst`` that keeps the same buffer alive.

        Raises:
            ValueError: ``mapping`` is not an open mapping of this IOAS.
            OSError: EPERM (writable copy of a read-only mapping), and the errors of :meth:`map`.
        """
        if self._table.get(getattr(mapping, "iova", -1)) is not mapping:
            raise ValueError("mapping must be an open mapping of this IOAS")
        dst = self if dst is None else dst
        if iova is not None:
            check_int("iova", iova)
        flags = _rw_flags(readable, writable)
        flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA if iova is not None else 0
        arg = new("struct iommu_ioas_copy *", flags=flags, dst_ioas_id=dst.id, src_ioas_id=self.id,
                  length=mapping.size, dst_iova=iova or 0, src_iova=mapping.iova)
        with dst._lock:
            dst._call(uapi.IOMMU_IOAS_COPY, arg)
            cdata, vaddr, size = buffer_address(mapping.buffer, writable=False)
            copy = Mapping(dst, mapping.buffer, cdata, int(arg.dst_iova), rw=(readable, writable),
                           vaddr=vaddr, size=size)
            if dst._allocator is not None:
                dst._allocator.reserve(copy.iova, copy.size)
            dst._insert(copy)
        track = getattr(mapping.buffer, "_track", None)
        if track is not None:
            track(copy)
        return copy

    def iova_ranges(self) -> tuple[IOVARange, ...]:
        """Return the usable IOVA ranges (``IOMMU_IOAS_IOVA_RANGES``, sized in two calls)."""
        return self._ranges()[0]

    @property
    def iova_alignment(self) -> int:
        """The alignment every IOVA and length must have (1 until a domain is attached)."""
        return self._ranges()[1]

    def _ranges(self) -> tuple[tuple[IOVARange, ...], int]:
        count = 4
        for _ in range(4):  # the count can grow between the calls if a device attaches
            buf = ffi.new("struct iommu_iova_range[]", count)
            arg = new("struct iommu_ioas_iova_ranges *", ioas_id=self.id, num_iovas=count,
                      allowed_iovas=int(ffi.cast("uintptr_t", buf)))
            try:
                self._call(uapi.IOMMU_IOAS_IOVA_RANGES, arg)
            except OSError as exc:
                if exc.errno != 90:  # EMSGSIZE: num_iovas now holds the count needed
                    raise
                count = int(arg.num_iovas)
                continue
            n = int(arg.num_iovas)
            ranges = tuple(IOVARange(int(buf[i].start), int(buf[i].last)) for i in range(n))
            if any(r.start > r.last for r in ranges):
                raise ValueError(f"{uapi.IOMMU_IOAS_IOVA_RANGES.name} answered an inverted range")
            return ranges, int(arg.out_iova_alignment)
        raise OSError(90, "IOVA ranges kept changing", "IOMMU_IOAS_IOVA_RANGES")

    def allow_iovas(self, ranges: list[tuple[int, int]]) -> None:
        """Restrict kernel-chosen IOVAs to ``ranges`` (inclusive ``(start, last)``); [] clears.

        Raises:
            TypeError, ValueError: malformed ranges.
            OSError: EINVAL (start >= last, overlapping ranges), EADDRINUSE (a reserved range).
        """
        ranges = list(ranges)
        buf = ffi.new("struct iommu_iova_range[]", max(len(ranges), 1))
        for i, (start, last) in enumerate(ranges):
            buf[i].start, buf[i].last = check_int("start", start), check_int("last", last)
        arg = new("struct iommu_ioas_allow_iovas *", ioas_id=self.id, num_iovas=len(ranges),
                  allowed_iovas=int(ffi.cast("uintptr_t", buf)))
        self._call(uapi.IOMMU_IOAS_ALLOW_IOVAS, arg)

    @property
    def huge_pages(self) -> bool:
        """Whether the IOAS may use large IOMMU pages (``IOMMU_OPTION_HUGE_PAGES``)."""
        return bool(self.iommufd.get_option(C.IOMMU_OPTION_HUGE_PAGES, self.id))

    @huge_pages.setter
    def huge_pages(self, value: bool) -> None:
        self.iommufd.set_option(C.IOMMU_OPTION_HUGE_PAGES, int(bool(value)), self.id)


def still_mapped(iommufd: IOMMUFD, ioas_id: int, iova: int, length: int) -> bool:
    """Whether ``[iova, +length)`` of IOAS ``ioas_id`` is still mapped (iommufd has no call
    listing an IOAS's areas): copying the range onto itself is EEXIST while it is mapped,
    ENOENT from io_pagetable.c:iopt_get_pages once its pages are gone."""
    arg = new("struct iommu_ioas_copy *", flags=_READ | _FIXED, dst_ioas_id=ioas_id,
              src_ioas_id=ioas_id, length=length, dst_iova=iova, src_iova=iova)
    try:
        iommufd.call(uapi.IOMMU_IOAS_COPY, arg)
    except OSError as exc:
        return exc.errno != errno.ENOENT
    return True  # not reached: the range cannot be free and mapped at once


def _rw_flags(readable: object, writable: object) -> int:
    if not isinstance(readable, bool) or not isinstance(writable, bool):
        raise TypeError("readable and writable must be bools")
    if not (readable or writable):
        raise ValueError("readable or writable must be True")
    flags = C.IOMMU_IOAS_MAP_READABLE if readable else 0
    return int(flags | (C.IOMMU_IOAS_MAP_WRITEABLE if writable else 0))
