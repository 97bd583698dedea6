"""IOMMU_TEST_CMD of the fake iommufd: the mock domain of drivers/iommu/iommufd/selftest.c.

Kernels built with CONFIG_IOMMUFD_TEST answer ``IOMMU_TEST_CMD`` (cdefs/iommufd_test.h): a mock
device on a mock IOMMU that the tools/testing/selftests/iommu suite uses for what real hardware
cannot show, dirty tracking above all.  Modelled here: MOCK_DOMAIN(_FLAGS) (a selftest object, a
bound DEVICE and its attachment to an IOAS or HWPT), MOCK_DOMAIN_REPLACE, DIRTY (mark IOVAs dirty
as if the device wrote them), MD_CHECK_MAP and ADD_RESERVED.  The others are EOPNOTSUPP here.

Known difference: Linux 6.12 answers MOCK_DOMAIN with EINVAL when a real IOMMU driver serves the
machine (the lane's ``iommufd`` profile, QEMU intel-iommu); this fake always creates mock devices,
like the ``mock`` profile (no vIOMMU).  ``IOMMUModel.iommufd_test = False`` removes the command.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

from pyvfio import uapi
from pyvfio._ffi import C, CData
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake import iommufd_device
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg

MOCK_IO_PAGE_SIZE = 2048  # PAGE_SIZE / 2: the mock domain's only page size (without HUGE_IOVA)
HW_INFO_TYPE_SELFTEST = 0xFEEDBEEF
_DEV_FLAGS = C.MOCK_FLAGS_DEVICE_NO_DIRTY | C.MOCK_FLAGS_DEVICE_PASID  # 7.3 (mock_dev_create)
TestOp = Callable[[IommufdCtx, CData], None]


def mock_iommu(dev_flags: int) -> IOMMUModel:
    """The mock IOMMU behind a mock device (mock_ops, mock_domain_alloc_paging)."""
    dirty = not dev_flags & C.MOCK_FLAGS_DEVICE_NO_DIRTY
    return IOMMUModel(
        hw_info_type=HW_INFO_TYPE_SELFTEST,
        hw_info_data=struct.pack("<II", 0, 0xDEADBEEF),  # struct iommu_test_hw_info
        capabilities=C.IOMMU_HW_CAP_DIRTY_TRACKING if dirty else 0,
        aperture=(C.MOCK_APERTURE_START, C.MOCK_APERTURE_LAST),
        reserved=(),
        pgsize_bitmap=MOCK_IO_PAGE_SIZE,
        dirty_tracking=dirty,
        nesting=True,  # mock_domain_alloc_paging_flags takes NEST_PARENT
        map_needs_access=False,  # mock_domain_map_pages stores any prot
        max_pasid_log2=C.MOCK_PASID_WIDTH if dev_flags & C.MOCK_FLAGS_DEVICE_PASID else 0,
    )


class SelftestObj(Obj):
    """IOMMUFD_OBJ_SELFTEST of type MOCK: owns a mock device bound as ``idev``."""

    kind = "SELFTEST"

    def __init__(self) -> None:
        super().__init__()
        self.idev: fhwpt.DeviceObj | None = None

    def destroy(self, ctx: IommufdCtx) -> None:
        """iommufd_selftest_destroy: detach and unbind the mock device."""
        if self.idev is not None:
            iommufd_device.unbind_device(ctx, self.idev)
            self.idev = None


def _attach(ctx: IommufdCtx, idev: fhwpt.DeviceObj, pt_id: int) -> int:
    """iommufd_device_attach/replace of a mock device; return the HWPT id."""
    return iommufd_device.attach_device(ctx, idev, pt_id)


def _mock_domain(ctx: IommufdCtx, cmd: CData, dev_flags: int) -> None:
    if dev_flags & ~_DEV_FLAGS:
        raise kerr(errno.EINVAL)
    sobj = SelftestObj()
    ctx.table.add(sobj)  # iommufd_object_alloc: the selftest object's id comes first
    try:
        sobj.idev = iommufd_device.bind_device(ctx, None, sobj, mock_iommu(dev_flags))
        cmd.mock_domain.out_hwpt_id = _attach(ctx, sobj.idev, cmd.id)
    except OSError:
        ctx.destroy(sobj)
        raise
    cmd.mock_domain.out_stdev_id = sobj.id
    cmd.mock_domain.out_idev_id = sobj.idev.id


def _get_selftest(ctx: IommufdCtx, obj_id: int) -> SelftestObj:
    obj = ctx.table.get(obj_id, "SELFTEST")
    assert isinstance(obj, SelftestObj) and obj.idev is not None
    return obj


def _md_pagetable(ctx: IommufdCtx, hwpt_id: int) -> fhwpt.HWPTObj:
    """get_md_pagetable: a HWPT_PAGING (ENOENT) whose domain is a mock one (EINVAL)."""
    obj = ctx.table.get(hwpt_id, "HWPT_PAGING")
    assert isinstance(obj, fhwpt.HWPTObj)
    if obj.model is None or obj.model.hw_info_type != HW_INFO_TYPE_SELFTEST:
        raise kerr(errno.EINVAL)
    return obj


def _dirty(ctx: IommufdCtx, cmd: CData, counts_unmapped: bool) -> None:
    """iommufd_test_dirty: mark the mapped IOVAs whose bit is set in the user bitmap dirty.

    ``out_nr_dirty``: 6.12 counts the IOVAs it marked (only mapped ones, an xarray lookup); 7.3's
    mock domain is a generic page table whose ``set_dirty`` on an unmapped IOVA fails silently,
    and it counts every bit set in the user bitmap (``counts_unmapped``).
    """
    d = cmd.dirty
    if not d.page_size or not d.length or d.iova % d.page_size or d.length % d.page_size \
            or not d.uptr:
        raise kerr(errno.EINVAL)
    hwpt = _md_pagetable(ctx, cmd.id)
    if not hwpt.dirty_enabled:
        raise kerr(errno.EINVAL)  # MOCK_DIRTY_TRACK is off
    count = d.length // d.page_size
    bitmap = ctx.memory.read(d.uptr, (count + 7) // 8)
    marked = 0
    for i in range(count):
        if bitmap[i // 8] >> (i % 8) & 1:
            cur = d.iova + i * d.page_size
            if hwpt.ioas.iopt.translate(cur) is not None:  # only IOVAs the domain maps
                hwpt.dirty.add(cur)
                marked += 1
            elif counts_unmapped:
                marked += 1
    d.out_nr_dirty = marked


def _md_check_map(ctx: IommufdCtx, cmd: CData) -> None:
    """iommufd_test_md_check_pa: the mock domain maps [iova, +length) onto uptr. Else EINVAL."""
    c = cmd.check_map
    if not c.length or c.iova % MOCK_IO_PAGE_SIZE or c.length % MOCK_IO_PAGE_SIZE \
            or c.uptr + c.length > (1 << 64) - 1:
        raise kerr(errno.EINVAL)
    hwpt = _md_pagetable(ctx, cmd.id)
    for off in range(0, c.length, MOCK_IO_PAGE_SIZE):
        ctx.memory.read(c.uptr + off, 1)  # get_user_pages_fast: EFAULT
        hit = hwpt.ioas.iopt.translate(c.iova + off)
        if hit is None or hit[0] != c.uptr + off:
            raise kerr(errno.EINVAL)


def _test_cmd(ctx: IommufdCtx, io: IoctlArg, newer: dict[int, tuple[str, TestOp]]) -> None:
    if not ctx.model.iommufd_test:
        raise kerr(errno.ENOTTY)  # a kernel without CONFIG_IOMMUFD_TEST
    cmd = io.cmd
    op = cmd.op
    if op == C.IOMMU_TEST_OP_MOCK_DOMAIN:
        _mock_domain(ctx, cmd, 0)
    elif op == C.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
        _mock_domain(ctx, cmd, cmd.mock_domain_flags.dev_flags)
    elif op == C.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
        sobj = _get_selftest(ctx, cmd.id)
        assert sobj.idev is not None
        cmd.mock_domain_replace.pt_id = _attach(ctx, sobj.idev, cmd.mock_domain_replace.pt_id)
    elif op == C.IOMMU_TEST_OP_DIRTY:
        _dirty(ctx, cmd, io.linux.at_least("7.3"))
    elif op == C.IOMMU_TEST_OP_MD_CHECK_MAP:
        _md_check_map(ctx, cmd)
    elif op == C.IOMMU_TEST_OP_ADD_RESERVED:
        ioas = ctx.get_ioas(cmd.id)
        r = cmd.add_reserved
        if not r.length or r.start + r.length - 1 > (1 << 64) - 1:
            raise kerr(errno.EINVAL)
        ioas.iopt.reserve(r.start, r.start + r.length - 1, "selftest")
    elif op in newer and io.linux.at_least(newer[op][0]):
        newer[op][1](ctx, cmd)
    else:
        raise kerr(errno.EOPNOTSUPP)  # unknown op, or one this fake does not model


def test_cmd_op(newer: dict[int, tuple[str, TestOp]]) -> Op:
    """IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST, selftest.c) with the ops of this module plus
    ``newer``: op number -> (the Linux version that added it, its handler)."""

    def IOMMU_TEST_CMD(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
        _test_cmd(ctx, io, newer)

    return Op(uapi.TEST_IOCTLS["IOMMU_TEST_CMD"], "iommufd", IOMMU_TEST_CMD, Conv.SIZE,
              "struct iommu_test_cmd", "last", since="6.2")
