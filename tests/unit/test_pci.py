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


def _ext(cap_id: int, nxt: int, version: int = 1) -> bytes:
    return (cap_id | (version << 16) | (nxt << 20)).to_bytes(4, "little")


def _caps(space: bytearray, extended: bool | None = None) -> list[tuple[int, int]]:
    caps = PCIConfig(Crafted(space)).capabilities()  # type: ignore[arg-type]
    return [(c.id, c.offset) for c in caps if extended is None or c.extended == extended]


def _find(space: bytearray, cap_id: int, extended: bool = False) -> int | None:
    cfg = PCIConfig(Crafted(space))  # type: ignore[arg-type]
    return cfg.find_capability(cap_id, extended=extended)


def test_capability_loop_ends_after_the_repeat() -> None:
    space = _space()
    space[0x40:0x42] = bytes([0x05, 0x50])
    space[0x50:0x52] = bytes([0x11, 0x40])  # back to 0x40: a loop
    assert _caps(space) == [(0x05, 0x40), (0x11, 0x50)]
    assert _find(space, 0x11) == 0x50
    assert _find(space, 0x10) is None  # the hop limit ends the search (PCI_FIND_CAP_TTL)


def test_capability_id_ff_ends_the_list() -> None:
    space = _space()
    space[0x40:0x42] = bytes([0x05, 0x50])
    space[0x50:0x52] = bytes([0xFF, 0x60])  # __pci_find_next_cap_ttl: id 0xff ends the walk
    space[0x60:0x62] = bytes([0x10, 0x00])
    assert _caps(space) == [(0x05, 0x40)]
    assert _find(space, 0x10) is None


@pytest.mark.parametrize("pointer", [0x00, 0x3C, 0x3F])
def test_capability_pointer_below_0x40_ends_the_list(pointer: int) -> None:
    space = _space()
    space[0x40:0x42] = bytes([0x05, pointer])
    assert _caps(space) == [(0x05, 0x40)]


def test_capability_pointer_low_bits_are_ignored() -> None:
    space = _space()
    space[0x34] = 0x43  # Linux masks the two low bits of every pointer
    space[0x40:0x42] = bytes([0x05, 0x53])
    space[0x50:0x52] = bytes([0x11, 0x00])
    assert _caps(space) == [(0x05, 0x40), (0x11, 0x50)]


def test_capability_list_of_48_hops_and_no_more() -> None:
    space = _space()
    for i in range(48):  # 0x40, 0x44, ... 0xfc: 48 capabilities, the most 192 bytes hold
        pos = 0x40 + 4 * i
        space[pos:pos + 2] = bytes([0x09, 0 if i == 47 else pos + 4])
    assert len(_caps(space)) == 48
    assert _caps(space)[-1] == (0x09, 0xFC)


def test_cardbus_bridge_list_starts_at_0x14() -> None:
    space = _space()
    space[0x0E] = 0x82  # multi-function cardbus bridge
    space[0x14] = 0x80
    space[0x80:0x82] = bytes([0x01, 0x00])
    assert _caps(space) == [(0x01, 0x80)]


def test_broken_extended_list_does_not_hide_msi() -> None:
    space = _space(4096)
    space[0x40:0x42] = bytes([0x05, 0x00])  # MSI at 0x40 is fine
    space[0x100:0x104] = _ext(0x1, 0x100)  # the extended list loops on itself
    assert _find(space, 0x05) == 0x40
    assert _caps(space) == [(0x05, 0x40), (0x1, 0x100)]
    assert _find(space, 0x10, extended=True) is None


@pytest.mark.parametrize("header", [0, 0xFFFFFFFF])
def test_extended_list_empty_or_absent(header: int) -> None:
    space = _space(4096)
    space[0x100:0x104] = header.to_bytes(4, "little")
    assert _caps(space, extended=True) == []


def test_extended_pointer_below_0x100_or_past_the_end_ends_the_list() -> None:
    space = _space(4096)
    space[0x100:0x104] = _ext(0x1, 0x0FC)
    assert _caps(space, extended=True) == [(0x1, 0x100)]
    space[0x100:0x104] = _ext(0x1, 0x140)
    space[0x140:0x144] = _ext(0x10, 0xFFC)  # the last dword of config space: still inside
    space[0xFFC:0x1000] = _ext(0x2, 0x000)
    assert _find(space, 0x2, extended=True) == 0xFFC
    small = _space(0x200)  # a config region of 512 bytes: 0x1fc is its last dword
    small[0x100:0x104] = _ext(0x1, 0x200)
    assert _caps(small, extended=True) == [(0x1, 0x100)]


def test_find_capability_checks_the_id() -> None:
    with pytest.raises(ValueError, match="cap_id"):
        _find(_space(), 0x100)
    assert _find(_space(4096), 0x100, extended=True) is None


def test_extended_capabilities_walk() -> None:
    space = _space(4096)
    space[0x100:0x104] = (0x1 | (1 << 16) | (0x140 << 20)).to_bytes(4, "little")
    space[0x140:0x144] = (0x10 | (1 << 16)).to_bytes(4, "little")
    caps = PCIConfig(Crafted(space)).capabilities()  # type: ignore[arg-type]
    ext = [(c.id, c.offset, c.version) for c in caps if c.extended]
    assert ext == [(1, 0x100, 1), (0x10, 0x140, 1)]
