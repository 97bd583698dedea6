"""vIOMMUs, vDEVICEs and HW queues of an iommufd (Linux 6.13+, iommufd/viommu.c).

A :class:`VIOMMU` is the slice of a physical IOMMU that one VM uses: it wraps a nesting-parent
:class:`~pyvfio.hwpt.HWPT` (the stage-2 table), nested HWPTs are allocated from it
(``HWPT.alloc(..., pt=viommu)``), cache invalidations can be sent to it, and a :class:`VDevice`
tells it a device's virtual id (the vSID/vRID the guest uses).  Which IOMMUs offer vIOMMUs: ARM
SMMUv3 (and Tegra241 CMDQV), AMD from 7.x, and the IOMMUFD_TEST mock (type
``IOMMU_VIOMMU_TYPE_SELFTEST``); Intel VT-d answers EOPNOTSUPP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyvfio import uapi
from pyvfio._ffi import ffi, new
from pyvfio.dma import check_int
from pyvfio.iommufd import IOMMUFD, U32_MAX
from pyvfio.kernel import MMIO

if TYPE_CHECKING:
    from pyvfio.hwpt import HWPT


def invalidate(iommufd: IOMMUFD, obj_id: int, entries: bytes, entry_len: int,
               data_type: int) -> int:
    """``IOMMU_HWPT_INVALIDATE`` on a nested HWPT or a vIOMMU; return the records handled.

    The kernel writes the count back even when a record fails (hw_pagetable.c:
    iommufd_hwpt_invalidate); it travels on the OSError as ``handled``.
    """
    check_int("entry_len", entry_len, 0, U32_MAX)
    check_int("data_type", data_type, 0, U32_MAX)
    if (entry_len and len(entries) % entry_len) or (entries and not entry_len):
        raise ValueError("entries must be a whole number of entry_len records")
    buf = ffi.from_buffer(bytes(entries)) if entries else ffi.NULL
    arg = new("struct iommu_hwpt_invalidate *", hwpt_id=obj_id,
              data_uptr=int(ffi.cast("uintptr_t", buf)), data_type=data_type,
              entry_len=entry_len, entry_num=len(entries) // entry_len if entry_len else 0)
    try:
        iommufd.call(uapi.IOMMU_HWPT_INVALIDATE, arg)
    except OSError as exc:
        exc.handled = int(arg.entry_num)  # type: ignore[attr-defined]
        raise
    return int(arg.entry_num)


class _Object:
    """An iommufd object destroyed with IOMMU_DESTROY (idempotent; the fd's close also does it)."""

    def __init__(self, iommufd: IOMMUFD, obj_id: int) -> None:
        self.iommufd, self.id = iommufd, obj_id
        self._destroyed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} of {self.iommufd!r}>"

    def destroy(self) -> None:
        """``IOMMU_DESTROY`` the object (idempotent).

        Raises:
            OSError: EBUSY while other objects, fds or mmaps use it.
        """
        if not self._destroyed and not self.iommufd.closed:
            self.iommufd.destroy(self.id)
        self._destroyed = True

    def __enter__(self) -> _Object:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class VIOMMU(_Object):
    """An IOMMUFD_OBJ_VIOMMU."""

    def __init__(self, iommufd: IOMMUFD, viommu_id: int, parent: HWPT, viommu_type: int,
                 data: bytes = b"") -> None:
        super().__init__(iommufd, viommu_id)
        self.parent, self.type = parent, viommu_type
        self.data = data  # the driver's struct as the kernel wrote it back

    @classmethod
    def alloc(cls, iommufd: IOMMUFD, dev_id: int, parent: HWPT, viommu_type: int,
              data: bytes = b"") -> VIOMMU:
        """Allocate a vIOMMU of ``viommu_type`` (``IOMMU_VIOMMU_TYPE_*``) for device ``dev_id``.

        Args:
            iommufd: the context.
            dev_id: a bound device behind the physical IOMMU to slice.
            parent: a HWPT allocated with ``nest_parent=True``.
            viommu_type: ``IOMMU_VIOMMU_TYPE_ARM_SMMUV3``, ``..._SELFTEST`` (0xdeadbeef), ...
            data: the driver's struct (``struct iommu_viommu_selftest``, ...); the kernel's
                reply is in :attr:`data`.

        Raises:
            TypeError, ValueError: bad arguments.
            OSError: ENOTTY (kernel before 6.13), EOPNOTSUPP (type 0, a type or IOMMU without
                vIOMMUs: Intel VT-d), ENOENT (no such device or HWPT), EINVAL (``parent`` not a
                nesting parent, short ``data``), E2BIG (non-zero bytes past the driver's struct).
        """
        check_int("dev_id", dev_id, 1, U32_MAX)
        check_int("viommu_type", viommu_type, 0, U32_MAX)
        buf = ffi.new("uint8_t[]", bytes(data)) if data else ffi.NULL
        arg = new("struct iommu_viommu_alloc *", type=viommu_type, dev_id=dev_id,
                  hwpt_id=parent.id, data_len=len(data),
                  data_uptr=int(ffi.cast("uintptr_t", buf)))
        iommufd.call(uapi.IOMMU_VIOMMU_ALLOC, arg)
        reply = bytes(ffi.buffer(buf, len(data))) if data else b""
        return cls(iommufd, int(arg.out_viommu_id), parent, viommu_type, reply)

    def vdevice(self, dev_id: int, virt_id: int) -> VDevice:
        """Give device ``dev_id`` the virtual id ``virt_id`` here (:meth:`VDevice.alloc`)."""
        return VDevice.alloc(self, dev_id, virt_id)

    def invalidate(self, entries: bytes, entry_len: int, data_type: int) -> int:
        """Send driver-specific cache invalidations (``IOMMU_HWPT_INVALIDATE`` on the vIOMMU);
        return how many records the kernel handled.

        Raises:
            OSError: EINVAL (bad type, entry_len or record), EOPNOTSUPP (bad record flags); the
                count handled before the failing record is in ``OSError.handled``.
        """
        return invalidate(self.iommufd, self.id, entries, entry_len, data_type)

    def mmap(self, offset: int, length: int) -> MMIO:
        """Map the page(s) the vIOMMU's driver offered at ``offset`` (the iommufd mmap, 6.17+:
        e.g. Tegra241's VINTF page 0, the mock's loopback pages), shared and read/write.  Close
        the mapping before destroying the vIOMMU (IOMMU_DESTROY is EBUSY while it exists).

        Raises:
            OSError: ENXIO (not exactly an offered region), EINVAL (length not page aligned).
        """
        check_int("offset", offset, 0)
        check_int("length", length, 1)
        return self.iommufd.kernel.mmap(self.iommufd.fileno(), length, offset)


