"""The VFIO device cdev with iommufd: bind, attach, replace, detach, and the group contract.

Specification: drivers/vfio/device_cdev.c, vfio_main.c, group.c, vfio/iommufd.c and
drivers/iommu/iommufd/device.c; the selftest's ``iommufd_ioas`` fixture with a (mock) device.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Iterator
from contextlib import contextmanager

from pyvfio import uapi
from pyvfio._ffi import new
from tests.conformance.iommufd_helpers import PAGE, iommufd_session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

MSI_WINDOW = 0xFEE00000  # x86: the MSI doorbells, a reserved region of every device


def test_ioctl_before_bind_einval(host: Host) -> None:
    """vfio_main.c:vfio_device_fops_unl_ioctl: without BIND, any other ioctl -> EINVAL."""
    with iommufd_session(host) as s:
        cdev = s.cdev(host.edu)
        arg = new("struct vfio_device_info *")
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_GET_INFO, arg)


def test_bind_unknown_flag_einval(host: Host) -> None:
    """device_cdev.c:vfio_df_ioctl_bind_iommufd: an unknown flag -> EINVAL."""
    with iommufd_session(host) as s:
        fd, cdev = s.iommufd(), s.cdev(host.edu)
        expect_errno(errno.EINVAL, s.bind, cdev, fd, 2)


def test_bind_negative_fd_einval(host: Host) -> None:
    """device_cdev.c:vfio_df_ioctl_bind_iommufd: iommufd < 0 -> EINVAL."""
    with iommufd_session(host) as s:
        expect_errno(errno.EINVAL, s.bind, s.cdev(host.edu), -1)


def test_bind_to_non_iommufd_ebadfd(host: Host) -> None:
    """iommufd/main.c:iommufd_ctx_from_fd: an fd that is not /dev/iommu -> EBADFD."""
    with iommufd_session(host) as s:
        container = s.track(s.k.open("/dev/vfio/vfio"))
        expect_errno(errno.EBADFD, s.bind, s.cdev(host.edu), container)


def test_bind_returns_device_id_that_cannot_be_destroyed(host: Host) -> None:
    """device.c:iommufd_device_bind: a DEVICE object; IOMMU_DESTROY of it -> EBUSY."""
    with iommufd_session(host) as s:
        fd, _, _, dev_id = s.bound_edu()
        assert dev_id >= 1
        expect_errno(errno.EBUSY, s.destroy, fd, dev_id)


def test_second_bind_einval(host: Host) -> None:
    """device_cdev.c:vfio_df_ioctl_bind_iommufd: a bound cdev fd bound again -> EINVAL."""
    with iommufd_session(host) as s:
        fd, _, cdev, _ = s.bound_edu()
        expect_errno(errno.EINVAL, s.bind, cdev, fd)


def test_second_cdev_fd_bind_einval(host: Host) -> None:
    """vfio_main.c:vfio_df_open: the cdev path opens a device once; another fd's BIND -> EINVAL."""
    with iommufd_session(host) as s:
        fd, _, _, _ = s.bound_edu()
        expect_errno(errno.EINVAL, s.bind, s.cdev(host.edu), fd)


def test_group_open_while_cdev_bound_ebusy(host: Host) -> None:
    """group.c:vfio_group_fops_open: a bound cdev in the group -> EBUSY."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        s.bind(s.cdev(host.pair[0]), fd)
        expect_errno(errno.EBUSY, s.k.open, host.group_path(host.pair_group))


def test_bind_while_group_open_ebusy(host: Host) -> None:
    """group.c:vfio_device_block_group: BIND while the group fd is open -> EBUSY."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        s.track(s.k.open(host.group_path(host.pair_group)))
        expect_errno(errno.EBUSY, s.bind, s.cdev(host.pair[1]), fd)


def test_bind_neighbour_to_another_iommufd_eperm(host: Host) -> None:
    """iommu.c:iommu_device_claim_dma_owner: a group has one DMA owner; a neighbour bound to
    another iommufd -> EPERM (pyvfio's GroupConflictError carries this errno)."""
    with iommufd_session(host) as s:
        one, two = s.iommufd(), s.iommufd()
        s.bind(s.cdev(host.pair[0]), one)
        expect_errno(errno.EPERM, s.bind, s.cdev(host.pair[1]), two)


