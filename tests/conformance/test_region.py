"""vfio-pci regions: region info, config space, BAR access and mmap (vfio_pci_core.c,
vfio_pci_config.c, vfio_pci_rdwr.c)."""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, new
from tests.conformance.vfio_helpers import (
    CONFIG,
    MEMORY,
    PCI_COMMAND,
    bar_read32,
    cfg_read,
    cfg_write,
    region_offset,
    session,
    set_command,
)
from tests.conftest import Host
from tests.helpers import expect_errno

EDU_ID = 0x010000ED


def _region(s, d: int, index: int):  # type: ignore[no-untyped-def]
    info = new("struct vfio_region_info *", index=index)
    s.k.ioctl(d, uapi.VFIO_DEVICE_GET_REGION_INFO, info)
    return info


def test_region_info_bar0(host: Host) -> None:
    """vfio_pci_ioctl_get_region_info: BAR0 of edu is 1 MiB, READ|WRITE|MMAP, offset 0."""
    with session(host) as s:
        _, _, d = s.edu()
        info = _region(s, d, 0)
        assert info.size == 1 << 20
        assert info.offset == 0
        rwm = (C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE
               | C.VFIO_REGION_INFO_FLAG_MMAP)
        assert info.flags & rwm == rwm


def test_region_info_offsets(host: Host) -> None:
    """include/linux/vfio_pci_core.h VFIO_PCI_INDEX_TO_OFFSET: offset = index << 40."""
    with session(host) as s:
        _, _, d = s.edu()
        for index in (1, 6, 7):
            assert _region(s, d, index).offset == index << 40


def test_region_info_unimplemented_bar(host: Host) -> None:
    """vfio_pci_ioctl_get_region_info: an unimplemented BAR has size 0 and no flags."""
    with session(host) as s:
        _, _, d = s.edu()
        info = _region(s, d, 2)
        assert (info.size, info.flags) == (0, 0)


def test_region_info_config(host: Host) -> None:
    """vfio_pci_ioctl_get_region_info: config region READ|WRITE, size = cfg_size (>= 256)."""
    with session(host) as s:
        _, _, d = s.edu()
        info = _region(s, d, CONFIG)
        assert info.flags == C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE
        assert info.size in (256, 4096)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"index": 8}, "the VGA index on a non-VGA device"),
        ({"index": 9}, "index >= num_regions"),
        ({"index": 0xFFFFFFFF}, "index >= num_regions, index << 40 past 64 bits"),
        ({"argsz": 16}, "argsz < 32"),
    ],
    ids=["vga", "index", "index-u32-max", "argsz"],
)
def test_region_info_einval(host: Host, fields: dict[str, int], rule: str) -> None:
    """vfio_pci_ioctl_get_region_info: VGA index on a non-VGA device, index >= num_regions,
    argsz < 32 -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_region_info *", **fields)
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.VFIO_DEVICE_GET_REGION_INFO, info)


def test_config_ids(host: Host) -> None:
    """vfio_pci_config.c: vendor/device read through config space (edu 1234:11e8)."""
    with session(host) as s:
        _, _, d = s.edu()
        assert cfg_read(host, d, 0, 4) == 0x11E81234


def test_config_out_of_range_efault(host: Host) -> None:
    """vfio_pci_config.c:vfio_config_do_rw: beyond cfg_size -> EFAULT."""
    with session(host) as s:
        _, _, d = s.edu()
        size = _region(s, d, CONFIG).size
        expect_errno(errno.EFAULT, s.k.pread, d, 4, region_offset(CONFIG) + size)


def test_config_bar_sizing(host: Host) -> None:
    """vfio_pci_config.c:vfio_bar_fixup: writing all-ones to BAR0 reads back the size mask."""
    with session(host) as s:
        _, _, d = s.edu()
        saved = cfg_read(host, d, 0x10, 4)
        cfg_write(host, d, 0x10, 4, 0xFFFFFFFF)
        assert cfg_read(host, d, 0x10, 4) & ~0xF == (~((1 << 20) - 1)) & 0xFFFFFFFF
        cfg_write(host, d, 0x10, 4, saved)
        assert cfg_read(host, d, 0x10, 4) == saved


def test_config_unimplemented_bar_reads_zero(host: Host) -> None:
    """vfio_bar_fixup: an unimplemented BAR reads 0 even after writing all-ones."""
    with session(host) as s:
        _, _, d = s.edu()
        cfg_write(host, d, 0x18, 4, 0xFFFFFFFF)
        assert cfg_read(host, d, 0x18, 4) == 0


def test_bar_read_id(host: Host) -> None:
    """vfio_pci_rdwr.c:vfio_pci_bar_rw: a 4-byte pread of BAR0 at 0 reads edu's id register."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        assert bar_read32(host, d, 0) == EDU_ID


