"""HW queue objects of the fake iommufd (Linux 7.3 iommufd/viommu.c: iommufd_hw_queue_alloc_ioctl):
a guest queue in the vIOMMU's nesting-parent IOAS that the (mock) hardware reads, pinned there by
an internal access so IOAS_UNMAP of it is EBUSY."""

from __future__ import annotations

import errno
from itertools import pairwise
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg
from pyvfio.fake.viommu import VIOMMUObj, get_viommu

PAGE_SIZE = 4096
ULONG_MAX = (1 << 64) - 1


class HWQueueObj(Obj):
    """IOMMUFD_OBJ_HW_QUEUE of the mock vIOMMU: pins its guest queue page in the parent IOAS."""

    kind = "HW_QUEUE"

    def __init__(self, viommu: VIOMMUObj, index: int, iova: int, length: int) -> None:
        super().__init__()
        self.viommu, self.index, self.iova, self.length = viommu, index, iova, length
        first = iova - iova % PAGE_SIZE
        self.pinned = (first, -(-(iova - first + length) // PAGE_SIZE) * PAGE_SIZE)
        self.prev = viommu.hw_queues[index - 1] if index else None
        viommu.users += 1
        if self.prev is not None:
            self.prev.users += 1  # iommufd_hw_queue_depend
        viommu.hw_queues[index] = self
        pins(viommu.hwpt.ioas).append(self.pinned)

    def destroy(self, ctx: IommufdCtx) -> None:
        self.viommu.hw_queues[self.index] = None
        if self.prev is not None:
            self.prev.users -= 1
        pins(self.viommu.hwpt.ioas).remove(self.pinned)
        self.viommu.users -= 1


def pins(ioas: Any) -> list[tuple[int, int]]:
    """The IOVA ranges an internal access pins in ``ioas`` (UNMAP of them is EBUSY)."""
    found: list[tuple[int, int]] | None = getattr(ioas, "access_pins", None)
    if found is None:
        found = []
        ioas.access_pins = found
    return found


def IOMMU_HW_QUEUE_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.flags or cmd.type == C.IOMMU_HW_QUEUE_TYPE_DEFAULT:
        raise kerr(errno.EOPNOTSUPP)
    if not cmd.length:
        raise kerr(errno.EINVAL)
    if cmd.nesting_parent_iova + cmd.length - 1 > ULONG_MAX:
        raise kerr(errno.EOVERFLOW)
    viommu = get_viommu(ctx, cmd.viommu_id)
    if cmd.type != C.IOMMU_HW_QUEUE_TYPE_SELFTEST:
        raise kerr(errno.EOPNOTSUPP)
    _pin_check(viommu, cmd.nesting_parent_iova, cmd.length)
    index = cmd.index
    if index >= C.IOMMU_TEST_HW_QUEUE_MAX:
        raise kerr(errno.EINVAL)  # mock_hw_queue_init_phys
    if viommu.hw_queues[index] is not None:
        raise kerr(errno.EEXIST)
    if index and viommu.hw_queues[index - 1] is None:
        raise kerr(errno.EIO)
    queue = HWQueueObj(viommu, index, int(cmd.nesting_parent_iova), int(cmd.length))
    cmd.out_hw_queue_id = ctx.table.add(queue)


def _pin_check(viommu: VIOMMUObj, iova: int, length: int) -> None:
    """iommufd_hw_queue_alloc_phys: every page mapped (ENOENT) and contiguous (EFAULT; the
    fake checks the user addresses, the kernel the physical pages)."""
    iopt = viommu.hwpt.ioas.iopt
    uptrs = []
    for page in range(iova - iova % PAGE_SIZE, iova + length, PAGE_SIZE):
        hit = iopt.translate(page)
        if hit is None:
            raise kerr(errno.ENOENT)
        uptrs.append(hit[0])
    if any(b != a + PAGE_SIZE for a, b in pairwise(uptrs)):
        raise kerr(errno.EFAULT)


OPS = (
    Op(uapi.IOMMU_HW_QUEUE_ALLOC, "iommufd", IOMMU_HW_QUEUE_ALLOC, Conv.SIZE,
       "struct iommu_hw_queue_alloc", "length", "6.17"),
)
"""IOMMU_HW_QUEUE_ALLOC."""
