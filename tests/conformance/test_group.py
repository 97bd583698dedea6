"""The group fd, /dev/vfio/<N> (drivers/vfio/group.c, container.c)."""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.fake import nonviable_host
from tests.conformance.vfio_helpers import name_arg, region_offset, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


def test_group_open_exclusive_ebusy(host: Host) -> None:
    """group.c:vfio_group_fops_open: a second open of an opened group -> EBUSY."""
    with session(host) as s:
        s.group(host.edu_group)
        expect_errno(errno.EBUSY, s.k.open, host.group_path(host.edu_group))


def test_group_status_viable(host: Host) -> None:
    """group.c:vfio_group_ioctl_get_status: every member on vfio-pci -> VIABLE, no CONTAINER_SET."""
    with session(host) as s:
        g = s.group(host.pair_group)
        status = new("struct vfio_group_status *")
        expect_ok(s.k.ioctl, g, uapi.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == C.VFIO_GROUP_FLAGS_VIABLE


def test_group_status_container_set(host: Host) -> None:
    """group.c:vfio_group_ioctl_get_status: with a container -> VIABLE | CONTAINER_SET."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        status = new("struct vfio_group_status *")
        s.k.ioctl(g, uapi.VFIO_GROUP_GET_STATUS, status)
        assert status.flags == C.VFIO_GROUP_FLAGS_VIABLE | C.VFIO_GROUP_FLAGS_CONTAINER_SET


def test_group_status_argsz_too_small_einval(host: Host) -> None:
    """group.c:vfio_group_ioctl_get_status: argsz < 8 -> EINVAL."""
    with session(host) as s:
        g = s.group(host.edu_group)
        status = new("struct vfio_group_status *", argsz=4)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_STATUS, status)


def test_set_container_twice_einval(host: Host) -> None:
    """group.c:vfio_group_ioctl_set_container: a container already set -> EINVAL (not EBUSY)."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        expect_errno(errno.EINVAL, s.attach, g, c)


def test_set_container_not_a_container_ebadfd(host: Host) -> None:
    """group.c:vfio_group_ioctl_set_container: an fd that is no container -> EBADFD."""
    with session(host) as s:
        g, g2 = s.group(host.edu_group), s.group(host.pair_group)
        expect_errno(errno.EBADFD, s.attach, g, g2)


def test_set_container_bad_fd_ebadf(host: Host) -> None:
    """group.c:vfio_group_ioctl_set_container: fdget of a closed fd -> EBADF."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EBADF, s.attach, g, 999_999)


def test_unset_container_without_one_einval(host: Host) -> None:
    """group.c:vfio_group_ioctl_unset_container: nothing set -> EINVAL."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_UNSET_CONTAINER)


def test_unset_container_with_device_open_ebusy(host: Host) -> None:
    """group.c:vfio_group_ioctl_unset_container: device fds open (container_users != 1) -> EBUSY."""
    with session(host) as s:
        _, g, _ = s.edu()
        expect_errno(errno.EBUSY, s.k.ioctl, g, uapi.VFIO_GROUP_UNSET_CONTAINER)


def test_bar_mmap_holds_the_device_after_close(host: Host) -> None:
    """A BAR mmap holds the device file (vma->vm_file): after close(2) of the device fd the
    device stays open (container_users != 1: UNSET_CONTAINER EBUSY) until the munmap, when
    vfio_device_fops_release runs."""
    with session(host) as s:
        _, g, d = s.edu()
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.close(d)
        try:
            expect_errno(errno.EBUSY, s.k.ioctl, g, uapi.VFIO_GROUP_UNSET_CONTAINER)
        finally:
            bar.close()
        expect_ok(s.k.ioctl, g, uapi.VFIO_GROUP_UNSET_CONTAINER)


def test_get_device_fd_without_container_einval(host: Host) -> None:
    """group.c:vfio_df_group_open: no container -> EINVAL."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD, name_arg(host.edu))


def test_get_device_fd_before_set_iommu_einval(host: Host) -> None:
    """container.c:vfio_group_use_container: container set but no IOMMU driver -> EINVAL."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD, name_arg(host.edu))


def test_get_device_fd_unknown_name_enodev(host: Host) -> None:
    """vfio_main.c:vfio_device_get_from_name: a name not in the group -> ENODEV."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(host.pair[0]))


def test_get_device_fd_trailing_garbage_enodev(host: Host) -> None:
    """vfio_pci_core.c:vfio_pci_core_match: after the name only ' ' may follow -> else ENODEV."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.ENODEV, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(host.edu + "x"))


def test_get_device_fd_vf_token_not_sriov_einval(host: Host) -> None:
    """vfio_pci_core.c:vfio_pci_validate_vf_token: a token but no PF/VF -> EINVAL."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        token = " vf_token=2ab74924-c335-45f4-9b16-8569e5b08258"
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_DEVICE_FD,
                     name_arg(host.edu + token))


def test_get_device_fd_twice_ok(host: Host) -> None:
    """vfio_main.c:vfio_df_open: the group path may open the same device more than once."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        a, b = s.device(g, host.edu), s.device(g, host.edu)
        assert a != b


def test_two_devices_of_shared_group(host: Host) -> None:
    """group.c: both members of a shared group open through the one group fd."""
    with session(host) as s:
        _, g = s.ready(host.pair_group)
        expect_ok(s.device, g, host.pair[0])
        expect_ok(s.device, g, host.pair[1])


def test_group_close_with_device_open_keeps_group_busy(host: Host) -> None:
    """container.c:vfio_group_use_container takes a reference on the group file: closing the
    group fd while a device is open leaves the group open (a new open is EBUSY)."""
    with session(host) as s:
        _, g, _ = s.edu()
        s.close(g)
        expect_errno(errno.EBUSY, s.k.open, host.group_path(host.edu_group))


@pytest.mark.fake_only("needs a group with a device bound to a host driver")
def test_nonviable_group() -> None:
    """iommu.c:iommu_group_claim_dma_owner: a member on a DMA-API driver -> not VIABLE and
    SET_CONTAINER -> EPERM."""
    k = nonviable_host()
    number = k.labels["nonviable_group"]
    c, g = k.open("/dev/vfio/vfio"), k.open(f"/dev/vfio/{number}")
    status = new("struct vfio_group_status *")
    k.ioctl(g, uapi.VFIO_GROUP_GET_STATUS, status)
    assert status.flags == 0
    expect_errno(errno.EPERM, k.ioctl, g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.close(g)
    k.close(c)
    k.assert_clean()
