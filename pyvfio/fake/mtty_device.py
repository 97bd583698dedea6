"""An mtty device as VFIO shows it: 16550-like serial ports and mtty's migration driver.

Linux's samples/vfio-mdev/mtty.c emulates one or two serial ports, each an 8-byte I/O BAR
(BAR0, BAR1), whose transmit FIFO loops back to receive; it implements migration v2 with
STOP_COPY | P2P | PRE_COPY and DMA logging that never reports anything (it does no DMA).
Modelled: the registers a driver and a migration test use (RBR/THR with the 16-byte loopback
FIFO, IER, LCR with DLAB and the divisor, MCR, SCR) and the migration stream byte for byte:
``struct mtty_data`` (magic, versions, nr_ports, flags, then one ``struct serial_port`` per port,
36 bytes each on x86_64) -- the header when a saving file opens (PRE_COPY or STOP_COPY), the
ports appended at STOP_COPY; RESUMING checks the header once it is complete (EFAULT when wrong)
and STOP loads the ports (EINVAL when short).
"""

from __future__ import annotations

import errno
import struct

from pyvfio.fake.memory import kerr
from pyvfio.fake.migration import (
    P2P,
    PRE,
    PRE_COPY,
    PRE_COPY_P2P,
    RESUMING,
    RUNNING,
    RUNNING_P2P,
    SC,
    STOP,
    STOP_COPY,
    DataFile,
    MigrationDriver,
)
from pyvfio.fake.pci import DeviceConfig, PCIDevice

MTTY_MAGIC = 0x7E9D09898C3E2C4E
HEADER = struct.Struct("<QIIII")  # magic, major_ver 1, minor_ver 0, nr_ports, flags
PORT = struct.Struct("<8s16sBBBBBxHBBBx")  # struct serial_port (36 bytes)
FIFO = 16
UART_TX, UART_IER, UART_FCR, UART_LCR, UART_MCR, UART_LSR, UART_MSR, UART_SCR = range(8)
LCR_DLAB = 0x80


class SerialPort:
    """struct serial_port."""

    def __init__(self) -> None:
        self.uart_reg = bytearray(8)
        self.fifo = bytearray(FIFO)
        self.head = self.tail = self.count = 0
        self.dlab = self.overrun = False
        self.divisor = 0
        self.fcr = 0
        self.max_fifo_size = FIFO
        self.intr_trigger_level = 0

    def pack(self) -> bytes:
        return PORT.pack(bytes(self.uart_reg), bytes(self.fifo), self.head, self.tail,
                         self.count, self.dlab, self.overrun, self.divisor, self.fcr,
                         self.max_fifo_size, self.intr_trigger_level)

    def unpack(self, raw: bytes) -> None:
        (reg, fifo, self.head, self.tail, self.count, dlab, overrun, self.divisor, self.fcr,
         self.max_fifo_size, self.intr_trigger_level) = PORT.unpack(raw)
        self.uart_reg, self.fifo = bytearray(reg), bytearray(fifo)
        self.dlab, self.overrun = bool(dlab), bool(overrun)

    def write(self, offset: int, data: int) -> None:
        """handle_bar_write."""
        if offset == UART_TX and self.dlab:
            self.divisor |= data
        elif offset == UART_TX:
            if self.count < self.max_fifo_size:
                self.fifo[self.head] = data
                self.count += 1
                self.head = (self.head + 1) % FIFO
                self.overrun = False
            else:
                self.overrun = True
        elif offset == UART_IER and self.dlab:
            self.divisor |= data << 8
        elif offset == UART_FCR:
            self.fcr = data
        elif offset == UART_LCR:
            self.dlab = bool(data & LCR_DLAB)
            self.uart_reg[offset] = data
        elif offset in (UART_IER, UART_MCR, UART_SCR):
            self.uart_reg[offset] = data

    def read(self, offset: int) -> int:
        """handle_bar_read (the registers this model keeps)."""
        if offset == UART_TX and self.dlab:
            return self.divisor & 0xFF
        if offset == UART_TX:
            value = 0
            if self.head != self.tail:
                value = self.fifo[self.tail]
                self.count -= 1
                self.tail = (self.tail + 1) % FIFO
            return value
        if offset == UART_IER:
            return self.divisor >> 8 if self.dlab else self.uart_reg[offset] & 0x0F
        if offset in (UART_LCR, UART_MCR, UART_SCR):
            return self.uart_reg[offset]
        if offset == UART_LSR:
            return (0x01 if self.head != self.tail else 0) | (0x60 if self.count == 0 else 0)
        return 0


