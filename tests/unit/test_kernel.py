"""LinuxKernel on what this host has: files, pipes, eventfds, mmap, and /sys read-only."""

from __future__ import annotations

import errno
import os
import termios
from pathlib import Path

import pytest

from pyvfio import _ioctl, uapi
from pyvfio._ffi import ffi
from pyvfio.kernel import LinuxKernel
from tests.helpers import expect_errno


@pytest.fixture
def lk() -> LinuxKernel:
    return LinuxKernel()


def test_ioctl_errno_names_the_ioctl(lk: LinuxKernel, tmp_path: Path) -> None:
    fd = lk.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    try:
        err = expect_errno(errno.ENOTTY, lk.ioctl, fd, uapi.VFIO_GET_API_VERSION)
        assert err.filename == "VFIO_GET_API_VERSION"
        assert err.strerror == os.strerror(errno.ENOTTY)
    finally:
        lk.close(fd)


def test_ioctl_errno_subclass(lk: LinuxKernel) -> None:
    with pytest.raises(OSError) as info:
        lk.ioctl(9999, uapi.VFIO_DEVICE_GET_INFO, ffi.new("int *"))
    assert info.value.errno == errno.EBADF
    assert info.value.filename == "VFIO_DEVICE_GET_INFO"


def test_ioctl_unnamed_request_names_the_number(lk: LinuxKernel) -> None:
    err = expect_errno(errno.EBADF, lk.ioctl, 9999, 0x3B99)
    assert err.filename == "ioctl 0x3b99"


def test_ioctl_pointer_argument_is_written_by_the_kernel(lk: LinuxKernel) -> None:
    r, w = os.pipe()
    try:
        lk.write(w, b"12345")
        count = ffi.new("int *")
        assert lk.ioctl(r, termios.FIONREAD, count) == 0
        assert count[0] == 5
    finally:
        os.close(r)
        os.close(w)


def test_pread_pwrite_at_offsets(lk: LinuxKernel, tmp_path: Path) -> None:
    fd = lk.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    try:
        assert lk.pwrite(fd, b"abcd", 4096) == 4
        assert lk.pread(fd, 4, 4096) == b"abcd"
        assert lk.pread(fd, 4, 0) == b"\0\0\0\0"
    finally:
        lk.close(fd)


def test_open_missing_path_raises_with_path(lk: LinuxKernel) -> None:
    err = expect_errno(errno.ENOENT, lk.open, "/dev/vfio/does-not-exist")
    assert err.filename == "/dev/vfio/does-not-exist"


def test_eventfd_counts_writes(lk: LinuxKernel) -> None:
    fd = lk.eventfd()
    try:
        lk.write(fd, (3).to_bytes(8, "little"))
        lk.write(fd, (4).to_bytes(8, "little"))
        assert int.from_bytes(lk.read(fd, 8), "little") == 7
        assert os.get_inheritable(fd) is False
    finally:
        lk.close(fd)


def test_close_twice_is_ebadf(lk: LinuxKernel) -> None:
    fd = lk.eventfd()
    lk.close(fd)
    expect_errno(errno.EBADF, lk.close, fd)


def test_mmap_exact_width_accesses(lk: LinuxKernel, tmp_path: Path) -> None:
    path = tmp_path / "bar"
    path.write_bytes(bytes(8192))
    fd = lk.open(str(path))
    m = lk.mmap(fd, 8192, 0)
    try:
        m.write(8, 8, 0x1122334455667788)
        assert m.read(8, 4) == 0x55667788
        assert m.read(12, 2) == 0x3344
        assert m.read(14, 2) == 0x1122
        assert m.read(15, 1) == 0x11
        m.write_bytes(100, b"xyz")
        assert m.read_bytes(99, 5) == b"\0xyz\0"
    finally:
        m.close()
        m.close()
        lk.close(fd)
    assert path.read_bytes()[8:16] == (0x1122334455667788).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("offset", "width", "exc"),
    [
        (2, 4, ValueError),
        (0, 3, ValueError),
        (8192, 1, ValueError),
        (-4, 4, ValueError),
        ("0", 4, TypeError),
    ],
)
def test_mmap_bad_access_rejected(
    lk: LinuxKernel, tmp_path: Path, offset: object, width: int, exc: type
) -> None:
    path = tmp_path / "bar"
    path.write_bytes(bytes(8192))
    fd = lk.open(str(path))
    m = lk.mmap(fd, 8192, 0)
    try:
        with pytest.raises(exc):
            m.read(offset, width)  # type: ignore[arg-type]
    finally:
        m.close()
        lk.close(fd)


