"""vIOMMU, vDEVICE and HW queue objects of the fake iommufd (Linux 7.3 iommufd/viommu.c).

A vIOMMU is a slice of a physical IOMMU for one VM, wrapping a nesting-parent HWPT; nested HWPTs can
be allocated from it, a vDEVICE gives a bound device its virtual id (vSID, vRID) on it, vEVENTQs
(:mod:`pyvfio.fake.veventq`) report its events and HW queues let hardware read guest queues.  Only
the IOMMUFD_TEST mock IOMMU offers vIOMMUs here (selftest.c mock_viommu_*), as on a 7.3 kernel
without ARM SMMUv3: the fake's VT-d model answers EOPNOTSUPP like intel-iommu (no viommu_init).

The mock-driver half of HWPT_ALLOC (IOMMU_HWPT_DATA_SELFTEST nested domains, the vIOMMU as
``pt_id``) is registered over :mod:`pyvfio.fake.hwpt`'s handler, which still answers for every
other IOMMU; HWPT_INVALIDATE is hwpt.py's, calling the mock objects' ``cache_invalidate_user``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, CData, ffi
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IOASObj, IommufdCtx, Obj
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import kerr
from pyvfio.fake.selftest import HW_INFO_TYPE_SELFTEST
from pyvfio.fake.uaccess import IoctlArg

PAGE_SIZE = 4096
ULONG_MAX = (1 << 64) - 1
IOTLB_NUM = C.MOCK_NESTED_DOMAIN_IOTLB_NUM


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
        self.vdevs: dict[int, VDeviceObj] = {}
        self.veventqs: dict[int, Any] = {}  # type -> VEventQObj
        self.hw_queues: list[HWQueueObj | None] = [None] * C.IOMMU_TEST_HW_QUEUE_MAX
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


def mmaps(ctx: IommufdCtx) -> dict[int, tuple[Obj, int]]:
    """The ctx's mmap-able regions (mt_mmap): offset -> (owner, length)."""
    found: dict[int, tuple[Obj, int]] | None = getattr(ctx, "mmaps", None)
    if found is None:
        found = {}
        ctx.mmaps = found  # type: ignore[attr-defined]
    return found


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


# -- the mock driver's HWPT_ALLOC / HWPT_INVALIDATE (selftest.c), over fake/hwpt.py ------------

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


def _op(request: uapi.Ioctl, handler: Callable[[IommufdCtx, IoctlArg], None], ctype: str,
        last: str, since: str) -> Op:
    return Op(request, "iommufd", handler, Conv.SIZE, ctype, last, since)


OPS = (
    _op(uapi.IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_ALLOC, "struct iommu_viommu_alloc",
        "out_viommu_id", "6.13"),
    _op(uapi.IOMMU_VDEVICE_ALLOC, IOMMU_VDEVICE_ALLOC, "struct iommu_vdevice_alloc", "virt_id",
        "6.13"),
    _op(uapi.IOMMU_HW_QUEUE_ALLOC, IOMMU_HW_QUEUE_ALLOC, "struct iommu_hw_queue_alloc",
        "length", "6.17"),
    # this one wraps fake/hwpt.py's handler (the mock IOMMU's nested domains and vIOMMUs)
    _op(uapi.IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC, "struct iommu_hwpt_alloc", "__reserved", "6.6"),
)
"""The vIOMMU, vDEVICE and HW queue ioctls, and HWPT_ALLOC as a whole (IOMMU_HWPT_INVALIDATE is
fake/hwpt.py's, which calls the objects' ``cache_invalidate_user``)."""


class PageMMIO:
    """An mmap of pages an iommufd object offered (iommufd_fops_mmap: the vIOMMU's two pages):
    plain memory, and the mapping holds its owner (IOMMU_DESTROY is EBUSY until it is closed)."""

    regions = None  # not a BAR: FakeKernel.leaks() reports BAR mmaps only

    def __init__(self, owner: Obj, page: bytearray) -> None:
        self.owner: Obj | None = owner
        self.page = page
        owner.users += 1

    def __len__(self) -> int:
        return len(self.page)

    @property
    def closed(self) -> bool:
        return self.owner is None

    def _check(self, offset: int, size: int) -> bytearray:
        if self.owner is None:
            raise ValueError("I/O operation on a closed mapping")
        if offset < 0 or size < 0 or offset + size > len(self.page):
            raise ValueError(f"[{offset:#x}, +{size:#x}) is outside the mapping")
        return self.page

    def read(self, offset: int, width: int) -> int:
        return int.from_bytes(self._check(offset, width)[offset:offset + width], "little")

    def write(self, offset: int, width: int, value: int) -> None:
        self._check(offset, width)[offset:offset + width] = value.to_bytes(width, "little")

    def read_bytes(self, offset: int, size: int) -> bytes:
        return bytes(self._check(offset, size)[offset:offset + size])

    def write_bytes(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))[offset:offset + len(data)] = data

    def close(self) -> None:
        if self.owner is not None:
            self.owner.users -= 1
            self.owner = None


def iommufd_mmap(ctx: IommufdCtx, length: int, offset: int, shared: bool = True) -> PageMMIO:
    """main.c:iommufd_fops_mmap: only exactly an offered region (offset and length), page
    aligned and shared; anything else ENXIO (EINVAL for an unaligned length)."""
    if length % PAGE_SIZE or not shared:
        raise kerr(errno.EINVAL)
    found = mmaps(ctx).get(offset)
    if found is None or found[1] != length:
        raise kerr(errno.ENXIO)
    owner = found[0]
    assert isinstance(owner, VIOMMUObj) and owner.page is not None
    return PageMMIO(owner, owner.page)
