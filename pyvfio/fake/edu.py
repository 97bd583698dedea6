"""QEMU's ``edu`` device (docs/specs/edu.rst, hw/misc/edu.c), as QEMU 7.2 behaves.

BAR 0 is 1 MiB of MMIO.  Registers below 0x80 take only 4-byte accesses and those at or above
0x80 take 4 or 8 bytes.  A 1- or 2-byte access is below the region's ``valid.min_access_size``, so
QEMU's memory core refuses it before edu sees it: it reads 0 and the write is dropped
(memory.c:memory_region_dispatch_read -> unassigned_mem_read).  An 8-byte access below 0x80
reaches ``edu_mmio_read``/``edu_mmio_write``, which read all-ones and drop the write.

The DMA engine clamps addresses to a 28-bit mask and bounces through a 4096-byte buffer at device
address 0x40000.  QEMU 7.2's range check is off by one: a transfer that ends exactly at 0x41000 (a
full 4096 bytes) calls ``hw_error`` and aborts QEMU; the model refuses it instead and records why
in :attr:`Edu.errors`.
"""

from __future__ import annotations

import collections
import contextlib
import threading

from pyvfio.fake.pci import DeviceConfig, PCIDevice

EDU_ID = 0x010000ED
FACT_IRQ = 0x00000001
DMA_IRQ = 0x00000100
DMA_START = 0x40000
DMA_SIZE = 4096
DMA_MASK = (1 << 28) - 1
STATUS_COMPUTING = 0x01
STATUS_IRQFACT = 0x80
DMA_RUN, DMA_TO_RAM, DMA_IRQ_EN = 0x1, 0x2, 0x4
_DMA_REGS = {0x80: "src", 0x88: "dst", 0x90: "cnt", 0x98: "cmd"}


def edu_config() -> DeviceConfig:
    """Return the PCI identity of edu: 1234:11e8 rev 0x10, class 0x00ff00, BAR0 1 MiB, 1 MSI.

    edu has no reset method: no FLR, no PM capability, and neither the root bus nor a bus shared
    with a sibling allows a bus reset (pci.c:pci_probe_reset_function), so vfio-pci reports no
    VFIO_DEVICE_FLAGS_RESET (seen on Linux 6.12 in the VM lane).
    """
    return DeviceConfig(vendor=0x1234, device=0x11E8, subsystem_vendor=0x1AF4,
                        subsystem_device=0x1100, class_code=0x00FF00, revision=0x10,
                        bars=(1 << 20,), msi_vectors=1, reset=False)


class Edu(PCIDevice):
    """The edu model; ``dma_delay`` seconds before a DMA completes (QEMU: 0.1; default 0)."""

    def __init__(self, bdf: str, *, dma_delay: float = 0.0) -> None:
        super().__init__(bdf, edu_config())
        self.dma_delay = dma_delay
        self.accesses: collections.deque[tuple[str, int, int]] = collections.deque(maxlen=4096)
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._clear()

    def _clear(self) -> None:
        self.addr4 = 0
        self.fact = 0
        self.status = 0
        self.irq_status = 0
        self.dma_regs = dict.fromkeys(_DMA_REGS.values(), 0)
        self.dma_buf = bytearray(DMA_SIZE)

    def bar_read(self, index: int, offset: int, width: int) -> int:
        self.accesses.append(("r", offset, width))
        ones = (1 << 8 * width) - 1
        if width < 4:
            return 0
        if width != 4 and (offset < 0x80 or width != 8):
            return ones
        with self._lock:
            value = {0x00: EDU_ID, 0x04: self.addr4, 0x08: self.fact, 0x20: self.status,
                     0x24: self.irq_status}.get(offset)
            if offset in _DMA_REGS:
                value = self.dma_regs[_DMA_REGS[offset]]
        return ones if value is None else value & ones

    def bar_write(self, index: int, offset: int, width: int, value: int) -> None:
        self.accesses.append(("w", offset, width))
        if width != 4 and (offset < 0x80 or width != 8):
            return
        with self._lock:
            handler = {0x04: self._liveness, 0x08: self._factorial, 0x20: self._status,
                       0x60: self.raise_irq, 0x64: self.lower_irq}.get(offset)
            if handler is not None:
                handler(value)
            elif offset in _DMA_REGS:
                self._dma_reg(_DMA_REGS[offset], value)

    def _liveness(self, value: int) -> None:
        self.addr4 = ~value & 0xFFFFFFFF

    def _factorial(self, value: int) -> None:
        if self.status & STATUS_COMPUTING:
            return
        result = 1
        for n in range(value & 0xFFFFFFFF, 0, -1):
            result = result * n & 0xFFFFFFFF
        self.fact = result
        if self.status & STATUS_IRQFACT:
            self.raise_irq(FACT_IRQ)

    def _status(self, value: int) -> None:
        self.status = (self.status & ~STATUS_IRQFACT) | (value & STATUS_IRQFACT)

    def raise_irq(self, value: int) -> None:
        """``edu_raise_irq``: set bits in the interrupt status and signal MSI or INTx."""
        self.irq_status |= value & 0xFFFFFFFF
        if self.irq_status:
            if self.msi_enabled():
                self.send_msi(0)
            else:
                self.set_intx(True)

    def lower_irq(self, value: int) -> None:
        """``edu_lower_irq``: acknowledge bits; INTx drops when none are left."""
        self.irq_status &= ~value
        if not self.irq_status and not self.msi_enabled():
            self.set_intx(False)

    def _dma_reg(self, name: str, value: int) -> None:
        if self.dma_regs["cmd"] & DMA_RUN:
            return  # dma_rw: registers are frozen while a transfer runs
        if name == "cmd" and not value & DMA_RUN:
            return
        self.dma_regs[name] = value
        if name == "cmd":
            if self.dma_delay > 0:
                self._timer = threading.Timer(self.dma_delay, self._dma_later)
                self._timer.daemon = True
                self._timer.start()
            else:
                self._dma_done()

    def _dma_later(self) -> None:
        # the timer thread takes the DMA port's lock first, as a system call does (no AB-BA)
        with self.dma.lock if self.dma is not None else contextlib.nullcontext():
            self._dma_done()

    def _dma_done(self) -> None:
        with self._lock:
            regs = self.dma_regs
            if not regs["cmd"] & DMA_RUN:
                return
            to_ram = bool(regs["cmd"] & DMA_TO_RAM)
            window = regs["src"] if to_ram else regs["dst"]
            if self._in_range(window, regs["cnt"]):
                self._transfer(to_ram, window - DMA_START)
            regs["cmd"] &= ~DMA_RUN
            if regs["cmd"] & DMA_IRQ_EN:
                self.raise_irq(DMA_IRQ)

    def _in_range(self, start: int, count: int) -> bool:
        # QEMU 7.2 edu_check_range: start in [0x40000, 0x41000) and start+cnt in (start, 0x41000)
        end = start + count
        if DMA_START <= start < DMA_START + DMA_SIZE and start < end < DMA_START + DMA_SIZE:
            return True
        self.errors.append(f"DMA range {start:#x}+{count:#x} out of bounds: QEMU 7.2 aborts")
        return False

    def _transfer(self, to_ram: bool, buf_off: int) -> None:
        regs = self.dma_regs
        count = regs["cnt"]
        if to_ram:
            self.dma_write(regs["dst"] & DMA_MASK, bytes(self.dma_buf[buf_off : buf_off + count]))
            return
        data = self.dma_read(regs["src"] & DMA_MASK, count)
        if data is not None:
            self.dma_buf[buf_off : buf_off + count] = data
