"""PASID attachments of bound devices, and the IOMMUFD_TEST ops added after 6.12 (Linux 7.3).

A device (its IOMMU group) has one attachment per PASID besides the RID's (device.c
``igroup->pasid_attach``): PASID_ATTACH/REPLACE/DETACH of the mock device and
VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID on a cdev both end here.  The rules
(device.c:iommufd_hwpt_pasid_compat, iommu.c:iommu_attach_device_pasid): only a HWPT allocated
with IOMMU_HWPT_ALLOC_PASID goes on a PASID, and then the RID's HWPT must be one too; a device
without PASID support refuses any PASID; attaching an attached PASID is EBUSY, replacing a free
one EINVAL.  The mock's set_dev_pasid fails every second non-blocking change of PASID 1024 with
ENOMEM (selftest.c:mock_domain_set_dev_pasid_nop), for the core's rollback test.

Test ops here: TRIGGER_IOPF (a page request into the attached HWPT's fault queue), TRIGGER_VEVENT,
PASID_*, MD_CHECK_IOTLB, DEV_CHECK_CACHE.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio._ffi import C, CData
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake import selftest
from pyvfio.fake.iommufd import IommufdCtx
from pyvfio.fake.memory import kerr
from pyvfio.fake.mock_hwpt import MockNestedHWPT
from pyvfio.fake.veventq import report
from pyvfio.fake.viommu import get_device, is_mock, mock_state

IOMMU_NO_PASID = 0
PASID_ERROR = C.IOMMU_TEST_PASID_RESERVED  # 1024


def attachments(idev: fhwpt.DeviceObj) -> dict[int, fhwpt.HWPTObj]:
    """PASID -> HWPT of ``idev``."""
    found: dict[int, fhwpt.HWPTObj] | None = getattr(idev, "pasids", None)
    if found is None:
        found = {}
        idev.pasids = found  # type: ignore[attr-defined]
    return found


def _target(ctx: IommufdCtx, pt_id: int) -> fhwpt.HWPTObj:
    """iommufd_device_change_pt for a PASID: a HWPT, or an IOAS whose automatic domain is never
    PASID-compatible (EINVAL); anything else EINVAL, an unknown id ENOENT."""
    obj = ctx.table.get(pt_id)
    if isinstance(obj, fhwpt.HWPTObj):
        return obj
    raise kerr(errno.EINVAL)


def _compat(ctx: IommufdCtx, idev: fhwpt.DeviceObj, hwpt: fhwpt.HWPTObj) -> None:
    if is_mock(idev, ctx) and not idev.iommu(ctx).max_pasid_log2:
        raise kerr(errno.EINVAL)  # the mock driver refuses a device without MOCK_FLAGS_DEVICE_PASID
    if not hwpt.flags & C.IOMMU_HWPT_ALLOC_PASID:
        raise kerr(errno.EINVAL)
    rid = idev.hwpt
    if rid is not None and not rid.flags & C.IOMMU_HWPT_ALLOC_PASID:
        raise kerr(errno.EINVAL)


def rid_compat(idev: fhwpt.DeviceObj, hwpt: Any) -> None:
    """The RID may only move to a non-PASID HWPT while no PASID is attached (EINVAL)."""
    if attachments(idev) and not hwpt.flags & C.IOMMU_HWPT_ALLOC_PASID:
        raise kerr(errno.EINVAL)


def _set_dev_pasid(ctx: IommufdCtx, idev: fhwpt.DeviceObj, pasid: int, blocked: bool) -> None:
    if not is_mock(idev, ctx) or pasid != PASID_ERROR:
        return
    state = mock_state(idev)
    if blocked:
        state["pasid_1024_error"] = False
    elif state["pasid_1024_error"]:
        state["pasid_1024_error"] = False
        raise kerr(errno.ENOMEM)
    else:
        state["pasid_1024_error"] = True


def pasid_attach(ctx: IommufdCtx, idev: fhwpt.DeviceObj, pasid: int, pt_id: int) -> int:
    """iommufd_device_attach(pasid); return the HWPT id. Raises ENOENT, EINVAL, EBUSY."""
    hwpt = _target(ctx, pt_id)
    if pasid in attachments(idev):
        raise kerr(errno.EBUSY)
    _compat(ctx, idev, hwpt)
    width = idev.iommu(ctx).max_pasid_log2
    if pasid == IOMMU_NO_PASID or (width and pasid >= 1 << width):
        raise kerr(errno.EINVAL)  # iommu.c: no range check for a device without PASID (0)
    _set_dev_pasid(ctx, idev, pasid, blocked=False)
    attachments(idev)[pasid] = hwpt
    hwpt.users += 1
    return hwpt.id


def pasid_replace(ctx: IommufdCtx, idev: fhwpt.DeviceObj, pasid: int, pt_id: int) -> int:
    """iommufd_device_replace(pasid). Raises EINVAL (PASID not attached, incompatible), ENOMEM."""
    hwpt = _target(ctx, pt_id)
    old = attachments(idev).get(pasid)
    if old is None:
        raise kerr(errno.EINVAL)
    _compat(ctx, idev, hwpt)
    if old is hwpt:
        return hwpt.id
    _set_dev_pasid(ctx, idev, pasid, blocked=False)
    attachments(idev)[pasid] = hwpt
    hwpt.users += 1
    old.users -= 1
    return hwpt.id


def pasid_detach(ctx: IommufdCtx, idev: fhwpt.DeviceObj, pasid: int) -> None:
    """iommufd_device_detach(pasid): a free PASID is no error."""
    old = attachments(idev).pop(pasid, None)
    if old is not None:
        old.users -= 1
        _set_dev_pasid(ctx, idev, pasid, blocked=True)


def detach_all(idev: fhwpt.DeviceObj) -> None:
    """Unbind: every PASID goes back to blocked (vfio/iommufd.c:vfio_iommufd_physical_unbind)."""
    for hwpt in attachments(idev).values():
        hwpt.users -= 1
    attachments(idev).clear()


# -- IOMMU_TEST_CMD ops ------------------------------------------------------------------------


def _stdev(ctx: IommufdCtx, cmd: CData) -> fhwpt.DeviceObj:
    sobj = ctx.table.get(cmd.id, "SELFTEST")
    idev = getattr(sobj, "idev", None)
    assert isinstance(idev, fhwpt.DeviceObj)
    return idev


def _op_pasid_attach(ctx: IommufdCtx, cmd: CData) -> None:
    a = cmd.pasid_attach
    a.pt_id = pasid_attach(ctx, _stdev(ctx, cmd), a.pasid, a.pt_id)


def _op_pasid_replace(ctx: IommufdCtx, cmd: CData) -> None:
    a = cmd.pasid_attach  # the kernel reads pasid_replace through pasid_attach: same layout
    a.pt_id = pasid_replace(ctx, _stdev(ctx, cmd), a.pasid, a.pt_id)


def _op_pasid_detach(ctx: IommufdCtx, cmd: CData) -> None:
    pasid_detach(ctx, _stdev(ctx, cmd), cmd.pasid_detach.pasid)


def _op_pasid_check_hwpt(ctx: IommufdCtx, cmd: CData) -> None:
    """iommufd_test_pasid_check_hwpt: EINVAL unless the PASID is on ``hwpt_id`` (0: detached)."""
    idev = _stdev(ctx, cmd)
    attached = attachments(idev).get(cmd.pasid_check.pasid)
    if not cmd.pasid_check.hwpt_id:
        if attached is not None:
            raise kerr(errno.EINVAL)
        return
    obj = ctx.table.get(cmd.pasid_check.hwpt_id)
    if not isinstance(obj, fhwpt.HWPTObj) or attached is not obj:
        raise kerr(errno.EINVAL)


def _fault_target(idev: fhwpt.DeviceObj, pasid: int) -> fhwpt.HWPTObj | None:
    """iommu_report_device_fault: the PASID's domain, else (user_pasid_table) the RID's nested
    domain; without PASID the RID's domain."""
    if pasid == IOMMU_NO_PASID:
        return idev.hwpt
    attached = attachments(idev).get(pasid)
    if attached is not None:
        return attached
    rid = idev.hwpt
    return rid if rid is not None and rid.kind == "HWPT_NESTED" else None


