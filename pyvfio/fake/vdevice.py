"""vDEVICE objects of the fake iommufd (Linux 7.3 iommufd/viommu.c: iommufd_vdevice_alloc_ioctl):
a bound device's virtual id (vSID, vRID) on a vIOMMU of its physical IOMMU."""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr
from pyvfio.fake.selftest import HW_INFO_TYPE_SELFTEST
from pyvfio.fake.uaccess import IoctlArg
from pyvfio.fake.viommu import VIOMMUObj, get_device, get_viommu, is_mock

ULONG_MAX = (1 << 64) - 1


class VDeviceObj(Obj):
    """IOMMUFD_OBJ_VDEVICE: a bound device's virtual id on a vIOMMU."""

    kind = "VDEVICE"

    def __init__(self, viommu: VIOMMUObj, idev: fhwpt.DeviceObj, virt_id: int) -> None:
        super().__init__()
        self.viommu, self.idev, self.virt_id = viommu, idev, virt_id
        viommu.users += 1
        viommu.vdevs[virt_id] = self
        idev.vdev = self  # type: ignore[attr-defined]

    def destroy(self, ctx: IommufdCtx) -> None:
        """iommufd_vdevice_abort."""
        self.viommu.vdevs.pop(self.virt_id, None)
        self.viommu.users -= 1
        self.idev.vdev = None  # type: ignore[attr-defined]


class Tombstone(Obj):
    """The id of a vDEVICE destroyed with its device: unusable and unreusable until close."""

    kind = "TOMBSTONE"


def tombstone_vdevice(ctx: IommufdCtx, idev: fhwpt.DeviceObj) -> None:
    """iommufd_device_pre_destroy: a device going away takes its vDEVICE with it; the id stays
    taken (the uAPI comment of struct iommu_vdevice_alloc) and answers ENOENT."""
    vdev = getattr(idev, "vdev", None)
    if vdev is None:
        return
    ctx.destroy(vdev)
    stone = Tombstone()
    stone.id = vdev.id
    ctx.table.objects[vdev.id] = stone


def IOMMU_VDEVICE_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.virt_id > ULONG_MAX:
        raise kerr(errno.EINVAL)
    viommu = get_viommu(ctx, cmd.viommu_id)
    idev = get_device(ctx, cmd.dev_id)
    if idev.iommu(ctx) is not viommu.model and not (
            is_mock(idev, ctx) and viommu.model.hw_info_type == HW_INFO_TYPE_SELFTEST):
        raise kerr(errno.EINVAL)  # another physical IOMMU
    if getattr(idev, "vdev", None) is not None or cmd.virt_id in viommu.vdevs:
        raise kerr(errno.EEXIST)
    cmd.out_vdevice_id = ctx.table.add(VDeviceObj(viommu, idev, int(cmd.virt_id)))


OPS = (
    Op(uapi.IOMMU_VDEVICE_ALLOC, "iommufd", IOMMU_VDEVICE_ALLOC, Conv.SIZE,
       "struct iommu_vdevice_alloc", "virt_id", "6.13"),
)
"""IOMMU_VDEVICE_ALLOC."""
