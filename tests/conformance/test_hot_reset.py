"""Bus reset of a vfio-pci device through its cdev and through its group.

Specification: drivers/vfio/pci/vfio_pci_core.c (vfio_pci_ioctl_pci_hot_reset,
vfio_pci_ioctl_pci_hot_reset_groups, vfio_pci_dev_set_hot_reset, vfio_pci_fill_devs) and
drivers/vfio/iommufd.c:vfio_iommufd_get_dev_id.  ``host.pair`` are two devices behind a bridge in
one IOMMU group (the bus reset reaches both), ``host.edu`` sits on the root bus (no reset).
Found by tests/differential on Linux 6.12 (the iommufd profile).
"""

from __future__ import annotations

import errno
import struct

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import standard_host
from pyvfio.fake.bus import VFIO_PCI
from pyvfio.fake.edu import Edu
from pyvfio.fake.hot_reset import DEVID_NOT_OWNED, DEVID_OWNED, segment_bus_devfn
from pyvfio.kernel import Kernel
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

DEV_ID_FLAGS = C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID | C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED


def hot_reset(k: Kernel, fd: int, group_fds: tuple[int, ...] = ()) -> None:
    """VFIO_DEVICE_PCI_HOT_RESET with ``group_fds`` (empty: the cdev form)."""
    raw = struct.pack(f"<III{len(group_fds)}i", 12 + 4 * len(group_fds), 0, len(group_fds),
                      *group_fds)
    buf = ffi.new("char[]", raw)
    k.ioctl(fd, uapi.VFIO_DEVICE_PCI_HOT_RESET, ffi.cast("struct vfio_pci_hot_reset *", buf))


def reset_info(k: Kernel, fd: int) -> tuple[int, dict[tuple[int, int, int], int]]:
    """GET_PCI_HOT_RESET_INFO with room for 8: (flags, {(segment, bus, devfn): id})."""
    info = new("struct vfio_pci_hot_reset_info *", 8)
    expect_ok(k.ioctl, fd, uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
    devs = {(int(d.segment), int(d.bus), int(d.devfn)): int(d.devid)
            for d in (info.devices[i] for i in range(info.count))}
    return int(info.flags), devs


def test_cdev_hot_reset_empty_array(host: Host) -> None:
    """vfio_pci_dev_set_hot_reset(iommufd_ctx): the bound device and its unbound group
    neighbour (the group is bound to the same iommufd) are owned -> the bus reset runs."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.pair[0])
        s.bind(cdev, s.iommufd())
        expect_ok(hot_reset, s.k, cdev)


def test_cdev_hot_reset_group_fds_einval(host: Host) -> None:
    """vfio_pci_ioctl_pci_hot_reset: a cdev-opened device takes no group fds -> EINVAL before
    the fds are looked at (-1 is no fd)."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.pair[0])
        s.bind(cdev, s.iommufd())
        expect_errno(errno.EINVAL, hot_reset, s.k, cdev, (-1,))


def test_cdev_hot_reset_root_bus(host: Host) -> None:
    """On a root bus: the array check first (fds -> EINVAL), then the scope (none -> ENODEV)."""
    with iommufd_session(host) as s:
        _, _, cdev, _ = s.bound_edu()
        expect_errno(errno.EINVAL, hot_reset, s.k, cdev, (-1, -1))
        expect_errno(errno.ENODEV, hot_reset, s.k, cdev)


def test_cdev_hot_reset_info_dev_ids(host: Host) -> None:
    """vfio_pci_fill_devs on a cdev: DEV_ID | DEV_ID_OWNED, the bound device's id, DEVID_OWNED
    (0) for the unbound neighbour of an owned group; segment/bus/devfn as for the group form."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.pair[0])
        dev_id = s.bind(cdev, s.iommufd())
        flags, devs = reset_info(s.k, cdev)
        assert flags == DEV_ID_FLAGS
        assert devs[segment_bus_devfn(host.pair[0])] == dev_id
        assert devs[segment_bus_devfn(host.pair[1])] == DEVID_OWNED


def test_cdev_hot_reset_info_both_bound(host: Host) -> None:
    """Both devices of the bus bound to one iommufd: each listed with its own id."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        cdevs = [s.cdev(bdf) for bdf in host.pair]
        ids = [s.bind(c, fd) for c in cdevs]
        flags, devs = reset_info(s.k, cdevs[1])
        assert flags == DEV_ID_FLAGS
        assert [devs[segment_bus_devfn(b)] for b in host.pair] == ids
        assert DEVID_NOT_OWNED not in devs.values()
        expect_ok(hot_reset, s.k, cdevs[1])


def test_group_hot_reset_needs_group_fds(host: Host) -> None:
    """A group-opened device: an empty array is EINVAL (only for cdevs); its own group's fd
    covers the bus (both devices are in it) -> the reset runs; a non-group fd -> EINVAL."""
    with session(host) as s:
        c, g = s.ready(host.pair_group)
        d = s.device(g, host.pair[0])
        expect_errno(errno.EINVAL, hot_reset, s.k, d)
        expect_errno(errno.EINVAL, hot_reset, s.k, d, (c,))
        expect_ok(hot_reset, s.k, d, (g,))
        flags, devs = reset_info(s.k, d)
        assert flags == 0 and devs[segment_bus_devfn(host.pair[1])] == host.pair_group


@pytest.mark.fake_only("a PCI domain above 0xffff needs a VMD controller; the lane's QEMU has none")
def test_hot_reset_info_segment_is_domain_truncated_to_u16() -> None:
    """vfio_pci_fill_devs: ``segment`` is a __u16 given pci_domain_nr(), so VMD's domain
    0x10000 reads 0; the bus reset still finds both devices of its bus 0x10000:01."""
    k = standard_host()
    bdfs = ("10000:01:00.0", "10000:01:01.0")
    for bdf in bdfs:
        k.bus.override[bdf] = VFIO_PCI
        k.add_device(Edu(bdf), 9, VFIO_PCI)
    c, g = k.open("/dev/vfio/vfio"), k.open("/dev/vfio/9")
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    d = k.ioctl(g, uapi.VFIO_GROUP_GET_DEVICE_FD, ffi.new("char[]", bdfs[0].encode()))
    flags, devs = reset_info(k, d)
    assert flags == 0 and devs == {(0, 1, 0x00): 9, (0, 1, 0x08): 9}
    expect_ok(hot_reset, k, d, (g,))
    for fd in (d, g, c):
        k.close(fd)
