"""Unit tests of pyvfio.cdev on the FakeKernel: cdev devices and open_device's mode choice."""

from __future__ import annotations

import errno

import pytest

from pyvfio.cdev import CdevDevice, cdev_path, open_device
from pyvfio.errors import ModeUnavailableError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.group import Group
from pyvfio.iommufd import IOAS, IOMMUFD
from tests.helpers import expect_errno
from tests.unit.vfio_env import load_example

EDU, PAIR = "0000:00:01.0", ("0000:02:01.0", "0000:02:02.0")



@pytest.fixture
def kernel(fake_kernel: FakeKernel) -> FakeKernel:
    return fake_kernel


@pytest.mark.parametrize("mode", ["auto", "iommufd", "legacy"])
def test_example_driver_runs_in_every_mode(kernel: FakeKernel, mode: str) -> None:
    example = load_example()
    with open_device(EDU, mode, kernel=kernel) as opened:
        back = example.exercise(opened.device)  # type: ignore[attr-defined]
        assert opened.mode == ("legacy" if mode == "legacy" else "iommufd")
    assert back == bytes(i * 7 % 251 for i in range(example.COUNT))  # type: ignore[attr-defined]


def test_auto_without_iommufd_says_why() -> None:
    k = standard_host()
    with open_device(EDU, kernel=k) as opened:
        assert opened.mode == "legacy" and "/dev/iommu does not exist" in opened.reason
    k.assert_clean()


def test_iommufd_mode_unavailable_raises() -> None:
    k = standard_host()
    with pytest.raises(ModeUnavailableError, match="CONFIG_IOMMUFD"):
        open_device(EDU, "iommufd", kernel=k)
    k.assert_clean()


def test_open_device_validates_before_syscalls(kernel: FakeKernel) -> None:
    with pytest.raises(ValueError, match="mode"):
        open_device(EDU, "fast", kernel=kernel)
    with pytest.raises(TypeError):
        open_device(1234, kernel=kernel)  # type: ignore[arg-type]
    assert not kernel.calls


def test_open_device_leaks_nothing_when_attach_fails(kernel: FakeKernel) -> None:
    kernel.inject("VFIO_DEVICE_ATTACH_IOMMUFD_PT", errno.ENOMEM)
    expect_errno(errno.ENOMEM, open_device, EDU, "iommufd", kernel=kernel)


def test_cdev_path_from_sysfs(kernel: FakeKernel) -> None:
    path = cdev_path(EDU, kernel=kernel)
    assert path is not None and path.startswith("/dev/vfio/devices/vfio")
    assert kernel.exists(path)


@pytest.mark.parametrize("bdf", ["../../../etc", "0000:00:01.0/..", "", "0000:00:01.0\n"])
def test_cdev_path_checks_the_bdf_before_sysfs(kernel: FakeKernel, bdf: str) -> None:
    with pytest.raises(ValueError, match="bdf"):
        cdev_path(bdf, kernel=kernel)
    assert cdev_path(EDU[5:], kernel=kernel) == cdev_path(EDU, kernel=kernel)  # 00:01.0 form


def test_unbound_cdev_refuses_everything_but_bind(kernel: FakeKernel) -> None:
    with CdevDevice(EDU, kernel=kernel) as dev:
        expect_errno(errno.EINVAL, dev.info)
        with pytest.raises(ValueError, match="not bound"):
            dev.attach(1)


def test_bind_attach_replace_detach(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd, CdevDevice(EDU, kernel=kernel) as dev:
        a, b = fd.ioas(), fd.ioas()
        dev_id = dev.bind(fd)
        first = dev.attach(a)
        second = dev.attach(b)  # replace: a's auto HWPT goes away
        assert first != second and dev.hwpt_id == second
        expect_errno(errno.EBUSY, fd.destroy, dev_id)
        dev.detach()
        dev.detach()  # silent when not attached
        assert isinstance(a, IOAS)


def test_group_open_while_cdev_bound_is_ebusy(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd, CdevDevice(PAIR[0], kernel=kernel) as dev:
        dev.bind(fd)
        expect_errno(errno.EBUSY, Group.from_device, PAIR[1], kernel=kernel)


def test_hw_info_of_bound_device(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd, CdevDevice(EDU, kernel=kernel) as dev:
        dev.bind(fd)
        info = dev.hw_info()
        assert info.data_type == 1 and len(info.data) == 24 and not info.dirty_tracking
