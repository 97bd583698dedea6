"""The VFIO device file of an mtty mdev: samples/vfio-mdev/mtty.c's ``vfio_device_ops``.

An mtty mdev is not a vfio-pci device: its ioctls, read and write are the sample driver's own
(mtty_ioctl, mtty_read/mtty_write over mdev_access), behind vfio_main.c's core (migration and
DMA-logging features, which reach :mod:`pyvfio.fake.migration`).  Modelled, as Linux 7.3 has it:

* GET_INFO: ``VFIO_DEVICE_FLAGS_PCI`` only (no RESET flag), 9 regions, 5 irqs; the driver
  remembers the answer, and GET_IRQ_INFO / SET_IRQS check indexes against it, so before the
  first GET_INFO every index is EINVAL (``mdev_state->dev_info`` starts zeroed);
* GET_REGION_INFO: every index below 9 is READ|WRITE at ``index << 40``; config 0xff bytes,
  BAR0 8 (I/O), BAR1 8 on mtty-2, the rest size 0; 9 and above EINVAL;
* GET_IRQ_INFO: INTx (MASKABLE|AUTOMASKED) and MSI (NORESIZE), count 1; others EINVAL;
* SET_IRQS: vfio_set_irqs_validate_and_prepare, then mtty_set_irqs (one eventfd, start 0 count
  1; MSI-X/ERR/REQ and MSI mask/unmask ENOTTY); RESET: 0, the migration state back to
  RUNNING (mtty_reset; the ports keep their registers); other ioctls ENOTTY; no mmap;
* config space is mtty's ``vconfig`` (mtty_create_config_space), written per
  handle_pci_cfg_write; BAR accesses go to the serial port model byte-wise (only the first
  byte of a wider access is the register's, the rest reads 0 here, stack garbage on Linux);
  regions other than config and BARs are EFAULT (mdev_access returns -1);
* closing the last fd disables the migration files and interrupts, nothing else (mtty_close).

Not modelled: interrupts the ports raise by themselves (IER/FIFO triggers), the sample's
out-of-bounds reads (config past 0xff: EFAULT here; BARs 2-5: zeros here).
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio._ffi import C
from pyvfio.fake.irq import INTX, MSI, eventfd_get, put, signal
from pyvfio.fake.mdev_file import SampleMdevFile
from pyvfio.fake.memory import kerr
from pyvfio.fake.mtty_device import MttyDevice
from pyvfio.fake.uaccess import IoctlArg

CONFIG_SIZE, IO_BAR_SIZE, SHIFT = 0xFF, 8, 40
NUM_REGIONS, NUM_IRQS = C.VFIO_PCI_NUM_REGIONS, C.VFIO_PCI_NUM_IRQS
CONFIG_INDEX = C.VFIO_PCI_CONFIG_REGION_INDEX
_ACTION = (C.VFIO_IRQ_SET_ACTION_MASK | C.VFIO_IRQ_SET_ACTION_UNMASK
           | C.VFIO_IRQ_SET_ACTION_TRIGGER)
_DATA = C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_DATA_BOOL | C.VFIO_IRQ_SET_DATA_EVENTFD


def vconfig(nr_ports: int) -> bytearray:
    """mtty_create_config_space."""
    cfg = bytearray(CONFIG_SIZE)
    struct.pack_into("<IHHB", cfg, 0, 0x32534348, 0x0001, 0x0200, 0x10)
    cfg[0x9:0xC] = b"\x02\x00\x07"  # 16550-compatible serial controller
    struct.pack_into("<I", cfg, 0x10, 1)
    if nr_ports == 2:
        struct.pack_into("<I", cfg, 0x14, 1)
    struct.pack_into("<I", cfg, 0x2C, 0x32534348)
    cfg[0x3D] = 0x01
    for off, val in ((0x40, 0x23), (0x43, 0x80), (0x44, 0x23), (0x48, 0x23), (0x4C, 0x23)):
        cfg[off] = val
    cfg[0x60:0x6F] = b"PCI Serial/UART"
    return cfg


class MttyVFIODevice(SampleMdevFile):
    """An open mtty mdev (its model: :class:`pyvfio.fake.mtty_device.MttyDevice`)."""

    def __init__(self, dev: Any, reset_domain: Any) -> None:
        super().__init__(dev, reset_domain)
        assert isinstance(dev, MttyDevice)
        self.mtty = dev
        self.nr_ports = len(dev.ports)
        self.irq_index = -1
        self.evtfd: int | None = None
        self.intx_mask = False
        if not dev.vconfig:
            dev.vconfig[:] = vconfig(self.nr_ports)  # mtty_init_dev: lives as long as the mdev
        self.install_fd = dev.migration.install_fd

    def close_device(self) -> None:
        """mtty_close on the last close: files and interrupts off; the state stays."""
        self.mtty.migration.disable_files()
        self._disable_irq()

    def held_fds(self) -> list[int]:
        return [self.evtfd] if self.evtfd is not None else []

    # -- ioctls (mtty_ioctl) ---------------------------------------------------------------

    def VFIO_DEVICE_GET_REGION_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        index = info.index
        if index >= NUM_REGIONS:
            raise kerr(errno.EINVAL)
        sizes = {CONFIG_INDEX: CONFIG_SIZE, 0: IO_BAR_SIZE,
                 1: IO_BAR_SIZE if self.nr_ports == 2 else 0}
        info.size = sizes.get(index, 0)
        info.offset = index << SHIFT
        info.flags = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE
        arg.reply_caps([], C.VFIO_REGION_INFO_FLAG_CAPS)
        return 0

    def VFIO_DEVICE_GET_IRQ_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        if info.index >= self.mtty.dev_info_num_irqs or info.index not in (INTX, MSI):
            raise kerr(errno.EINVAL)
        info.flags = C.VFIO_IRQ_INFO_EVENTFD | (
            C.VFIO_IRQ_INFO_MASKABLE | C.VFIO_IRQ_INFO_AUTOMASKED if info.index == INTX
            else C.VFIO_IRQ_INFO_NORESIZE)
        info.count = 1
        arg.copy_out(info, 16)
        return 0

    def VFIO_DEVICE_SET_IRQS(self, arg: IoctlArg) -> int:  # noqa: N802
        hdr = arg.cmd
        flags, index, start, count = hdr.flags, hdr.index, hdr.start, hdr.count
        # vfio_set_irqs_validate_and_prepare(hdr, dev_info.num_irqs, VFIO_PCI_NUM_IRQS)
        if index >= NUM_IRQS or count >= 0xFFFFFFFF - start or flags & ~(_ACTION | _DATA):
            raise kerr(errno.EINVAL)
        if start >= self.mtty.dev_info_num_irqs or start + count > self.mtty.dev_info_num_irqs:
            raise kerr(errno.EINVAL)
        size = {C.VFIO_IRQ_SET_DATA_NONE: 0, C.VFIO_IRQ_SET_DATA_BOOL: 1,
                C.VFIO_IRQ_SET_DATA_EVENTFD: 4}.get(flags & _DATA)
        if size is None or arg.size - 20 < count * size:
            raise kerr(errno.EINVAL)
        data = arg.read(20, count * size)
        if index not in (INTX, MSI):
            raise kerr(errno.ENOTTY)  # mtty_set_irqs: no MSI-X, ERR, REQ
        action = flags & _ACTION
        if action == C.VFIO_IRQ_SET_ACTION_TRIGGER:
            self._trigger(index, flags, start, count, data)
        elif action in (C.VFIO_IRQ_SET_ACTION_MASK, C.VFIO_IRQ_SET_ACTION_UNMASK):
            self._mask(index, flags, start, count, data, action == C.VFIO_IRQ_SET_ACTION_MASK)
        return 0

    def _mask(self, index: int, flags: int, start: int, count: int, data: bytes,
              mask: bool) -> None:
        if index == MSI:
            raise kerr(errno.ENOTTY)
        if self.irq_index != INTX or start or count != 1:
            raise kerr(errno.EINVAL)
        if flags & C.VFIO_IRQ_SET_DATA_EVENTFD:
            raise kerr(errno.ENOTTY)  # no mask/unmask fd
        if flags & C.VFIO_IRQ_SET_DATA_NONE or data[0]:
            self.intx_mask = mask

    def _trigger(self, index: int, flags: int, start: int, count: int, data: bytes) -> None:
        if self.irq_index == index and not count and flags & C.VFIO_IRQ_SET_DATA_NONE:
            self._disable_irq()
            return
        if self.irq_index not in (index, -1) or start or count != 1:
            raise kerr(errno.EINVAL)
        if flags & C.VFIO_IRQ_SET_DATA_EVENTFD:
            (fd,) = struct.unpack("<i", data)
            self._disable_irq()
            if fd >= 0:
                self.evtfd, self.irq_index = eventfd_get(fd), index
            return
        if self.irq_index != index:
            raise kerr(errno.EINVAL)
        if flags & C.VFIO_IRQ_SET_DATA_NONE or data[0]:
            self.interrupt()

    def interrupt(self) -> None:
        """mtty_trigger_interrupt: MSI signals; INTx signals once, then masks itself."""
        if self.irq_index == MSI:
            signal(self.evtfd)
        elif self.irq_index == INTX and not self.intx_mask:
            signal(self.evtfd)
            self.intx_mask = True

    def _disable_irq(self) -> None:
        put(self.evtfd)
        self.evtfd, self.irq_index, self.intx_mask = None, -1, False

    def VFIO_DEVICE_RESET(self, arg: IoctlArg) -> int:  # noqa: N802
        self.mtty.migration.reset()  # mtty_reset: a deferred reset of the migration state
        return 0

    # -- read/write (mtty_read/mtty_write -> mdev_access) ----------------------------------

    def access(self, pos: int, width: int, chunk: bytes | None) -> bytes:
        """mdev_access: config space, or a serial port's register (BAR0/BAR1)."""
        index, off = pos >> SHIFT, pos & ((1 << SHIFT) - 1)
        if index == CONFIG_INDEX:
            cfg = self.mtty.vconfig
            if off + width > len(cfg):
                raise kerr(errno.EFAULT)  # past mtty's 0xff-byte vconfig: not modelled
            if chunk is None:
                return bytes(cfg[off:off + width])
            self._cfg_write(off, chunk)
            return b""
        if index > 5:
            raise kerr(errno.EFAULT)  # mdev_access: no such region
        if index >= 2 or off >= 8:  # s[2..5] is past the ports array; registers 0-7 only
            return bytes(width) if chunk is None else b""
        port = self.mtty.ports[index] if index < len(self.mtty.ports) else None
        if chunk is None:
            return bytes([port.read(off) if port is not None else 0]) + bytes(width - 1)
        if port is not None:
            port.write(off, chunk[0])
        return b""

    def _cfg_write(self, off: int, chunk: bytes) -> None:
        """handle_pci_cfg_write: BAR sizing on 0x10/0x14, the interrupt line; the rest
        (command, status, pin, ...) ignored."""
        cfg = self.mtty.vconfig
        if off == 0x3C:
            cfg[0x3C] = chunk[0]
        elif off in (0x10, 0x14):
            if self.nr_ports == 1 and off == 0x14:
                struct.pack_into("<I", cfg, off, 0)
                return
            addr = int.from_bytes(chunk.ljust(4, b"\0")[:4], "little")
            if addr == 0xFFFFFFFF:
                addr &= (-IO_BAR_SIZE) & 0xFFFFFFFF
            struct.pack_into("<I", cfg, off, addr | (cfg[off] & 0x3))
        elif off in (0x18, 0x1C, 0x20):
            struct.pack_into("<I", cfg, off, 0)
