"""iommufd (/dev/iommu): the context fd, its objects, and the IOAS, an IOVA address space.

An :class:`IOMMUFD` owns objects named by small integer ids (IOAS, HWPT, DEVICE, FAULT); closing
the fd destroys them all (iommufd/main.c:iommufd_fops_release).  An :class:`IOAS` implements
:class:`pyvfio.dma.DMASpace`, so a driver maps its buffers the same way in both IOMMU modes; the
differences are the kernel's: unmapping nothing is ENOENT here (type1: success, size 0) and a
range that would split a mapping is ENOENT (type1v2: EINVAL).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.dma import IOVARange, Mapping, buffer_address, check_int
from pyvfio.kernel import Kernel, default

PATH = "/dev/iommu"
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class HwInfo:
    """``IOMMU_GET_HW_INFO`` of a bound device.

    Attributes:
        data_type: ``IOMMU_HW_INFO_TYPE_*`` (1 = Intel VT-d).
        data: the driver-specific struct (``struct iommu_hw_info_vtd`` on VT-d).
        capabilities: ``IOMMU_HW_CAP_*`` bits (1 = dirty tracking).
        max_pasid_log2: PASID width, 0 without PASID support.
    """

    data_type: int
    data: bytes
    capabilities: int
    max_pasid_log2: int

    @property
    def dirty_tracking(self) -> bool:
        """True if the IOMMU can track pages the device writes."""
        return bool(self.capabilities & C.IOMMU_HW_CAP_DIRTY_TRACKING)


class IOMMUFD(FdOwner):
    """An open /dev/iommu.  Children (devices, fault queues) are closed before it."""

    def __init__(self, kernel: Kernel | None = None) -> None:
        """Open /dev/iommu.

        Raises:
            OSError: ENOENT on kernels without iommufd (Debian's stock kernels), EACCES.
        """
        kernel = default() if kernel is None else kernel
        self._children: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ioases: weakref.WeakSet[IOAS] = weakref.WeakSet()
        self._own(kernel, kernel.open(PATH))

    def __repr__(self) -> str:
        return f"<IOMMUFD {PATH} fd={self._fd}>"

    def _close_children(self) -> None:
        try:
            for child in list(self._children):
                child.close()  # bound devices and fault fds hold the context
        finally:
            for ioas in list(self._ioases):
                ioas._forget()  # the kernel destroys every object with the fd

    def _adopt(self, child: Any) -> None:
        self._children.add(child)

    def call(self, request: int, arg: CData | int = 0) -> int:
        """Issue one ioctl on this fd (for the modules of this package)."""
        self._check_open()
        return _ioctl.call(self._kernel, self._fd, request, arg)

    @property
    def kernel(self) -> Kernel:
        """The kernel this fd belongs to."""
        return self._kernel

    def ioas(self) -> IOAS:
        """Allocate an IOAS (``IOMMU_IOAS_ALLOC``).

        Raises:
            OSError: ENOMEM.
        """
        arg = new("struct iommu_ioas_alloc *")
        self.call(uapi.IOMMU_IOAS_ALLOC, arg)
        ioas = IOAS(self, int(arg.out_ioas_id))
        self._ioases.add(ioas)
        return ioas

    def destroy(self, obj_id: int) -> None:
        """Destroy object ``obj_id`` (``IOMMU_DESTROY``).

        Raises:
            OSError: ENOENT (no such object), EBUSY (in use: an IOAS with a HWPT, an attached
                HWPT, any DEVICE).
        """
        check_int("obj_id", obj_id, 0, U32_MAX)
        self.call(uapi.IOMMU_DESTROY, new("struct iommu_destroy *", id=obj_id))

    def get_option(self, option_id: int, object_id: int = 0) -> int:
        """Return ``IOMMU_OPTION`` ``option_id`` (GET).

        Raises:
            OSError: EOPNOTSUPP (unknown option, or an object id for a global one), ENOENT.
        """
        return self._option(option_id, C.IOMMU_OPTION_OP_GET, object_id, 0)

    def set_option(self, option_id: int, value: int, object_id: int = 0) -> None:
        """Set ``IOMMU_OPTION`` ``option_id`` to ``value``.

        Raises:
            OSError: EOPNOTSUPP, ENOENT, EINVAL (bad value), EPERM (RLIMIT mode without
                CAP_SYS_RESOURCE), EBUSY (RLIMIT mode once objects exist).
        """
        check_int("value", value)
        self._option(option_id, C.IOMMU_OPTION_OP_SET, object_id, value)

    def _option(self, option_id: int, op: int, object_id: int, value: int) -> int:
        check_int("option_id", option_id, 0, U32_MAX)
        check_int("object_id", object_id, 0, U32_MAX)
        arg = new("struct iommu_option *", option_id=option_id, op=op, object_id=object_id,
                  val64=value)
        self.call(uapi.IOMMU_OPTION, arg)
        return int(arg.val64)

    @property
    def rlimit_mode_mm(self) -> bool:
        """True if pinned pages count against the process (mm), False per user (default)."""
        return bool(self.get_option(C.IOMMU_OPTION_RLIMIT_MODE))

    @rlimit_mode_mm.setter
    def rlimit_mode_mm(self, value: bool) -> None:
        self.set_option(C.IOMMU_OPTION_RLIMIT_MODE, int(bool(value)))

    def hw_info(self, dev_id: int, data_len: int = 64) -> HwInfo:
        """Return ``IOMMU_GET_HW_INFO`` of bound device ``dev_id``.

        Raises:
            OSError: ENOENT (not a bound device), EOPNOTSUPP.
        """
        check_int("dev_id", dev_id, 1, U32_MAX)
        check_int("data_len", data_len, 0, 1 << 16)
        buf = ffi.new("uint8_t[]", max(data_len, 1))
        arg = new("struct iommu_hw_info *", dev_id=dev_id, data_len=data_len,
                  data_uptr=int(ffi.cast("uintptr_t", buf)))
        self.call(uapi.IOMMU_GET_HW_INFO, arg)
        n = min(int(arg.data_len), data_len)
        return HwInfo(int(arg.out_data_type), bytes(ffi.buffer(buf, n)),
                      int(arg.out_capabilities), int(arg.out_max_pasid_log2))

    def vfio_ioas(self) -> int | None:
        """Return the id of the IOAS VFIO compat uses (``IOMMU_VFIO_IOAS`` GET), or None."""
        arg = new("struct iommu_vfio_ioas *", op=C.IOMMU_VFIO_IOAS_GET)
        try:
            self.call(uapi.IOMMU_VFIO_IOAS, arg)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV: no compat IOAS yet (vfio_compat.c)
                return None
            raise
        return int(arg.ioas_id)

    def set_vfio_ioas(self, ioas: IOAS | None) -> None:
        """Make ``ioas`` the VFIO-compat IOAS (SET), or forget it with None (CLEAR).

        Raises:
            OSError: ENOENT (no such IOAS).
        """
        if ioas is None:
            arg = new("struct iommu_vfio_ioas *", op=C.IOMMU_VFIO_IOAS_CLEAR)
        else:
            arg = new("struct iommu_vfio_ioas *", op=C.IOMMU_VFIO_IOAS_SET, ioas_id=ioas.id)
        self.call(uapi.IOMMU_VFIO_IOAS, arg)


class IOAS:
    """An I/O address space of an :class:`IOMMUFD`.  Implements :class:`pyvfio.dma.DMASpace`."""

    def __init__(self, iommufd: IOMMUFD, ioas_id: int) -> None:
        self.iommufd = iommufd  # keeps the fd alive
        self.id = ioas_id
        self._mappings: dict[int, Mapping] = {}
        self._destroyed = False

    def __repr__(self) -> str:
        return f"<IOAS {self.id} of {self.iommufd!r}>"

    def _forget(self) -> None:
        self._destroyed = True
        for mapping in self._mappings.values():
            mapping._release()
        self._mappings.clear()

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

    def map(
        self, buffer: Any, iova: int | None = None, *, readable: bool = True, writable: bool = True
    ) -> Mapping:
        """Map all of ``buffer`` (page aligned) at ``iova``, or where the kernel chooses (None).

        The kernel chooses the lowest free IOVA aligned like the buffer (never 0).

        Raises:
            TypeError, ValueError: bad buffer, iova or flags (before any system call).
            OSError: EEXIST (overlaps a mapping), EINVAL (reserved or unaligned), ENOSPC (no
                room), EFAULT / ENOMEM (pinning, once a domain is attached).
        """
        if iova is not None:
            check_int("iova", iova)
        flags = _rw_flags(readable, writable)
        cdata, vaddr, size = buffer_address(buffer, writable=writable)
        flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA if iova is not None else 0
        arg = new("struct iommu_ioas_map *", flags=flags, ioas_id=self.id, user_va=vaddr,
                  length=size, iova=iova or 0)
        self._call(uapi.IOMMU_IOAS_MAP, arg)
        mapping = Mapping(self, buffer, cdata, int(arg.iova), rw=(readable, writable))
        self._mappings[mapping.iova] = mapping
        return mapping

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

    def unmap(self, iova: int, size: int) -> int:
        """Unmap the mappings inside ``[iova, iova + size)``; return the bytes unmapped.

        Raises:
            TypeError, ValueError: ``iova``/``size`` not ints in range, ``size`` 0.
            OSError: ENOENT if nothing is mapped there or a mapping sticks out of the range
                (mappings before that one are already gone: the kernel does not roll back).
        """
        check_int("iova", iova)
        check_int("size", size, 1, U64_MAX - iova + 1 if iova else U64_MAX)
        arg = new("struct iommu_ioas_unmap *", ioas_id=self.id, iova=iova, length=size)
        try:
            self._call(uapi.IOMMU_IOAS_UNMAP, arg)
        except OSError:
            self._drop_gone(iova, size, probe=True)  # ENOENT may follow partial progress
            raise
        self._drop_gone(iova, size, probe=False)
        return int(arg.length)

    def unmap_all(self) -> int:
        """Unmap everything (``iova 0, length U64_MAX``); return the bytes unmapped."""
        arg = new("struct iommu_ioas_unmap *", ioas_id=self.id, iova=0, length=U64_MAX)
        self._call(uapi.IOMMU_IOAS_UNMAP, arg)
        for mapping in self._mappings.values():
            mapping._release()
        self._mappings.clear()
        return int(arg.length)

    def _drop_gone(self, iova: int, size: int, *, probe: bool) -> None:
        """Release the Mappings inside ``[iova, iova+size)`` the kernel no longer has."""
        for start in [s for s in self._mappings if iova <= s < iova + size]:
            m = self._mappings[start]
            if m.iova + m.size <= iova + size and not (probe and self._still_mapped(m)):
                self._mappings.pop(start)._release()

    def _still_mapped(self, m: Mapping) -> bool:
        # copying the range onto itself: EEXIST if it is still mapped, ENOENT from
        # io_pagetable.c:iopt_get_pages if its pages are gone
        arg = new("struct iommu_ioas_copy *", flags=C.IOMMU_IOAS_MAP_READABLE
                  | C.IOMMU_IOAS_MAP_FIXED_IOVA, dst_ioas_id=self.id, src_ioas_id=self.id,
                  length=m.size, dst_iova=m.iova, src_iova=m.iova)
        try:
            self.iommufd.call(uapi.IOMMU_IOAS_COPY, arg)
        except OSError as exc:
            return exc.errno != 2  # ENOENT
        return True  # not reached: the range cannot be free and mapped at once

    def _unmap_mapping(self, mapping: Mapping) -> None:
        if self._destroyed or self.iommufd.closed:
            mapping._release()
        else:
            self.unmap(mapping.iova, mapping.size)

    def copy(self, mapping: Mapping, dst: IOAS | None = None, iova: int | None = None, *,
             readable: bool = True, writable: bool = True) -> Mapping:
        """Map the pages of ``mapping`` (of this IOAS) again in ``dst`` (default: this IOAS).

        Returns:
            A mapping of ``dst`` that keeps the same buffer alive.

        Raises:
            ValueError: ``mapping`` is not an open mapping of this IOAS.
            OSError: EPERM (writable copy of a read-only mapping), and the errors of :meth:`map`.
        """
        if self._mappings.get(getattr(mapping, "iova", -1)) is not mapping:
            raise ValueError("mapping must be an open mapping of this IOAS")
        dst = self if dst is None else dst
        if iova is not None:
            check_int("iova", iova)
        flags = _rw_flags(readable, writable)
        flags |= C.IOMMU_IOAS_MAP_FIXED_IOVA if iova is not None else 0
        arg = new("struct iommu_ioas_copy *", flags=flags, dst_ioas_id=dst.id, src_ioas_id=self.id,
                  length=mapping.size, dst_iova=iova or 0, src_iova=mapping.iova)
        dst._call(uapi.IOMMU_IOAS_COPY, arg)
        cdata = ffi.from_buffer(mapping.buffer, require_writable=False)
        copy = Mapping(dst, mapping.buffer, cdata, int(arg.dst_iova), rw=(readable, writable))
        dst._mappings[copy.iova] = copy
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


def _rw_flags(readable: object, writable: object) -> int:
    if not isinstance(readable, bool) or not isinstance(writable, bool):
        raise TypeError("readable and writable must be bools")
    if not (readable or writable):
        raise ValueError("readable or writable must be True")
    flags = C.IOMMU_IOAS_MAP_READABLE if readable else 0
    return int(flags | (C.IOMMU_IOAS_MAP_WRITEABLE if writable else 0))
