"""Ready-made fake hosts laid out like the VM lane's guest (reference/vm-lane.md §5).

``standard_host``: a host bridge, edu 00:01.0 alone in group 1, an e1000e NIC in group 2 bound to
its host driver, a PCIe root port (pcieport) in group 3, and behind it a PCIe-to-PCI bridge with
two edu devices, the three of them in group 6.  Every edu is bound to vfio-pci.
"""

from __future__ import annotations

from typing import Any

from pyvfio.fake.bus import VFIO_PCI, Driver
from pyvfio.fake.edu import Edu
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.pci import DeviceConfig, PCIDevice, bridge

EDU = "0000:00:01.0"
PAIR = ("0000:02:01.0", "0000:02:02.0")
NIC = "0000:00:02.0"
NONVIABLE = ("0000:00:05.0", "0000:00:05.1")


def _nic(bdf: str) -> PCIDevice:
    return PCIDevice(bdf, DeviceConfig(vendor=0x8086, device=0x10D3, class_code=0x020000,
                                       bars=(0x20000, 0x20000), msi_vectors=1, msix_vectors=5,
                                       msix_bar=1, pcie=True))


def _edu(kernel: FakeKernel, bdf: str, group: int, address: int, dma_delay: float) -> None:
    dev = Edu(bdf, dma_delay=dma_delay)
    dev.bars[0].address = address
    kernel.bus.override[bdf] = VFIO_PCI
    kernel.add_device(dev, group, VFIO_PCI)


def standard_host(*, dma_delay: float = 0.0, groups: dict[str, int] | None = None,
                  **knobs: Any) -> FakeKernel:
    """Return a FakeKernel laid out like the VM lane's guest (see the module docstring).

    Args:
        dma_delay: seconds before an edu DMA completes (QEMU: 0.1; default 0: at once).
        groups: IOMMU group numbers by edu BDF, where they are not 1 and 6 (a lane profile with
            more devices, such as iommufd-7.3's SR-IOV nvme, numbers the pair's group 7; in
            no-IOMMU mode each device has a group of its own: 0, 1, 2).
        **knobs: FakeKernel knobs (dma_entry_limit, memlock_limit, iova_ranges, ...).
    """
    knobs.setdefault("cache_coherency", False)  # QEMU's intel-iommu: no snoop control
    kernel = FakeKernel(**knobs)
    kernel.bus.add_driver(Driver("e1000e", {(0x8086, 0x10D3)}))
    kernel.bus.add_driver(Driver("pcieport", {(0x1B36, 0x000C)}))
    host = PCIDevice("0000:00:00.0", DeviceConfig(vendor=0x8086, device=0x29C0,
                                                  class_code=0x060000, bars=(), msi_vectors=0,
                                                  intx=False))
    group = {EDU: 1, PAIR[0]: 6, PAIR[1]: 6, **(groups or {})}
    taken = set(group.values())

    def other(n: int) -> int:  # the non-edu devices' groups: 0, 2, 3 unless an edu has it
        if n in taken:
            n = max(taken) + 1
        taken.add(n)
        return n

    kernel.add_device(host, other(0))
    _edu(kernel, EDU, group[EDU], 0xFEA00000, dma_delay)
    nic_group = other(2)
    kernel.add_device(_nic(NIC), nic_group, "e1000e")
    port = bridge("0000:00:03.0", 1)
    port.cfg.device = 0x000C
    kernel.add_device(port, other(3), "pcieport")
    kernel.add_device(bridge("0000:01:00.0", 2), group[PAIR[0]])
    for i, bdf in enumerate(PAIR):
        _edu(kernel, bdf, group[bdf], 0xFE800000 + i * 0x100000, dma_delay)
    kernel.labels.update(edu=EDU, edu_group=group[EDU], pair=PAIR, pair_group=group[PAIR[0]],
                         nic=NIC, nic_group=nic_group)
    kernel.mark_clean()
    return kernel


def nonviable_host(**knobs: Any) -> FakeKernel:
    """Return :func:`standard_host` plus group 7: an edu on vfio-pci and a NIC on e1000e.

    The labels ``nonviable_group``, ``nonviable_edu`` and ``nonviable_nic`` name them.
    """
    kernel = standard_host(**knobs)
    _edu(kernel, NONVIABLE[0], 7, 0xFE600000, 0.0)
    kernel.add_device(_nic(NONVIABLE[1]), 7, "e1000e")
    kernel.labels.update(nonviable_group=7, nonviable_edu=NONVIABLE[0],
                         nonviable_nic=NONVIABLE[1])
    kernel.mark_clean()
    return kernel
