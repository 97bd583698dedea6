"""vIOMMU objects of the fake iommufd (Linux 7.3 iommufd/viommu.c: iommufd_viommu_alloc_ioctl).

A vIOMMU is a slice of a physical IOMMU for one VM, wrapping a nesting-parent HWPT; nested HWPTs can
be allocated from it (:mod:`pyvfio.fake.mock_hwpt`), a vDEVICE gives a bound device its virtual id
on it (:mod:`pyvfio.fake.vdevice`), vEVENTQs (:mod:`pyvfio.fake.veventq`) report its events and HW
queues (:mod:`pyvfio.fake.hw_queue`) let hardware read guest queues.  Only the IOMMUFD_TEST mock
IOMMU offers vIOMMUs here (selftest.c mock_viommu_*), as on a 7.3 kernel without ARM SMMUv3: the
fake's VT-d model answers EOPNOTSUPP like intel-iommu (no viommu_init).  HWPT_INVALIDATE on a
vIOMMU id is fake/hwpt.py's, which calls :meth:`VIOMMUObj.cache_invalidate_user`.
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, CData, ffi
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.iommufd_mmap import mmaps
from pyvfio.fake.memory import kerr
from pyvfio.fake.selftest import HW_INFO_TYPE_SELFTEST
from pyvfio.fake.uaccess import IoctlArg

PAGE_SIZE = 4096


def is_mock(dev: fhwpt.DeviceObj, ctx: IommufdCtx) -> bool:
    """True for a device behind the IOMMUFD_TEST mock IOMMU."""
    return dev.iommu(ctx).hw_info_type == HW_INFO_TYPE_SELFTEST


def mock_state(dev: fhwpt.DeviceObj) -> dict[str, Any]:
    """The mock device's driver state (struct mock_dev): device cache, PASID attachments."""
    state: dict[str, Any] | None = getattr(dev, "mock", None)
    if state is None:
        state = {"cache": [C.IOMMU_TEST_DEV_CACHE_DEFAULT] * C.MOCK_DEV_CACHE_NUM,
                 "pasids": {}, "pasid_1024_error": False}
        dev.mock = state  # type: ignore[attr-defined]
    return state


class VIOMMUObj(Obj):
    """IOMMUFD_OBJ_VIOMMU of the mock IOMMU (struct mock_viommu)."""

    kind = "VIOMMU"

    def __init__(self, parent: fhwpt.HWPTObj, model: Any) -> None:
        super().__init__()
        self.hwpt, self.model = parent, model
        self.vdevs: dict[int, Any] = {}  # virt_id -> vdevice.VDeviceObj
        self.veventqs: dict[int, Any] = {}  # type -> VEventQObj
        self.hw_queues: list[Any] = [None] * C.IOMMU_TEST_HW_QUEUE_MAX  # hw_queue.HWQueueObj
        self.page: bytearray | None = None  # the two mmap-able pages (viommu_alloc_with_data)
        self.mmap_offset = 0
        parent.users += 1

    def cache_invalidate_user(self, ctx: IommufdCtx, cmd: CData) -> tuple[int, int]:
        """mock_viommu_cache_invalidate (IOMMU_HWPT_INVALIDATE on a vIOMMU id)."""
        return _cache_invalidate(ctx, self, cmd)

    def destroy(self, ctx: IommufdCtx) -> None:
        self.hwpt.users -= 1
        if self.mmap_offset:
            getattr(ctx, "mmaps", {}).pop(self.mmap_offset, None)


def get_viommu(ctx: IommufdCtx, viommu_id: int) -> VIOMMUObj:
    """iommufd_get_viommu: ENOENT for anything else."""
    obj = ctx.table.get(viommu_id, "VIOMMU")
    assert isinstance(obj, VIOMMUObj)
    return obj


def get_device(ctx: IommufdCtx, dev_id: int) -> fhwpt.DeviceObj:
    """iommufd_get_device: ENOENT for anything else."""
    obj = ctx.table.get(dev_id, "DEVICE")
    assert isinstance(obj, fhwpt.DeviceObj)
    return obj


