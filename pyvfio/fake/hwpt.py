"""HWPTs and bound devices of the fake iommufd (hw_pagetable.c, device.c).

The objects (HWPT_PAGING/NESTED, DEVICE) and the HWPT_ALLOC, GET_HW_INFO and HWPT_INVALIDATE
ioctls; binding and attaching devices is :mod:`pyvfio.fake.iommufd_device`, dirty tracking
:mod:`pyvfio.fake.dirty`, fault queues :mod:`pyvfio.fake.fault`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, CData, ffi
from pyvfio.fake.dispatch import Conv, Op, RespondThen
from pyvfio.fake.fault import FaultObj
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IOASObj, IommufdCtx, Obj
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import IoctlArg

PAGE_SIZE = 4096


class HWPTObj(Obj):
    """IOMMUFD_OBJ_HWPT_PAGING (``parent is None``) or IOMMUFD_OBJ_HWPT_NESTED."""

    def __init__(self, ioas: IOASObj, flags: int, *, auto: bool, parent: HWPTObj | None = None):
        super().__init__()
        self.kind = "HWPT_NESTED" if parent else "HWPT_PAGING"
        self.ioas, self.flags, self.auto, self.parent = ioas, flags, auto, parent
        self.devices: set[Any] = set()
        self.dirty_enabled = False
        self.dirty: set[int] = set()  # IOVAs of dirty pages (page size of the model)
        self.fault: FaultObj | None = None
        self.invalidations: list[bytes] = []
        self.model: Any = None  # the IOMMUModel of the domain (None: the kernel's default)
        if parent:
            parent.users += 1
        else:
            ioas.users += 1
            ioas.hwpts.append(self)

    def busy(self) -> bool:
        return self.users > 0 or bool(self.devices)

    def cache_invalidate_user(self, ctx: IommufdCtx, cmd: CData) -> tuple[int, int]:
        """A VT-d nested domain's op (a paging HWPT never gets here)."""
        return vtd_nested_invalidate(self, ctx, cmd)

    def destroy(self, ctx: IommufdCtx) -> None:
        if self.parent:
            self.parent.users -= 1
        else:
            self.ioas.users -= 1
            self.ioas.hwpts.remove(self)
            _domains_changed(ctx, self.ioas)
        if self.fault:
            self.fault.users -= 1


class DeviceObj(Obj):
    """IOMMUFD_OBJ_DEVICE: a device bound through its cdev; always EBUSY for IOMMU_DESTROY."""

    kind = "DEVICE"

    def __init__(self, dev: Any, group: object, model: Any = None) -> None:
        super().__init__()
        self.dev, self.group = dev, group
        self.hwpt: HWPTObj | None = None
        self.model = model  # the IOMMU this device sits behind (None: the kernel's default)

    def iommu(self, ctx: IommufdCtx) -> IOMMUModel:
        """The IOMMU model of this device: its own, or the kernel's."""
        model: IOMMUModel = self.model or ctx.model
        return model

    def busy(self) -> bool:
        return True  # the VFIO driver holds its reference until unbind (device.c)


def _domains_changed(ctx: IommufdCtx, ioas: IOASObj) -> None:
    """Recompute reserved ranges and alignment after domains come or go (iopt_table_*)."""
    iopt = ioas.iopt
    if not ioas.hwpts:
        iopt.unreserve("aperture")
        iopt.update_alignment(1)


def add_domain(ctx: IommufdCtx, ioas: IOASObj, model: IOMMUModel | None = None) -> None:
    """Reserve outside the aperture, raise the alignment (io_pagetable.c:iopt_table_add_domain,
    before :func:`fill_domain`). Raises EADDRINUSE."""
    model, iopt = model or ctx.model, ioas.iopt
    if any(o == "aperture" for _, _, o in iopt.reserved.items()):
        return
    start, last = model.aperture
    before = iopt.domain_alignment
    added = []
    try:
        if start > 0:
            iopt.reserve(0, start - 1, "aperture")
            added.append(1)
        if last < (1 << 64) - 1:
            iopt.reserve(last + 1, (1 << 64) - 1, "aperture")
        iopt.update_alignment(model.page_size)
    except OSError:
        iopt.unreserve("aperture")
        iopt.update_alignment(before)
        raise


