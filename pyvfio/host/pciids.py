"""Vendor, device and class names from the system's pci.ids (hwdata), when it is installed."""

from __future__ import annotations

import os
from functools import cache

PCI_IDS_PATHS = ("/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids")

# base classes (PCI Code and ID Assignment Specification), for hosts without pci.ids
_BASE_CLASSES = {
    0x00: "Unclassified device", 0x01: "Mass storage controller", 0x02: "Network controller",
    0x03: "Display controller", 0x04: "Multimedia controller", 0x05: "Memory controller",
    0x06: "Bridge", 0x07: "Communication controller", 0x08: "Generic system peripheral",
    0x09: "Input device controller", 0x0A: "Docking station", 0x0B: "Processor",
    0x0C: "Serial bus controller", 0x0D: "Wireless controller", 0x0E: "Intelligent controller",
    0x0F: "Satellite communications controller", 0x10: "Encryption controller",
    0x11: "Signal processing controller", 0x12: "Processing accelerators",
    0x13: "Non-Essential Instrumentation", 0x40: "Coprocessor", 0xFF: "Unassigned class",
}


def class_name(class_code: int) -> str:
    """Return the base-class name of a 24-bit class code (no pci.ids needed)."""
    return _BASE_CLASSES.get(class_code >> 16, f"Class {class_code >> 16:02x}")


class PciIds:
    """A parsed pci.ids: vendors, devices and classes (subclasses); subsystems are skipped."""

    def __init__(self, text: str = "") -> None:
        self.vendors: dict[int, str] = {}
        self.devices: dict[tuple[int, int], str] = {}
        self.classes: dict[int, str] = {}  # (base << 8 | sub) and (base << 16) keys, see class_name
        self._parse(text)

    def _parse(self, text: str) -> None:
        vendor: int | None = None
        cls: int | None = None
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            try:
                if line.startswith("C "):
                    cls, vendor = int(line[2:4], 16), None
                    self.classes[cls << 16] = line[4:].strip()
                elif line.startswith("\t\t"):
                    continue
                elif line.startswith("\t"):
                    key, _, name = line[1:].partition("  ")
                    if vendor is not None:
                        self.devices[(vendor, int(key, 16))] = name.strip()
                    elif cls is not None:
                        self.classes[cls << 16 | int(key, 16) << 8] = name.strip()
                else:
                    key, _, name = line.partition("  ")
                    vendor, cls = int(key, 16), None
                    self.vendors[vendor] = name.strip()
            except ValueError:
                continue

    def names(self, vendor: int, device: int) -> tuple[str | None, str | None]:
        """Return (vendor name, device name); None for what the database does not know."""
        return self.vendors.get(vendor), self.devices.get((vendor, device))

    def class_name(self, class_code: int) -> str | None:
        """Return the subclass name, else the class name, else None."""
        sub = self.classes.get(class_code & 0xFFFF00)
        return sub or self.classes.get(class_code & 0xFF0000)

    @staticmethod
    @cache
    def system() -> PciIds:
        """Return the host's pci.ids (loaded once), or an empty database when none is installed."""
        for path in PCI_IDS_PATHS:
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    return PciIds(f.read())
        return PciIds()
