"""Fixtures of the host-tooling tests: a fake host with an in-use disk, a NIC carrying routes,
a boot VGA, an mdev parent and an SR-IOV PF around the standard fake PCI topology."""

from __future__ import annotations

from dataclasses import dataclass

from pyvfio.fake import DeviceConfig, FakeKernel, PCIDevice, nonviable_host
from pyvfio.fake.bus import Driver
from pyvfio.fake.hostenv import (
    EXT4_HEAD,
    FakeHostOS,
    add_disk,
    add_mdev_parent,
    add_netdev,
    add_sriov,
    boot_vga,
    hold,
    iommu_host,
    mount,
)

NVME = "0000:00:06.0"  # an NVMe disk with a mounted partition
NVME2 = "0000:00:07.0"  # an NVMe disk with only an ext4 signature
VGA = "0000:00:08.0"
PF = "0000:00:09.0"
NIC = "0000:00:02.0"  # standard_host's e1000e, here with eth0 up and routed
SPARE = "0000:00:0a.0"  # an NVMe on its driver, not in use


@dataclass
class Env:
    kernel: FakeKernel
    host: FakeHostOS


def _nvme(kernel: FakeKernel, bdf: str, group: int) -> None:
    kernel.add_device(PCIDevice(bdf, DeviceConfig(vendor=0x1B36, device=0x0010,
                                                  class_code=0x010802)), group, "nvme")


def make_env() -> Env:
    kernel, host = nonviable_host(), FakeHostOS()
    kernel.bus.add_driver(Driver("nvme", {(0x1B36, 0x0010)}))
    kernel.bus.add_driver(Driver("bochs-drm", {(0x1234, 0x1111)}))
    kernel.bus.add_driver(Driver("ixgbe", {(0x8086, 0x10FB)}))
    _nvme(kernel, NVME, 8)
    _nvme(kernel, NVME2, 9)
    _nvme(kernel, SPARE, 12)
    kernel.add_device(PCIDevice(VGA, DeviceConfig(vendor=0x1234, device=0x1111,
                                                  class_code=0x030000)), 10, "bochs-drm")
    kernel.add_device(PCIDevice(PF, DeviceConfig(vendor=0x8086, device=0x10FB,
                                                 class_code=0x020000)), 11, "ixgbe")
    add_disk(kernel, host, NVME, "nvme0n1", partitions=2)
    mount(kernel, host, "nvme0n1p1", "/")
    host.swaps.append("nvme0n1p2")
    add_disk(kernel, host, NVME2, "nvme1n1", head=EXT4_HEAD)
    add_disk(kernel, host, SPARE, "nvme2n1")
    add_netdev(kernel, host, NIC, "eth0", addresses=("10.0.2.15",), routes=("10.0.2.0/24",))
    boot_vga(kernel, VGA)
    add_mdev_parent(kernel, PF, {"ixgbe-mdev1": 2})
    add_sriov(kernel, PF, 4, vf_device=0x10ED, offset=0x80, stride=2)  # 82599: ixgbevf VFs
    iommu_host(kernel)
    kernel.mark_clean()
    return Env(kernel, host)


__all__ = ["NIC", "NVME", "NVME2", "PF", "SPARE", "VGA", "Env", "hold", "make_env"]