def fill_domain(ctx: IommufdCtx, ioas: IOASObj, model: IOMMUModel) -> None:
    """io_pagetable.c:iopt_fill_domain for an IOAS's first domain: no area's pages are pinned
    while no domain exists (pages.c), so the domain pins and maps every area now, area by area.
    Raises EFAULT (user pages not mapped, read-only pages of a writable mapping), EINVAL (a file
    area memfd_pin_folios refuses; VT-d: an area neither readable nor writable)."""
    for start, last, area in ioas.iopt.areas.items():
        area.pin(ctx.memory, last - start + 1)
        if model.map_needs_access and not area.prot:
            raise kerr(errno.EINVAL)  # intel/iommu.c:__domain_mapping


# -- ioctls ------------------------------------------------------------------------------------


def _get_device(ctx: IommufdCtx, dev_id: int) -> DeviceObj:
    obj = ctx.table.get(dev_id, "DEVICE")
    assert isinstance(obj, DeviceObj)
    return obj


def get_hwpt(ctx: IommufdCtx, hwpt_id: int, kind: str = "HWPT_PAGING") -> HWPTObj:
    obj = ctx.table.get(hwpt_id)
    if not isinstance(obj, HWPTObj) or obj.kind != kind:
        raise kerr(errno.ENOENT)
    hwpt: HWPTObj = obj
    return hwpt


# the release between 6.12 and 7.3 that let a paging HWPT take a fault queue is not pinned (the
# lane runs those two): 6.12 refuses FAULT_ID_VALID in a paging alloc (tests/conformance/test_iopf)
FAULT_PAGING_SINCE = "7.3"


def IOMMU_HWPT_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    """hw_pagetable.c:iommufd_hwpt_alloc on a VT-d device (the mock IOMMU: fake/mock_hwpt.py).

    Errors: EOPNOTSUPP (``__reserved``; flags, data or a feature the IOMMU lacks), EINVAL
    (data_type and data_len disagree; pt_id no IOAS or paging HWPT, or unknown; a parent that
    is no nesting parent), ENOENT (dev_id no device; fault_id no fault queue), EFAULT.
    """
    cmd = io.cmd
    if cmd.__reserved:
        raise kerr(errno.EOPNOTSUPP)
    if (cmd.data_type == C.IOMMU_HWPT_DATA_NONE) == bool(cmd.data_len):
        raise kerr(errno.EINVAL)
    dev = _get_device(ctx, cmd.dev_id)
    pt = ctx.table.objects.get(cmd.pt_id)
    if isinstance(pt, IOASObj):
        model = dev.iommu(ctx)
        check_paging_flags(cmd.flags, model, io.linux)
        if cmd.data_len:  # intel/iommu.c: a paging domain takes no user data
            raise kerr(errno.EOPNOTSUPP)
        hwpt = paging_hwpt(ctx, pt, cmd.flags, model)
    elif isinstance(pt, HWPTObj) and pt.kind == "HWPT_PAGING":
        hwpt = _alloc_nested(ctx, pt, cmd, io.linux)
    else:
        raise kerr(errno.EINVAL)  # hw_pagetable.c: a bad pt_id is EINVAL, not ENOENT
    attach_fault(ctx, hwpt, cmd)
    cmd.out_hwpt_id = ctx.table.add(hwpt)


def check_paging_flags(flags: int, model: IOMMUModel, linux: Linux) -> None:
    """iommufd_hwpt_paging_alloc's flag checks and the IOMMU driver's (all EOPNOTSUPP)."""
    valid = C.IOMMU_HWPT_ALLOC_NEST_PARENT | C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    if linux.at_least(FAULT_PAGING_SINCE):
        valid |= C.IOMMU_HWPT_FAULT_ID_VALID
    if linux.at_least("6.15"):
        valid |= C.IOMMU_HWPT_ALLOC_PASID
    if flags & ~valid or (model.noiommu and flags):
        raise kerr(errno.EOPNOTSUPP)  # hwpt_noiommu.c:noiommu_alloc_paging_flags: no flags
    if flags & C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING and not model.dirty_tracking:
        raise kerr(errno.EOPNOTSUPP)
    if flags & C.IOMMU_HWPT_FAULT_ID_VALID and flags & C.IOMMU_HWPT_ALLOC_NEST_PARENT:
        raise kerr(errno.EOPNOTSUPP)
    if flags & C.IOMMU_HWPT_ALLOC_NEST_PARENT and not model.nesting:
        raise kerr(errno.EOPNOTSUPP)


def paging_hwpt(ctx: IommufdCtx, ioas: IOASObj, flags: int, model: IOMMUModel) -> HWPTObj:
    """A manual paging HWPT of ``model`` on ``ioas`` (its domain joins the IOAS)."""
    first = not ioas.hwpts
    add_domain(ctx, ioas, model)
    if first:
        try:
            fill_domain(ctx, ioas, model)
        except OSError:
            _domains_changed(ctx, ioas)
            raise
    hwpt = HWPTObj(ioas, flags, auto=False)
    hwpt.model = model
    return hwpt


