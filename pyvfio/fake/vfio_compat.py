"""/dev/iommu acting as a VFIO container (drivers/iommu/iommufd/vfio_compat.c).

iommufd_fops_ioctl hands every request below IOMMUFD_CMD_BASE to iommufd_vfio_ioctl, which
answers the type1 container ioctls on the "compat IOAS" (``IOMMU_VFIO_IOAS``): a group's
``VFIO_GROUP_SET_CONTAINER`` with an iommufd creates it, user space may pick another.  The
differences from vfio_iommu_type1.c are the point of this module: no compat IOAS -> ENODEV, unmap
of a range that would split an area -> ENOENT, no dirty tracking (``VFIO_IOMMU_DIRTY_PAGES`` is
ENOTTY), no vaddr update, a DMA_AVAIL of U32_MAX and no MIGRATION capability.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import iommufd as fiommufd
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.ioas import PAGE_SIZE, ULONG_MAX, Area
from pyvfio.fake.iommufd import IOASObj, IommufdCtx
from pyvfio.fake.memory import kerr
from pyvfio.fake.option import set_huge_pages
from pyvfio.fake.uaccess import IoctlArg

PAGE_MASK = ~(PAGE_SIZE - 1) & ULONG_MAX
U32_MAX = (1 << 32) - 1
_RW = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE

def compat_ioas(ctx: IommufdCtx) -> IOASObj:
    """get_compat_ioas: the IOAS the VFIO ioctls act on. Raises ENODEV if there is none."""
    if ctx.vfio_ioas is None:
        raise kerr(errno.ENODEV)
    return ctx.vfio_ioas


def compat_ioas_create(ctx: IommufdCtx) -> IOASObj:
    """iommufd_vfio_compat_ioas_create: the compat IOAS, allocated (as a user object) if none."""
    if ctx.vfio_ioas is None:
        ioas = IOASObj(ctx.model)
        ctx.table.add(ioas)
        ctx.vfio_ioas = ioas
    return ctx.vfio_ioas


def IOMMU_VFIO_IOAS(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    cmd = io.cmd
    if cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    if cmd.op == C.IOMMU_VFIO_IOAS_GET:
        cmd.ioas_id = compat_ioas(ctx).id
    elif cmd.op == C.IOMMU_VFIO_IOAS_SET:
        ctx.vfio_ioas = ctx.get_ioas(cmd.ioas_id)
    elif cmd.op == C.IOMMU_VFIO_IOAS_CLEAR:
        ctx.vfio_ioas = None
    else:
        raise kerr(errno.EOPNOTSUPP)


def VFIO_GET_API_VERSION(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    return int(C.VFIO_API_VERSION)


def VFIO_CHECK_EXTENSION(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    ext = arg.cmd
    if ext in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL):
        return 1
    if ext == C.VFIO_DMA_CC_IOMMU:
        ioas = compat_ioas(ctx)  # iommufd_vfio_cc_iommu: ENODEV without a compat IOAS
        # 1 unless one of the IOAS's paging HWPTs does not enforce cache coherency
        return int(not ioas.hwpts or ctx.model.enforce_cache_coherency)
    if ext == C.VFIO_NOIOMMU_IOMMU:
        return 1  # CONFIG_VFIO_NOIOMMU=y, as on Debian and the lane's kernel
    return 0  # NESTING (obsolete), UPDATE_VADDR ("hard to see how ... safely"), unknown


def VFIO_SET_IOMMU(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    kind = arg.cmd
    if kind not in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU):
        raise kerr(errno.EINVAL)
    ioas = compat_ioas(ctx)
    if kind == C.VFIO_TYPE1_IOMMU:  # type1 v1 may unmap inside a mapping: no large IOPTEs
        set_huge_pages(ioas, 0)
    return 0  # may be called again and again (no "already set" state)


def _pagesizes(ctx: IommufdCtx, ioas: IOASObj) -> int:
    """iommufd_get_pagesizes: the domains' common sizes, at least PAGE_SIZE and the alignment."""
    sizes = ULONG_MAX
    for hwpt in ioas.hwpts:
        sizes &= (hwpt.model or ctx.model).pgsize_bitmap
    if sizes & ~PAGE_MASK:
        sizes = (sizes & PAGE_MASK) | PAGE_SIZE
    return max(sizes, ioas.iopt.iova_alignment)


