"""The VFIO device cdev, /dev/vfio/devices/vfioX (drivers/vfio/device_cdev.c, vfio/iommufd.c).

Opening always works; until ``VFIO_DEVICE_BIND_IOMMUFD`` succeeds every other ioctl (and read,
write, mmap) is EINVAL (vfio_main.c: ``access_granted``).  Binding blocks the group path:
BIND is EBUSY while /dev/vfio/N is open, and opening /dev/vfio/N is EBUSY while a cdev of the group
is bound (group.c:vfio_device_block_group).  After BIND the device answers like a group-opened one
(the wrapped device file) plus ATTACH/DETACH.  Closing detaches and unbinds.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import emulated, viommu
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake import pasid as fpasid
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.ioas import HPAGE_SIZE, PAGE_SIZE, Area
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IOASObj, IommufdCtx, IommufdFile
from pyvfio.fake.memory import foreign, kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg
from pyvfio.fake.vfio_pci import VFIOPCIDevice

# -- device side: bind, attach, detach, unbind ------------------------------------------------


def bind_device(ctx: IommufdCtx, dev: Any, group: object,
                model: IOMMUModel | None = None) -> fhwpt.DeviceObj:
    """Bind ``dev`` (IOMMU ``group``, behind ``model``) to ``ctx`` (iommufd_device_bind)."""
    obj = fhwpt.DeviceObj(dev, group, model)
    ctx.table.add(obj)
    return obj


def unbind_device(ctx: IommufdCtx, obj: fhwpt.DeviceObj) -> None:
    """Detach and forget the device (iommufd_device_unbind), its vDEVICE and PASIDs with it."""
    viommu.tombstone_vdevice(ctx, obj)
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
        viommu.attach_check(ctx, obj, target)  # the mock driver's attach_dev
        fpasid.rid_compat(obj, target)
    hwpt = _auto_hwpt(ctx, target, obj) if isinstance(target, IOASObj) else target
    try:
        fhwpt.add_domain(ctx, ioas, obj.iommu(ctx))
        _reserve_device(ctx, ioas, obj)
        if first_domain:
            fill_domain(ctx, ioas)
    except OSError:
        ioas.iopt.unreserve(obj)
        if created:
            ctx.destroy(hwpt)
        raise
    movers = [obj] if current is None else [m for m in members if m.hwpt is current] + [obj]
    for m in set(movers):
        _set_hwpt(ctx, m, hwpt)
    return hwpt.id


def fill_domain(ctx: IommufdCtx, ioas: IOASObj) -> None:
    """io_pagetable.c:iopt_fill_domain for an IOAS's first domain: IOAS_MAP and compat MAP_DMA
    pin nothing while no domain exists (pages.c), so the domain's fill pins every area's user
    pages now, after the device's reserved regions.  Raises EFAULT (unmapped pages, read-only
    pages of a writable mapping)."""
    for start, last, area in ioas.iopt.areas.items():
        if type(area) is Area:  # user memory; file and dma-buf areas hold their pages already
            ctx.memory.check_pinnable(area.uptr, last - start + 1, write=area.pages_writable)


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


@dataclass
class GroupGate:
    """Per-kernel bookkeeping shared by group fds and cdevs: who uses each IOMMU group."""

    group_open: Callable[[int], bool] = lambda number: False
    cdev_bound: dict[int, int] = field(default_factory=dict)  # group -> bound cdev count
    owners: dict[int, Any] = field(default_factory=dict)  # group -> iommufd ctx owning its DMA

    def block_group(self, number: int) -> None:
        """vfio_device_block_group: EBUSY while the group fd is open."""
        if self.group_open(number):
            raise kerr(errno.EBUSY)
        self.cdev_bound[number] = self.cdev_bound.get(number, 0) + 1

    def unblock_group(self, number: int) -> None:
        """Undo :meth:`block_group`."""
        self.cdev_bound[number] -= 1
        if not self.cdev_bound[number]:
            del self.cdev_bound[number]
            self.owners.pop(number, None)

    def group_blocked(self, number: int) -> bool:
        """Tell whether opening /dev/vfio/``number`` must fail with EBUSY."""
        return self.cdev_bound.get(number, 0) > 0


class CdevFile(FakeFile):
    """One open of a device cdev, wrapping the device's VFIO file (regions, irqs, reset)."""

    kind = "vfio-cdev"

    def __init__(self, device: Any, group: int, gate: GroupGate,
                 files: Callable[[int], Any]) -> None:
        self.device = device  # the fake kernel's device file (a VFIOPCIDevice)
        self.group = group
        self.gate = gate
        self._files = files
        self.iommufd: IommufdFile | None = None
        self.obj: Any = None  # a hwpt.DeviceObj, or an emulated.AccessObj for an mdev
        self.device_opened = False  # BIND counted an open of the device (vfio_df_open)

    @property
    def bound(self) -> bool:
        """True once BIND succeeded."""
        return self.obj is not None

    def space(self) -> str:
        """Only BIND until bound, EINVAL for the rest (vfio_main.c: ``access_granted``)."""
        return "cdev" if self.bound else "cdev-unbound"

    def target(self, owner: str) -> Any:
        """The device's handlers run on the wrapped device file."""
        return self.device if owner == "device" else self

    def VFIO_DEVICE_BIND_IOMMUFD(self, arg: IoctlArg) -> int:  # noqa: N802 - kernel name
        s = arg.cmd
        flags = int(s.flags)
        valid = C.VFIO_DEVICE_BIND_FLAG_TOKEN if arg.linux.at_least("6.17") else 0
        if s.flags & ~valid or s.iommufd < 0:
            raise kerr(errno.EINVAL)
        self.gate.block_group(self.group)
        try:
            ctx = self._bind(s.iommufd, flags, lambda: arg.mem.read(_token_ptr(arg), 16))
        except OSError:
            self.gate.unblock_group(self.group)
            raise
        assert self.obj is not None
        self.gate.owners[self.group] = ctx
        s.out_devid = self.obj.id
        arg.copy_out(s)
        return 0

    def _check_token(self, flags: int, token: Callable[[], bytes]) -> None:
        """vfio_df_check_token: vfio-pci's match_token_uuid (the VF token rules); a device
        without it (an mdev) refuses VFIO_DEVICE_BIND_FLAG_TOKEN with EINVAL."""
        tokens = getattr(self.device, "vf_tokens", None)
        if tokens is None or emulated.is_emulated(self.device):
            if flags & C.VFIO_DEVICE_BIND_FLAG_TOKEN:
                raise kerr(errno.EINVAL)
            return
        tokens.check_bind(self.device.dev.bdf, flags, token)

    def _bind(self, iommufd_fd: int, flags: int, arg_token: Callable[[], bytes]) -> Any:
        if self.bound:
            raise kerr(errno.EINVAL)  # one device cannot be bound twice
        self._check_token(flags, arg_token)
        target = self._files(iommufd_fd)
        if target is None:  # an open real file is not an iommufd: EBADFD
            raise kerr(errno.EBADFD if foreign(iommufd_fd) else errno.EBADF)
        if not isinstance(target, IommufdFile):
            raise kerr(errno.EBADFD)
        if getattr(self.device, "opens", 0):
            raise kerr(errno.EINVAL)  # vfio_df_open: opened already
        owner = self.gate.owners.get(self.group)
        if owner is not None and owner is not target.ctx:
            raise kerr(errno.EPERM)  # iommu_device_claim_dma_owner: another owner
        if emulated.is_emulated(self.device):
            self.obj = emulated.bind(target.ctx, self.device)
        else:
            self.obj = bind_device(target.ctx, self.device, self.group)
        self.iommufd = target
        target.ctx.users += 1  # a bound device holds the iommufd file (vfio_iommufd_bind)
        self.device.opens += 1
        self.device.cdev_ctx = target.ctx
        self.device_opened = True
        return target.ctx

    def VFIO_DEVICE_ATTACH_IOMMUFD_PT(self, arg: IoctlArg) -> int:  # noqa: N802
        s = arg.cmd
        pasid_ok = C.VFIO_DEVICE_ATTACH_PASID if arg.linux.at_least("6.15") else 0
        if s.flags & ~pasid_ok:
            raise kerr(errno.EINVAL)
        assert self.iommufd is not None and self.obj is not None
        ctx = self.iommufd.ctx
        if isinstance(self.obj, emulated.AccessObj):
            if s.flags & C.VFIO_DEVICE_ATTACH_PASID:
                raise kerr(errno.EOPNOTSUPP)  # device_cdev.c: no pasid_attach_ioas op
            s.pt_id = emulated.attach(ctx, self.obj, s.pt_id)
        elif s.flags & C.VFIO_DEVICE_ATTACH_PASID:  # device_cdev.c: the pasid field is needed
            if arg.size < 16:
                raise kerr(errno.EINVAL)
            s.pasid = int.from_bytes(arg.read(12, 4), "little")  # copied in after minsz
            if s.pasid in fpasid.attachments(self.obj):  # vfio_iommufd_physical_pasid_attach_ioas
                s.pt_id = fpasid.pasid_replace(ctx, self.obj, s.pasid, s.pt_id)
            else:
                s.pt_id = fpasid.pasid_attach(ctx, self.obj, s.pasid, s.pt_id)
        else:
            s.pt_id = attach_device(ctx, self.obj, s.pt_id)
        arg.write(8, int(s.pt_id).to_bytes(4, "little"))  # copy_to_user(&arg->pt_id)
        return 0

    def VFIO_DEVICE_DETACH_IOMMUFD_PT(self, arg: IoctlArg) -> int:  # noqa: N802
        s = arg.cmd
        pasid_ok = C.VFIO_DEVICE_DETACH_PASID if arg.linux.at_least("6.15") else 0
        if s.flags & ~pasid_ok:
            raise kerr(errno.EINVAL)
        assert self.iommufd is not None and self.obj is not None
        if isinstance(self.obj, emulated.AccessObj):
            if s.flags & C.VFIO_DEVICE_DETACH_PASID:
                raise kerr(errno.EOPNOTSUPP)  # device_cdev.c: no pasid_detach_ioas op
            emulated.detach(self.obj)
        elif s.flags & C.VFIO_DEVICE_DETACH_PASID:
            if arg.size < 12:
                raise kerr(errno.EINVAL)
            s.pasid = int.from_bytes(arg.read(8, 4), "little")  # copied in after minsz
            fpasid.pasid_detach(self.iommufd.ctx, self.obj, s.pasid)
        else:
            detach_device(self.iommufd.ctx, self.obj)
        return 0

    def dma(self, iova: int, write: bool) -> tuple[int, int] | None:
        """Translate a device access through the attached HWPT (see hwpt.dma_translate)."""
        if self.iommufd is None or not isinstance(self.obj, fhwpt.DeviceObj):
            return None  # an emulated device's access does no DMA
        return dma_translate(self.iommufd.ctx, self.obj, iova, write)

    def release(self) -> None:
        """Close: detach, unbind, give the iommufd its reference back."""
        if self.iommufd is not None and self.obj is not None:
            ctx = self.iommufd.ctx
            if isinstance(self.obj, emulated.AccessObj):
                emulated.unbind(ctx, self.obj)
            else:
                unbind_device(ctx, self.obj)
            self.obj = None
            self.gate.unblock_group(self.group)
            ctx.put()
            self.iommufd = None
        if self.device_opened:
            self.device_opened = False
            self.device.cdev_ctx = None
            self.device.release()