def _op_trigger_iopf(ctx: IommufdCtx, cmd: CData) -> None:
    """iommufd_test_trigger_iopf: one page request (a group of one, LAST_PAGE) to the domain's
    fault queue; a domain without one drops it, and the op still succeeds."""
    t = cmd.trigger_iopf
    idev = get_device(ctx, t.dev_id)
    if not is_mock(idev, ctx):
        raise kerr(errno.EINVAL)
    hwpt = _fault_target(idev, t.pasid)
    if hwpt is None or hwpt.fault is None:
        return
    flags = C.IOMMU_PGFAULT_FLAGS_LAST_PAGE
    if t.pasid != IOMMU_NO_PASID:
        flags |= C.IOMMU_PGFAULT_FLAGS_PASID_VALID
    hwpt.fault.report(idev.id, int(t.addr), int(t.perm), flags, pasid=int(t.pasid),
                      grpid=int(t.grpid))


def _op_trigger_vevent(ctx: IommufdCtx, cmd: CData) -> None:
    """iommufd_test_trigger_vevent: ENOENT unless the device sits in a vIOMMU's nested domain
    with a vDEVICE; EOPNOTSUPP without a SELFTEST vEVENTQ on that vIOMMU."""
    idev = get_device(ctx, cmd.trigger_vevent.dev_id)
    hwpt = idev.hwpt
    viommu = hwpt.viommu if isinstance(hwpt, MockNestedHWPT) else None
    vdev = getattr(idev, "vdev", None)
    if viommu is None or vdev is None or vdev.viommu is not viommu or not vdev.virt_id:
        raise kerr(errno.ENOENT)
    report(viommu, C.IOMMU_VEVENTQ_TYPE_SELFTEST, struct.pack("<I", vdev.virt_id & 0xFFFFFFFF))


