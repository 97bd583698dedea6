"""vfio-pci regions: config-space virtualization, BAR read/write, BAR mmap (vfio_pci_config.c,
vfio_pci_rdwr.c, vfio_pci_core.c:``vfio_pci_core_mmap``).

Region ``index`` lives at file offset ``index << 40``.  BAR registers are virtualized so that
writing all-ones and reading back yields the size mask; MEMORY decode off makes BAR access EIO.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

from pyvfio import pci_regs as regs
from pyvfio._ffi import C
from pyvfio.fake.memory import PAGE_SIZE, kerr
from pyvfio.fake.pci import (
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_COMMAND_MEMORY,
    PCI_MSI_FLAGS_ENABLE,
    PCIDevice,
)
from pyvfio.kernel import check_access

OFFSET_SHIFT = 40
CONFIG_INDEX = C.VFIO_PCI_CONFIG_REGION_INDEX
NUM_BARS = C.VFIO_PCI_BAR5_REGION_INDEX + 1  # BAR0..BAR5 are regions 0..5
# vfio passes these header bytes through; the device keeps the bits it implements: QEMU's type
# 0 header (pci_init_wmask) has COMMAND's IO, MEMORY, MASTER, SERR and INTX_DISABLE, the cache
# line size and the interrupt line writable, not the latency timer or BIST (the lane's edu
# reads back only those bits after a write)
_WRITABLE_HEADER = {0x04: 0x07, 0x05: (regs.PCI_COMMAND_SERR | regs.PCI_COMMAND_INTX_DISABLE) >> 8,
                    0x0C: 0xFF, 0x3C: 0xFF}
_MSI_FLAGS = regs.PCI_MSI_FLAGS  # in the capability
# QEMU's msi_init: the flags bits a write reaches in the device (the rest of the word is RO)
_MSI_FLAGS_WMASK = regs.PCI_MSI_FLAGS_QSIZE | regs.PCI_MSI_FLAGS_ENABLE
_BAR_REGS = range(0x10, 0x28)


def split(pos: int, count: int) -> list[tuple[int, int]]:
    """Split [pos, pos+count) into naturally aligned 8/4/2/1-byte accesses."""
    out = []
    while count:
        width = next(w for w in (8, 4, 2, 1) if pos % w == 0 and count >= w)
        out.append((pos, width))
        pos, count = pos + width, count - width
    return out


class Regions:
    """The regions of one open vfio-pci device over its :class:`PCIDevice` model."""

    def __init__(self, dev: PCIDevice) -> None:
        self.dev = dev
        # vfio_config_init: vconfig starts as a copy of the device's config space; of the MSI
        # capability's flags only the low byte is virtualized (vfio_pci_config.c:
        # init_pci_cap_msi_perm: "The upper byte of the control register is reserved")
        self.msi = dev.caps.get(PCI_CAP_ID_MSI)
        self.msi_vflags = dev.config[self.msi + _MSI_FLAGS] if self.msi is not None else 0
        self.vbars = [0] * 6
        for i, bar in enumerate(dev.bars):
            if bar.size:
                self.vbars[i] = (bar.address & 0xFFFFFFF0) | bar.type_bits
                if bar.mem64 and i < 5:
                    self.vbars[i + 1] = bar.address >> 32

    # -- config space ----------------------------------------------------------------------

    def config_rw(self, pos: int, data: bytes | None, count: int) -> bytes:
        """Read (data None) or write config space. Raises EFAULT outside [0, cfg_size)."""
        if pos < 0 or pos + count > len(self.dev.config):
            raise kerr(errno.EFAULT)
        out = b""
        for off, width in split(pos, count):
            parts = [(off, 4), (off + 4, 4)] if width == 8 else [(off, width)]
            for p, w in parts:
                if data is None:
                    out += self._cfg_read(p, w).to_bytes(w, "little")
                else:
                    chunk = data[p - pos : p - pos + w]
                    self._cfg_write(p, w, int.from_bytes(chunk, "little"))
        return out

    def _cfg_read(self, pos: int, width: int) -> int:
        if pos in _BAR_REGS or pos + width - 1 in _BAR_REGS:
            raw = b"".join(struct.pack("<I", self._bar_reg(i)) for i in range(6))
            base = pos - 0x10
            return int.from_bytes(raw[base : base + width], "little")
        if 0x30 <= pos < 0x34:
            return 0  # no expansion ROM
        value = self.dev.cfg_read(pos, width)
        msi = self.msi
        if msi is not None and pos <= msi + _MSI_FLAGS < pos + width:
            shift = 8 * (msi + _MSI_FLAGS - pos)
            value = value & ~(0xFF << shift) | self._msi_flags_read() << shift
        return value

    def _msi_flags_read(self) -> int:
        """The virtual flags byte as last written (vfio_msi_config_write's fix-ups applied).
        vfio_msi_config_read means to put msi_qmax into QMASK but points at
        ``vconfig[start]``, the capability's id and next pointer, not its flags; the id is
        not virtual (read from the device), so nothing of it shows: a QMASK written sticks
        (6.12 and 7.3 alike; the lane's edu reads back the 0x06 written to 0x42)."""
        return self.msi_vflags

    def _bar_reg(self, i: int) -> int:
        bars = self.dev.bars
        if bars[i].size:
            mask = ~(bars[i].size - 1) & 0xFFFFFFFF
            return (self.vbars[i] & mask & ~0xF) | bars[i].type_bits
        if i and bars[i - 1].mem64 and bars[i - 1].size:
            return self.vbars[i] & (~(bars[i - 1].size - 1) >> 32) & 0xFFFFFFFF
        return 0  # vfio_bar_fixup: unimplemented BARs read 0

    def _cfg_write(self, pos: int, width: int, value: int) -> None:
        if pos in _BAR_REGS:
            i = (pos - 0x10) // 4
            shift = (pos % 4) * 8
            mask = ((1 << width * 8) - 1) << shift
            self.vbars[i] = (self.vbars[i] & ~mask) | (value << shift & mask)
            return
        if pos < 0x40:
            for b in range(width):
                wmask = _WRITABLE_HEADER.get(pos + b, 0)
                if wmask:
                    old = self.dev.config[pos + b]
                    self.dev.config[pos + b] = (old & ~wmask) | (value >> 8 * b & wmask)
            return
        msix = self.dev.caps.get(PCI_CAP_ID_MSIX)
        if msix is not None and msix <= pos < msix + 12:
            return  # the MSI-X capability is read-only: SET_IRQS controls it
        msi = self.msi
        if msi is not None and msi <= pos < msi + 4:
            self._msi_write(pos - msi, width, value)
            return
        self.dev.cfg_write(pos, width, value)

    def _msi_write(self, offset: int, width: int, value: int) -> None:
        """vfio_msi_config_write of the capability's first dword: the id, the next pointer and
        the flags' high byte take no write; the flags' low byte is virtual, then fixed up
        (ENABLE only while MSI is the interrupt type, QSIZE at most msi_qmax) and written to the
        device.  A write that ends at or after the flags runs the fix-up (offset <= PCI_MSI_FLAGS
        && offset + count >= PCI_MSI_FLAGS), even one of the id and next pointer only."""
        if offset <= _MSI_FLAGS < offset + width:
            self.msi_vflags = value >> 8 * (_MSI_FLAGS - offset) & 0xFF
        if offset <= _MSI_FLAGS <= offset + width:
            assert self.msi is not None
            irqs = self.dev.irq
            qmax = getattr(irqs, "msi_qmax", 0)
            flags = self.msi_vflags
            if getattr(irqs, "irq_type", None) != C.VFIO_PCI_MSI_IRQ_INDEX:
                flags &= ~PCI_MSI_FLAGS_ENABLE  # "MSI is enabled via ioctl"
            if (flags & regs.PCI_MSI_FLAGS_QSIZE) >> 4 > qmax:
                flags = flags & ~regs.PCI_MSI_FLAGS_QSIZE | qmax << 4
            self.msi_vflags = flags
            pos = self.msi + _MSI_FLAGS
            hw = self.dev.config[pos]
            self.dev.config[pos] = hw & ~_MSI_FLAGS_WMASK | flags & _MSI_FLAGS_WMASK

    # -- BARs ------------------------------------------------------------------------------

    def bar_check(self, index: int, pos: int) -> int:
        """Return the BAR's size; EINVAL unimplemented or ``pos`` past the end, EIO decode off."""
        size = self.dev.bars[index].size
        if not size or pos >= size:
            raise kerr(errno.EINVAL)
        if not self.dev.command & PCI_COMMAND_MEMORY:
            raise kerr(errno.EIO)
        return size

    def bar_rw(self, index: int, pos: int, data: bytes | None, count: int) -> bytes | int:
        """pread/pwrite of a BAR: short at the end, MSI-X table reads 0xff and drops writes."""
        count = min(count, self.bar_check(index, pos) - pos)
        out = b""
        for off, width in split(pos, count):
            if self._in_msix_table(index, off):
                out += b"\xff" * width
            elif data is None:
                out += self.dev.bar_read(index, off, width).to_bytes(width, "little")
            else:
                chunk = data[off - pos : off - pos + width]
                self.dev.bar_write(index, off, width, int.from_bytes(chunk, "little"))
        return out if data is None else count

    def _in_msix_table(self, index: int, pos: int) -> bool:
        c = self.dev.cfg
        table = c.msix_offset  # vfio_pci_bar_rw: [msix_offset, + msix_size) is excluded
        return bool(c.msix_vectors) and index == c.msix_bar and table <= pos < table + 16 * (
            c.msix_vectors)

    def mmappable(self, index: int) -> bool:
        """Memory BARs of a page or more can be mmapped."""
        bar = self.dev.bars[index] if 0 <= index < NUM_BARS else None
        return bar is not None and bar.size >= PAGE_SIZE and not bar.io


class FakeMMIO:
    """An mmap of a BAR: every access goes to the device model at its exact width."""

    def __init__(self, regions: Regions, index: int, pgoff: int, length: int) -> None:
        self.regions: Regions | None = regions
        self.index = index
        self.base = pgoff
        self._len = length
        self.vm_file_put: Callable[[], None] | None = None  # drops the file ref (kernel.py)

    def __len__(self) -> int:
        return self._len

    @property
    def closed(self) -> bool:
        return self.regions is None

    def _live(self) -> Regions:
        if self.regions is None:
            raise ValueError("I/O operation on a closed mapping")
        if not self.regions.dev.command & PCI_COMMAND_MEMORY:
            # vfio-pci zaps BAR mmaps while memory decode is off: the access would SIGBUS
            raise kerr(errno.EIO)
        return self.regions

    def read(self, offset: int, width: int) -> int:
        regions = self._live()
        check_access(self._len, offset, width)
        return regions.dev.bar_read(self.index, self.base + offset, width)

    def write(self, offset: int, width: int, value: int) -> None:
        regions = self._live()
        check_access(self._len, offset, width)
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
            raise ValueError(f"value must be an int in [0, 2**{8 * width}), not {value!r}")
        regions.dev.bar_write(self.index, self.base + offset, width, value)

    def read_bytes(self, offset: int, size: int) -> bytes:
        self._range(offset, size)
        return b"".join(self.read(o, w).to_bytes(w, "little") for o, w in split(offset, size))

    def write_bytes(self, offset: int, data: bytes) -> None:
        self._range(offset, len(data))
        for o, w in split(offset, len(data)):
            self.write(o, w, int.from_bytes(data[o - offset : o - offset + w], "little"))

    def _range(self, offset: int, size: int) -> None:
        if not 0 <= offset <= offset + size <= self._len:
            raise ValueError(f"[{offset:#x}, +{size:#x}) is outside the mapping of {self._len:#x}")

    def close(self) -> None:
        live, self.regions = self.regions is not None, None
        if live and self.vm_file_put is not None:
            self.vm_file_put()
