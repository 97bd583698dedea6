"""The vfio-pci device fd: info, reset, features (drivers/vfio/pci/vfio_pci_core.c)."""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.vfio_helpers import Session, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


def test_device_info(host: Host) -> None:
    """vfio_pci_ioctl_get_info: flags PCI, 9 regions, 5 irqs; edu has no reset method, so no
    RESET flag (vfio_pci_core.c: reset_works = !pci_probe_reset_function())."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_device_info *")
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_GET_INFO, info)
        assert info.flags & C.VFIO_DEVICE_FLAGS_PCI
        assert not info.flags & C.VFIO_DEVICE_FLAGS_RESET
        assert (info.num_regions, info.num_irqs) == (9, 5)


def test_device_info_argsz_too_small_einval(host: Host) -> None:
    """vfio_pci_ioctl_get_info: argsz < 16 -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_device_info *", argsz=12)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_GET_INFO, info)


def test_device_info_minsz_accepted(host: Host) -> None:
    """vfio_pci_ioctl_get_info: argsz 16 (the 6.12 minsz) is enough."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_device_info *", argsz=16)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_GET_INFO, info)
        assert info.num_regions == 9


def test_device_unknown_ioctl_enotty(host: Host) -> None:
    """vfio_pci_core_ioctl default: a request the device does not know -> ENOTTY."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.ENOTTY, s.k.ioctl, d, uapi.VFIO_DEVICE_QUERY_GFX_PLANE,
                     new("struct vfio_device_gfx_plane_info *"))


def test_device_reset_without_reset_method_einval(host: Host) -> None:
    """vfio_pci_ioctl_reset: !vdev->reset_works -> EINVAL (edu has no reset method)."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_RESET)


def test_hot_reset_info_root_bus_enodev(host: Host) -> None:
    """vfio_pci_ioctl_get_pci_hot_reset_info: a root-bus device has neither slot nor bus reset
    -> ENODEV."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_pci_hot_reset_info *")
        expect_errno(errno.ENODEV, s.k.ioctl, d, uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)


def test_hot_reset_info_enospc_sizing(host: Host) -> None:
    """vfio_pci_ioctl_get_pci_hot_reset_info: behind a bridge, too small -> ENOSPC with count."""
    with session(host) as s:
        _, g = s.ready(host.pair_group)
        d = s.device(g, host.pair[0])
        info = new("struct vfio_pci_hot_reset_info *")
        expect_errno(errno.ENOSPC, s.k.ioctl, d, uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
        assert info.count >= 2


def test_hot_reset_info_lists_group(host: Host) -> None:
    """vfio_pci_ioctl_get_pci_hot_reset_info: the bus's devices with their group ids."""
    with session(host) as s:
        _, g = s.ready(host.pair_group)
        d = s.device(g, host.pair[0])
        info = new("struct vfio_pci_hot_reset_info *", 8)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info)
        groups = {info.devices[i].group_id for i in range(info.count)}
        assert host.pair_group in groups


def test_feature_unknown_enotty(host: Host) -> None:
    """vfio_main.c:vfio_ioctl_device_feature: migration without mig_ops -> ENOTTY."""
    with session(host) as s:
        _, _, d = s.edu()
        flags = (C.VFIO_DEVICE_FEATURE_PROBE | C.VFIO_DEVICE_FEATURE_GET
                 | C.VFIO_DEVICE_FEATURE_MIGRATION)
        feat = new("struct vfio_device_feature *", 8, flags=flags)
        expect_errno(errno.ENOTTY, s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, feat)


def _feature(s: Session, d: int, *flags: int) -> Any:
    """A VFIO_DEVICE_FEATURE argument for LOW_POWER_ENTRY with ``flags``."""
    value = C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
    for flag in flags:
        value |= flag
    return new("struct vfio_device_feature *", flags=value)


def test_feature_get_and_set_einval(host: Host) -> None:
    """vfio_ioctl_device_feature: GET and SET together without PROBE -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        feat = _feature(s, d, C.VFIO_DEVICE_FEATURE_GET, C.VFIO_DEVICE_FEATURE_SET)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, feat)


def test_feature_low_power_probe(host: Host) -> None:
    """vfio_pci_core_ioctl_feature + vfio_check_feature: PROBE|SET of LOW_POWER_ENTRY -> 0."""
    with session(host) as s:
        _, _, d = s.edu()
        feat = _feature(s, d, C.VFIO_DEVICE_FEATURE_PROBE, C.VFIO_DEVICE_FEATURE_SET)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, feat)


def test_feature_low_power_get_einval(host: Host) -> None:
    """vfio_check_feature: GET of a SET-only feature -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        feat = _feature(s, d, C.VFIO_DEVICE_FEATURE_PROBE, C.VFIO_DEVICE_FEATURE_GET)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, feat)


def test_ioeventfd_bad_size_einval(host: Host) -> None:
    """vfio_pci_ioctl_ioeventfd: not exactly one size bit -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        io = new("struct vfio_device_ioeventfd *", flags=3, offset=0x60, data=1, fd=-1)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)


def test_ioeventfd_add_dup_remove(host: Host) -> None:
    """vfio_pci_ioeventfd: add, the same again -> EEXIST, fd -1 removes, again -> ENODEV."""
    with session(host) as s:
        _, _, d = s.edu()
        efd = s.track(s.k.eventfd())
        io = new("struct vfio_device_ioeventfd *", flags=C.VFIO_DEVICE_IOEVENTFD_32,
                 offset=0x60, data=1, fd=efd)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)
        expect_errno(errno.EEXIST, s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)
        io.fd = -1
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)
        expect_errno(errno.ENODEV, s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)


def test_device_fd_not_a_container(host: Host) -> None:
    """Numbers repeat across fd kinds: 0x3b70 on a device is GET_PCI_HOT_RESET_INFO, so a
    root-bus device answers ENODEV, not type1's GET_INFO."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_iommu_type1_info *")
        expect_errno(errno.ENODEV, s.k.ioctl, d, uapi.VFIO_IOMMU_GET_INFO, info)


def test_feature_low_power_entry_twice_einval(host: Host) -> None:
    """vfio_pci_runtime_pm_entry: entering low power while engaged -> EINVAL; EXIT always 0."""
    with session(host) as s:
        _, _, d = s.edu()
        entry = _feature(s, d, C.VFIO_DEVICE_FEATURE_SET)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, entry)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, entry)
        leave = new("struct vfio_device_feature *", flags=C.VFIO_DEVICE_FEATURE_SET
                    | C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, leave)
        expect_ok(s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE, leave)


def test_feature_low_power_wakeup_needs_an_eventfd(host: Host) -> None:
    """vfio_pci_core_pm_entry_with_wakeup: wakeup_eventfd < 0 -> EINVAL; an fd that is not an
    eventfd -> EINVAL (eventfd_ctx_fdget)."""
    with session(host) as s:
        c, _, d = s.edu()
        for fd in (-1, c):
            buf = ffi.new("char[]", 16)
            flags = C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
            ffi.memmove(buf, struct.pack("<IIiI", 16, flags, fd, 0), 16)
            expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_FEATURE,
                         ffi.cast("struct vfio_device_feature *", buf))
