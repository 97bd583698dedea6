"""The VFIO device cdev, /dev/vfio/devices/vfioX (drivers/vfio/device_cdev.c, vfio/iommufd.c).

Opening always works; until ``VFIO_DEVICE_BIND_IOMMUFD`` succeeds every other ioctl (and read,
write, mmap) is EINVAL (vfio_main.c: ``access_granted``).  Binding blocks the group path:
BIND is EBUSY while /dev/vfio/N is open, and opening /dev/vfio/N is EBUSY while a cdev of the group
is bound (group.c:vfio_device_block_group).  After BIND the device answers like a group-opened one
(the wrapped device file) plus ATTACH/DETACH.  Closing detaches and unbinds.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import emulated, iommufd_device
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake import pasid as fpasid
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IOASObj, IommufdFile
from pyvfio.fake.memory import foreign, kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg

INT_MAX = (1 << 31) - 1


@dataclass
class GroupGate:
    """Per-kernel bookkeeping shared by group fds and cdevs: who uses each IOMMU group."""

    group_open: Callable[[int], bool] = lambda number: False
    cdev_bound: dict[int, int] = field(default_factory=dict)  # group -> bound cdev count
    owners: dict[int, Any] = field(default_factory=dict)  # group -> iommufd ctx owning its DMA
    # the iommufd a device opened through the group (and still open) is bound to
    compat_owner: Callable[[int], Any] = lambda number: None

    def block_group(self, number: int) -> None:
        """vfio_device_block_group: EBUSY while the group fd is open."""
        if self.group_open(number):
            raise kerr(errno.EBUSY)
        self.cdev_bound[number] = self.cdev_bound.get(number, 0) + 1

    def unblock_group(self, number: int) -> None:
        """Undo :meth:`block_group`."""
        self.cdev_bound[number] -= 1
        if not self.cdev_bound[number]:
            del self.cdev_bound[number]
            self.owners.pop(number, None)

    def group_blocked(self, number: int) -> bool:
        """Tell whether opening /dev/vfio/``number`` must fail with EBUSY."""
        return self.cdev_bound.get(number, 0) > 0


class CdevFile(FakeFile):
    """One open of a device cdev, wrapping the device's VFIO file (regions, irqs, reset)."""

    kind = "vfio-cdev"
    model: Any = None  # the device's IOMMUModel when not the kernel's (noiommu: fake/noiommu.py)

    def __init__(self, device: Any, group: int, gate: GroupGate,
                 files: Callable[[int], Any]) -> None:
        self.device = device  # the fake kernel's device file (a VFIOPCIDevice)
        self.group = group
        self.gate = gate
        self._files = files
        self.iommufd: IommufdFile | None = None
        self.obj: Any = None  # a hwpt.DeviceObj, or an emulated.AccessObj for an mdev
        self.device_opened = False  # BIND counted an open of the device (vfio_df_open)
        self.rid_by_pasid = False  # vdev->pasids holds IOMMU_NO_PASID (a PASID-0 ATTACH)

    @property
    def bound(self) -> bool:
        """True once BIND succeeded."""
        return self.obj is not None

    def space(self) -> str:
        """Only BIND until bound, EINVAL for the rest (vfio_main.c: ``access_granted``)."""
        return "cdev" if self.bound else "cdev-unbound"

    def target(self, owner: str) -> Any:
        """The device's handlers run on the wrapped device file."""
        return self.device if owner == "device" else self

    def VFIO_DEVICE_BIND_IOMMUFD(self, arg: IoctlArg) -> int:  # noqa: N802 - kernel name
        s = arg.cmd
        flags = int(s.flags)
        valid = C.VFIO_DEVICE_BIND_FLAG_TOKEN if arg.linux.at_least("6.17") else 0
        if s.flags & ~valid or s.iommufd < 0:
            raise kerr(errno.EINVAL)
        self.gate.block_group(self.group)
        try:
            ctx = self._bind(s.iommufd, flags, lambda: arg.mem.read(int(s.token_uuid_ptr), 16))
        except OSError:
            self.gate.unblock_group(self.group)
            raise
        assert self.obj is not None
        self.gate.owners[self.group] = ctx
        arg.write(12, self.obj.id.to_bytes(4, "little"))  # copy_to_user(&arg->out_devid) only
        return 0

    def _check_token(self, flags: int, token: Callable[[], bytes]) -> None:
        """vfio_df_check_token: vfio-pci's match_token_uuid (the VF token rules); a device
        without it (an mdev) refuses VFIO_DEVICE_BIND_FLAG_TOKEN with EINVAL."""
        tokens = getattr(self.device, "vf_tokens", None)
        if tokens is None or emulated.is_emulated(self.device):
            if flags & C.VFIO_DEVICE_BIND_FLAG_TOKEN:
                raise kerr(errno.EINVAL)
            return
        tokens.check_bind(self.device.dev.bdf, flags, token)

    def _bind(self, iommufd_fd: int, flags: int, arg_token: Callable[[], bytes]) -> Any:
        if self.bound:
            raise kerr(errno.EINVAL)  # one device cannot be bound twice
        self._check_token(flags, arg_token)
        target = self._files(iommufd_fd)
        if target is None:  # an open real file is not an iommufd: EBADFD
            raise kerr(errno.EBADFD if foreign(iommufd_fd) else errno.EBADF)
        if not isinstance(target, IommufdFile):
            raise kerr(errno.EBADFD)
        if getattr(self.device, "opens", 0):
            raise kerr(errno.EINVAL)  # vfio_df_open: opened already
        owner = self.gate.owners.get(self.group) or self.gate.compat_owner(self.group)
        if owner is not None and owner is not target.ctx:
            raise kerr(errno.EPERM)  # iommu_device_claim_dma_owner: another owner
        if emulated.is_emulated(self.device):
            self.obj = emulated.bind(target.ctx, self.device)
        else:
            self.obj = iommufd_device.bind_device(target.ctx, self.device, self.group, self.model)
        self.iommufd = target
        target.ctx.users += 1  # a bound device holds the iommufd file (vfio_iommufd_bind)
        self.device.opens += 1
        self.device.cdev_ctx = target.ctx
        self.device_opened = True
        return target.ctx

    def VFIO_DEVICE_ATTACH_IOMMUFD_PT(self, arg: IoctlArg) -> int:  # noqa: N802
        s = arg.cmd
        pasid_ok = C.VFIO_DEVICE_ATTACH_PASID if arg.linux.at_least("6.15") else 0
        if s.flags & ~pasid_ok:
            raise kerr(errno.EINVAL)
        assert self.iommufd is not None and self.obj is not None
        ctx = self.iommufd.ctx
        if isinstance(self.obj, emulated.AccessObj):
            if s.flags & C.VFIO_DEVICE_ATTACH_PASID:
                raise kerr(errno.EOPNOTSUPP)  # device_cdev.c: no pasid_attach_ioas op
            s.pt_id = emulated.attach(ctx, self.obj, s.pt_id)
        elif s.flags & C.VFIO_DEVICE_ATTACH_PASID:  # device_cdev.c: the pasid field is needed
            if arg.size < 16:
                raise kerr(errno.EINVAL)
            s.pasid = int.from_bytes(arg.read(12, 4), "little")  # copied in after minsz
            s.pt_id = self._pasid_attach(ctx, s.pasid, s.pt_id)
        elif self.rid_by_pasid:  # vfio_iommufd_physical_attach_ioas: not iommufd_attached
            self._rid_busy(ctx, s.pt_id)
        else:
            s.pt_id = iommufd_device.attach_device(ctx, self.obj, s.pt_id)
        arg.write(8, int(s.pt_id).to_bytes(4, "little"))  # copy_to_user(&arg->pt_id)
        return 0

    def VFIO_DEVICE_DETACH_IOMMUFD_PT(self, arg: IoctlArg) -> int:  # noqa: N802
        s = arg.cmd
        pasid_ok = C.VFIO_DEVICE_DETACH_PASID if arg.linux.at_least("6.15") else 0
        if s.flags & ~pasid_ok:
            raise kerr(errno.EINVAL)
        assert self.iommufd is not None and self.obj is not None
        if isinstance(self.obj, emulated.AccessObj):
            if s.flags & C.VFIO_DEVICE_DETACH_PASID:
                raise kerr(errno.EOPNOTSUPP)  # device_cdev.c: no pasid_detach_ioas op
            emulated.detach(self.obj)
        elif s.flags & C.VFIO_DEVICE_DETACH_PASID:
            if arg.size < 12:
                raise kerr(errno.EINVAL)
            s.pasid = int.from_bytes(arg.read(8, 4), "little")  # copied in after minsz
            if s.pasid != fpasid.IOMMU_NO_PASID:
                fpasid.pasid_detach(self.iommufd.ctx, self.obj, s.pasid)
            elif self.rid_by_pasid:  # the ida holds 0: iommufd_device_detach(IOMMU_NO_PASID)
                self.rid_by_pasid = False
                iommufd_device.detach_device(self.iommufd.ctx, self.obj)
        elif not self.rid_by_pasid:  # vfio_iommufd_physical_detach_ioas: iommufd_attached only
            iommufd_device.detach_device(self.iommufd.ctx, self.obj)
        return 0

    def _pasid_attach(self, ctx: Any, pasid: int, pt_id: int) -> int:
        """vfio/iommufd.c:vfio_iommufd_physical_pasid_attach_ioas: a PASID in vdev->pasids (an
        ida) is replaced, another one allocated there first (ida_alloc_range: ENOSPC above
        INT_MAX, before the pt_id lookup).  PASID 0 is IOMMU_NO_PASID: the RID itself, attached
        with iommufd_device_attach (EBUSY when attached: device.c:iommufd_device_do_attach), and
        from then on outside vfio's iommufd_attached (a plain DETACH leaves it, a plain ATTACH is
        EBUSY) until a PASID-0 DETACH.  Raises ENOSPC, ENOENT, EINVAL, EBUSY."""
        assert self.obj is not None
        if pasid == fpasid.IOMMU_NO_PASID:
            if self.rid_by_pasid:  # iommufd_device_replace(IOMMU_NO_PASID)
                return iommufd_device.attach_device(ctx, self.obj, pt_id)
            if self.obj.hwpt is not None:
                self._rid_busy(ctx, pt_id)
            hwpt_id = iommufd_device.attach_device(ctx, self.obj, pt_id)
            self.rid_by_pasid = True
            return hwpt_id
        if pasid > INT_MAX:
            raise kerr(errno.ENOSPC)
        if pasid in fpasid.attachments(self.obj):
            return fpasid.pasid_replace(ctx, self.obj, pasid, pt_id)
        return fpasid.pasid_attach(ctx, self.obj, pasid, pt_id)

    def _rid_busy(self, ctx: Any, pt_id: int) -> None:
        """iommufd_device_attach(IOMMU_NO_PASID) of an attached RID: the pt_id lookup (ENOENT,
        EINVAL for an object that is no IOAS/HWPT), then EBUSY (xa_insert of the device into
        the RID's attach, iommufd_device_do_attach)."""
        if not isinstance(ctx.table.get(pt_id), (IOASObj, fhwpt.HWPTObj)):
            raise kerr(errno.EINVAL)
        raise kerr(errno.EBUSY)

    def dma(self, iova: int, write: bool) -> tuple[int, int] | None:
        """Translate a device access through the attached HWPT (see hwpt.dma_translate)."""
        if self.iommufd is None or not isinstance(self.obj, fhwpt.DeviceObj):
            return None  # an emulated device's access does no DMA
        return iommufd_device.dma_translate(self.iommufd.ctx, self.obj, iova, write)

    def release(self) -> None:
        """Close: detach, unbind, give the iommufd its reference back."""
        if self.iommufd is not None and self.obj is not None:
            ctx = self.iommufd.ctx
            if isinstance(self.obj, emulated.AccessObj):
                emulated.unbind(ctx, self.obj)
            else:
                iommufd_device.unbind_device(ctx, self.obj)
            self.obj = None
            self.rid_by_pasid = False
            self.gate.unblock_group(self.group)
            ctx.put()
            self.iommufd = None
        if self.device_opened:
            self.device_opened = False
            self.device.cdev_ctx = None
            self.device.release()


