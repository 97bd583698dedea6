"""The group fd, /dev/vfio/<N> or /dev/vfio/noiommu-<N> (drivers/vfio/group.c, container.c).

The group fd is exclusive (a second open is EBUSY), viable only when no member is bound to a
driver that uses the DMA API, and the gate to device fds: ``VFIO_GROUP_GET_DEVICE_FD`` needs a
container with an IOMMU set.  Every open device fd keeps the group in use, so the container cannot
be unset under it (EBUSY).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import emulated, iommufd_device, vfio_compat
from pyvfio.fake.bus import VFIO_PCI, PCIBus
from pyvfio.fake.container import Container
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, IommufdFile
from pyvfio.fake.memory import foreign, kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg
from pyvfio.fake.vf_token import VFTokens, match

if TYPE_CHECKING:
    from pyvfio.fake.vfio_pci import VFIOPCIDevice


class GroupFile(FakeFile):
    """One open group: its container, and the device fds opened through it."""

    kind = "group"

    def __init__(self, number: int, bus: PCIBus, files: Callable[[int], FakeFile | None],
                 open_device: Callable[[GroupFile, str], int], vf_tokens: VFTokens,
                 bound: dict[str, tuple[IommufdCtx, Any]] | None = None) -> None:
        self.number = number
        self.bus = bus
        self.noiommu = bus.noiommu
        self.container: Container | None = None
        self.iommufd: IommufdFile | None = None  # SET_CONTAINER with an iommufd (vfio_compat.c)
        # bdf -> its binding: a DeviceObj, or an emulated.AccessObj for an mdev.  The kernel's,
        # shared by every open of the group: a binding belongs to the device (df->iommufd) and
        # outlives the group file that made it
        self.bound: dict[str, tuple[IommufdCtx, Any]] = {} if bound is None else bound
        self.devices: list[VFIOPCIDevice] = []  # open device files of this group
        self.fd_closed = False  # the group fd is closed; release waits for the devices
        self._files = files
        self._open_device = open_device
        self._vf_tokens = vf_tokens

    @property
    def emulated(self) -> bool:
        """An mdev's VFIO_EMULATED_IOMMU group (pyvfio/fake/mdev.py): no IOMMU behind it."""
        return self.number in self.bus.emulated_groups

    def viable(self) -> bool:
        """Tell whether no member of the group is bound to a DMA-API driver."""
        return not self.bus.blockers(self.number)

    def iommufd_owner(self) -> IommufdCtx | None:
        """The iommufd a member of the group is bound to through the group's compat path (it
        owns the group's DMA: iommu_device_claim_dma_owner), or None."""
        return compat_owner(self.bus, self.bound, self.number)

    def VFIO_GROUP_GET_STATUS(self, arg: IoctlArg) -> int:  # noqa: N802
        status = arg.cmd
        if self.container is not None or self.iommufd is not None:  # vfio_group_has_iommu
            status.flags = C.VFIO_GROUP_FLAGS_VIABLE | C.VFIO_GROUP_FLAGS_CONTAINER_SET
        else:  # !iommu_group_dma_owner_claimed: no DMA-API driver, no device bound to iommufd
            viable = self.viable() and self.iommufd_owner() is None
            status.flags = C.VFIO_GROUP_FLAGS_VIABLE if viable else 0
        arg.copy_out(status)
        return 0

    def VFIO_GROUP_SET_CONTAINER(self, arg: IoctlArg) -> int:  # noqa: N802
        fd = arg.cmd
        target = self._files(fd)
        if target is None and not foreign(fd):
            raise kerr(errno.EBADF)  # fdget
        if self.container is not None or self.iommufd is not None:
            raise kerr(errno.EINVAL)  # vfio_group_has_iommu, before the file's kind
        if target is None:
            raise kerr(errno.EBADFD)  # an open real file: neither container nor iommufd
        if isinstance(target, IommufdFile):
            # group.c: no viability check here, the DMA owner is claimed when a device binds
            vfio_compat.compat_ioas_create(target.ctx)
            target.ctx.users += 1  # the group holds the iommufd file
            self.iommufd = target
            return 0
        if not isinstance(target, Container):
            raise kerr(errno.EBADFD)
        if not self.viable() or self.iommufd_owner() is not None:
            raise kerr(errno.EPERM)  # iommu_group_claim_dma_owner
        target.attach(self)
        self.container = target
        self.bus.claimed.add(self.number)
        return 0

    def VFIO_GROUP_UNSET_CONTAINER(self, arg: IoctlArg) -> int:  # noqa: N802
        if self.container is None and self.iommufd is None:
            raise kerr(errno.EINVAL)
        if self.devices and self.container is not None:
            raise kerr(errno.EBUSY)  # vfio_group_ioctl_unset_container: container_users != 1
        self.unset_container()
        return 0

    def unset_container(self) -> None:
        """Leave the container (the last group out drops its IOMMU and mappings)."""
        if self.container is not None:
            self.container.detach(self)
            self.container = None
            self.bus.claimed.discard(self.number)
        if self.iommufd is not None:
            ctx, self.iommufd = self.iommufd.ctx, None
            ctx.put()

    def VFIO_GROUP_GET_DEVICE_FD(self, arg: IoctlArg) -> int:  # noqa: N802
        bdf = self._device_from_name(arg.cmd)
        has_type1 = self.container is not None and self.container.iommu is not None
        if not has_type1 and self.iommufd is None:
            raise kerr(errno.EINVAL)  # vfio_df_group_open / vfio_group_use_container
        if self.iommufd is not None and bdf not in self.bound:
            self._compat_bind(self.iommufd.ctx, bdf)
        return self._open_device(self, bdf)

    def _device_from_name(self, text: str) -> str:
        """group.c:vfio_device_get_from_name: the first vfio-pci member whose match() accepts
        ``text`` (vfio_pci_core_match, then the VF token rule). Raises ENODEV, EINVAL, EACCES."""
        for bdf in self.bus.members(self.number):
            driver = self.bus.driver_of.get(bdf)
            if driver != VFIO_PCI:
                if driver in self.bus.vfio_drivers and text == bdf:
                    return bdf  # an mdev driver has no match op: strcmp of the name
                continue
            found, token = match(bdf, text)
            if found:
                self._vf_tokens.validate(bdf, token)
                return bdf
        raise kerr(errno.ENODEV)

    def _compat_bind(self, ctx: IommufdCtx, bdf: str) -> None:
        """vfio_df_iommufd_bind + vfio_iommufd_compat_attach_ioas: the first open of a device
        binds it to the iommufd and attaches it to the compat IOAS (ENODEV without one)."""
        owner = self.iommufd_owner()
        if not self.viable() or owner not in (None, ctx):
            raise kerr(errno.EPERM)  # iommu_device_claim_dma_owner: owned by another iommufd
        ioas = vfio_compat.compat_ioas(ctx)
        if self.emulated:  # vfio_iommufd_compat_attach_ioas through the emulated ops
            access = emulated.bind(ctx, self.bus.devices[bdf])
            emulated.attach(ctx, access, ioas.id)
            ctx.users += 1
            self.bound[bdf] = ctx, access
            return
        obj = iommufd_device.bind_device(ctx, self.bus.devices[bdf], self.number)
        try:
            iommufd_device.attach_device(ctx, obj, ioas.id)
        except OSError:
            ctx.table.remove(obj)
            raise
        ctx.users += 1  # the bound device holds the iommufd until its last fd closes
        self.bound[bdf] = ctx, obj

    def device_closed(self, bdf: str) -> None:
        """The last fd of a device of this group closed: unbind it from the iommufd
        (vfio_df_device_last_close)."""
        if bdf in self.bound:
            ctx, obj = self.bound.pop(bdf)
            if isinstance(obj, emulated.AccessObj):
                emulated.unbind(ctx, obj)
            else:
                iommufd_device.unbind_device(ctx, obj)
            ctx.put()

    def translate(self, bdf: str, iova: int, size: int,
                  write: bool) -> list[tuple[int, int]] | None:
        """DMA of a device opened through this group over an iommufd (None: blocked)."""
        if bdf not in self.bound or isinstance(self.bound[bdf][1], emulated.AccessObj):
            return None
        ctx, obj = self.bound[bdf]
        return iommufd_device.dma_pieces(ctx, obj, iova, size, write)

    def release(self) -> None:
        self.unset_container()



