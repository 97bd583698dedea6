"""PCI configuration space of a vfio-pci device, through its config region.

vfio-pci virtualizes config space (vfio_pci_config.c): accesses are split into naturally aligned
1/2/4-byte pieces, and writes without permission are silently dropped.  vfio-pci also leaves Bus
Master off, so DMA and MSI are dropped until :meth:`PCIConfig.enable_bus_master`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvfio.dma import check_int
from pyvfio.uapi import PCIRegion

if TYPE_CHECKING:
    from pyvfio.device_regions import DeviceRegions

from pyvfio.pci_regs import (  # noqa: F401 - re-exported: pyvfio.pci.PCI_COMMAND etc.
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_PM,
    PCI_CAPABILITY_LIST,
    PCI_CB_CAPABILITY_LIST,
    PCI_CFG_SPACE_EXP_SIZE,
    PCI_CFG_SPACE_SIZE,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_IO,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_DEVICE_ID,
    PCI_HEADER_TYPE,
    PCI_HEADER_TYPE_CARDBUS,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_VENDOR_ID,
)

PCI_FIND_CAP_TTL = 48  # drivers/pci/pci.c: (256 - 64) / 4 hops at most


@dataclass(frozen=True)
class PCICap:
    """A capability found in config space: ``extended`` for the PCIe ones above 0x100."""

    id: int
    offset: int
    extended: bool = False
    version: int = 0


class PCIConfig:
    """Config-space accessors over ``device``'s config region (index 7)."""

    def __init__(self, device: DeviceRegions) -> None:
        self.device = device

    def __repr__(self) -> str:
        return f"<PCIConfig of {self.device!r}>"

    def read(self, offset: int, width: int) -> int:
        """Read a field of ``width`` (1, 2 or 4) bytes at ``offset``, little-endian.

        Raises:
            TypeError, ValueError: bad width, unaligned or outside config space.
            OSError: EFAULT outside the device's config space size.
        """
        self._check(offset, width)
        data = self.device.read(PCIRegion.CONFIG, offset, width)
        if len(data) != width:
            raise OSError(errno.EIO, f"short config read at {offset:#x}: {len(data)} of {width} "
                          "bytes", "VFIO_PCI_CONFIG_REGION_INDEX")
        return int.from_bytes(data, "little")

    def write(self, offset: int, width: int, value: int) -> None:
        """Write ``value`` as a field of ``width`` (1, 2 or 4) bytes at ``offset``.

        Raises:
            TypeError, ValueError: bad width or value, unaligned or outside config space.
            OSError: EFAULT outside the device's config space size.
        """
        self._check(offset, width)
        check_int("value", value, 0, (1 << (8 * width)) - 1)
        self.device.write(PCIRegion.CONFIG, offset, value.to_bytes(width, "little"))

    @staticmethod
    def _check(offset: int, width: int) -> None:
        if width not in (1, 2, 4) or isinstance(width, bool):
            raise ValueError(f"width must be 1, 2 or 4, not {width!r}")
        check_int("offset", offset, 0, 0xFFF)
        if offset % width:
            raise ValueError(f"offset {offset:#x} is not aligned to width {width}")

    @property
    def vendor_id(self) -> int:
        """The PCI vendor id."""
        return self.read(PCI_VENDOR_ID, 2)

    @property
    def device_id(self) -> int:
        """The PCI device id."""
        return self.read(PCI_DEVICE_ID, 2)

    def set_command(self, set_bits: int = 0, clear_bits: int = 0) -> int:
        """Set and clear bits of the COMMAND register; return its new value as read back.

        Raises:
            TypeError, ValueError: bits not 16-bit ints.
        """
        check_int("set_bits", set_bits, 0, 0xFFFF)
        check_int("clear_bits", clear_bits, 0, 0xFFFF)
        self.write(PCI_COMMAND, 2, (self.read(PCI_COMMAND, 2) | set_bits) & ~clear_bits)
        return self.read(PCI_COMMAND, 2)

    def enable_bus_master(self) -> None:
        """Turn on Bus Master (and Memory Space): needed before any DMA or MSI works."""
        self.set_command(PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY)

    @property
    def bus_master(self) -> bool:
        """Whether Bus Master is on (COMMAND bit 2): without it no DMA and no MSI arrive."""
        return bool(self.read(PCI_COMMAND, 2) & PCI_COMMAND_MASTER)

    def disable_bus_master(self) -> None:
        """Turn off Bus Master: the device can no longer DMA or signal MSI."""
        self.set_command(clear_bits=PCI_COMMAND_MASTER)

    def capabilities(self) -> tuple[PCICap, ...]:
        """Return the standard capabilities, then the extended ones (PCIe config space only).

        The two lists are walked as Linux walks them (drivers/pci/pci.c): a list ends at a
        pointer below its area, at id 0xff (standard) or a 0 / all-ones header (extended), after
        the kernel's hop limit, or, for listing, at an offset already seen.  A broken list ends
        early, it does not raise, and it never hides the other list.

        Raises:
            OSError: the config region cannot be read at all.
        """
        return self._standard_caps() + self._extended_caps()

    def find_capability(self, cap_id: int, *, extended: bool = False) -> int | None:
        """Return the offset of the first capability ``cap_id`` (``PCI_CAP_ID_MSI``...), or None.

        Like ``pci_find_capability``/``pci_find_ext_capability``: only the list asked for is
        walked.

        Raises:
            TypeError, ValueError: ``cap_id`` not an id (8 bits, or 16 with ``extended``).
        """
        check_int("cap_id", cap_id, 0, 0xFFFF if extended else 0xFF)
        caps = self._extended_caps() if extended else self._standard_caps()
        return next((cap.offset for cap in caps if cap.id == cap_id), None)

    def _standard_caps(self) -> tuple[PCICap, ...]:
        # __pci_bus_find_cap_start + __pci_find_next_cap_ttl
        if not self.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
            return ()
        start = PCI_CB_CAPABILITY_LIST if self.read(PCI_HEADER_TYPE, 1) & 0x7F == \
            PCI_HEADER_TYPE_CARDBUS else PCI_CAPABILITY_LIST
        caps: list[PCICap] = []
        pos = self.read(start, 1)
        seen: set[int] = set()
        for _ in range(PCI_FIND_CAP_TTL):
            if pos < 0x40:
                break
            pos &= ~3
            ent = self.read(pos, 2)
            if ent & 0xFF == 0xFF or pos in seen:
                break
            seen.add(pos)
            caps.append(PCICap(ent & 0xFF, pos))
            pos = ent >> 8
        return tuple(caps)

    def _extended_caps(self) -> tuple[PCICap, ...]:
        # pci_find_next_ext_capability: 8 bytes at least per capability bounds the hops
        size = self.device.region_info(PCIRegion.CONFIG).size
        if size <= PCI_CFG_SPACE_SIZE:
            return ()
        caps: list[PCICap] = []
        pos = PCI_CFG_SPACE_SIZE
        for _ in range((PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) // 8):
            try:
                header = self.read(pos, 4)
            except OSError:  # a read the kernel refuses ends the list, as in Linux
                break
            if header in (0, 0xFFFFFFFF) or any(c.offset == pos for c in caps):
                break
            caps.append(PCICap(header & 0xFFFF, pos, True, (header >> 16) & 0xF))
            pos = (header >> 20) & 0xFFC
            if pos < PCI_CFG_SPACE_SIZE or pos > min(size, PCI_CFG_SPACE_EXP_SIZE) - 4:
                break
        return tuple(caps)
