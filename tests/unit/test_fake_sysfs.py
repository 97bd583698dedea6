"""The fake's in-memory sysfs tree and its PCI driver-core semantics (pyvfio.fake.sysfs, bus)."""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import ffi
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.fake.sysfs import SysfsTree
from tests.helpers import expect_errno

EDU = "0000:00:01.0"
NIC = "0000:00:02.0"


def test_tree_attr_link_dir() -> None:
    t = SysfsTree()
    t.add_attr("a/b/value", "42\n")
    t.symlink("c/link", "a/b")
    assert t.read("a/b/value") == "42"
    assert t.read("c/link/value") == "42"
    assert t.readlink("c/link") == "../a/b"
    assert t.listdir("a") == ["b"]
    assert t.exists("c/link") and not t.exists("c/none")


def test_tree_errors() -> None:
    t = SysfsTree()
    t.add_attr("a/ro", "x")
    expect_errno(errno.ENOENT, t.read, "a/missing")
    expect_errno(errno.EACCES, t.write, "a/ro", "y")
    expect_errno(errno.EISDIR, t.read, "a")
    expect_errno(errno.ENOTDIR, t.listdir, "a/ro")
    expect_errno(errno.EINVAL, t.readlink, "a/ro")
    with pytest.raises(ValueError):
        t.read("/abs")


def test_write_hook_errno_keeps_path() -> None:
    t = SysfsTree()

    def refuse(value: str) -> None:
        raise OSError(errno.EBUSY, "busy")

    t.add_attr("x", "", refuse)
    exc = expect_errno(errno.EBUSY, t.write, "x", "1")
    assert exc.filename == "x"


@pytest.fixture
def k() -> FakeKernel:
    return standard_host()


def test_device_attributes(k: FakeKernel) -> None:
    base = f"bus/pci/devices/{EDU}"
    assert (k.sysfs_read(f"{base}/vendor"), k.sysfs_read(f"{base}/device")) == ("0x1234", "0x11e8")
    assert k.sysfs_read(f"{base}/class") == "0x00ff00"
    assert k.sysfs_readlink(f"{base}/driver").endswith("drivers/vfio-pci")
    assert k.sysfs_readlink(f"{base}/iommu_group").endswith("iommu_groups/1")
    assert k.sysfs_listdir("kernel/iommu_groups/6/devices") == [
        "0000:01:00.0", "0000:02:01.0", "0000:02:02.0"]
    assert k.sysfs_listdir(f"{base}/vfio-dev")[0].startswith("vfio")


def test_rebind_via_override_and_drivers_probe(k: FakeKernel) -> None:
    """The standard recipe: driver_override, unbind, drivers_probe (bus.c)."""
    k.sysfs_write(f"bus/pci/devices/{NIC}/driver_override", "vfio-pci\n")
    k.sysfs_write(f"bus/pci/devices/{NIC}/driver/unbind", NIC)
    assert not k.sysfs_exists(f"bus/pci/devices/{NIC}/driver")
    k.sysfs_write("bus/pci/drivers_probe", NIC)
    assert k.sysfs_readlink(f"bus/pci/devices/{NIC}/driver").endswith("vfio-pci")
    assert "2" in k.listdir("/dev/vfio")
    k.sysfs_write("bus/pci/drivers/vfio-pci/unbind", NIC)
    k.sysfs_write(f"bus/pci/devices/{NIC}/driver_override", "\n")
    k.sysfs_write("bus/pci/drivers/e1000e/bind", NIC)
    k.assert_clean()


def test_bind_errors(k: FakeKernel) -> None:
    expect_errno(errno.ENODEV, k.sysfs_write, "bus/pci/drivers/vfio-pci/bind", "0000:09:00.0")
    expect_errno(errno.ENODEV, k.sysfs_write, "bus/pci/drivers/vfio-pci/bind", NIC)  # no override
    expect_errno(errno.EBUSY, k.sysfs_write, "bus/pci/drivers/e1000e/bind", NIC)
    expect_errno(errno.ENODEV, k.sysfs_write, "bus/pci/drivers/e1000e/unbind", EDU)
    expect_errno(errno.ENODEV, k.sysfs_write, "bus/pci/drivers_probe", "0000:09:00.0")


def test_vfio_pci_refuses_bridge(k: FakeKernel) -> None:
    """vfio_pci_probe: header type 1 -> EINVAL."""
    k.sysfs_write("bus/pci/devices/0000:01:00.0/driver_override", "vfio-pci")
    expect_errno(errno.EINVAL, k.sysfs_write, "bus/pci/drivers/vfio-pci/bind", "0000:01:00.0")
    k.sysfs_write("bus/pci/devices/0000:01:00.0/driver_override", "")


def test_new_id(k: FakeKernel) -> None:
    drivers = "bus/pci/drivers/pci-stub"
    expect_errno(errno.EINVAL, k.sysfs_write, f"{drivers}/new_id", "8086")
    k.sysfs_write(f"bus/pci/devices/{NIC}/driver/unbind", NIC)
    k.sysfs_write(f"{drivers}/new_id", "8086 10d3")
    assert k.sysfs_readlink(f"bus/pci/devices/{NIC}/driver").endswith("pci-stub")
    expect_errno(errno.EEXIST, k.sysfs_write, f"{drivers}/new_id", "8086 10d3")


def test_host_driver_into_claimed_group_ebusy(k: FakeKernel) -> None:
    """iommu_device_use_default_domain: a DMA-API driver cannot bind into a group VFIO owns."""
    c, g = k.open("/dev/vfio/vfio"), k.open("/dev/vfio/6")
    k.ioctl(g, uapi.VFIO_GROUP_SET_CONTAINER, ffi.new("int32_t *", c))
    k.sysfs_write("bus/pci/drivers/vfio-pci/unbind", "0000:02:01.0")
    k.sysfs_write("bus/pci/devices/0000:02:01.0/driver_override", "e1000e")
    k.bus.drivers["e1000e"].ids.add((0x1234, 0x11E8))
    expect_errno(errno.EBUSY, k.sysfs_write, "bus/pci/drivers/e1000e/bind", "0000:02:01.0")
    k.close(g)
    k.close(c)
