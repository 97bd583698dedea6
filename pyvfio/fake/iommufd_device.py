"""The device side of iommufd (drivers/iommu/iommufd/device.c): bind, attach or replace, detach,
unbind, and the DMA of an attached device through its HWPT.

The VFIO cdev (:mod:`pyvfio.fake.cdev`), a group over an iommufd (:mod:`pyvfio.fake.group`,
vfio/iommufd.c's compat path) and the selftest's mock devices (:mod:`pyvfio.fake.selftest`) all
bind and attach through these.
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio._ffi import C
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake import mock_hwpt, vdevice
from pyvfio.fake import pasid as fpasid
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IOASObj, IommufdCtx
from pyvfio.fake.memory import kerr


def bind_device(ctx: IommufdCtx, dev: Any, group: object,
                model: IOMMUModel | None = None) -> fhwpt.DeviceObj:
    """Bind ``dev`` (IOMMU ``group``, behind ``model``) to ``ctx`` (iommufd_device_bind)."""
    obj = fhwpt.DeviceObj(dev, group, model)
    ctx.table.add(obj)
    return obj


def unbind_device(ctx: IommufdCtx, obj: fhwpt.DeviceObj) -> None:
    """Detach and forget the device (iommufd_device_unbind), its vDEVICE and PASIDs with it."""
    vdevice.tombstone_vdevice(ctx, obj)
    fpasid.detach_all(obj)
    detach_device(ctx, obj)
    ctx.table.remove(obj)


def _group_members(ctx: IommufdCtx, group: object) -> list[fhwpt.DeviceObj]:
    objs = ctx.table.objects.values()
    return [o for o in objs if isinstance(o, fhwpt.DeviceObj) and o.group == group]


def _auto_hwpt(ctx: IommufdCtx, ioas: IOASObj, obj: fhwpt.DeviceObj) -> fhwpt.HWPTObj:
    model = obj.iommu(ctx)
    for found in ioas.hwpts:
        if found.auto and (found.model or ctx.model) is model:
            auto: fhwpt.HWPTObj = found  # compatible: a domain of the same IOMMU
            return auto
    hwpt = fhwpt.HWPTObj(ioas, 0, auto=True)
    hwpt.model = model
    ctx.table.add(hwpt)
    return hwpt


def _reserve_device(ctx: IommufdCtx, ioas: IOASObj, obj: fhwpt.DeviceObj) -> None:
    """iopt_table_enforce_dev_resv_regions: the device's reserved regions (the MSI window)."""
    if any(o is obj for _, _, o in ioas.iopt.reserved.items()):
        return
    try:
        for first, last in obj.iommu(ctx).reserved:
            ioas.iopt.reserve(first, last, obj)
    except OSError:
        ioas.iopt.unreserve(obj)
        raise


def attach_device(ctx: IommufdCtx, obj: fhwpt.DeviceObj, pt_id: int) -> int:
    """Attach (or replace) ``obj``'s group to the IOAS/HWPT ``pt_id``; return the HWPT id.

    Raises:
        OSError: ENOENT unknown id, EINVAL wrong object type or a group neighbour on another
            HWPT, EADDRINUSE reserved regions colliding with mappings or allowed ranges.
    """
    target = ctx.table.get(pt_id)
    if not isinstance(target, (IOASObj, fhwpt.HWPTObj)):
        raise kerr(errno.EINVAL)
    members = _group_members(ctx, obj.group)
    current = obj.hwpt or next((m.hwpt for m in members if m.hwpt), None)
    same = current is target or (current is not None and current.auto and current.ioas is target)
    if obj.hwpt is None and current is not None and not same:
        raise kerr(errno.EINVAL)  # device.c: igroup->hwpt != hwpt
    ioas = target if isinstance(target, IOASObj) else target.ioas
    created = isinstance(target, IOASObj) and not any(h.auto for h in ioas.hwpts)
    first_domain = isinstance(target, IOASObj) and not ioas.hwpts
    if isinstance(target, fhwpt.HWPTObj):
        mock_hwpt.attach_check(ctx, obj, target)  # the mock driver's attach_dev
        fpasid.rid_compat(obj, target)
    hwpt = _auto_hwpt(ctx, target, obj) if isinstance(target, IOASObj) else target
    try:
        fhwpt.add_domain(ctx, ioas, obj.iommu(ctx))
        _reserve_device(ctx, ioas, obj)
        if first_domain:
            fhwpt.fill_domain(ctx, ioas, obj.iommu(ctx))
    except OSError:
        ioas.iopt.unreserve(obj)
        if created:
            ctx.destroy(hwpt)
        raise
    movers = [obj] if current is None else [m for m in members if m.hwpt is current] + [obj]
    for m in set(movers):
        _set_hwpt(ctx, m, hwpt)
    return hwpt.id


def _set_hwpt(ctx: IommufdCtx, obj: fhwpt.DeviceObj, hwpt: fhwpt.HWPTObj | None) -> None:
    old, obj.hwpt = obj.hwpt, hwpt
    if hwpt is not None:
        hwpt.devices.add(obj)
    if old is not None and old is not hwpt:
        old.devices.discard(obj)
        if old.ioas is not (hwpt.ioas if hwpt else None):
            old.ioas.iopt.unreserve(obj)
        if old.auto and not old.devices:
            ctx.destroy(old)


def detach_device(ctx: IommufdCtx, obj: fhwpt.DeviceObj) -> None:
    """Detach ``obj`` if attached; a no-op otherwise (vfio_iommufd_physical_detach_ioas)."""
    if obj.hwpt is not None:
        _set_hwpt(ctx, obj, None)


def dma_translate(
    ctx: IommufdCtx, obj: fhwpt.DeviceObj, iova: int, write: bool
) -> tuple[int, int] | None:
    """Translate a device access; return ``(user address, bytes left)`` or None (DMA fault).

    A write marks the page dirty when the HWPT tracks dirty pages; a miss on a HWPT with a fault
    queue queues a page fault for user space.
    """
    hwpt = obj.hwpt
    if hwpt is None:
        return None  # blocked: a bound but unattached device has no DMA
    hit = hwpt.ioas.iopt.translate(iova)
    perm = C.IOMMU_IOAS_MAP_WRITEABLE if write else C.IOMMU_IOAS_MAP_READABLE
    if hit is None or not hit[2] & perm:
        if hwpt.fault is not None:
            hwpt.fault.report(obj.id, iova - iova % 4096, 2 if write else 1)
        return None
    if write and hwpt.dirty_enabled:
        hwpt.dirty.add(iova - iova % obj.iommu(ctx).page_size)
    return hit[0], hit[1]


def dma_pieces(ctx: IommufdCtx, obj: fhwpt.DeviceObj, iova: int, size: int,
               write: bool) -> list[tuple[int, int]] | None:
    """Translate ``[iova, iova+size)`` into ``(user address, length)`` pieces, or None."""
    pieces, cur, end = [], iova, iova + size
    while cur < end:
        hit = dma_translate(ctx, obj, cur, write)
        if hit is None:
            return None
        n = min(hit[1], end - cur)
        pieces.append((hit[0], n))
        cur += n
    return pieces
