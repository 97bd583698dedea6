"""A VFIO group over an iommufd: device fds that outlive the group file, DMA ownership, and the
first domain's pinning of what was mapped before it.

Specification: drivers/vfio/group.c (vfio_group_fops_release, vfio_group_ioctl_get_status,
vfio_group_ioctl_unset_container; only vfio_group_use_container pins the group file, an
iommufd-opened device does not), drivers/iommu/iommu.c (iommu_group_claim_dma_owner),
drivers/iommu/iommufd/io_pagetable.c:iopt_fill_domain (IOAS_MAP and compat MAP_DMA pin nothing
until the IOAS has a domain).  Found by tests/differential on Linux 6.12 (the iommufd profile).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
from collections.abc import Iterator
from contextlib import contextmanager

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.iommufd_helpers import PAGE, RW, Session, addr, iommufd_session
from tests.conformance.test_iommufd_compat import map_dma, unmap_dma
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PROT_NONE = 0  # mmap has no name for it
VIABLE, CONTAINER_SET = C.VFIO_GROUP_FLAGS_VIABLE, C.VFIO_GROUP_FLAGS_CONTAINER_SET
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


@contextmanager
def pages_with(prot: int) -> Iterator[int]:
    """One anonymous page, protected ``prot`` (PROT_NONE, PROT_READ); its address."""
    buf = mmap.mmap(-1, PAGE)
    va = addr(buf)
    assert _libc.mprotect(va, PAGE, prot) == 0
    try:
        yield va
    finally:
        _libc.mprotect(va, PAGE, mmap.PROT_READ | mmap.PROT_WRITE)
        buf.close()


def group_on(s: Session, fd: int) -> int:
    """The lone edu's group with the iommufd ``fd`` as its container."""
    group = s.track(s.k.open(s.host.group_path(s.host.edu_group)))
    s.k.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", fd))
    return group


def get_device(s: Session, group: int) -> int:
    name = ffi.new("char[]", s.host.edu.encode())
    return s.track(s.k.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD, name))


def status(s: Session, group: int) -> int:
    arg = new("struct vfio_group_status *")
    s.k.ioctl(group, uapi.VFIO_GROUP_GET_STATUS, arg)
    return int(arg.flags)


def test_group_closes_under_an_iommufd_device(host: Host) -> None:
    """vfio_group_fops_release runs at the group fd's close although the device is open (the
    device holds no group file reference on an iommufd): the node opens again, the device
    still works, and the new open reads not VIABLE (the device's iommufd owns the group's DMA:
    a container cannot claim it, EPERM) until the device closes."""
    with iommufd_session(host) as s:
        group = group_on(s, s.iommufd())
        device = get_device(s, group)
        s.close(group)
        group = s.track(s.k.open(host.group_path(host.edu_group)))
        assert status(s, group) == 0
        container = s.track(s.k.open("/dev/vfio/vfio"))
        expect_errno(errno.EPERM, s.k.ioctl, group, uapi.VFIO_GROUP_SET_CONTAINER,
                     ffi.new("int32_t *", container))
        info = new("struct vfio_device_info *")
        expect_ok(s.k.ioctl, device, uapi.VFIO_DEVICE_GET_INFO, info)
        s.close(device)
        assert status(s, group) == VIABLE


def test_unset_iommufd_under_an_open_device_not_viable(host: Host) -> None:
    """vfio_group_ioctl_get_status after UNSET_CONTAINER with the device open: no container,
    and iommu_group_dma_owner_claimed (the device stays bound) -> flags 0."""
    with iommufd_session(host) as s:
        group = group_on(s, s.iommufd())
        assert status(s, group) == VIABLE | CONTAINER_SET
        device = get_device(s, group)
        expect_ok(s.k.ioctl, group, uapi.VFIO_GROUP_UNSET_CONTAINER)
        assert status(s, group) == 0
        s.close(device)
        assert status(s, group) == VIABLE


def test_get_device_fd_pins_what_was_mapped_efault(host: Host) -> None:
    """Compat MAP_DMA of PROT_NONE memory succeeds while the IOAS has no domain; the first
    device's attach fills the new domain and cannot pin it: GET_DEVICE_FD -> EFAULT (nothing
    stays bound: after the unmap it succeeds)."""
    with iommufd_session(host) as s, pages_with(PROT_NONE) as va:
        fd = s.iommufd()
        group = group_on(s, fd)
        expect_ok(s.k.ioctl, fd, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
        expect_ok(map_dma, s, fd, va, 0x100000, PAGE)
        expect_errno(errno.EFAULT, get_device, s, group)
        assert unmap_dma(s, fd, 0x100000, PAGE) == PAGE
        expect_ok(get_device, s, group)


def test_attach_pins_what_was_mapped_efault(host: Host) -> None:
    """IOAS_MAP (writeable) of read-only memory succeeds while the IOAS has no domain; the
    cdev's ATTACH creates the first one and cannot pin the pages for write -> EFAULT."""
    with iommufd_session(host) as s, pages_with(mmap.PROT_READ) as va:
        fd = s.iommufd()
        ioas = s.ioas(fd)
        iova = s.map(fd, ioas, va, PAGE, flags=RW)
        cdev = s.cdev(host.edu)
        s.bind(cdev, fd)
        expect_errno(errno.EFAULT, s.attach, cdev, ioas)
        assert s.unmap(fd, ioas, iova, PAGE) == PAGE
        expect_ok(s.attach, cdev, ioas)


def test_cdev_bind_under_a_group_opened_neighbour(host: Host) -> None:
    """The group file is closed but a neighbour opened through it stays bound to iommufd A:
    the other device's cdev BIND is not blocked by the group (vfio_device_block_group), and
    iommu_device_claim_dma_owner lets only A in (B -> EPERM)."""
    with iommufd_session(host) as s:
        fd_a, fd_b = s.iommufd(), s.iommufd()
        group = s.track(s.k.open(host.group_path(host.pair_group)))
        s.k.ioctl(group, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", fd_a))
        s.track(s.k.ioctl(group, uapi.VFIO_GROUP_GET_DEVICE_FD,
                          ffi.new("char[]", host.pair[0].encode())))
        s.close(group)
        cdev = s.cdev(host.pair[1])
        expect_errno(errno.EPERM, s.bind, cdev, fd_b)
        assert s.bind(cdev, fd_a) >= 1
