"""The IOMMUFD_TEST mock driver's half of HWPT_ALLOC (selftest.c): paging domains with the selftest
data, IOMMU_HWPT_DATA_SELFTEST nested domains (from a nesting parent or a vIOMMU) and their IOTLB
invalidation, and the mock attach rules.

IOMMU_HWPT_ALLOC is registered over :mod:`pyvfio.fake.hwpt`'s handler, which still answers for
every other IOMMU; HWPT_INVALIDATE is hwpt.py's, calling
:meth:`MockNestedHWPT.cache_invalidate_user`.
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, CData, ffi
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IOASObj, IommufdCtx
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import kerr
from pyvfio.fake.selftest import HW_INFO_TYPE_SELFTEST
from pyvfio.fake.uaccess import IoctlArg
from pyvfio.fake.viommu import VIOMMUObj, get_device, is_mock

IOTLB_NUM = C.MOCK_NESTED_DOMAIN_IOTLB_NUM

_NESTED_FLAGS = C.IOMMU_HWPT_FAULT_ID_VALID | C.IOMMU_HWPT_ALLOC_PASID


def IOMMU_HWPT_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    pt, dev = ctx.table.objects.get(cmd.pt_id), ctx.table.objects.get(cmd.dev_id)
    mock = isinstance(dev, fhwpt.DeviceObj) and is_mock(dev, ctx)
    if not mock and not isinstance(pt, VIOMMUObj):
        fhwpt.IOMMU_HWPT_ALLOC(ctx, io)  # the other IOMMUs, as before
        return
    if cmd.__reserved or (cmd.flags & C.IOMMU_HWPT_ALLOC_PASID and not io.linux.at_least("6.15")):
        raise kerr(errno.EOPNOTSUPP)  # IOMMU_HWPT_ALLOC_PASID came with 6.15
    if bool(cmd.data_type) != bool(cmd.data_len):  # IOMMU_HWPT_DATA_NONE is 0
        raise kerr(errno.EINVAL)
    dev = get_device(ctx, cmd.dev_id)
    if isinstance(pt, IOASObj):
        hwpt = _mock_paging(ctx, pt, dev, cmd, io.linux)
    elif isinstance(pt, (fhwpt.HWPTObj, VIOMMUObj)) and pt.kind in ("HWPT_PAGING", "VIOMMU"):
        hwpt = _mock_nested_alloc(ctx, pt, dev, cmd)
    else:
        raise kerr(errno.EINVAL)
    fhwpt.attach_fault(ctx, hwpt, cmd)
    cmd.out_hwpt_id = ctx.table.add(hwpt)


def _mock_nested_alloc(ctx: IommufdCtx, pt: fhwpt.HWPTObj | VIOMMUObj, dev: fhwpt.DeviceObj,
                       cmd: CData) -> fhwpt.HWPTObj:
    """iommufd_hwpt_nested_alloc / iommufd_viommu_alloc_hwpt_nested on the mock IOMMU."""
    if isinstance(pt, VIOMMUObj) and not is_mock(dev, ctx):
        raise kerr(errno.EINVAL)  # another physical IOMMU
    if cmd.flags & ~_NESTED_FLAGS or not cmd.data_len:
        raise kerr(errno.EOPNOTSUPP)
    if isinstance(pt, VIOMMUObj):
        return _mock_nested(ctx, pt.hwpt, pt, cmd)
    if pt.auto or not pt.flags & C.IOMMU_HWPT_ALLOC_NEST_PARENT or pt.model is None \
            or pt.model.hw_info_type != HW_INFO_TYPE_SELFTEST:
        raise kerr(errno.EINVAL)
    return _mock_nested(ctx, pt, None, cmd)


def _selftest_data(ctx: IommufdCtx, cmd: CData) -> CData:
    """iommu_copy_struct_from_user(struct iommu_hwpt_selftest, min_last iotlb)."""
    data = ffi.new("struct iommu_hwpt_selftest *")
    if cmd.data_len < 4:
        raise kerr(errno.EINVAL)
    size = ffi.sizeof(data[0])
    raw = ctx.memory.read(cmd.data_uptr, min(cmd.data_len, size))
    if cmd.data_len > size and not ctx.memory.check_zeroed(cmd.data_uptr + size,
                                                           cmd.data_len - size):
        raise kerr(errno.E2BIG)
    ffi.memmove(data, raw, len(raw))
    return data


def _mock_paging(ctx: IommufdCtx, ioas: IOASObj, dev: fhwpt.DeviceObj,
                 cmd: CData, linux: Linux) -> fhwpt.HWPTObj:
    """iommufd_hwpt_paging_alloc + mock_domain_alloc_paging_flags."""
    model = dev.iommu(ctx)
    fhwpt.check_paging_flags(cmd.flags, model, linux)
    if cmd.data_type not in (C.IOMMU_HWPT_DATA_NONE, C.IOMMU_HWPT_DATA_SELFTEST):
        raise kerr(errno.EOPNOTSUPP)
    if cmd.data_len:
        data = _selftest_data(ctx, cmd)
        if data.pagetable_type not in (C.MOCK_IOMMUPT_DEFAULT, C.MOCK_IOMMUPT_HUGE):
            raise kerr(errno.EOPNOTSUPP)
    return fhwpt.paging_hwpt(ctx, ioas, cmd.flags, model)


class MockNestedHWPT(fhwpt.HWPTObj):
    """A mock IOMMU_DOMAIN_NESTED HWPT (struct mock_iommu_domain_nested): four IOTLB entries,
    and the vIOMMU it was allocated from (None when allocated from its parent HWPT)."""

    def __init__(self, parent: fhwpt.HWPTObj, flags: int, iotlb: int,
                 viommu: VIOMMUObj | None) -> None:
        super().__init__(parent.ioas, flags, auto=False, parent=parent)
        self.model = parent.model
        self.iotlb = [iotlb] * IOTLB_NUM
        self.viommu = viommu
        if viommu is not None:
            viommu.users += 1

    def cache_invalidate_user(self, ctx: IommufdCtx, cmd: CData) -> tuple[int, int]:
        """mock_domain_cache_invalidate_user."""
        return _iotlb_invalidate(ctx, self, cmd)

    def destroy(self, ctx: IommufdCtx) -> None:
        super().destroy(ctx)
        if self.viommu is not None:
            self.viommu.users -= 1


def _mock_nested(ctx: IommufdCtx, parent: fhwpt.HWPTObj, viommu: VIOMMUObj | None,
                 cmd: CData) -> fhwpt.HWPTObj:
    """__mock_domain_alloc_nested: a nested domain whose IOTLB entries start at ``iotlb``."""
    if cmd.data_type != C.IOMMU_HWPT_DATA_SELFTEST:
        raise kerr(errno.EOPNOTSUPP)
    data = _selftest_data(ctx, cmd)
    return MockNestedHWPT(parent, cmd.flags, int(data.iotlb), viommu)


def _iotlb_invalidate(ctx: IommufdCtx, hwpt: Any, cmd: CData) -> tuple[int, int]:
    """mock_domain_cache_invalidate_user: one record at a time, stop at the first bad one."""
    if cmd.data_type != C.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST:
        return 0, errno.EINVAL
    done = 0
    try:
        for i in range(cmd.entry_num):
            rec = fhwpt.read_entry(ctx, cmd, i, "struct iommu_hwpt_invalidate_selftest", 8)
            if rec.flags & ~C.IOMMU_TEST_INVALIDATE_FLAG_ALL:
                return done, errno.EOPNOTSUPP
            if rec.iotlb_id > C.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX:
                return done, errno.EINVAL
            if rec.flags & C.IOMMU_TEST_INVALIDATE_FLAG_ALL:
                hwpt.iotlb[:] = [0] * IOTLB_NUM
            else:
                hwpt.iotlb[rec.iotlb_id] = 0
            done += 1
    except OSError as exc:
        return done, exc.errno or errno.EFAULT
    return done, 0


def attach_check(ctx: IommufdCtx, idev: fhwpt.DeviceObj, hwpt: Any) -> None:
    """mock_domain_nop_attach: a device enters a vIOMMU's nested domain only with a vDEVICE
    there (ENOENT); a dirty-tracking domain refuses a NO_DIRTY mock device (EINVAL)."""
    if not is_mock(idev, ctx):
        return
    viommu = getattr(hwpt, "viommu", None)
    if viommu is not None:
        vdev = getattr(idev, "vdev", None)
        if vdev is None or vdev.viommu is not viommu:
            raise kerr(errno.ENOENT)
    if hwpt.flags & C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING and not idev.iommu(ctx).dirty_tracking:
        raise kerr(errno.EINVAL)


OPS = (  # wraps fake/hwpt.py's handler (the mock IOMMU's nested domains and vIOMMUs)
    Op(uapi.IOMMU_HWPT_ALLOC, "iommufd", IOMMU_HWPT_ALLOC, Conv.SIZE, "struct iommu_hwpt_alloc",
       "__reserved", "6.6"),
)
"""HWPT_ALLOC as a whole: the mock IOMMU's, else fake/hwpt.py's."""