def test_attach_ioas_returns_auto_hwpt_pinning_ioas(host: Host) -> None:
    """device.c:iommufd_device_auto_get_domain: pt_id becomes a HWPT id; the IOAS is then EBUSY."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        hwpt = s.attach(cdev, ioas)
        assert hwpt not in (ioas, dev_id)
        expect_errno(errno.EBUSY, s.destroy, fd, ioas)


def test_attach_unknown_id_enoent(host: Host) -> None:
    """device.c:iommufd_device_change_pt: an unknown pt_id -> ENOENT."""
    with iommufd_session(host) as s:
        _, _, cdev, _ = s.bound_edu()
        expect_errno(errno.ENOENT, s.attach, cdev, 1000)


def test_attach_to_device_id_einval(host: Host) -> None:
    """device.c:iommufd_device_change_pt: a pt_id that is neither IOAS nor HWPT -> EINVAL."""
    with iommufd_session(host) as s:
        _, _, cdev, dev_id = s.bound_edu()
        expect_errno(errno.EINVAL, s.attach, cdev, dev_id)


def test_detach_when_not_attached_is_silent(host: Host) -> None:
    """vfio/iommufd.c:vfio_iommufd_physical_detach_ioas: not attached -> success, nothing done."""
    with iommufd_session(host) as s:
        _, _, cdev, _ = s.bound_edu()
        expect_ok(s.detach, cdev)


def test_detach_frees_auto_hwpt(host: Host) -> None:
    """device.c:iommufd_hw_pagetable_put: the last device leaving an auto HWPT destroys it."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        s.detach(cdev)
        expect_ok(s.destroy, fd, ioas)


def test_attach_again_replaces(host: Host) -> None:
    """vfio/iommufd.c:vfio_iommufd_physical_attach_ioas: attaching when attached = replace."""
    with iommufd_session(host) as s:
        fd, first, cdev, _ = s.bound_edu()
        second = s.ioas(fd)
        old = s.attach(cdev, first)
        assert s.attach(cdev, second) != old
        expect_ok(s.destroy, fd, first)  # its auto HWPT went with the replace


def test_group_neighbours_share_one_hwpt(host: Host) -> None:
    """device.c:iommufd_hw_pagetable_attach: a group's devices must use the same HWPT (EINVAL)."""
    with iommufd_session(host) as s:
        fd = s.iommufd()
        first, second = s.ioas(fd), s.ioas(fd)
        a, b = s.cdev(host.pair[0]), s.cdev(host.pair[1])
        s.bind(a, fd)
        s.bind(b, fd)
        hwpt = s.attach(a, first)
        expect_errno(errno.EINVAL, s.attach, b, second)
        assert s.attach(b, first) == hwpt


def test_close_cdev_unbinds(host: Host) -> None:
    """device_cdev.c:vfio_device_fops_cdev_release: close unbinds: the DEVICE id is gone."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, dev_id = s.bound_edu()
        s.attach(cdev, ioas)
        s.close(cdev)
        expect_errno(errno.ENOENT, s.destroy, fd, dev_id)
        expect_ok(s.destroy, fd, ioas)


def test_attach_reserves_msi_window_and_page_alignment(host: Host) -> None:
    """io_pagetable.c:iopt_table_enforce_dev_resv_regions: the MSI window leaves the IOVA ranges."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        ranges, align = s.ranges(fd, ioas)
        assert align == PAGE
        assert not any(start <= MSI_WINDOW <= last for start, last in ranges)
        expect_errno(errno.EINVAL, s.map, fd, ioas, s.buffer(), PAGE, MSI_WINDOW)


def test_attach_over_mapped_reserved_region_eaddrinuse(host: Host) -> None:
    """io_pagetable.c:iopt_reserve_iova: a mapping over the device's MSI window -> EADDRINUSE."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.map(fd, ioas, s.buffer(), PAGE, MSI_WINDOW)  # no domain yet: allowed
        expect_errno(errno.EADDRINUSE, s.attach, cdev, ioas)


def test_map_unpinnable_memory_efault(host: Host) -> None:
    """pages.c:pfn_reader_user_pin: with a domain, mapping PROT_NONE memory -> EFAULT."""
    with iommufd_session(host) as s:
        fd, ioas, cdev, _ = s.bound_edu()
        s.attach(cdev, ioas)
        with _prot_none_page() as va:
            expect_errno(errno.EFAULT, s.map, fd, ioas, va, PAGE, 0x100000)


@contextmanager
def _prot_none_page() -> Iterator[int]:
    """A page of this process nobody may touch (mmap with PROT_NONE = 0), as an address."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    va = libc.mmap(None, PAGE, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert va not in (None, ctypes.c_void_p(-1).value)
    try:
        yield int(va)
    finally:
        libc.munmap(va, PAGE)