def test_mmap_closed_rejects_access(lk: LinuxKernel, tmp_path: Path) -> None:
    path = tmp_path / "bar"
    path.write_bytes(bytes(4096))
    fd = lk.open(str(path))
    m = lk.mmap(fd, 4096, 0)
    m.close()
    lk.close(fd)
    with pytest.raises(ValueError, match="closed"):
        m.read(0, 4)


def test_sysfs_root_is_configurable(tmp_path: Path) -> None:
    dev = tmp_path / "bus/pci/devices/0000:00:03.0"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text("0x1234\n")
    (dev / "driver_override").write_text("(null)\n")
    (tmp_path / "drv").mkdir()
    (dev / "driver").symlink_to(tmp_path / "drv")
    lk = LinuxKernel(str(tmp_path))
    assert lk.sysfs_read("bus/pci/devices/0000:00:03.0/vendor") == "0x1234"
    lk.sysfs_write("bus/pci/devices/0000:00:03.0/driver_override", "vfio-pci")
    assert (dev / "driver_override").read_text() == "vfio-pci"
    assert lk.sysfs_readlink("bus/pci/devices/0000:00:03.0/driver") == str(tmp_path / "drv")
    assert lk.sysfs_listdir("bus/pci/devices") == ["0000:00:03.0"]
    assert lk.sysfs_exists("bus/pci/devices/0000:00:03.0/driver")
    assert not lk.sysfs_exists("bus/pci/devices/0000:00:04.0")


@pytest.mark.parametrize("relpath", ["/etc/passwd", "bus/../../etc/passwd", ".."])
def test_sysfs_path_traversal_rejected(lk: LinuxKernel, relpath: str) -> None:
    with pytest.raises(ValueError, match="relpath"):
        lk.sysfs_read(relpath)


@pytest.mark.skipif(not os.path.isdir("/sys/bus/pci/devices"), reason="host has no /sys/bus/pci")
def test_host_pci_tree_read_only(lk: LinuxKernel) -> None:
    devices = lk.sysfs_listdir("bus/pci/devices")
    assert devices, "the host lists PCI devices"
    for bdf in devices:
        vendor = lk.sysfs_read(f"bus/pci/devices/{bdf}/vendor")
        assert vendor.startswith("0x") and len(vendor) == 6
        if lk.sysfs_exists(f"bus/pci/devices/{bdf}/driver"):
            assert "/drivers/" in lk.sysfs_readlink(f"bus/pci/devices/{bdf}/driver")


def test_ioctl_call_reissues_a_struct_the_kernel_writes_each_time(lk: LinuxKernel) -> None:
    # _ioctl.call's fast path reuses a struct's buffer: it must stay the struct's own bytes
    r, w = os.pipe()
    try:
        count, other = ffi.new("int *"), ffi.new("int *")
        for n in (3, 7):
            lk.write(w, b"x" * (n - (3 if n == 7 else 0)))
            assert _ioctl.call(lk, r, termios.FIONREAD, count) == 0
            assert _ioctl.call(lk, r, termios.FIONREAD, other) == 0
            assert count[0] == other[0] == n
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("fd", [9999, -1])
def test_ioctl_call_on_linux_names_the_ioctl_and_keeps_ebadf(lk: LinuxKernel, fd: int) -> None:
    arg = ffi.new("struct vfio_device_info *")
    for _ in range(2):  # the second call finds the struct's buffer remembered
        err = expect_errno(errno.EBADF, _ioctl.call, lk, fd, uapi.VFIO_DEVICE_GET_INFO, arg)
        assert err.filename == "VFIO_DEVICE_GET_INFO"


def test_ioctl_call_of_a_struct_over_a_buffer_spans_argsz(lk: LinuxKernel, tmp_path: Path) -> None:
    # not an ffi.new struct: LinuxKernel.ioctl's own path (argsz bytes), unchanged
    buf = bytearray(64)
    info = ffi.from_buffer("struct vfio_device_info *", buf)
    info.argsz = 64
    fd = lk.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    try:
        err = expect_errno(errno.ENOTTY, _ioctl.call, lk, fd, uapi.VFIO_DEVICE_GET_INFO, info)
        assert err.filename == "VFIO_DEVICE_GET_INFO"
    finally:
        lk.close(fd)
