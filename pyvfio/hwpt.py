"""HWPTs (hardware page tables) of an iommufd, dirty tracking, and IOMMU page-fault queues.

A HWPT is an IOMMU domain.  Attaching a device to an IOAS makes an automatic one; :meth:`HWPT.alloc`
makes one explicitly, to ask for dirty tracking, a nesting parent, a nested (guest) table, or a
fault queue (iommufd/hw_pagetable.c).  A :class:`FaultQueue` is an fd that yields the page faults
of the HWPTs that use it and takes the responses (iommufd/fault.c).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.dma import check_int
from pyvfio.iommufd import IOAS, IOMMUFD, U32_MAX
from pyvfio.viommu import VIOMMU, invalidate

PGFAULT_SIZE = ffi.sizeof("struct iommu_hwpt_pgfault")


class HWPT:
    """A HWPT object of an :class:`IOMMUFD`."""

    def __init__(self, iommufd: IOMMUFD, hwpt_id: int, ioas: IOAS | None = None) -> None:
        self.iommufd = iommufd
        self.id = hwpt_id
        self.ioas = ioas  # the IOAS mapped by a paging HWPT (None when unknown or nested)
        self._destroyed = False

    def __repr__(self) -> str:
        return f"<HWPT {self.id} of {self.iommufd!r}>"

    @classmethod
    def alloc(cls, iommufd: IOMMUFD, dev_id: int, pt: IOAS | HWPT | VIOMMU, *,
              nest_parent: bool = False, dirty_tracking: bool = False, pasid: bool = False,
              fault: FaultQueue | None = None, data_type: int = 0, data: bytes = b"") -> HWPT:
        """Allocate a HWPT for device ``dev_id`` over an IOAS (paging), or a nested one over a
        parent HWPT or a :class:`~pyvfio.viommu.VIOMMU` (6.13+).

        Args:
            iommufd: the context.
            dev_id: a DEVICE id from binding a device.
            pt: the IOAS to map, or a ``nest_parent`` HWPT or a vIOMMU for a nested table.
            nest_parent: allow nested HWPTs on top of this one.
            dirty_tracking: let :meth:`set_dirty_tracking` work (needs IOMMU support).
            pasid: ``IOMMU_HWPT_ALLOC_PASID`` (6.15+): the HWPT may go on a PASID, and a device
                with PASIDs attached needs such a HWPT on its RID too.
            fault: deliver the HWPT's I/O page faults to this queue.
            data_type: ``IOMMU_HWPT_DATA_*`` for ``data`` (nested tables).
            data: the driver-specific table description.

        Raises:
            TypeError, ValueError: bad arguments.
            OSError: ENOENT (no such device or fault), EINVAL (bad ``pt``, a vIOMMU of another
                IOMMU), EOPNOTSUPP (a flag the IOMMU does not support: dirty tracking on QEMU's
                intel-iommu; an unknown ``data_type``; PASID before 6.15).
        """
        check_int("dev_id", dev_id, 1, U32_MAX)
        if not isinstance(pt, (IOAS, HWPT, VIOMMU)):
            raise TypeError(f"pt must be an IOAS, a HWPT or a VIOMMU, not {type(pt).__name__}")
        check_int("data_type", data_type, 0, U32_MAX)
        flags = C.IOMMU_HWPT_ALLOC_NEST_PARENT if nest_parent else 0
        flags |= C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING if dirty_tracking else 0
        flags |= C.IOMMU_HWPT_FAULT_ID_VALID if fault is not None else 0
        flags |= C.IOMMU_HWPT_ALLOC_PASID if pasid else 0
        buf = ffi.from_buffer(bytes(data)) if data else ffi.NULL
        arg = new("struct iommu_hwpt_alloc *", flags=flags, dev_id=dev_id, pt_id=pt.id,
                  data_type=data_type, data_len=len(data),
                  data_uptr=int(ffi.cast("uintptr_t", buf)), fault_id=fault.id if fault else 0)
        iommufd.call(uapi.IOMMU_HWPT_ALLOC, arg)
        return cls(iommufd, int(arg.out_hwpt_id), pt if isinstance(pt, IOAS) else None)

    def destroy(self) -> None:
        """Destroy the HWPT (idempotent).

        Raises:
            OSError: EBUSY while devices are attached or nested HWPTs use it.
        """
        if not self._destroyed and not self.iommufd.closed:
            self.iommufd.destroy(self.id)
        self._destroyed = True

    def __enter__(self) -> HWPT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def set_dirty_tracking(self, enable: bool) -> None:
        """Start or stop recording the pages devices write.

        Raises:
            OSError: EOPNOTSUPP if the HWPT was not allocated with ``dirty_tracking``.
        """
        flags = C.IOMMU_HWPT_DIRTY_TRACKING_ENABLE if enable else 0
        arg = new("struct iommu_hwpt_set_dirty_tracking *", flags=flags, hwpt_id=self.id)
        self.iommufd.call(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, arg)

    def dirty_bitmap(self, iova: int, length: int, page_size: int = 4096, *,
                     clear: bool = True) -> list[int]:
        """Return the IOVAs of dirty pages in ``[iova, iova + length)``, clearing them unless
        ``clear`` is False.

        Raises:
            ValueError: ``page_size`` not a power of two, ``iova``/``length`` not multiples of it.
            OSError: EINVAL (alignment), EOVERFLOW, EOPNOTSUPP (not a dirty-tracking HWPT).
        """
        check_int("iova", iova)
        check_int("length", length, 1)
        check_int("page_size", page_size, 1)
        if page_size & (page_size - 1) or iova % page_size or length % page_size:
            raise ValueError("page_size must be a power of two dividing iova and length")
        npages = length // page_size
        bitmap = ffi.new("uint64_t[]", (npages + 63) // 64)
        flags = 0 if clear else C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR
        arg = new("struct iommu_hwpt_get_dirty_bitmap *", hwpt_id=self.id, flags=flags,
                  iova=iova, length=length, page_size=page_size,
                  data=int(ffi.cast("uintptr_t", bitmap)))
        self.iommufd.call(uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, arg)
        return [iova + i * page_size for i in range(npages) if bitmap[i // 64] >> (i % 64) & 1]

    def invalidate(self, entries: bytes, entry_len: int, data_type: int = 0) -> int:
        """Send cache invalidation requests to a nested HWPT; return how many were handled.

        Args:
            entries: ``entry_len``-byte records (``struct iommu_hwpt_vtd_s1_invalidate``).
            entry_len: the size of one record.
            data_type: ``IOMMU_HWPT_INVALIDATE_DATA_*``.

        Raises:
            OSError: EINVAL (not a nested HWPT, bad type), EOPNOTSUPP (bad record flags); the
                number handled before the failure is in the error's ``handled`` attribute.
        """
        return invalidate(self.iommufd, self.id, entries, entry_len, data_type)


@dataclass(frozen=True)
class PageFault:
    """One ``struct iommu_hwpt_pgfault`` read from a fault queue."""

    flags: int
    dev_id: int
    pasid: int
    grpid: int
    perm: int
    addr: int
    length: int
    cookie: int


class FaultQueue(FdOwner):
    """An IOMMU page-fault queue (``IOMMU_FAULT_QUEUE_ALLOC``): an object id and an fd."""

    def __init__(self, iommufd: IOMMUFD) -> None:
        """Allocate the queue.

        Raises:
            OSError: ENOMEM, EOPNOTSUPP.
        """
        self.iommufd = iommufd
        arg = new("struct iommu_fault_alloc *")
        iommufd.call(uapi.IOMMU_FAULT_QUEUE_ALLOC, arg)
        self.id = int(arg.out_fault_id)
        self._own(iommufd.kernel, int(arg.out_fault_fd))
        iommufd._adopt(self)

    def __repr__(self) -> str:
        return f"<FaultQueue {self.id} fd={self._fd}>"

    def read(self, max_faults: int = 16) -> list[PageFault]:
        """Read up to ``max_faults`` queued faults (blocks on the real kernel if none).

        Raises:
            OSError: EINVAL if the kernel's record is larger than expected.
        """
        check_int("max_faults", max_faults, 1, 1 << 16)
        self._check_open()
        raw = self._kernel.read(self._fd, max_faults * PGFAULT_SIZE)
        faults = []
        for off in range(0, len(raw) - PGFAULT_SIZE + 1, PGFAULT_SIZE):
            rec: Any = ffi.from_buffer("struct iommu_hwpt_pgfault *", raw[off:off + PGFAULT_SIZE])
            faults.append(PageFault(int(rec.flags), int(rec.dev_id), int(rec.pasid),
                                    int(rec.grpid), int(rec.perm), int(rec.addr),
                                    int(rec.length), int(rec.cookie)))
        return faults

    def respond(self, cookie: int, code: int = 0) -> None:
        """Answer the fault group ``cookie`` (``IOMMUFD_PAGE_RESP_SUCCESS`` = 0 / INVALID = 1).

        Raises:
            OSError: EINVAL for an unknown cookie.
        """
        check_int("cookie", cookie, 0, U32_MAX)
        check_int("code", code, 0, 1)
        self._check_open()
        self._kernel.write(self._fd, cookie.to_bytes(4, "little") + code.to_bytes(4, "little"))