def VFIO_IOMMU_GET_INFO(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    info = arg.cmd
    ioas = compat_ioas(ctx)
    info.flags = C.VFIO_IOMMU_INFO_PGSIZES
    info.iova_pgsizes = _pagesizes(ctx, ioas)
    ranges = ioas.iopt.iova_ranges()
    caps = [  # DMA_AVAIL then IOVA_RANGE, no MIGRATION (fill_fns[] of vfio_compat.c)
        (C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, struct.pack("<I", U32_MAX)),
        (C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1,
         struct.pack("<II", len(ranges), 0) + b"".join(struct.pack("<QQ", *r) for r in ranges)),
    ]
    arg.reply_caps(caps, C.VFIO_IOMMU_INFO_CAPS)
    return 0


def VFIO_IOMMU_MAP_DMA(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    m = arg.cmd
    if m.flags & ~_RW:
        raise kerr(errno.EINVAL)  # VFIO_DMA_MAP_FLAG_VADDR is not supported
    ioas = compat_ioas(ctx)
    prot = (C.IOMMU_IOAS_MAP_READABLE if m.flags & C.VFIO_DMA_MAP_FLAG_READ else 0) | (
        C.IOMMU_IOAS_MAP_WRITEABLE if m.flags & C.VFIO_DMA_MAP_FLAG_WRITE else 0)
    # always at the given IOVA; no READ/WRITE check and no dma_entry_limit (iopt_map_user_pages)
    fiommufd.map_user(
        ctx, ioas, m.vaddr, m.size, m.iova, prot | C.IOMMU_IOAS_MAP_FIXED_IOVA, arg.linux
    )
    return 0


def VFIO_IOMMU_UNMAP_DMA(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    u = arg.cmd
    if u.flags & ~C.VFIO_DMA_UNMAP_FLAG_ALL:
        raise kerr(errno.EINVAL)  # GET_DIRTY_BITMAP and VADDR are obsolete here
    ioas = compat_ioas(ctx)
    iopt = ioas.iopt
    if u.flags & C.VFIO_DMA_UNMAP_FLAG_ALL:
        if u.iova or u.size:
            raise kerr(errno.EINVAL)
        unmapped = iopt.mapped_bytes()
        iopt.areas.clear()  # iopt_unmap_all: success even when empty
    else:
        if not u.size:
            raise kerr(errno.EINVAL)
        last = u.iova + u.size - 1
        if last > ULONG_MAX:
            raise kerr(errno.EOVERFLOW)
        unmapped = _unmap_range(iopt, u.iova, last)
    u.size = unmapped
    arg.copy_out(u, 24)
    return 0


def _unmap_range(iopt: Any, start: int, last: int) -> int:
    """iopt_unmap_iova, after the v1 cuts when large pages are off (VFIO_TYPE1_IOMMU).

    Nothing mapped in the range is success with size 0 here, as on type1 (the native
    IOMMU_IOAS_UNMAP says ENOENT); an area sticking out is ENOENT (type1v2: EINVAL).
    """
    if iopt.areas.first_overlap(start, last) is None:
        return 0
    if iopt.disable_large_pages:
        for point in (last, start - 1) if start else (last,):
            pos = iopt.areas.first_overlap(point, point)
            if pos is not None and iopt.areas.get(pos)[1] != point:
                a_start, a_last, area = iopt.areas.pop(pos)  # iopt_cut_iova: two areas
                tail = Area(area.uptr + point + 1 - a_start, area.prot, area.pages_writable)
                iopt.areas.insert(a_start, point, area)
                iopt.areas.insert(point + 1, a_last, tail)
    return int(iopt.unmap(start, last))


OPS = (
    Op(uapi.IOMMU_VFIO_IOAS, "iommufd", IOMMU_VFIO_IOAS, Conv.SIZE, "struct iommu_vfio_ioas",
       "__reserved", since="6.2"),
    Op(uapi.VFIO_GET_API_VERSION, "iommufd-vfio", VFIO_GET_API_VERSION, since="6.2"),
    Op(uapi.VFIO_CHECK_EXTENSION, "iommufd-vfio", VFIO_CHECK_EXTENSION, Conv.VALUE, since="6.2"),
    Op(uapi.VFIO_SET_IOMMU, "iommufd-vfio", VFIO_SET_IOMMU, Conv.VALUE, since="6.2"),
    Op(uapi.VFIO_IOMMU_GET_INFO, "iommufd-vfio", VFIO_IOMMU_GET_INFO, Conv.ARGSZ,
       "struct vfio_iommu_type1_info", "iova_pgsizes", since="6.2"),
    Op(uapi.VFIO_IOMMU_MAP_DMA, "iommufd-vfio", VFIO_IOMMU_MAP_DMA, Conv.ARGSZ,
       "struct vfio_iommu_type1_dma_map", "size", since="6.2"),
    Op(uapi.VFIO_IOMMU_UNMAP_DMA, "iommufd-vfio", VFIO_IOMMU_UNMAP_DMA, Conv.ARGSZ,
       "struct vfio_iommu_type1_dma_unmap", "size", since="6.2"),
)
"""IOMMU_VFIO_IOAS and the VFIO container ioctls /dev/iommu answers (iommufd_vfio_ioctl)."""
