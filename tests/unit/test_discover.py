"""Discovery on the fake host, on a plain sysfs tree, and the pci.ids parser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvfio.fake import DeviceConfig, PCIDevice
from pyvfio.host import discover
from pyvfio.host.pciids import PciIds, class_name
from pyvfio.kernel import LinuxKernel
from tests.unit.hostfix import PF, Env, make_env

PCI_IDS = """# comment
1234  Technical Corp.
\t11e8  Edu device
\t\t1af4 1100  QEMU
8086  Intel Corporation
\t10d3  82574L Gigabit Network Connection
C 02  Network controller
\t00  Ethernet controller
C 06  Bridge
"""


@pytest.fixture
def env() -> Env:
    return make_env()


def test_pciids_names() -> None:
    ids = PciIds(PCI_IDS)
    assert ids.names(0x1234, 0x11E8) == ("Technical Corp.", "Edu device")
    assert ids.names(0x1234, 0x9999) == ("Technical Corp.", None)
    assert ids.class_name(0x020000) == "Ethernet controller"
    assert ids.class_name(0x060400) == "Bridge"
    assert class_name(0x010802) == "Mass storage controller"


def test_list_devices_fake(env: Env) -> None:
    devs = {d.bdf: d for d in discover.list_devices(env.kernel, PciIds(PCI_IDS))}
    edu = devs["0000:00:01.0"]
    assert (edu.vendor_name, edu.device_name, edu.driver, edu.iommu_group) == (
        "Technical Corp.", "Edu device", "vfio-pci", 1)
    assert edu.group_node == "/dev/vfio/1"
    assert devs["0000:00:02.0"].driver == "e1000e"
    assert devs["0000:00:02.0"].group_node is None
    assert devs["0000:00:03.0"].is_bridge
    assert devs[PF].sriov_totalvfs == 4
    assert edu.to_json()["vendor"] == "1234"


def test_domain_of_five_hex_digits_is_listed(env: Env) -> None:
    vmd = "10000:e0:17.0"  # behind Intel VMD: the domain starts at 0x10000
    env.kernel.add_device(PCIDevice(vmd, DeviceConfig(vendor=0x8086, device=0x0A54,
                                                      class_code=0x010802)), None)
    devs = {d.bdf: d for d in discover.list_devices(env.kernel, PciIds(PCI_IDS))}
    assert devs[vmd].vendor == 0x8086 and discover.require(env.kernel, vmd) == vmd


def test_uses_udev_only_for_the_real_sys(env: Env, tmp_path: Path) -> None:
    assert not discover.uses_udev(env.kernel)
    assert not discover.uses_udev(LinuxKernel(str(tmp_path)))
    assert discover.uses_udev(LinuxKernel("/sys"))


def _tree(root: Path) -> None:
    dev = root / "bus/pci/devices/0000:00:04.0"
    dev.mkdir(parents=True)
    for name, value in (("vendor", "0x8086"), ("device", "0x10d3"), ("class", "0x020000"),
                        ("numa_node", "-1"), ("driver_override", "(null)")):
        (dev / name).write_text(value + "\n")
    drv = root / "bus/pci/drivers/e1000e"
    drv.mkdir(parents=True)
    os.symlink("../../../bus/pci/drivers/e1000e", dev / "driver")
    (root / "bus/pci/devices/not-a-bdf").mkdir()


def test_plain_sysfs_tree(tmp_path: Path) -> None:
    _tree(tmp_path)
    kernel = LinuxKernel(str(tmp_path))
    [dev] = discover.list_devices(kernel, PciIds())
    assert (dev.bdf, dev.driver, dev.iommu_group, dev.numa_node, dev.driver_override) == (
        "0000:00:04.0", "e1000e", None, None, None)
    with pytest.raises(FileNotFoundError):
        discover.get(kernel, "0000:00:05.0")


def test_real_host_lists_pci_devices() -> None:
    if not os.path.isdir("/sys/bus/pci/devices"):
        pytest.skip("no PCI bus on this host")
    devs = discover.list_devices(LinuxKernel())
    assert {d.bdf for d in devs} == set(discover.list_bdfs(LinuxKernel()))
