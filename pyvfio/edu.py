"""A userspace driver for QEMU's ``edu`` device, built on pyvfio's public API only.

The device (QEMU docs/specs/edu.rst, hw/misc/edu.c) has an identification register, a liveness
register that inverts what is written, a factorial unit that can interrupt when done, an interrupt
raise/acknowledge pair, and a DMA engine that copies between RAM and a 4096-byte buffer of its own
at device address 0x40000.  QEMU 7.2's quirks (DESIGN.md §7) shape this driver: registers take
4-byte accesses (8-byte ones above 0x80), DMA addresses are masked to 28 bits, and a transfer
reaching the end of the buffer (a full 4096 bytes) aborts QEMU, so at most 4095 bytes move.

    with EduDriver.open("0000:00:01.0") as edu:    # iommufd if available, else legacy
        edu.factorial(10)                           # 3628800, signalled by MSI
        edu.dma_to_device(b"hello")
        assert edu.dma_from_device(5) == b"hello"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvfio import DriverError
from pyvfio.driver import Driver
from pyvfio.registers import Register, RegisterMap

if TYPE_CHECKING:
    from pyvfio import Device, Mapping

VENDOR, DEVICE = 0x1234, 0x11E8
DMA_MASK = (1 << 28) - 1
DMA_WINDOW = 0x40000  # the device's buffer, in the device's own address space
DMA_MAX = 4095  # QEMU 7.2 edu_check_range is off by one: 4096 bytes abort QEMU
FACT_IRQ, DMA_IRQ = 0x001, 0x100
STATUS_COMPUTING, STATUS_IRQFACT = 0x01, 0x80
CMD_START, CMD_TO_RAM, CMD_IRQ = 0x1, 0x2, 0x4

REGISTERS = RegisterMap("edu", [
    Register("ident", 0x00, 4, "r"),
    Register("liveness", 0x04, 4, "rw"),
    Register("factorial", 0x08, 4, "rw"),
    Register("status", 0x20, 4, "rw"),
    Register("irq_status", 0x24, 4, "r"),
    Register("irq_raise", 0x60, 4, "w"),
    Register("irq_ack", 0x64, 4, "w"),
    Register("dma_src", 0x80, 8, "rw"),
    Register("dma_dst", 0x88, 8, "rw"),
    Register("dma_count", 0x90, 8, "rw"),
    Register("dma_cmd", 0x98, 8, "rw"),
])


@dataclass(frozen=True)
class EduIdent:
    """The identification register: ``0xRRrr00ed`` = major RR, minor rr."""

    major: int
    minor: int
    raw: int


class EduDriver(Driver):
    """Drive one edu device through its :class:`~pyvfio.device.Device` handle: BAR 0, MSI on an
    eventfd, and DMA through ``device.dma`` (any IOMMU mode)."""

    def __init__(self, device: Device, *, timeout: float = 5.0, owned: bool = False) -> None:
        """Take over an opened edu: map BAR 0, check the identity, turn on bus mastering and MSI,
        and map a DMA buffer below the 28-bit mask.

        Args:
            device: the handle from :func:`pyvfio.open_device` (or a device whose ``dma`` is
                set, e.g. a group-opened one).
            timeout: seconds to wait for each interrupt.
            owned: close ``device`` with the driver (:meth:`open` passes True).

        Raises:
            DriverError: the failing step (``map BAR0``, ``identify``, ``enable bus master``,
                ``enable MSI``, ``map``), with the kernel's ``OSError`` as its cause.
        """
        self.device, self.timeout, self._owned = device, timeout, owned
        self.mapping: Mapping | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        with DriverError.during("map BAR0"):
            self.regs = REGISTERS.bind(self.device.bar(0))
        ident = self.identify()
        if ident.raw & 0xFF != 0xED:
            raise DriverError("identify", f"not an edu: ident register reads {ident.raw:#x}")
        with DriverError.during("enable bus master"):
            self.device.enable_bus_master()  # vfio-pci leaves it off: no DMA, no MSI without it
        with DriverError.during("enable MSI"):
            self.irq = self.device.enable_interrupts("msi")[0]
        if self.device.dma is None:
            raise DriverError("map", f"{self.device!r} has no DMA space (not attached)")
        self.dma = self.device.dma
        self.dma.dma_mask = DMA_MASK
        with DriverError.during("map"):
            self.mapping = self.dma.allocate(4096)
        self.iova, self.buffer = self.mapping.iova, self.mapping.buffer

    def identify(self) -> EduIdent:
        """Read the identification register."""
        with DriverError.during("identify"):
            raw = self.regs.read("ident")
        return EduIdent(raw >> 24, raw >> 16 & 0xFF, raw)

    def check_liveness(self, value: int = 0x5A5AA5A5) -> bool:
        """Write ``value`` to the liveness register; True if the device reads back its inverse."""
        with DriverError.during("liveness"):
            self.regs.write("liveness", value)
            return self.regs.read("liveness") == ~value & 0xFFFFFFFF

    def factorial(self, n: int) -> int:
        """Compute ``n!`` modulo 2**32 on the device, waiting for its completion interrupt.

        Raises:
            DriverError: step ``factorial``: no interrupt, or the wrong one.
        """
        with DriverError.during("factorial"):
            self.regs.write("status", STATUS_IRQFACT)
            self.regs.write("factorial", n)
        self._wait_irq("factorial", FACT_IRQ)
        with DriverError.during("factorial"):
            return self.regs.read("factorial")

    def raise_irq(self, value: int = 0x1000) -> int:
        """Make the device raise interrupt bits ``value``, wait for the MSI, acknowledge it.

        Returns:
            The interrupt status the device reported.
        """
        with DriverError.during("raise interrupt"):
            self.regs.write("irq_raise", value)
        return self._wait_irq("raise interrupt", value)

    def _wait_irq(self, step: str, bits: int) -> int:
        if self.irq.wait(self.timeout) is None:
            raise DriverError(step, f"interrupt never came within {self.timeout} s",
                              hint=self._why_no_irq())
        with DriverError.during(step):
            status = self.regs.read("irq_status")
            self.regs.write("irq_ack", status)
        if status & bits != bits:
            raise DriverError(step, f"interrupt status {status:#x} lacks {bits:#x}")
        return status

    @property
    def config(self) -> Any:
        """The device's PCI config space."""
        return self.device.config

    def _why_no_irq(self) -> str:
        if not self.config.bus_master:
            return "bus mastering is off (PCI command bit 2): MSI is a DMA write, enable it"
        status = self.regs.read("irq_status")
        return f"MSI enabled, bus master on, device interrupt status {status:#x}"

    def dma_to_device(self, data: bytes, offset: int = 0) -> None:
        """Copy ``data`` into the device's buffer at ``offset`` by DMA (RAM -> edu)."""
        self._check_span(offset, len(data))
        self.buffer[: len(data)] = data
        self._dma(self.iova, DMA_WINDOW + offset, len(data), 0)

    def dma_from_device(self, count: int, offset: int = 0) -> bytes:
        """Return ``count`` bytes of the device's buffer from ``offset``, by DMA (edu -> RAM)."""
        self._check_span(offset, count)
        self._dma(DMA_WINDOW + offset, self.iova, count, CMD_TO_RAM)
        return bytes(self.buffer[:count])

    @staticmethod
    def _check_span(offset: int, count: int) -> None:
        if not (offset >= 0 and count > 0 and offset + count <= DMA_MAX):
            raise ValueError(f"DMA span {offset}+{count} must lie in the device buffer's first "
                             f"{DMA_MAX} bytes (QEMU 7.2's edu aborts on a full 4096)")

    def _dma(self, src: int, dst: int, count: int, cmd: int) -> None:
        ram = dst if cmd & CMD_TO_RAM else src
        try:
            self.dma.vaddr(ram)  # before the device faults on an unmapped IOVA
        except LookupError as exc:  # NotMappedError
            raise DriverError("translate", f"IOVA {ram:#x}: mapping missing", exc) from exc
        if ram + count - 1 > DMA_MASK:
            raise DriverError("dma", f"IOVA {ram:#x} is above edu's 28-bit DMA mask")
        if not self.config.bus_master:
            raise DriverError("dma", "bus mastering is off: the device cannot reach memory",
                              hint="device.enable_bus_master()")
        with DriverError.during("dma"):
            for name, value in (("dma_src", src), ("dma_dst", dst), ("dma_count", count)):
                self.regs.write(name, value)
            self.regs.write("dma_cmd", CMD_START | CMD_IRQ | cmd)
        self._wait_irq("dma", DMA_IRQ)

    def close(self) -> None:
        """Unmap the buffer, and close the device with everything it holds if :meth:`open` did.

        Raises:
            CloseError: some close steps failed (all resources are released anyway).
            OSError: unmapping the buffer of a device the driver does not own failed.
        """
        mapping, self.mapping = self.mapping, None
        try:
            if mapping is not None and not self._owned:
                mapping.close()  # an owned device unmaps everything as it closes
        finally:
            if self._owned:
                self.device.close()

    def __enter__(self) -> EduDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
