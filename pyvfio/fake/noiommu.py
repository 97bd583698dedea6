"""iommufd's no-IOMMU mode (Linux 7.3, CONFIG_IOMMUFD_NOIOMMU): a vfio-pci device without an IOMMU
(``vfio.enable_unsafe_noiommu_mode=1``) gets a cdev ``/dev/vfio/devices/noiommu-vfioN`` that binds
to an iommufd like any other; attaching it to an IOAS gives the IOAS a software-only page table
(iommufd/hwpt_noiommu.c, AMDv1 format, 64-bit IOVAs, every power-of-two page size) that translates
nothing for the device but lets user space ask which physical address backs an IOVA
(IOMMU_IOAS_NOIOMMU_GET_PA), so it can program the device with physical addresses.

What the kernel answers for such a device (verified on the lane's noiommu-7.3): GET_HW_INFO
EOPNOTSUPP (device.c:iommufd_get_hw_info), HWPT_ALLOC with any flag EOPNOTSUPP
(hwpt_noiommu.c:noiommu_alloc_paging_flags), no reserved regions and the whole 64-bit IOVA space
(attach_resv is false for noiommu), PASID attach EINVAL (the domain is not PASID-compatible).
The physical addresses are the fake's own invention (:mod:`pyvfio.fake.physmem`).

Known limits: a dma-buf area (a BAR exported by VFIO_DEVICE_FEATURE_DMA_BUF) answers EOPNOTSUPP
where Linux gives the BAR's bus address; an IOAS with both a noiommu and an IOMMUFD_TEST mock
domain is not modelled (the fake takes the IOAS's first domain as the storage domain).
"""

from __future__ import annotations

import errno

from pyvfio import uapi
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IOASObj, IommufdCtx
from pyvfio.fake.mapfile import DmaBufArea
from pyvfio.fake.memory import kerr
from pyvfio.fake.physmem import PAGE_SIZE, frames
from pyvfio.fake.uaccess import IoctlArg

ULONG_MAX = (1 << 64) - 1
AMDV1_PGSIZES = ULONG_MAX & ~(PAGE_SIZE - 1)  # every power of two from PAGE_SIZE up

NOIOMMU_MODEL = IOMMUModel(hw_info_type=0, hw_info_data=b"", aperture=(0, ULONG_MAX),
                           reserved=(), pgsize_bitmap=AMDV1_PGSIZES, iommufd_test=False,
                           noiommu=True)
"""The IOMMU of a noiommu device: none; its domains are iommufd_noiommu_ops' page tables."""


def storage_is_noiommu(ioas: IOASObj) -> bool:
    """io_pagetable.c:iopt_get_phys: the area's storage domain (the IOAS's first domain) must be
    a noiommu one; with no domain (nothing attached, or detached again) there is none."""
    first = ioas.hwpts[0] if ioas.hwpts else None
    return first is not None and bool(getattr(first.model, "noiommu", False))


def get_phys(ctx: IommufdCtx, ioas: IOASObj, iova: int, max_length: int) -> tuple[int, int]:
    """io_pagetable.c:iopt_get_phys: the physical address of ``iova`` and how many bytes from it
    are physically contiguous inside its area, at most ``max_length``.

    Raises:
        OSError: ENOENT nothing mapped at ``iova``, EINVAL a revoked dma-buf, EOPNOTSUPP the IOAS
            is not stored by a noiommu domain.
    """
    hit = ioas.iopt.areas.find(iova)
    if hit is None:
        raise kerr(errno.ENOENT)
    start, last, area = hit
    if isinstance(area, DmaBufArea) and not area.dmabuf.dev.config[4] & 0x2:
        raise kerr(errno.EINVAL)  # iopt_dmabuf_revoked
    if not storage_is_noiommu(ioas):
        raise kerr(errno.EOPNOTSUPP)
    if isinstance(area, DmaBufArea):  # a BAR: Linux answers its bus address; not modelled
        raise kerr(errno.EOPNOTSUPP)
    table = frames(ctx.memory)
    paddr = table.phys(area.uptr + (iova - start))
    length = min(PAGE_SIZE - iova % PAGE_SIZE, last - iova + 1)
    cur, cur_pa = iova, paddr
    while cur < last and length < max_length:  # the kernel's walk, one page at a time
        nxt = cur + PAGE_SIZE
        if nxt > ULONG_MAX or nxt > last:
            break
        if table.phys(area.uptr + (nxt - start)) != cur_pa + PAGE_SIZE:
            break
        cur, cur_pa = nxt, cur_pa + PAGE_SIZE
        length += PAGE_SIZE
    return paddr, min(length, max_length)


def IOMMU_IOAS_NOIOMMU_GET_PA(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    """ioas.c:iommufd_ioas_noiommu_get_pa (7.3): the physical address behind an IOVA of an IOAS
    a noiommu device is attached to; EOPNOTSUPP behind a real IOMMU."""
    cmd = io.cmd
    if cmd.flags or cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    if not cmd.length:
        raise kerr(errno.EINVAL)
    if cmd.iova >= ULONG_MAX:
        raise kerr(errno.EOVERFLOW)
    ioas = ctx.get_ioas(cmd.ioas_id)
    cmd.out_phys, cmd.length = get_phys(ctx, ioas, int(cmd.iova), int(cmd.length))


OPS = (
    Op(uapi.IOMMU_IOAS_NOIOMMU_GET_PA, "iommufd", IOMMU_IOAS_NOIOMMU_GET_PA, Conv.SIZE,
       "struct iommu_ioas_noiommu_get_pa", "out_phys", since="7.3"),
)
"""IOMMU_IOAS_NOIOMMU_GET_PA (7.3)."""
