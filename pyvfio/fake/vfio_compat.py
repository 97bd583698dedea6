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
from pyvfio._ffi import C, ffi
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


INFO_SIZE = ffi.sizeof("struct vfio_iommu_type1_info")


def VFIO_IOMMU_GET_INFO(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    """vfio_compat.c:iommufd_vfio_iommu_get_info: unlike type1, each capability is written on
    its own where it fits in ``argsz`` (the IOVA ranges one range at a time, the header once the
    whole capability fits), ``argsz`` always becomes the full size and the CAPS flag is always
    set; ``cap_offset`` is set only when the whole chain fit.  Errors: ENODEV (no compat IOAS),
    EFAULT."""
    info = arg.cmd
    ioas = compat_ioas(ctx)
    info.flags = C.VFIO_IOMMU_INFO_PGSIZES | C.VFIO_IOMMU_INFO_CAPS
    info.iova_pgsizes = _pagesizes(ctx, ioas)
    info.cap_offset = 0
    argsz, total, last_cap = info.argsz, INFO_SIZE, 0
    for fill in (_fill_cap_dma_avail, _fill_cap_iova):
        cap_size = fill(ioas, arg, total, max(argsz - total, 0))
        if last_cap and argsz >= total:
            arg.write(last_cap + 4, struct.pack("<I", total))  # the previous header's next
        last_cap = total
        total += (cap_size + 7) & ~7
    if argsz >= total:
        info.cap_offset = INFO_SIZE
    info.argsz = total
    arg.copy_out(info, min(argsz, INFO_SIZE))
    return 0


def _fill_cap_dma_avail(ioas: IOASObj, arg: IoctlArg, offset: int, avail: int) -> int:
    """iommufd_fill_cap_dma_avail: U32_MAX (iommufd's limit is the memory cgroup's)."""
    cap = struct.pack("<HHII", C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 0, U32_MAX)
    if avail >= len(cap):
        arg.write(offset, cap)
    return len(cap)


def _fill_cap_iova(ioas: IOASObj, arg: IoctlArg, offset: int, avail: int) -> int:
    """iommufd_fill_cap_iova: the holes of the reserved ranges, each written if the capability
    up to it fits, the header (with the count) only if all of it fits."""
    ranges = ioas.iopt.iova_ranges()
    head = 16  # struct vfio_iommu_type1_info_cap_iova_range up to iova_ranges[]
    for i, (start, last) in enumerate(ranges):
        if avail >= head + 16 * (i + 1):
            arg.write(offset + head + 16 * i, struct.pack("<QQ", start, last))
    size = head + 16 * len(ranges)
    if avail >= size:
        arg.write(offset, struct.pack("<HHIII", C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0,
                                      len(ranges), 0))
    return size


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


UNMAP_MINSZ = 24  # offsetofend(struct vfio_iommu_type1_dma_unmap, size): what is copied back


def VFIO_IOMMU_UNMAP_DMA(ctx: IommufdCtx, arg: IoctlArg) -> int:  # noqa: N802
    """vfio_compat.c:iommufd_vfio_unmap_dma: ``size`` becomes the bytes unmapped, written back
    also when the unmap itself fails. Errors: EINVAL (flags; UNMAP_ALL with a range; size 0),
    ENODEV (no compat IOAS), EOVERFLOW, ENOENT, EFAULT."""
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
        if iopt.disable_large_pages:  # type1 v1: cut the areas at both ends first
            ends = [(u.iova + u.size - 1) & ULONG_MAX] + ([u.iova - 1] if u.iova else [])
            _cut_iova(iopt, ends)
        try:
            unmapped = _unmap_iova(iopt, u.iova, u.size)
        except OSError:
            u.size = 0  # iopt_unmap_iova's errors still copy the size back (0 unmapped)
            arg.copy_out(u, UNMAP_MINSZ)
            raise
    u.size = unmapped
    arg.copy_out(u, UNMAP_MINSZ)
    return 0


def _unmap_iova(iopt: Any, iova: int, size: int) -> int:
    """io_pagetable.c:iopt_unmap_iova (after the v1 cuts). Raises EINVAL (size 0), EOVERFLOW,
    ENOENT (an area sticking out of the range)."""
    if not size:
        raise kerr(errno.EINVAL)
    last = iova + size - 1
    if last > ULONG_MAX:
        raise kerr(errno.EOVERFLOW)
    return _unmap_range(iopt, iova, last)


def _unmap_range(iopt: Any, start: int, last: int) -> int:
    """io_pagetable.c:iopt_unmap_iova_range.

    Nothing mapped in the range is success with size 0 here, as on type1 (the native
    IOMMU_IOAS_UNMAP says ENOENT); an area sticking out is ENOENT (type1v2: EINVAL).
    """
    if iopt.areas.first_overlap(start, last) is None:
        return 0
    return int(iopt.unmap(start, last))


def _cut_iova(iopt: Any, points: list[int]) -> None:
    """io_pagetable.c:iopt_cut_iova: split the area holding each IOVA after it (nothing to do at
    an area's first or last IOVA); the part after must start aligned (iopt_area_split: EINVAL,
    the cuts made before it stay)."""
    align = iopt.iova_alignment
    for point in points:
        pos = iopt.areas.first_overlap(point, point)
        if pos is None:
            continue
        a_start, a_last, area = iopt.areas.get(pos)
        if point in (a_start, a_last):
            continue
        new_start = point + 1
        if new_start % align or (area.uptr % PAGE_SIZE + new_start - a_start) % align:
            raise kerr(errno.EINVAL)
        iopt.areas.pop(pos)
        tail = Area(area.uptr + new_start - a_start, area.prot, area.pages_writable)
        iopt.areas.insert(a_start, point, area)
        iopt.areas.insert(new_start, a_last, tail)


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