BIND_STRUCT = "6.17"
"""device_cdev.c:vfio_df_ioctl_bind_iommufd reads argsz with get_user and the struct (with
token_uuid_ptr) with copy_struct_from_user since 6.17 (VF token, be2e70b96c3e): an argsz reaching
unreadable memory is EFAULT and a non-zero tail E2BIG before any other check.  The fake copies
sizeof(struct) from 6.17 on; 6.17 itself passed minsz as the kernel size (fixed later, a zero
token_uuid_ptr was then required with argsz 24): not modelled, only 6.12 and 7.3 are verified."""

OPS = (
    Op(uapi.VFIO_DEVICE_BIND_IOMMUFD, "cdev-bind", CdevFile.VFIO_DEVICE_BIND_IOMMUFD, Conv.ARGSZ,
       "struct vfio_device_bind_iommufd", "out_devid", since="6.6", struct_since=BIND_STRUCT),
    Op(uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, "cdev", CdevFile.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
       Conv.ARGSZ, "struct vfio_device_attach_iommufd_pt", "pt_id", since="6.6"),
    Op(uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, "cdev", CdevFile.VFIO_DEVICE_DETACH_IOMMUFD_PT,
       Conv.ARGSZ, "struct vfio_device_detach_iommufd_pt", "flags", since="6.6"),
)
"""The ioctls only a device cdev answers (device_cdev.c)."""
