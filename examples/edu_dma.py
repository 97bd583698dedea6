"""A complete userspace driver for QEMU's edu device, through pyvfio's public API only.

It opens the legacy VFIO container, the edu's group and device, turns on Bus Master, maps a
buffer for DMA, copies a pattern into the device and back, waiting for each completion on an MSI
eventfd, then unmaps and closes everything.

    python examples/edu_dma.py                      # on pyvfio's fake kernel
    python examples/edu_dma.py --device 0000:00:03.0  # on a real edu bound to vfio-pci
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import pyvfio  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.dma import allocate
from pyvfio.fake import standard_host
from pyvfio.group import Group
from pyvfio.irq import EventFD
from pyvfio.kernel import MMIO, Kernel, LinuxKernel
from pyvfio.pci import PCIConfig
from pyvfio.uapi import PCIIrq, PCIRegion

EDU_IDS = ("0x1234", "0x11e8")
EDU_IDENT = 0x00
EDU_IRQ_STATUS, EDU_IRQ_ACK = 0x24, 0x64
DMA_SRC, DMA_DST, DMA_COUNT, DMA_CMD = 0x80, 0x88, 0x90, 0x98
DMA_START, DMA_TO_RAM, DMA_IRQ = 0x1, 0x2, 0x4
DMA_BUFFER = 0x40000  # the edu's internal DMA buffer, in its own address space
DMA_IRQ_BIT = 0x100
IOVA = 0x100000  # below the edu's 28-bit DMA mask
COUNT = 4000  # QEMU 7.2's edu aborts on a full 4096-byte transfer
TIMEOUT = 5.0


def find_edu(kernel: Kernel) -> str:
    """Return the BDF of an edu bound to vfio-pci, preferring one alone in its IOMMU group."""
    found = []
    for bdf in kernel.sysfs_listdir("bus/pci/drivers/vfio-pci"):
        base = f"bus/pci/devices/{bdf}"
        if (
            ":" in bdf
            and (kernel.sysfs_read(f"{base}/vendor"), kernel.sysfs_read(f"{base}/device"))
            == EDU_IDS
        ):
            group = os.path.basename(kernel.sysfs_readlink(f"{base}/iommu_group"))
            found.append((len(kernel.sysfs_listdir(f"kernel/iommu_groups/{group}/devices")), bdf))
    if not found:
        raise SystemExit("no edu device bound to vfio-pci")
    return min(found)[1]


def dma(bar: MMIO, irq: EventFD, src: int, dst: int, to_ram: bool) -> None:
    """Run one edu DMA of COUNT bytes and wait for its MSI."""
    bar.write(DMA_SRC, 8, src)
    bar.write(DMA_DST, 8, dst)
    bar.write(DMA_COUNT, 8, COUNT)
    bar.write(DMA_CMD, 8, DMA_START | DMA_IRQ | (DMA_TO_RAM if to_ram else 0))
    if irq.wait(TIMEOUT) is None:
        raise TimeoutError(f"no DMA interrupt within {TIMEOUT} s")
    status = bar.read(EDU_IRQ_STATUS, 4)
    bar.write(EDU_IRQ_ACK, 4, status)
    if not status & DMA_IRQ_BIT or bar.read(DMA_CMD, 8) & DMA_START:
        raise RuntimeError(f"DMA did not complete: irq status {status:#x}")


def exercise(device: Device, container: Container, kernel: Kernel) -> bytes:
    """Map a buffer, DMA a pattern to the device and back; return what came back."""
    bar = device.mmap(PCIRegion.BAR0)
    ident = bar.read(EDU_IDENT, 4)
    if ident & 0xFF != 0xED:
        raise RuntimeError(f"not an edu: ident {ident:#x}")
    PCIConfig(device).enable_bus_master()  # vfio-pci leaves it off: no DMA, no MSI without it
    with EventFD(kernel) as irq:
        device.enable_irq(PCIIrq.MSI, [irq])
        buf = allocate(2 * 4096)
        with container.map(buf, IOVA) as mapping:
            buf[:COUNT] = bytes(i * 7 % 251 for i in range(COUNT))
            dma(bar, irq, mapping.iova, DMA_BUFFER, to_ram=False)
            dma(bar, irq, DMA_BUFFER, mapping.iova + 4096, to_ram=True)
            back = bytes(buf[4096 : 4096 + COUNT])
        device.disable_irq(PCIIrq.MSI)
    return back


def run(kernel: Kernel, bdf: str) -> bool:
    """Drive the edu at ``bdf``; return True if the data survived the round trip."""
    with Container(kernel) as container, Group.from_device(bdf, kernel=kernel) as group:
        group.set_container(container)
        container.set_iommu()
        with group.open_device(bdf) as device:
            back = exercise(device, container, kernel)
    sent = bytes(i * 7 % 251 for i in range(COUNT))
    return back == sent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; 0 if the DMA round trip worked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", metavar="BDF", help="a real edu bound to vfio-pci")
    args = parser.parse_args(argv)
    if args.device:
        kernel: Kernel = LinuxKernel()
        bdf = args.device
    else:
        kernel = standard_host()
        bdf = find_edu(kernel)
    ok = run(kernel, bdf)
    print(f"edu {bdf}: {COUNT} bytes to the device and back: {'ok' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