def test_bar_memory_disabled_eio(host: Host) -> None:
    """vfio_pci_rdwr.c:vfio_pci_bar_rw: COMMAND.MEMORY clear -> EIO."""
    with session(host) as s:
        _, _, d = s.edu()
        command = cfg_read(host, d, PCI_COMMAND, 2)
        cfg_write(host, d, PCI_COMMAND, 2, command & ~MEMORY)
        expect_errno(errno.EIO, s.k.pread, d, 4, region_offset(0))
        cfg_write(host, d, PCI_COMMAND, 2, command | MEMORY)


def test_bar_past_end_einval(host: Host) -> None:
    """vfio_pci_bar_rw: pos >= BAR size -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        expect_errno(errno.EINVAL, s.k.pread, d, 4, region_offset(0) + (1 << 20))


def test_unimplemented_bar_rw_einval(host: Host) -> None:
    """vfio_pci_bar_rw: a BAR that is not implemented -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, s.k.pread, d, 4, region_offset(2))


def test_mmap_bar0_reads_id(host: Host) -> None:
    """vfio_pci_core_mmap: BAR0 mmaps; a 4-byte load at 0 reads 0x010000ed."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        assert bar.read(0, 4) == EDU_ID


def test_mmap_config_einval(host: Host) -> None:
    """vfio_pci_core_mmap: only BARs can be mmapped (config region -> EINVAL)."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, s.k.mmap, d, 0x1000, region_offset(CONFIG))


def test_mmap_past_bar_einval(host: Host) -> None:
    """vfio_pci_core_mmap: pgoff + len beyond the page-aligned BAR -> EINVAL."""
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, s.k.mmap, d, 0x2000, region_offset(0) + (1 << 20) - 0x1000)


def test_edu_liveness_inverts(host: Host) -> None:
    """edu.c:edu_mmio_write 0x04: the liveness register stores the bitwise inverse."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        bar.write(4, 4, 0x12345678)
        assert bar.read(4, 4) == 0xEDCBA987


def test_edu_narrow_access_ignored(host: Host) -> None:
    """edu.c:edu_mmio_ops (valid.min_access_size 4): a 2-byte access never reaches edu, so it
    reads 0 (memory.c:unassigned_mem_read) and a 2-byte write is dropped."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        bar.write(4, 4, 0)
        bar.write(4, 2, 0x1234)
        assert bar.read(4, 4) == 0xFFFFFFFF
        assert bar.read(0, 2) == 0


def test_edu_wide_access_below_0x80_reads_ones(host: Host) -> None:
    """edu.c:edu_mmio_read: an 8-byte access below 0x80 reaches edu, which answers all-ones."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        assert bar.read(0, 8) == (1 << 64) - 1
        assert bar.read(0, 4) == 0x010000ED


@pytest.mark.fake_only("reads the model's access log")
def test_fake_mmio_records_widths(host: Host) -> None:
    """The edu model records every access with its width (for drivers' own tests)."""
    with session(host) as s:
        _, _, d = s.edu()
        set_command(host, d, MEMORY)
        bar = s.k.mmap(d, 0x1000, region_offset(0))
        s.maps.append(bar)
        bar.read(0x80, 8)
        dev = s.k.bus.devices[host.edu]  # type: ignore[attr-defined]
        assert dev.accesses[-1] == ("r", 0x80, 8)


def test_region_info_without_caps_keeps_cap_offset(host: Host) -> None:
    """vfio_pci_ioctl_get_region_info: cap_offset is written only when there are caps; a
    region without caps gives back what the caller passed (found by tests/differential)."""
    with session(host) as s:
        _, _, d = s.edu()
        info = new("struct vfio_region_info *", argsz=32, index=CONFIG, cap_offset=0x20)
        s.k.ioctl(d, uapi.VFIO_DEVICE_GET_REGION_INFO, info)
        assert info.flags & C.VFIO_REGION_INFO_FLAG_CAPS == 0
        assert info.cap_offset == 0x20


def test_config_writes_do_not_outlive_the_last_close(host: Host) -> None:
    """vfio_pci_core_enable saves the config state and vfio_pci_core_disable restores it:
    the cache line size written through one open reads back as before at the next open."""
    with session(host) as s:
        _, g, d = s.edu()
        before = cfg_read(host, d, 0x0C, 1)
        cfg_write(host, d, 0x0C, 1, before ^ 0x10)
        assert cfg_read(host, d, 0x0C, 1) == before ^ 0x10
        s.close(d)
        d = s.device(g, host.edu)
        assert cfg_read(host, d, 0x0C, 1) == before


def test_config_device_specific_bytes_outlive_the_close(host: Host) -> None:
    """pci_restore_state restores the header, not the device-specific bytes after it: edu's
    (writable in QEMU, passed through raw by vfio) keep a write across close and open."""
    with session(host) as s:
        _, g, d = s.edu()
        cfg_write(host, d, 0x80, 1, 0x5A)
        s.close(d)
        d = s.device(g, host.edu)
        try:
            assert cfg_read(host, d, 0x80, 1) == 0x5A
        finally:
            cfg_write(host, d, 0x80, 1, 0)