def attach_fault(ctx: IommufdCtx, hwpt: HWPTObj, cmd: CData) -> None:
    """FAULT_ID_VALID: hold the fault queue ``fault_id`` (ENOENT, the HWPT undone, if none)."""
    if not cmd.flags & C.IOMMU_HWPT_FAULT_ID_VALID:
        return
    fault = ctx.table.objects.get(cmd.fault_id)
    if not isinstance(fault, FaultObj):
        hwpt.destroy(ctx)
        raise kerr(errno.ENOENT)
    hwpt.fault = fault
    fault.users += 1


def _alloc_nested(ctx: IommufdCtx, parent: HWPTObj, cmd: CData, linux: Linux) -> HWPTObj:
    """iommufd_hwpt_nested_alloc + intel/nested.c:intel_nested_domain_alloc."""
    valid = C.IOMMU_HWPT_FAULT_ID_VALID
    if linux.at_least("6.15"):
        valid |= C.IOMMU_HWPT_ALLOC_PASID
    if cmd.flags & ~valid or not cmd.data_len:
        raise kerr(errno.EOPNOTSUPP)
    if parent.auto or not parent.flags & C.IOMMU_HWPT_ALLOC_NEST_PARENT:
        raise kerr(errno.EINVAL)
    if cmd.data_type != C.IOMMU_HWPT_DATA_VTD_S1:
        raise kerr(errno.EOPNOTSUPP)
    if cmd.data_len < ffi.sizeof("struct iommu_hwpt_vtd_s1"):
        raise kerr(errno.EINVAL)
    ctx.memory.read(cmd.data_uptr, cmd.data_len)  # copy_struct_from_user: EFAULT
    return HWPTObj(parent.ioas, cmd.flags, auto=False, parent=parent)