def _op_md_check_iotlb(ctx: IommufdCtx, cmd: CData) -> None:
    obj = ctx.table.get(cmd.id, "HWPT_NESTED")
    if not isinstance(obj, MockNestedHWPT):
        raise kerr(errno.EINVAL)
    c = cmd.check_iotlb
    if c.id > C.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX or obj.iotlb[c.id] != c.iotlb:
        raise kerr(errno.EINVAL)


def _op_dev_check_cache(ctx: IommufdCtx, cmd: CData) -> None:
    idev = get_device(ctx, cmd.id)
    c = cmd.check_dev_cache
    if c.id > C.MOCK_DEV_CACHE_ID_MAX or mock_state(idev)["cache"][c.id] != c.cache:
        raise kerr(errno.EINVAL)


TEST_OPS: dict[int, tuple[str, selftest.TestOp]] = {
    C.IOMMU_TEST_OP_MD_CHECK_IOTLB: ("6.8", _op_md_check_iotlb),
    C.IOMMU_TEST_OP_TRIGGER_IOPF: ("6.11", _op_trigger_iopf),
    C.IOMMU_TEST_OP_DEV_CHECK_CACHE: ("6.13", _op_dev_check_cache),
    C.IOMMU_TEST_OP_TRIGGER_VEVENT: ("6.15", _op_trigger_vevent),
    C.IOMMU_TEST_OP_PASID_ATTACH: ("6.15", _op_pasid_attach),
    C.IOMMU_TEST_OP_PASID_REPLACE: ("6.15", _op_pasid_replace),
    C.IOMMU_TEST_OP_PASID_DETACH: ("6.15", _op_pasid_detach),
    C.IOMMU_TEST_OP_PASID_CHECK_HWPT: ("6.15", _op_pasid_check_hwpt),
}
"""The IOMMU_TEST_CMD ops of this module: op -> (Linux version that added it, handler)."""

__all__ = ["TEST_OPS", "attachments", "detach_all", "pasid_attach", "pasid_detach",
           "pasid_replace", "rid_compat"]