class VDevice(_Object):
    """An IOMMUFD_OBJ_VDEVICE: a device's virtual id on a vIOMMU."""

    def __init__(self, viommu: VIOMMU, vdevice_id: int, dev_id: int, virt_id: int) -> None:
        super().__init__(viommu.iommufd, vdevice_id)
        self.viommu, self.dev_id, self.virt_id = viommu, dev_id, virt_id

    @classmethod
    def alloc(cls, viommu: VIOMMU, dev_id: int, virt_id: int) -> VDevice:
        """``IOMMU_VDEVICE_ALLOC``: the device's ``virt_id`` (vSID, vDeviceID, vRID) on ``viommu``.

        Destroy it before closing the device: a device that goes first takes the vDEVICE with it
        and its id stays unusable (ENOENT) until the iommufd is closed.

        Raises:
            OSError: ENOTTY (before 6.13), ENOENT (no such vIOMMU or device), EINVAL (the device
                is behind another IOMMU, ``virt_id`` beyond ULONG_MAX), EEXIST (the device has a
                vDEVICE, or ``virt_id`` is taken on this vIOMMU).
        """
        check_int("dev_id", dev_id, 1, U32_MAX)
        check_int("virt_id", virt_id, 0, (1 << 64) - 1)
        arg = new("struct iommu_vdevice_alloc *", viommu_id=viommu.id, dev_id=dev_id,
                  virt_id=virt_id)
        viommu.iommufd.call(uapi.IOMMU_VDEVICE_ALLOC, arg)
        return cls(viommu, int(arg.out_vdevice_id), dev_id, virt_id)


class HWQueue(_Object):
    """An IOMMUFD_OBJ_HW_QUEUE (6.17+): a vIOMMU queue the hardware reads from guest memory."""

    def __init__(self, viommu: VIOMMU, queue_id: int, index: int, iova: int, length: int) -> None:
        super().__init__(viommu.iommufd, queue_id)
        self.viommu, self.index, self.iova, self.length = viommu, index, iova, length

    @classmethod
    def alloc(cls, viommu: VIOMMU, queue_type: int, index: int, iova: int,
              length: int) -> HWQueue:
        """``IOMMU_HW_QUEUE_ALLOC``: queue ``index`` of ``queue_type`` on the guest memory at
        ``iova`` (an IOVA of the parent HWPT's IOAS), which stays pinned (its UNMAP is EBUSY)
        until the queue is destroyed.

        Raises:
            OSError: ENOTTY (before 6.17), EOPNOTSUPP (type 0 or unknown), EINVAL (length 0, the
                driver's index limit), EOVERFLOW (iova + length wraps), ENOENT (not mapped),
                EFAULT (not physically contiguous), EEXIST (index taken), EIO (the mock wants
                index - 1 first).
        """
        check_int("queue_type", queue_type, 0, U32_MAX)
        check_int("index", index, 0, U32_MAX)
        check_int("iova", iova, 0, (1 << 64) - 1)
        check_int("length", length, 0, (1 << 64) - 1)
        arg = new("struct iommu_hw_queue_alloc *", viommu_id=viommu.id, type=queue_type,
                  index=index, nesting_parent_iova=iova, length=length)
        viommu.iommufd.call(uapi.IOMMU_HW_QUEUE_ALLOC, arg)
        return cls(viommu, int(arg.out_hw_queue_id), index, iova, length)
