"""iommufd (/dev/iommu): the context fd, its objects, and the IOAS, an IOVA address space.

An :class:`IOMMUFD` owns objects named by small integer ids (IOAS, HWPT, DEVICE, FAULT); closing
the fd destroys them all (iommufd/main.c:iommufd_fops_release).  The IOAS lives in
:mod:`pyvfio.ioas` (re-exported here).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.dma import check_int
from pyvfio.ioas import IOAS
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

    def change_process(self) -> None:
        """``IOMMU_IOAS_CHANGE_PROCESS`` (6.13+): charge the pinned pages of every mapping of this
        context to the calling process (after handing the fd to another one: live update).

        Raises:
            OSError: ENOTTY (before 6.13), EINVAL (a mapping not made by :meth:`IOAS.map_file`:
                nothing changes then), ENOMEM (over the caller's RLIMIT_MEMLOCK).
        """
        self.call(uapi.IOMMU_IOAS_CHANGE_PROCESS, new("struct iommu_ioas_change_process *"))

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


__all__ = ["IOAS", "IOMMUFD", "PATH", "HwInfo"]
