"""Bus reset through vfio-pci: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET.

drivers/vfio/pci/vfio_pci_core.c.  The reset scope is the device's bus (the fake has no slot
resets; a device on a root bus has neither: ENODEV).  Its ``dev_set`` is the devices of that bus
bound to vfio-pci.  A device opened through its group names the groups it owns (an array of group
fds); a device opened through its cdev passes an empty array and owns what its iommufd owns
(``vfio_pci_dev_set_hot_reset`` with the iommufd_ctx): each device of the set bound to that
iommufd, or unbound but in an IOMMU group that has a device bound to it.  The info of a cdev
device gives device ids instead of group ids (``vfio_pci_fill_devs``).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvfio._ffi import C
from pyvfio.fake.bus import VFIO_PCI, PCIBus
from pyvfio.fake.hwpt import DeviceObj
from pyvfio.fake.memory import kerr

if TYPE_CHECKING:
    from pyvfio.fake.uaccess import IoctlArg

# include/uapi/linux/vfio.h: the devid of a dependent device a cdev user does not own / owns
# without having bound it (its IOMMU group is bound to the same iommufd)
DEVID_OWNED = 0
DEVID_NOT_OWNED = 0xFFFFFFFF
_INFO_HDR = 12  # offsetofend(struct vfio_pci_hot_reset_info, count)
_DEP_SIZE = 8  # struct vfio_pci_dependent_device


@dataclass(frozen=True)
class Peer:
    """A PCI device the bus reset reaches."""

    bdf: str
    group: int | None  # its IOMMU group (None: not behind an IOMMU)
    vfio: bool  # bound to vfio-pci: a member of the dev_set


def bus_of(bdf: str) -> str:
    """``"10000:02:01.0"`` -> ``"10000:02"`` (the domain may have 4 or more digits)."""
    return bdf.rsplit(":", 1)[0]


def segment_bus_devfn(bdf: str) -> tuple[int, int, int]:
    """The ``segment``, ``bus`` and ``devfn`` fields of a dependent device.  ``segment`` is
    pci_domain_nr() stored in a __u16 (vfio_pci_fill_devs): a VMD domain such as 0x10000
    wraps."""
    domain, bus, slot_fn = bdf.split(":")
    slot, fn = slot_fn.split(".")
    return int(domain, 16) & 0xFFFF, int(bus, 16), int(slot, 16) << 3 | int(fn)


class ResetDomain:
    """What the hot reset of a device sees of its kernel: the bus, group fds, iommufd bindings.

    Args:
        bus: the kernel's PCI bus.
        group_of_fd: the group number behind an fd; -1 for an open file that is not a group,
            None for an fd that is not open.
    """

    def __init__(self, bus: PCIBus, group_of_fd: Callable[[int], int | None]) -> None:
        self.bus = bus
        self.group_of_fd = group_of_fd

    def peers(self, bdf: str) -> list[Peer] | None:
        """The devices a reset of ``bdf``'s bus reaches; None on a root bus (no bridge to
        reset: pci_probe_reset_bus fails)."""
        bus = bus_of(bdf)
        if bus.endswith(":00"):
            return None
        return [Peer(b, self.bus.group_of.get(b), self.bus.driver_of.get(b) == VFIO_PCI)
                for b in sorted(self.bus.devices) if bus_of(b) == bus]


def dev_id(peer: Peer, ictx: Any) -> int:
    """vfio/iommufd.c:vfio_iommufd_get_dev_id: the id of ``peer``'s DEVICE object in ``ictx``,
    -ENOENT when it is not bound there but its IOMMU group is (iommufd_ctx_has_group), -ENODEV
    otherwise."""
    objs = [o for o in ictx.table.objects.values() if isinstance(o, DeviceObj)]
    for obj in objs:
        if _bdf(obj) == peer.bdf:
            return int(obj.id)
    if peer.group is not None and any(o.group == peer.group for o in objs):
        return -errno.ENOENT
    return -errno.ENODEV


def _bdf(obj: DeviceObj) -> str | None:
    dev = obj.dev  # a cdev binds the device file, the group's compat path the PCI device
    bdf = getattr(dev, "bdf", None) or getattr(getattr(dev, "dev", None), "bdf", None)
    return bdf if isinstance(bdf, str) else None


def get_info(bdf: str, domain: ResetDomain, cdev_ctx: Any, arg: IoctlArg) -> int:
    """vfio_pci_ioctl_get_pci_hot_reset_info.  ``cdev_ctx`` is the iommufd of a device opened
    through its cdev (None: opened through its group).

    Raises:
        OSError: ENODEV no reset scope, ENOSPC argsz too small for the list (the header still
            says how many), EPERM a dependent device without IOMMU group (group path).
    """
    info = arg.cmd
    peers = domain.peers(bdf)
    if peers is None:
        raise kerr(errno.ENODEV)
    if len(peers) > (arg.size - _INFO_HDR) // _DEP_SIZE:
        info.flags, info.count = 0, len(peers)
        arg.copy_out(info, _INFO_HDR)
        raise kerr(errno.ENOSPC)
    flags = 0
    if cdev_ctx is not None:
        flags = C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID | C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED
    entries = []
    for peer in peers:
        if cdev_ctx is not None:
            ident = _devid(peer, cdev_ctx)
            if ident == DEVID_NOT_OWNED:
                flags &= ~C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED
        elif peer.group is None:
            raise kerr(errno.EPERM)  # "Cannot reset non-isolated devices"
        else:
            ident = peer.group
        entries.append(struct.pack("<IHBB", ident, *segment_bus_devfn(peer.bdf)))
    arg.write(_INFO_HDR, b"".join(entries))
    info.flags, info.count = flags, len(peers)
    arg.copy_out(info, _INFO_HDR)
    return 0


def _devid(peer: Peer, ictx: Any) -> int:
    """vfio_pci_fill_devs: a device outside the dev_set is not owned; a bound one gives its
    id; an unbound one of an owned group is DEVID_OWNED."""
    if not peer.vfio:
        return DEVID_NOT_OWNED
    ident = dev_id(peer, ictx)
    if ident > 0:
        return ident
    return DEVID_OWNED if ident == -errno.ENOENT else DEVID_NOT_OWNED


def check_reset(bdf: str, domain: ResetDomain, cdev_ctx: Any, arg: IoctlArg) -> None:
    """vfio_pci_ioctl_pci_hot_reset up to the reset itself: the checks, in the kernel's order.

    Raises:
        OSError: EINVAL flags set, a group fd array on a cdev device or none on a group one,
            more fds than devices, an fd that is not a group, a device of the set not owned, a
            device of the bus not bound to vfio-pci; ENODEV no reset scope; EBADF an fd not
            open; EFAULT the array unreadable.
    """
    hdr = arg.cmd
    if hdr.flags:
        raise kerr(errno.EINVAL)
    if bool(hdr.count) == (cdev_ctx is not None):
        raise kerr(errno.EINVAL)  # a zero-length array is only for cdev-opened devices
    peers = domain.peers(bdf)
    if peers is None:
        raise kerr(errno.ENODEV)
    if hdr.count:
        owned = _groups_given(domain, peers, hdr.count, arg)
    else:
        owned = {p.bdf for p in peers if p.vfio and (dev_id(p, cdev_ctx) > 0
                                                      or dev_id(p, cdev_ctx) == -errno.ENOENT)}
    # vfio_pci_dev_set_hot_reset: vfio_pci_dev_set_resettable, then every device of the set
    if not all(p.vfio for p in peers) or any(p.bdf not in owned for p in peers):
        raise kerr(errno.EINVAL)


def _groups_given(domain: ResetDomain, peers: list[Peer], count: int, arg: IoctlArg) -> set[str]:
    """vfio_pci_ioctl_pci_hot_reset_groups: the devices the given group fds own."""
    if count > len(peers):
        raise kerr(errno.EINVAL)  # at most one group per device
    fds = struct.unpack(f"<{count}i", arg.read(_INFO_HDR, 4 * count))
    groups = set()
    for fd in fds:  # fget each, in order
        group = domain.group_of_fd(fd)
        if group is None:
            raise kerr(errno.EBADF)
        if group < 0:
            raise kerr(errno.EINVAL)  # vfio_file_is_group
        groups.add(group)
    return {p.bdf for p in peers if p.group in groups}  # vfio_dev_in_groups
