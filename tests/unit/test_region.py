"""Region info on the fake kernel's edu, and the span and mmap checks of RegionInfo."""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio.region import RegionInfo, SparseArea, check_span
from pyvfio.uapi import PCIRegion, RegionInfoFlag
from tests.helpers import expect_errno
from tests.unit.vfio_env import Opened


def test_region_info_bar0(edu: Opened) -> None:
    r = edu.device.region_info(PCIRegion.BAR0)
    assert (r.index, r.size) == (0, 1 << 20)
    assert r.readable and r.writable and r.mmappable
    assert r.offset == 0 << 40 and r.sparse_areas is None
    assert r.mmap_allowed(0, 4096) and not r.mmap_allowed(1 << 20, 4096)


def test_region_info_config_not_mmappable(edu: Opened) -> None:
    r = edu.device.region_info(PCIRegion.CONFIG)
    assert r.offset == 7 << 40 and r.size in (256, 4096)
    assert r.flags == RegionInfoFlag.READ | RegionInfoFlag.WRITE
    assert not r.mmappable and not r.mmap_allowed(0, 4)


def test_region_info_unimplemented_bar_is_empty(edu: Opened) -> None:
    r = edu.device.region_info(PCIRegion.BAR2)
    assert r.size == 0 and r.flags == 0


def test_region_info_vga_on_non_vga_einval(edu: Opened) -> None:
    expect_errno(errno.EINVAL, edu.device.region_info, PCIRegion.VGA)


def test_region_info_out_of_range_index(edu: Opened) -> None:
    info = edu.device.info()
    expect_errno(errno.EINVAL, edu.device.region_info, info.num_regions)
    with pytest.raises(ValueError, match="index"):
        edu.device.region_info(-1)
    with pytest.raises(TypeError, match="index"):
        edu.device.region_info("0")  # type: ignore[arg-type]


def test_check_span() -> None:
    r = RegionInfo(0, RegionInfoFlag.READ, 0x100, 0)
    check_span(r, 0xFC, 4)
    with pytest.raises(ValueError, match="outside"):
        check_span(r, 0xFD, 4)
    with pytest.raises(ValueError, match="size"):
        check_span(r, 0, 0)


def test_mmap_allowed_sparse_areas_only() -> None:
    flags = RegionInfoFlag.READ | RegionInfoFlag.MMAP
    r = RegionInfo(0, flags, 0x10000, 0, sparse_areas=(SparseArea(0x2000, 0x2000),))
    assert r.mmap_allowed(0x2000, 0x1000) and r.mmap_allowed(0x3000, 0x1000)
    assert not r.mmap_allowed(0x1000, 0x2000) and not r.mmap_allowed(0x3000, 0x2000)
    assert uapi.RegionInfoFlag.MMAP in r.flags
