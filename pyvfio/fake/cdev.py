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
from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.iommufd import IommufdFile, IOMMUModel
from pyvfio.fake.memory import kerr
from pyvfio.fake.vfio_pci import VFIOPCIDevice

BIND, ATTACH, DETACH = ("VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
                        "VFIO_DEVICE_DETACH_IOMMUFD_PT")


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


class CdevFile:
    """One open of a device cdev, wrapping the device's VFIO file (regions, irqs, reset)."""

    kind = "vfio-cdev"

    def __init__(self, device: Any, group: int, gate: GroupGate,
                 files: Callable[[int], Any]) -> None:
        self.device = device  # the fake kernel's device file (a VFIOPCIDevice)
        self.group = group
        self.gate = gate
        self._files = files
        self.iommufd: IommufdFile | None = None
        self.obj: fhwpt.DeviceObj | None = None
        self.device_opened = False  # BIND counted an open of the device (vfio_df_open)

    @property
    def bound(self) -> bool:
        """True once BIND succeeded."""
        return self.obj is not None

    def handlers(self) -> dict[int, str]:
        """Return the requests answered now: only BIND until bound (vfio_main.c)."""
        own = {int(uapi.IOCTLS[n]): n for n in (BIND, ATTACH, DETACH)}
        if not self.bound:
            return {int(uapi.IOCTLS[BIND]): BIND}
        return {**self.device.handlers(), **own}

    def unknown_errno(self) -> int:
        """EINVAL before BIND (every request), the device's answer after."""
        return errno.EINVAL if not self.bound else int(self.device.unknown_errno())

    def __getattr__(self, name: str) -> Any:
        # the device file's handlers and file operations, once access is granted
        if name.startswith("_") or name in ("device", "obj"):
            raise AttributeError(name)
        attr = getattr(self.device, name)
        if callable(attr) and not self.bound:
            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise kerr(errno.EINVAL)
            return refuse
        return attr

    def VFIO_DEVICE_BIND_IOMMUFD(self, arg: Any) -> int:  # noqa: N802 - kernel name
        s = arg.struct("struct vfio_device_bind_iommufd *", 16)
        flags = int(s.flags)
        if s.flags & ~C.VFIO_DEVICE_BIND_FLAG_TOKEN or s.iommufd < 0:
            raise kerr(errno.EINVAL)
        self.gate.block_group(self.group)
        try:
            ctx = self._bind(s.iommufd, flags)
        except OSError:
            self.gate.unblock_group(self.group)
            raise
        assert self.obj is not None
        self.gate.owners[self.group] = ctx
        s.out_devid = self.obj.id
        arg.copy_out(s)
        return 0

    def _bind(self, iommufd_fd: int, flags: int) -> Any:
        if self.bound:
            raise kerr(errno.EINVAL)  # one device cannot be bound twice
        target = self._files(iommufd_fd)
        if target is None:
            raise kerr(errno.EBADF)
        if not isinstance(target, IommufdFile):
            raise kerr(errno.EBADFD)
        if flags & C.VFIO_DEVICE_BIND_FLAG_TOKEN:
            raise kerr(errno.EINVAL)  # the fake's devices are neither PF nor VF
        if getattr(self.device, "opens", 0):
            raise kerr(errno.EINVAL)  # vfio_df_open: opened already
        owner = self.gate.owners.get(self.group)
        if owner is not None and owner is not target.ctx:
            raise kerr(errno.EPERM)  # iommu_device_claim_dma_owner: another owner
        self.obj = fhwpt.bind(target.ctx, self.device, self.group)
        self.iommufd = target
        target.ctx.users += 1  # a bound device holds the iommufd file (vfio_iommufd_bind)
        self.device.opens += 1
        self.device_opened = True
        return target.ctx

    def VFIO_DEVICE_ATTACH_IOMMUFD_PT(self, arg: Any) -> int:  # noqa: N802
        s = arg.struct("struct vfio_device_attach_iommufd_pt *", 12)
        if s.flags:
            raise kerr(errno.EINVAL)  # VFIO_DEVICE_ATTACH_PASID: no PASID support here
        assert self.iommufd is not None and self.obj is not None
        s.pt_id = fhwpt.attach(self.iommufd.ctx, self.obj, s.pt_id)
        arg.copy_out(s)
        return 0

    def VFIO_DEVICE_DETACH_IOMMUFD_PT(self, arg: Any) -> int:  # noqa: N802
        s = arg.struct("struct vfio_device_detach_iommufd_pt *", 8)
        if s.flags:
            raise kerr(errno.EINVAL)
        assert self.iommufd is not None and self.obj is not None
        fhwpt.detach(self.iommufd.ctx, self.obj)
        return 0

    def dma(self, iova: int, write: bool) -> tuple[int, int] | None:
        """Translate a device access through the attached HWPT (see hwpt.dma_translate)."""
        if self.iommufd is None or self.obj is None:
            return None
        return fhwpt.dma_translate(self.iommufd.ctx, self.obj, iova, write)

    def release(self) -> None:
        """Close: detach, unbind, give the iommufd its reference back."""
        if self.iommufd is not None and self.obj is not None:
            ctx = self.iommufd.ctx
            fhwpt.unbind(ctx, self.obj)
            self.obj = None
            self.gate.unblock_group(self.group)
            ctx.put()
            self.iommufd = None
        if self.device_opened:
            self.device_opened = False
            self.device.release()


CDEV_DIR = "/dev/vfio/devices/"


class IommuNodes:
    """/dev/iommu and /dev/vfio/devices/vfioX of a FakeKernel (only with its ``iommufd`` knob).

    The kernel keeps one of these; its device-node code asks it about these paths, about group
    opens (EBUSY while a cdev of the group is bound) and about DMA of cdev-bound devices.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.model = IOMMUModel()
        self.gate = GroupGate(group_open=lambda number: number in kernel.open_groups)
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
            return int(k._new_fd(IommufdFile(self.model, k.mem, k._new_fd)))
        bdf = self._cdev_bdf(path)
        if bdf is None:
            raise kerr(errno.ENOENT, path)
        dev = k.open_devices.get(bdf)
        if dev is None:
            dev = VFIOPCIDevice(k.bus.devices[bdf], lambda: k._reset_peers(bdf), k._group_of_fd)
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
            held = any(dev in g.devices for g in k.open_groups.values())
            if dev.opens == 0 and not held and k.open_devices.get(dev.dev.bdf) is dev:
                del k.open_devices[dev.dev.bdf]

    def translate(self, bdf: str, iova: int, size: int,
                  write: bool) -> list[tuple[int, int]] | None:
        """DMA of a cdev-bound device: ``(user address, length)`` pieces, or None (blocked)."""
        for f in self.kernel._files.values():
            if isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf:
                pieces, cur, end = [], iova, iova + size
                while cur < end:
                    hit = f.dma(cur, write)
                    if hit is None:
                        return None
                    n = min(hit[1], end - cur)
                    pieces.append((hit[0], n))
                    cur += n
                return pieces
        return None

    def bound(self, bdf: str) -> bool:
        """Tell whether a cdev of ``bdf`` is bound (its DMA goes through iommufd)."""
        return any(isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf
                   for f in self.kernel._files.values())
