"""PCI device models: config space (header type 0, capabilities), BARs, interrupts and DMA.

A model is the *physical* device.  vfio-pci's virtualization of it (BAR sizing, command register,
MSI enable) lives in :mod:`pyvfio.fake.vfio_pci`; the host wiring (DMA through the IOMMU, interrupts
to eventfds) is plugged in through :attr:`PCIDevice.dma` and :attr:`PCIDevice.irq`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol

from pyvfio import pci_regs as regs  # the one copy of pci_regs.h; the names below alias it

PCI_COMMAND, PCI_COMMAND_IO = regs.PCI_COMMAND, regs.PCI_COMMAND_IO
PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER = regs.PCI_COMMAND_MEMORY, regs.PCI_COMMAND_MASTER
PCI_CAPABILITY_LIST, PCI_INTERRUPT_PIN = regs.PCI_CAPABILITY_LIST, regs.PCI_INTERRUPT_PIN
PCI_CAP_ID_PM, PCI_CAP_ID_MSI = regs.PCI_CAP_ID_PM, regs.PCI_CAP_ID_MSI
PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX = regs.PCI_CAP_ID_EXP, regs.PCI_CAP_ID_MSIX
PCI_MSI_FLAGS_ENABLE, PCI_MSIX_FLAGS_ENABLE = regs.PCI_MSI_FLAGS_ENABLE, regs.PCI_MSIX_FLAGS_ENABLE
BAR_MEM64, BAR_PREFETCH = regs.PCI_BASE_ADDRESS_MEM_TYPE_64, regs.PCI_BASE_ADDRESS_MEM_PREFETCH
BAR_IO = regs.PCI_BASE_ADDRESS_SPACE_IO


class DmaPort(Protocol):
    """Where a device's bus-master accesses go (the IOMMU); None from read means blocked.

    ``lock`` is the port's lock: a device model doing DMA from a thread of its own takes it
    before its own lock, the order the kernel's system calls take them in.
    """

    lock: Any

    def dma_read(self, dev: PCIDevice, iova: int, size: int) -> bytes | None: ...

    def dma_write(self, dev: PCIDevice, iova: int, data: bytes) -> bool: ...


class IrqSink(Protocol):
    """Where a device's interrupts go (vfio-pci's eventfds)."""

    def intx(self, dev: PCIDevice, level: bool) -> None: ...

    def msi(self, dev: PCIDevice, vector: int) -> None: ...


@dataclass
class BAR:
    """A BAR: ``size`` a power of two (0 = unimplemented), its kind and its host address."""

    size: int
    mem64: bool = False
    prefetch: bool = False
    io: bool = False
    address: int = 0

    @property
    def type_bits(self) -> int:
        if self.io:
            return BAR_IO
        return (BAR_MEM64 if self.mem64 else 0) | (BAR_PREFETCH if self.prefetch else 0)


@dataclass
class DeviceConfig:
    """What a generic device looks like; every field is a knob."""

    vendor: int = 0x1B36
    device: int = 0x0005
    subsystem_vendor: int = 0x1AF4
    subsystem_device: int = 0x1100
    class_code: int = 0x00FF00
    revision: int = 0x10
    bars: tuple[int, ...] = (0x1000,)
    mem64: bool = False
    msi_vectors: int = 1  # 0 = no MSI capability; a power of two up to 32
    msix_vectors: int = 0  # 0 = no MSI-X capability
    msix_bar: int = 0
    msix_offset: int = 0  # the table's offset in BAR msix_bar (QEMU's nvme: 0x2000)
    msix_pba_offset: int | None = None  # None: right after the table (8-byte aligned)
    pcie: bool = False
    intx: bool = True
    reset: bool = True  # a function-level reset method exists (VFIO_DEVICE_FLAGS_RESET)
    sparse_mmap: tuple[tuple[int, int], ...] = ()  # reported for BAR 0 if set


@dataclass
class Fault:
    """A blocked bus-master access: why, where, how many bytes, read or write."""

    reason: str
    iova: int
    size: int
    write: bool


class PCIDevice:
    """A physical PCI function: 256 B (or 4 KiB PCIe) config space, BAR storage, irq/DMA hooks."""

    def __init__(self, bdf: str, cfg: DeviceConfig | None = None) -> None:
        self.bdf = bdf
        self.cfg = cfg or DeviceConfig()
        self.config = bytearray(4096 if self.cfg.pcie else 256)
        self.bars: list[BAR] = [BAR(0) for _ in range(6)]
        self.bar_data: dict[int, bytearray] = {}
        self.caps: dict[int, int] = {}  # capability id -> offset
        self.faults: list[Fault] = []
        self.dma: DmaPort | None = None
        self.irq: IrqSink | None = None
        self.resets = 0
        self._build()

    # -- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        c = self.cfg
        struct.pack_into("<HH", self.config, 0, c.vendor, c.device)
        struct.pack_into("<I", self.config, 8, c.revision | c.class_code << 8)
        struct.pack_into("<HH", self.config, 0x2C, c.subsystem_vendor, c.subsystem_device)
        self.config[PCI_INTERRUPT_PIN] = 1 if c.intx else 0
        index = 0
        for size in c.bars:
            self.bars[index] = BAR(size, mem64=c.mem64)
            self.bar_data[index] = bytearray(size)
            index += 2 if c.mem64 else 1
        if c.pcie:
            self.add_cap(PCI_CAP_ID_EXP, bytes(0x3A))
        if c.msi_vectors:
            qmask = (c.msi_vectors - 1).bit_length()
            self.add_cap(PCI_CAP_ID_MSI, struct.pack("<H", 0x80 | qmask << 1) + bytes(10))
        if c.msix_vectors:
            pba = c.msix_pba_offset
            if pba is None:
                pba = (c.msix_offset + c.msix_vectors * 16 + 7) & ~7
            body = struct.pack("<HII", c.msix_vectors - 1, c.msix_offset | c.msix_bar,
                               pba | c.msix_bar)
            self.add_cap(PCI_CAP_ID_MSIX, body)

    def add_cap(self, cap_id: int, body: bytes) -> int:
        """Append a standard capability (id, next, body) to the list; return its offset."""
        offset = max([0x40, *[o + self.cap_len(i) for i, o in self.caps.items()]])
        offset = (offset + 3) & ~3
        self.config[offset : offset + 2 + len(body)] = bytes([cap_id, 0]) + body
        prev = PCI_CAPABILITY_LIST
        while self.config[prev]:
            prev = self.config[prev] + 1
        self.config[prev] = offset
        self.config[6] |= 0x10  # PCI_STATUS_CAP_LIST
        self.caps[cap_id] = offset
        return offset

    def cap_len(self, cap_id: int) -> int:
        """Return the length in bytes of capability ``cap_id`` as laid out by :meth:`add_cap`."""
        return {PCI_CAP_ID_EXP: 0x3C, PCI_CAP_ID_MSI: 0x0E, PCI_CAP_ID_MSIX: 0x0C}.get(cap_id, 8)

    # -- config space ----------------------------------------------------------------------

    def cfg_read(self, offset: int, width: int) -> int:
        """Read ``width`` bytes of physical config space."""
        return int.from_bytes(self.config[offset : offset + width], "little")

    def cfg_write(self, offset: int, width: int, value: int) -> None:
        """Write physical config space (header ids and capability ids are read-only)."""
        if offset < 0x10 and offset + width <= 4:
            return
        self.config[offset : offset + width] = value.to_bytes(width, "little")

    @property
    def command(self) -> int:
        return self.cfg_read(PCI_COMMAND, 2)

    @property
    def bus_master(self) -> bool:
        return bool(self.command & PCI_COMMAND_MASTER)

    def msi_enabled(self) -> bool:
        """Tell whether the MSI capability's Enable bit is set."""
        off = self.caps.get(PCI_CAP_ID_MSI)
        return off is not None and bool(self.cfg_read(off + 2, 2) & PCI_MSI_FLAGS_ENABLE)

    def set_msi_enable(self, on: bool, *, msix: bool = False) -> None:
        """Set or clear the MSI (or MSI-X) Enable bit, as the host kernel does for vfio-pci."""
        cap = PCI_CAP_ID_MSIX if msix else PCI_CAP_ID_MSI
        if cap not in self.caps:
            return
        bit = PCI_MSIX_FLAGS_ENABLE if msix else PCI_MSI_FLAGS_ENABLE
        flags = self.cfg_read(self.caps[cap] + 2, 2)
        self.config[self.caps[cap] + 2 : self.caps[cap] + 4] = (
            (flags | bit) if on else (flags & ~bit)
        ).to_bytes(2, "little")

    # -- BARs, interrupts, DMA -------------------------------------------------------------

    def bar_read(self, index: int, offset: int, width: int) -> int:
        """Load from a memory BAR (a plain RAM-like backing store by default)."""
        return int.from_bytes(self.bar_data[index][offset : offset + width], "little")

    def bar_write(self, index: int, offset: int, width: int, value: int) -> None:
        """Store to a memory BAR."""
        self.bar_data[index][offset : offset + width] = value.to_bytes(width, "little")

    def send_msi(self, vector: int = 0) -> None:
        """Signal MSI ``vector``; a memory write, so dropped while bus mastering is off."""
        if self.irq is not None and self.bus_master:
            self.irq.msi(self, vector)

    def set_intx(self, level: bool) -> None:
        """Drive the INTx line."""
        if self.irq is not None:
            self.irq.intx(self, level)

    def dma_read(self, iova: int, size: int) -> bytes | None:
        """Read host memory by DMA; None (and a recorded fault) when blocked."""
        if not self.bus_master:
            self.faults.append(Fault("bus master off", iova, size, False))
            return None
        return self.dma.dma_read(self, iova, size) if self.dma else None

    def dma_write(self, iova: int, data: bytes) -> bool:
        """Write host memory by DMA; False (and a recorded fault) when blocked."""
        if not self.bus_master:
            self.faults.append(Fault("bus master off", iova, len(data), True))
            return False
        return self.dma.dma_write(self, iova, data) if self.dma else False

    def reset(self) -> None:
        """Function-level reset: command register cleared, MSI disabled, BAR contents kept."""
        self.resets += 1
        self.config[PCI_COMMAND : PCI_COMMAND + 2] = b"\0\0"
        self.set_msi_enable(False)
        self.set_msi_enable(False, msix=True)


def bridge(bdf: str, secondary: int) -> PCIDevice:
    """Return a PCIe-to-PCI bridge (header type 1; vfio-pci refuses to bind it)."""
    dev = PCIDevice(bdf, DeviceConfig(vendor=0x1B36, device=0x000E, class_code=0x060400, bars=(),
                                      msi_vectors=0, intx=False, pcie=True))
    dev.config[0x0E] = 0x01
    dev.config[0x19] = secondary
    return dev