class MttyDevice(PCIDevice):
    """The mtty device of ``nr_ports`` ports (mtty-1 or mtty-2) with its migration driver."""

    def __init__(self, bdf: str, nr_ports: int = 2) -> None:
        cfg = DeviceConfig(vendor=0x4348, device=0x3253, subsystem_vendor=0x4348,
                           subsystem_device=0x3253, class_code=0x070002, revision=0x10,
                           bars=(8,) * nr_ports, msi_vectors=1, reset=True)
        super().__init__(bdf, cfg)
        for i in range(nr_ports):
            self.bars[i].io = True
        self.ports = [SerialPort() for _ in range(nr_ports)]
        self.migration = MttyMigration(self)
        self.vconfig = bytearray()  # an mdev's config space (pyvfio/fake/mtty_vfio.py)
        self.dev_info_num_irqs = 0  # mdev_state->dev_info: zero until the first GET_INFO

    def bar_read(self, index: int, offset: int, width: int) -> int:
        return self.ports[index].read(offset) if offset < 8 else 0

    def bar_write(self, index: int, offset: int, width: int, value: int) -> None:
        if offset < 8:
            self.ports[index].write(offset, value & 0xFF)

    def reset(self) -> None:
        super().reset()
        self.migration.reset()


class MttyMigration(MigrationDriver):
    """mtty's vfio_migration_ops (mtty_set_state/mtty_step_state) and vfio_log_ops."""

    flags = SC | P2P | PRE

    def __init__(self, dev: MttyDevice) -> None:
        super().__init__()
        self.dev = dev
        self.saving: DataFile | None = None
        self.resuming: DataFile | None = None

    def data_size(self) -> int:
        """mtty_data_size: the header and the ports."""
        return HEADER.size + len(self.dev.ports) * PORT.size

    def _disable(self) -> None:
        for f in (self.saving, self.resuming):
            if f is not None:
                f.disabled = True
                f.data.clear()
                f.pos = 0
        self.saving = self.resuming = None

    def reset(self) -> None:
        super().reset()
        self._disable()

    def disable_files(self) -> None:
        """mtty_disable_files: the open data files stop working (ENODEV)."""
        self._disable()

    def step(self, new: int) -> DataFile | None:
        cur = self.state
        if (cur, new) in ((RUNNING, RUNNING_P2P), (RUNNING_P2P, RUNNING), (RUNNING_P2P, STOP),
                          (PRE_COPY, PRE_COPY_P2P), (PRE_COPY_P2P, PRE_COPY),
                          (STOP, RUNNING_P2P)):
            return None  # no DMA, nothing to quiesce
        if (cur, new) == (RESUMING, STOP):
            self._load()
            self._disable()
            return None
        if (cur, new) in ((PRE_COPY, RUNNING), (PRE_COPY_P2P, RUNNING_P2P), (STOP_COPY, STOP)):
            self._disable()
            return None
        if new in (PRE_COPY, PRE_COPY_P2P, STOP_COPY):
            return self._save(new)
        if (cur, new) == (STOP, RESUMING):
            self.resuming = DataFile(self, saving=False, limit=self.data_size())
            return self.resuming
        raise kerr(errno.EINVAL)  # vfio_mig_get_next_state uses no other arc

    def _save(self, new: int) -> DataFile | None:
        """mtty_save_device_data: the header on open; the ports appended at STOP_COPY, to the
        pre-copy file when there is one (then no new fd)."""
        fresh = self.saving is None
        if fresh:
            header = HEADER.pack(MTTY_MAGIC, 1, 0, len(self.dev.ports), 0)
            self.saving = DataFile(self, saving=True, data=header)
        assert self.saving is not None
        if new == STOP_COPY:
            self.saving.data += b"".join(p.pack() for p in self.dev.ports)
        return self.saving if fresh else None

    def resume_check(self, f: DataFile, before: int) -> None:
        """mtty_resume_write: the write that completes the header checks it; a wrong one is
        EFAULT, the bytes stay written."""
        if before < HEADER.size <= f.pos:
            want = (MTTY_MAGIC, 1, 0, len(self.dev.ports), 0)
            if HEADER.unpack_from(f.data) != want:
                raise kerr(errno.EFAULT)

    def _load(self) -> None:
        """mtty_load_state: EINVAL when the stream is shorter than the device's data."""
        assert self.resuming is not None
        data = self.resuming.data
        if len(data) < self.data_size():
            raise kerr(errno.EINVAL)
        for i, port in enumerate(self.dev.ports):
            port.unpack(bytes(data[HEADER.size + i * PORT.size:][:PORT.size]))

