"""Dirty tracking of the fake iommufd's paging HWPTs (hw_pagetable.c, io_pagetable.c):
IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP.  Only a HWPT allocated with
IOMMU_HWPT_ALLOC_DIRTY_TRACKING on an IOMMU that has it (``IOMMUModel.dirty_tracking``: the mock
IOMMU; QEMU 7.2's intel-iommu has none) has dirty ops."""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio._ffi import C, CData
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.hwpt import get_hwpt
from pyvfio.fake.iommufd import IommufdCtx
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg


def IOMMU_HWPT_SET_DIRTY_TRACKING(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.flags & ~C.IOMMU_HWPT_DIRTY_TRACKING_ENABLE:
        raise kerr(errno.EOPNOTSUPP)  # __reserved is not looked at (hw_pagetable.c)
    hwpt = get_hwpt(ctx, cmd.hwpt_id)
    if not hwpt.flags & C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING:
        raise kerr(errno.EOPNOTSUPP)  # a domain without dirty_ops
    hwpt.dirty_enabled = bool(cmd.flags)
    hwpt.dirty.clear()


def IOMMU_HWPT_GET_DIRTY_BITMAP(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.flags & ~C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR or cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    hwpt = get_hwpt(ctx, cmd.hwpt_id)
    _check_bitmap_range(hwpt.ioas.iopt.iova_alignment, cmd)  # before the domain's dirty_ops
    if not hwpt.flags & C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING:
        raise kerr(errno.EOPNOTSUPP)  # iommu_read_and_clear_dirty: no dirty_ops
    npages = cmd.length // cmd.page_size
    bitmap = bytearray(ctx.memory.read(cmd.data, (npages + 7) // 8))
    for page in sorted(hwpt.dirty):
        if cmd.iova <= page < cmd.iova + cmd.length:
            i = (page - cmd.iova) // cmd.page_size
            bitmap[i // 8] |= 1 << (i % 8)  # the kernel ORs into the user's bitmap
            if not cmd.flags & C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR:
                hwpt.dirty.discard(page)
    ctx.memory.write(cmd.data, bytes(bitmap))


def _check_bitmap_range(align: int, cmd: CData) -> None:
    """hw_pagetable.c:iommufd_check_iova_range."""
    if cmd.length == 0 or cmd.iova + cmd.length - 1 > (1 << 64) - 1:
        raise kerr(errno.EOVERFLOW)
    end = cmd.iova + cmd.length
    if cmd.iova % align or end % align or not cmd.page_size:
        raise kerr(errno.EINVAL)
    if cmd.iova % cmd.page_size or end % cmd.page_size:
        raise kerr(errno.EINVAL)


OPS = (
    Op(uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, "iommufd", IOMMU_HWPT_SET_DIRTY_TRACKING, Conv.SIZE,
       "struct iommu_hwpt_set_dirty_tracking", "__reserved", "6.7"),
    Op(uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, "iommufd", IOMMU_HWPT_GET_DIRTY_BITMAP, Conv.SIZE,
       "struct iommu_hwpt_get_dirty_bitmap", "data", "6.7"),
)
"""The dirty-tracking ioctls of /dev/iommu (hw_pagetable.c)."""