def compat_owner(bus: PCIBus, bound: dict[str, tuple[IommufdCtx, Any]],
                 number: int) -> IommufdCtx | None:
    """The iommufd that a device of group ``number`` opened through the group (``bound``: the
    compat bindings) is bound to, or None: the owner of the group's DMA."""
    return next((ctx for bdf, (ctx, obj) in bound.items()
                 if bus.group_of.get(bdf) == number and not isinstance(obj, emulated.AccessObj)),
                None)


OPS = (
    Op(uapi.VFIO_GROUP_GET_STATUS, "group", GroupFile.VFIO_GROUP_GET_STATUS, Conv.ARGSZ,
       "struct vfio_group_status", "flags"),
    Op(uapi.VFIO_GROUP_SET_CONTAINER, "group", GroupFile.VFIO_GROUP_SET_CONTAINER, Conv.INT32),
    Op(uapi.VFIO_GROUP_UNSET_CONTAINER, "group", GroupFile.VFIO_GROUP_UNSET_CONTAINER),
    Op(uapi.VFIO_GROUP_GET_DEVICE_FD, "group", GroupFile.VFIO_GROUP_GET_DEVICE_FD, Conv.STRING),
)
"""The group fd's ioctls (group.c:vfio_group_fops_unl_ioctl)."""