def IOMMU_GET_HW_INFO(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    """device.c:iommufd_get_hw_info: the IOMMU driver's data (``min(data_len, its length)``
    bytes, the rest of the user buffer zeroed), its length, type and capabilities.

    7.3 takes IOMMU_HW_INFO_FLAG_INPUT_TYPE (``in_data_type`` asks for one type: the driver's
    own or DEFAULT) and reports PCI_ATS_NOT_SUPPORTED for a device whose IOMMU gives it no ATS
    (VT-d without device-iotlb, the mock IOMMU: every device).

    Errors: EOPNOTSUPP (unknown flags, ``__reserved``, a type the driver does not have),
    ENOENT (dev_id no device), EFAULT.
    """
    cmd = io.cmd
    new_uapi = io.linux.at_least("7.3")  # INPUT_TYPE and ATS_NOT_SUPPORTED: first release unchecked
    if cmd.flags & ~(C.IOMMU_HW_INFO_FLAG_INPUT_TYPE if new_uapi else 0) or any(cmd.__reserved):
        raise kerr(errno.EOPNOTSUPP)
    if not cmd.flags & C.IOMMU_HW_INFO_FLAG_INPUT_TYPE:
        cmd.in_data_type = C.IOMMU_HW_INFO_TYPE_DEFAULT
    model = _get_device(ctx, cmd.dev_id).iommu(ctx)
    if model.noiommu:
        raise kerr(errno.EOPNOTSUPP)  # device.c:iommufd_get_hw_info: no IOMMU to describe
    if cmd.in_data_type not in (C.IOMMU_HW_INFO_TYPE_DEFAULT, model.hw_info_type):
        raise kerr(errno.EOPNOTSUPP)  # the driver's hw_info op refuses another type
    data = model.hw_info_data
    if cmd.data_len:
        n = min(cmd.data_len, len(data))
        ctx.memory.write(cmd.data_uptr, data[:n] + bytes(cmd.data_len - n))
    cmd.data_len = len(data)
    cmd.out_data_type = model.hw_info_type
    cmd.out_capabilities = model.capabilities
    if new_uapi and not model.ats:
        cmd.out_capabilities |= C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED
    cmd.out_max_pasid_log2 = model.max_pasid_log2


INVALIDATE_ENTRY_NUM_MAX = 1 << 19  # hw_pagetable.c: IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX
VTD_S1_INVALIDATE_SIZE = ffi.sizeof("struct iommu_hwpt_vtd_s1_invalidate")


def IOMMU_HWPT_INVALIDATE(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    """hw_pagetable.c:iommufd_hwpt_invalidate: every outcome copies the struct back, with
    ``entry_num`` set to the entries the driver handled (0 when it never ran).

    Errors: EOPNOTSUPP (``__reserved``; a driver refusing an entry), EINVAL (entries without a
    buffer or a length, entries longer than a page or more than 2^19; from 6.14 an object
    that is neither a nested HWPT nor a vIOMMU; a bad data type or entry), ENOENT (no such
    object; on 6.12 any object but a nested HWPT), E2BIG, EFAULT.
    """
    cmd = io.cmd
    done, err = 0, 0
    if cmd.__reserved:
        err = errno.EOPNOTSUPP
    elif cmd.entry_num and (not cmd.data_uptr or not cmd.entry_len or cmd.entry_len > PAGE_SIZE
                            or cmd.entry_num > INVALIDATE_ENTRY_NUM_MAX):
        err = errno.EINVAL  # the bounds reached 6.12.y too (the lane's 6.12.117 has them)
    else:
        done, err = _cache_invalidate(ctx, io)
    cmd.entry_num = done
    if err:
        raise RespondThen(err)


def _cache_invalidate(ctx: IommufdCtx, io: IoctlArg) -> tuple[int, int]:
    """The object lookup and the driver's invalidation: (entries done, errno or 0)."""
    cmd = io.cmd
    obj = ctx.table.objects.get(cmd.hwpt_id)
    if obj is None or obj.kind == "TOMBSTONE":
        return 0, errno.ENOENT
    if not io.linux.at_least("6.14"):  # 6.14 took vIOMMUs: iommufd_get_hwpt_nested before
        if obj.kind != "HWPT_NESTED":
            return 0, errno.ENOENT
    elif obj.kind not in ("HWPT_NESTED", "VIOMMU"):
        return 0, errno.EINVAL
    return obj.cache_invalidate_user(ctx, cmd)


def read_entry(ctx: IommufdCtx, cmd: CData, index: int, ctype: str, min_size: int) -> CData:
    """iommu_copy_struct_from_user_array: entry ``index`` of the array, zero-extended.

    Raises EINVAL (shorter than ``min_size``), E2BIG (longer, with a non-zero tail), EFAULT.
    """
    if cmd.entry_len < min_size:
        raise kerr(errno.EINVAL)
    size = ffi.sizeof(ctype)
    base = cmd.data_uptr + index * cmd.entry_len
    raw = ctx.memory.read(base, min(cmd.entry_len, size))
    if cmd.entry_len > size and not ctx.memory.check_zeroed(base + size, cmd.entry_len - size):
        raise kerr(errno.E2BIG)
    rec = ffi.new(ctype + " *")
    ffi.memmove(rec, raw, len(raw))
    return rec


def vtd_nested_invalidate(hwpt: HWPTObj, ctx: IommufdCtx, cmd: CData) -> tuple[int, int]:
    """intel/nested.c:intel_nested_cache_invalidate_user: entry by entry, stop at a bad one."""
    if cmd.data_type != C.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1:
        return 0, errno.EINVAL
    done = 0
    for i in range(cmd.entry_num):
        try:
            rec = read_entry(ctx, cmd, i, "struct iommu_hwpt_vtd_s1_invalidate",
                             VTD_S1_INVALIDATE_SIZE)
        except OSError as exc:
            return done, exc.errno or errno.EFAULT
        if rec.flags & ~C.IOMMU_VTD_INV_FLAGS_LEAF or rec.__reserved:
            return done, errno.EOPNOTSUPP
        if rec.addr % PAGE_SIZE or (rec.npages == (1 << 64) - 1 and rec.addr):
            return done, errno.EINVAL
        hwpt.invalidations.append(bytes(ffi.buffer(rec)))
        done += 1
    return done, 0


def _op(request: uapi.Ioctl, handler: Callable[[IommufdCtx, IoctlArg], None], ctype: str,
        last: str, since: str) -> Op:
    return Op(request, "iommufd", handler, Conv.SIZE, ctype, last, since)


OPS = (  # IOMMU_HWPT_ALLOC: fake/mock_hwpt.py's OPS wrap this module's
    _op(uapi.IOMMU_GET_HW_INFO, IOMMU_GET_HW_INFO, "struct iommu_hw_info", "__reserved", "6.6"),
    _op(uapi.IOMMU_HWPT_INVALIDATE, IOMMU_HWPT_INVALIDATE, "struct iommu_hwpt_invalidate",
        "__reserved", "6.8"),
)
"""The hardware-info and HWPT invalidation ioctls of /dev/iommu (device.c, hw_pagetable.c)."""
