"""fds of the wrong kind: a VFIO fd where an eventfd is expected, real files (eventfd,
/dev/null) given to the VFIO calls, read(2)/write(2) of a device fd.  All found by
tests/differential (Linux 6.12 in the VM lane); the fake decides per fd whether it owns it."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from tests.conformance.vfio_helpers import region_offset, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok


@pytest.fixture
def devnull() -> Iterator[int]:
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def test_ioeventfd_vfio_fd_is_not_an_eventfd(host: Host) -> None:
    """vfio_pci_ioeventfd -> eventfd_ctx_fdget: an open fd that is not an eventfd -> EINVAL."""
    with session(host) as s:
        c, _, d = s.edu()
        io = new("struct vfio_device_ioeventfd *", flags=C.VFIO_DEVICE_IOEVENTFD_32,
                 offset=0x04, data=1, fd=c)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_IOEVENTFD, io)


def test_set_irqs_vfio_fd_is_not_an_eventfd(host: Host) -> None:
    """vfio_pci_set_intx_trigger -> eventfd_ctx_fdget of the container fd -> EINVAL."""
    with session(host) as s:
        c, _, d = s.edu()
        irq = new("struct vfio_irq_set *", argsz=24, index=C.VFIO_PCI_INTX_IRQ_INDEX, count=1,
                  flags=C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER)
        buf = ffi.new("char[]", 24)
        ffi.memmove(buf, ffi.buffer(irq, 20), 20)
        ffi.memmove(buf + 20, struct.pack("<i", c), 4)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_SET_IRQS,
                     ffi.cast("struct vfio_irq_set *", buf))


def test_ioctl_on_a_real_file_enotty(host: Host, devnull: int) -> None:
    """A VFIO ioctl on /dev/null: the file has no such ioctl -> ENOTTY (not EBADF)."""
    expect_errno(errno.ENOTTY, host.kernel.ioctl, devnull, uapi.VFIO_GET_API_VERSION, 0)


def test_set_container_real_file_ebadfd(host: Host, devnull: int) -> None:
    """vfio_group_ioctl_set_container: an open fd neither container nor iommufd -> EBADFD."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EBADFD, s.k.ioctl, g, uapi.VFIO_GROUP_SET_CONTAINER,
                     ffi.new("int32_t *", devnull))


def test_pread_mmap_of_real_files(host: Host, devnull: int) -> None:
    """pread/pwrite/mmap of files that are not VFIO's: the real kernel's answers (/dev/null
    reads EOF and swallows writes, an eventfd cannot seek: ESPIPE, neither maps: ENODEV)."""
    k = host.kernel
    assert k.pread(devnull, 4, 0) == b""
    assert k.pwrite(devnull, b"abcd", 0) == 4
    efd = k.eventfd()
    try:
        expect_errno(errno.ESPIPE, k.pread, efd, 8, 0)
        expect_errno(errno.ENODEV, k.mmap, efd, 4096, 0)
    finally:
        k.close(efd)
    expect_errno(errno.ENODEV, k.mmap, devnull, 4096, 0)


def test_device_fd_read_write_at_file_position(host: Host) -> None:
    """vfio_device_fops_read/write: read(2)/write(2) use the file position (0 = BAR0 offset 0,
    edu's identification register), which advances; the id register ignores writes."""
    with session(host) as s:
        _, _, d = s.edu()
        assert struct.unpack("<I", expect_ok(s.k.read, d, 4))[0] == 0x010000ED
        s.k.pwrite(d, struct.pack("<I", 0), region_offset(0) + 4)  # liveness: reads ~value
        assert struct.unpack("<I", s.k.read(d, 4))[0] == 0xFFFFFFFF  # position 4 now
        assert s.k.write(d, struct.pack("<I", 7)) == 4  # position 8 (factorial: not read)


def test_group_fd_read_einval(host: Host) -> None:
    """A group fd has no read: EINVAL."""
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EINVAL, s.k.read, g, 8)


def test_set_container_already_set_before_file_kind(host: Host, devnull: int) -> None:
    """vfio_group_ioctl_set_container: a group that has a container -> EINVAL, checked before
    whether the fd is a container (an open /dev/null then is EINVAL, not EBADFD)."""
    with session(host) as s:
        _, g = s.ready(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_SET_CONTAINER,
                     ffi.new("int32_t *", devnull))


def test_hot_reset_group_fds_checked_in_order(host: Host) -> None:
    """vfio_pci_ioctl_pci_hot_reset_groups: each fd is fget in order: not open -> EBADF,
    open but not a group -> EINVAL."""
    with session(host) as s:
        c, g = s.ready(host.pair_group)
        d = s.device(g, host.pair[0])
        for fd, err in ((-1, errno.EBADF), (c, errno.EINVAL)):
            buf = ffi.new("char[]", 16)
            ffi.memmove(buf, struct.pack("<IIIi", 16, 0, 1, fd), 16)
            expect_errno(err, s.k.ioctl, d, uapi.VFIO_DEVICE_PCI_HOT_RESET,
                         ffi.cast("struct vfio_pci_hot_reset *", buf))


def test_mmap_unaligned_offset_before_fd_kind(host: Host) -> None:
    """sys_mmap: an offset that is not page aligned -> EINVAL before the file is looked at
    (a container fd, which has no mmap, would be ENODEV)."""
    with session(host) as s:
        c = s.container()
        expect_errno(errno.EINVAL, s.k.mmap, c, 4096, 2048)
        expect_errno(errno.ENODEV, s.k.mmap, c, 4096, 0)


def test_pread_nothing_of_any_region(host: Host) -> None:
    """pread of 0 bytes returns 0, even at a region index the device does not have."""
    with session(host) as s:
        _, _, d = s.edu()
        assert s.k.pread(d, 0, region_offset(9)) == b""
        expect_errno(errno.EINVAL, s.k.pread, d, 4, region_offset(9))
