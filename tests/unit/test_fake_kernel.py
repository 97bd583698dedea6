"""The fake kernel's own API: call log, fault injection, fail-nth, leak check, builders."""

from __future__ import annotations

import errno
import os

import pytest
from pytest_mock import MockerFixture

from pyvfio import uapi
from pyvfio._ffi import C, ffi
from pyvfio.fake import FakeKernel, nonviable_host, standard_host
from pyvfio.fake.fdtable import FIRST_FD
from pyvfio.testing import fake_kernel, fake_kernel_nonviable  # noqa: F401 - fixtures
from tests.helpers import expect_errno


def _open_edu(k: FakeKernel) -> tuple[int, int, int]:
    c, g = k.open("/dev/vfio/vfio"), k.open("/dev/vfio/1")
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
    d = k.ioctl(g, uapi.VFIO_GROUP_GET_DEVICE_FD, ffi.new("char[]", b"0000:00:01.0"))
    return c, g, d


def _close(k: FakeKernel, *fds: int) -> None:
    for fd in reversed(fds):
        k.close(fd)


def test_fds_come_from_high_counter(fake_kernel: FakeKernel) -> None:  # noqa: F811
    fd = fake_kernel.open("/dev/vfio/vfio")
    assert fd >= FIRST_FD
    fake_kernel.close(fd)
    expect_errno(errno.EBADF, fake_kernel.close, fd)


def test_calls_log_names_and_args(fake_kernel: FakeKernel) -> None:  # noqa: F811
    k = fake_kernel
    fds = _open_edu(k)
    names = [c.name for c in k.calls]
    assert names == ["VFIO_GROUP_SET_CONTAINER", "VFIO_SET_IOMMU", "VFIO_GROUP_GET_DEVICE_FD"]
    assert k.calls[1].args == {"arg": C.VFIO_TYPE1v2_IOMMU}
    assert k.calls[2].args["name"] == "0000:00:01.0" and k.calls[2].kind == "group"
    _close(k, *fds)


def test_calls_log_records_errno(fake_kernel: FakeKernel) -> None:  # noqa: F811
    c = fake_kernel.open("/dev/vfio/vfio")
    expect_errno(errno.EINVAL, fake_kernel.ioctl, c, uapi.VFIO_SET_IOMMU, 3)
    assert fake_kernel.calls[-1].errno == errno.EINVAL
    fake_kernel.close(c)


def test_spy_with_pytest_mock(fake_kernel: FakeKernel, mocker: MockerFixture) -> None:  # noqa: F811
    spy = mocker.spy(fake_kernel, "ioctl")
    fds = _open_edu(fake_kernel)
    assert spy.call_count == 3
    assert spy.call_args_list[1].args[1] == uapi.VFIO_SET_IOMMU
    _close(fake_kernel, *fds)


def test_inject_nth_by_name_and_number(fake_kernel: FakeKernel) -> None:  # noqa: F811
    k = fake_kernel
    k.inject("VFIO_GET_API_VERSION", errno.EIO, nth=2)
    k.inject(uapi.VFIO_CHECK_EXTENSION, errno.ENOMEM)
    c = k.open("/dev/vfio/vfio")
    k.ioctl(c, uapi.VFIO_GET_API_VERSION)
    exc = expect_errno(errno.EIO, k.ioctl, c, uapi.VFIO_GET_API_VERSION)
    assert exc.filename == "VFIO_GET_API_VERSION"
    k.ioctl(c, uapi.VFIO_GET_API_VERSION)
    expect_errno(errno.ENOMEM, k.ioctl, c, uapi.VFIO_CHECK_EXTENSION, 3)
    k.close(c)


def test_fail_nth_sweep() -> None:
    """Sweep every failure point of open+attach+set_iommu+get_device_fd; each unwinds clean."""
    n = 1
    while True:
        k = standard_host()
        k.fail_nth(n)
        opened: list[int] = []
        try:
            c = k.open("/dev/vfio/vfio")
            opened.append(c)
            g = k.open("/dev/vfio/1")
            opened.append(g)
            k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
            k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_TYPE1v2_IOMMU)
            name = ffi.new("char[]", b"0000:00:01.0")
            opened.append(k.ioctl(g, uapi.VFIO_GROUP_GET_DEVICE_FD, name))
        except OSError as exc:
            assert exc.errno == errno.ENOMEM
        _close(k, *opened)
        k.assert_clean()
        if k.fail_nth_pending:
            break
        n += 1
    assert n == 6


def test_assert_clean_lists_leaks() -> None:
    k = standard_host()
    c, g, d = _open_edu(k)
    efd = k.eventfd()
    bar = k.mmap(d, 0x1000, 0)
    with pytest.raises(AssertionError) as info:
        k.assert_clean()
    text = str(info.value)
    assert "(container)" in text and "(device)" in text and "eventfd" in text and "mmap" in text
    bar.close()
    _close(k, c, g, d, efd)
    k.assert_clean()


def test_assert_clean_reports_binding_change() -> None:
    k = standard_host()
    k.sysfs_write("bus/pci/devices/0000:00:02.0/driver/unbind", "0000:00:02.0")
    with pytest.raises(AssertionError, match=r"0000:00:02\.0 bound to None"):
        k.assert_clean()


def test_eventfd_is_real(fake_kernel: FakeKernel) -> None:  # noqa: F811
    efd = fake_kernel.eventfd()
    os.write(efd, (1).to_bytes(8, "little"))
    assert fake_kernel.read(efd, 8) == (1).to_bytes(8, "little")
    fake_kernel.close(efd)


def test_nonviable_fixture(fake_kernel_nonviable: FakeKernel) -> None:  # noqa: F811
    k = fake_kernel_nonviable
    assert k.bus.blockers(k.labels["nonviable_group"]) == [k.labels["nonviable_nic"]]


def test_builders_layout() -> None:
    k = standard_host()
    assert k.listdir("/dev/vfio") == ["1", "6", "vfio"]
    assert k.labels["pair"] == ("0000:02:01.0", "0000:02:02.0")
    assert "7" in nonviable_host().listdir("/dev/vfio")
    assert standard_host(noiommu=True).listdir("/dev/vfio") == ["noiommu-1", "noiommu-6", "vfio"]
    expect_errno(errno.ENOENT, k.open, "/dev/iommu")
    assert not k.exists("/dev/iommu")


def test_dma_fault_recorded() -> None:
    """A device DMA to an unmapped IOVA is recorded as a fault on the model."""
    k = standard_host()
    c, g, d = _open_edu(k)
    dev = k.bus.devices["0000:00:01.0"]
    dev.config[4] |= 0x4
    assert dev.dma_write(0x5000, b"x") is False
    assert dev.faults[-1].reason == "IOVA not mapped for write"
    dev.config[4] &= ~0x4
    assert dev.dma_read(0x5000, 1) is None
    assert dev.faults[-1].reason == "bus master off"
    _close(k, c, g, d)