def IOMMU_VIOMMU_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    cmd = io.cmd
    if cmd.flags or cmd.type == C.IOMMU_VIOMMU_TYPE_DEFAULT:
        raise kerr(errno.EOPNOTSUPP)
    idev = get_device(ctx, cmd.dev_id)
    if not is_mock(idev, ctx) or cmd.type != C.IOMMU_VIOMMU_TYPE_SELFTEST:
        raise kerr(errno.EOPNOTSUPP)  # no get_viommu_size for this IOMMU/type
    parent = ctx.table.get(cmd.hwpt_id, "HWPT_PAGING")
    assert isinstance(parent, fhwpt.HWPTObj)
    if not parent.flags & C.IOMMU_HWPT_ALLOC_NEST_PARENT:
        raise kerr(errno.EINVAL)
    viommu = VIOMMUObj(parent, idev.iommu(ctx))
    try:
        if cmd.data_len:
            _viommu_data(ctx, viommu, cmd)
    except OSError:
        viommu.destroy(ctx)
        raise
    cmd.out_viommu_id = ctx.table.add(viommu)
    if viommu.page is not None:
        mmaps(ctx)[viommu.mmap_offset] = (viommu, 2 * PAGE_SIZE)


def _viommu_data(ctx: IommufdCtx, viommu: VIOMMUObj, cmd: CData) -> None:
    """mock_viommu_init with user data: loop in_data back, offer two pages for mmap."""
    size = ffi.sizeof("struct iommu_viommu_selftest")
    need = ffi.offsetof("struct iommu_viommu_selftest", "out_data") + 4
    if cmd.data_len < need:
        raise kerr(errno.EINVAL)  # iommu_copy_struct_from_user: shorter than min_last
    raw = ctx.memory.read(cmd.data_uptr, min(cmd.data_len, size))
    if cmd.data_len > size and not ctx.memory.check_zeroed(cmd.data_uptr + size,
                                                           cmd.data_len - size):
        raise kerr(errno.E2BIG)
    data = ffi.new("struct iommu_viommu_selftest *")
    ffi.memmove(data, raw, len(raw))
    table = mmaps(ctx)
    offset = PAGE_SIZE  # mtree_alloc_range from PAGE_SIZE: the first page is never handed out
    while any(o <= offset < o + n or offset <= o < offset + 2 * PAGE_SIZE
              for o, (_, n) in table.items()):
        offset += PAGE_SIZE
    viommu.page = bytearray(2 * PAGE_SIZE)
    viommu.page[:4] = int(data.in_data).to_bytes(4, "little")
    viommu.mmap_offset = offset
    data.out_data = data.in_data
    data.out_mmap_offset = offset
    data.out_mmap_length = 2 * PAGE_SIZE
    ctx.memory.write(cmd.data_uptr, bytes(ffi.buffer(data))[: min(cmd.data_len, size)])


def _cache_invalidate(ctx: IommufdCtx, viommu: VIOMMUObj, cmd: CData) -> tuple[int, int]:
    """mock_viommu_cache_invalidate: the whole array is copied first
    (iommu_copy_struct_from_full_user_array: per entry copy_struct_from_user, so a shorter entry
    is zero-extended and a longer one needs a zero tail, E2BIG), then applied until a bad one."""
    if cmd.entry_num == 0 and cmd.data_type == C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST:
        return 0, 0
    if cmd.data_type != C.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST:
        return 0, errno.EINVAL
    try:
        recs = [fhwpt.read_entry(ctx, cmd, i, "struct iommu_viommu_invalidate_selftest", 0)
                for i in range(cmd.entry_num)]
    except OSError as exc:
        return 0, exc.errno or errno.EFAULT
    done = 0
    for rec in recs:
        err = _invalidate_dev_cache(viommu, rec)
        if err:
            return done, err
        done += 1
    return done, 0


def _invalidate_dev_cache(viommu: VIOMMUObj, rec: CData) -> int:
    """One struct iommu_viommu_invalidate_selftest; return 0 or the errno that stops the array."""
    if rec.flags & ~C.IOMMU_TEST_INVALIDATE_FLAG_ALL:
        return errno.EOPNOTSUPP
    vdev = viommu.vdevs.get(int(rec.vdev_id))
    if rec.cache_id > C.MOCK_DEV_CACHE_ID_MAX or vdev is None:
        return errno.EINVAL
    cache = mock_state(vdev.idev)["cache"]
    if rec.flags & C.IOMMU_TEST_INVALIDATE_FLAG_ALL:
        cache[:] = [0] * len(cache)
    else:
        cache[rec.cache_id] = 0
    return 0


OPS = (
    Op(uapi.IOMMU_VIOMMU_ALLOC, "iommufd", IOMMU_VIOMMU_ALLOC, Conv.SIZE,
       "struct iommu_viommu_alloc", "out_viommu_id", "6.13"),
)
"""IOMMU_VIOMMU_ALLOC."""