def _token_ptr(arg: IoctlArg) -> int:
    """token_uuid_ptr (6.17+), zero-extended when argsz ends before it (copy_struct_from_user)."""
    return int.from_bytes(arg.read(16, 8), "little") if arg.size >= 24 else 0


CDEV_DIR = "/dev/vfio/devices/"


class IommuNodes:
    """/dev/iommu and /dev/vfio/devices/vfioX of a FakeKernel (only with its ``iommufd`` knob).

    The kernel keeps one of these; its device-node code asks it about these paths, about group
    opens (EBUSY while a cdev of the group is bound) and about DMA of cdev-bound devices.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        knobs = kernel.knobs
        self.model = IOMMUModel.from_ranges(
            knobs.iova_ranges, pgsize_bitmap=knobs.pgsize_bitmap,
            max_iova_alignment=HPAGE_SIZE if knobs.transparent_hugepage else PAGE_SIZE,
            enforce_cache_coherency=knobs.cache_coherency)
        self.gate = GroupGate(group_open=kernel.open_groups.__contains__)
        self.cdevs: dict[str, CdevFile] = {}  # bdf -> the bound cdev file

    def handles(self, path: str) -> bool:
        """Tell whether ``path`` is one of the nodes this class answers for."""
        return path == "/dev/iommu" or path.startswith(CDEV_DIR)

    def _cdev_bdf(self, path: str) -> str | None:
        if not self.kernel.knobs.iommufd or not path.startswith(CDEV_DIR + "vfio"):
            return None
        name = path[len(CDEV_DIR) :]
        return next((b for b, i in self.kernel.bus.vfio_dev.items() if f"vfio{i}" == name), None)

    def exists(self, path: str) -> bool:
        """Tell whether the node exists."""
        if path == "/dev/iommu":
            return bool(self.kernel.knobs.iommufd)
        return self._cdev_bdf(path) is not None

    def open(self, path: str) -> int:
        """Open /dev/iommu (a new iommufd) or a cdev (device_cdev.c: always succeeds)."""
        k = self.kernel
        if path == "/dev/iommu":
            if not k.knobs.iommufd:
                raise kerr(errno.ENOENT, path)
            f = IommufdFile(self.model, k.mem, k._new_fd)
            f.ctx.lookup_fd = k.file  # MAP_FILE of a fake dma-buf fd (fake/mapfile.py)
            return int(k._new_fd(f))
        bdf = self._cdev_bdf(path)
        if bdf is None:
            raise kerr(errno.ENOENT, path)
        dev = k.open_devices.get(bdf)
        if dev is None:
            model = k.bus.devices[bdf]
            dev = getattr(model, "vfio_file", VFIOPCIDevice)(
                model, k.reset_domain)
            dev.install_fd = k._new_fd  # dma-buf export (fake/dmabuf.py)
            dev.vf_tokens = k.vf_tokens
            k.open_devices[bdf] = dev
        cdev = CdevFile(dev, k.bus.group_of[bdf], self.gate, k.file)
        return int(k._new_fd(cdev))

    def device_file(self, f: Any) -> Any:
        """Unwrap a cdev to its device file for read/write/mmap (EINVAL before BIND)."""
        if isinstance(f, CdevFile):
            if not f.bound:
                raise kerr(errno.EINVAL)
            return f.device
        return f

    def released(self, f: Any) -> None:
        """After a cdev's release: forget its device file once nobody has it open."""
        if isinstance(f, CdevFile):
            dev, k = f.device, self.kernel
            held = any(dev in g.devices for g in k.group_files())
            if dev.opens == 0 and not held and k.open_devices.get(dev.dev.bdf) is dev:
                del k.open_devices[dev.dev.bdf]

    def translate(self, bdf: str, iova: int, size: int,
                  write: bool) -> list[tuple[int, int]] | None:
        """DMA of a cdev-bound device: ``(user address, length)`` pieces, or None (blocked)."""
        for f in self.kernel._files.values():
            if isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf:
                if f.iommufd is None or not isinstance(f.obj, fhwpt.DeviceObj):
                    return None
                return dma_pieces(f.iommufd.ctx, f.obj, iova, size, write)
        return None

    def bound(self, bdf: str) -> bool:
        """Tell whether a cdev of ``bdf`` is bound (its DMA goes through iommufd)."""
        return any(isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf
                   for f in self.kernel._files.values())


OPS = (
    Op(uapi.VFIO_DEVICE_BIND_IOMMUFD, "cdev-bind", CdevFile.VFIO_DEVICE_BIND_IOMMUFD, Conv.ARGSZ,
       "struct vfio_device_bind_iommufd", "out_devid", since="6.6"),
    Op(uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, "cdev", CdevFile.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
       Conv.ARGSZ, "struct vfio_device_attach_iommufd_pt", "pt_id", since="6.6"),
    Op(uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, "cdev", CdevFile.VFIO_DEVICE_DETACH_IOMMUFD_PT,
       Conv.ARGSZ, "struct vfio_device_detach_iommufd_pt", "flags", since="6.6"),
)
"""The ioctls only a device cdev answers (device_cdev.c)."""
