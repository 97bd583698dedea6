"""PCI config space helpers: field access, capability walk, Bus Master."""

from __future__ import annotations

import pytest

from pyvfio.pci import (
    PCI_CAP_ID_MSI,
    PCI_COMMAND,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCIConfig,
)
from pyvfio.region import RegionInfo
from pyvfio.uapi import RegionInfoFlag
from tests.unit.vfio_env import Opened


def test_ids(edu: Opened) -> None:
    cfg = PCIConfig(edu.device)
    assert (cfg.vendor_id, cfg.device_id) == (0x1234, 0x11E8)
    assert cfg.read(0, 4) == 0x11E81234 and cfg.read(1, 1) == 0x12


def test_enable_bus_master(edu: Opened) -> None:
    cfg = PCIConfig(edu.device)
    cfg.disable_bus_master()
    assert not cfg.read(PCI_COMMAND, 2) & PCI_COMMAND_MASTER
    cfg.enable_bus_master()
    assert cfg.read(PCI_COMMAND, 2) & (PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY) == 6


def test_capabilities_has_msi(edu: Opened) -> None:
    cfg = PCIConfig(edu.device)
    caps = cfg.capabilities()
    assert PCI_CAP_ID_MSI in [c.id for c in caps if not c.extended]
    offset = cfg.find_capability(PCI_CAP_ID_MSI)
    assert offset is not None and cfg.read(offset, 1) == PCI_CAP_ID_MSI
    assert cfg.find_capability(0x7F) is None


@pytest.mark.parametrize(
    ("offset", "width", "exc"),
    [(0, 3, ValueError), (1, 2, ValueError), (0x1000, 1, ValueError), ("0", 1, TypeError)],
)
def test_bad_access_before_syscall(edu: Opened, offset: object, width: int, exc: type) -> None:
    with pytest.raises(exc):
        PCIConfig(edu.device).read(offset, width)  # type: ignore[arg-type]


def test_write_value_out_of_range(edu: Opened) -> None:
    with pytest.raises(ValueError, match="value"):
        PCIConfig(edu.device).write(0x3C, 1, 0x100)


class Crafted:
    """A device stand-in whose config space is a bytearray (for malformed capability lists)."""

    def __init__(self, space: bytearray) -> None:
        self.space = space

    def read(self, index: int, offset: int, size: int) -> bytes:
        return bytes(self.space[offset : offset + size])

    def region_info(self, index: int) -> RegionInfo:
        return RegionInfo(index, RegionInfoFlag.READ, len(self.space), 7 << 40)


def _space(size: int = 256) -> bytearray:
    space = bytearray(size)
    space[0x06] = 0x10  # status: capability list
    space[0x34] = 0x40
    return space


def test_capability_loop_valueerror() -> None:
    space = _space()
    space[0x40:0x42] = bytes([0x05, 0x50])
    space[0x50:0x52] = bytes([0x11, 0x40])  # back to 0x40: a loop
    with pytest.raises(ValueError, match="malformed"):
        PCIConfig(Crafted(space)).capabilities()  # type: ignore[arg-type]


def test_extended_capability_loop_valueerror() -> None:
    space = _space(4096)
    space[0x100:0x104] = (0x1 | (1 << 16) | (0x100 << 20)).to_bytes(4, "little")
    with pytest.raises(ValueError, match="extended"):
        PCIConfig(Crafted(space)).capabilities()  # type: ignore[arg-type]


def test_extended_capabilities_walk() -> None:
    space = _space(4096)
    space[0x100:0x104] = (0x1 | (1 << 16) | (0x140 << 20)).to_bytes(4, "little")
    space[0x140:0x144] = (0x10 | (1 << 16)).to_bytes(4, "little")
    caps = PCIConfig(Crafted(space)).capabilities()  # type: ignore[arg-type]
    ext = [(c.id, c.offset, c.version) for c in caps if c.extended]
    assert ext == [(1, 0x100, 1), (0x10, 0x140, 1)]
