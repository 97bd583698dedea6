"""DMA through each of the five IOMMU modes: mapping, device DMA and the modes' unmap rules.

Specification: Linux 7.3 tools/testing/selftests/vfio/vfio_dma_mapping_test.c (one fixture
variant per IOMMU mode), drivers/vfio/vfio_iommu_type1.c:vfio_dma_do_unmap (v1 vs v2),
drivers/iommu/iommufd/vfio_compat.c:iommufd_vfio_unmap_dma (compat: type1 cuts mappings, no
ENOENT) and ioas.c:iommufd_ioas_unmap (native: ENOENT).  Every test runs once per mode
(``iommu_mode``); modes a profile lacks skip (Debian: no /dev/iommu; noiommu: none).
"""

from __future__ import annotations

import errno
import mmap
from collections.abc import Callable

import pytest

from pyvfio.device import Device
from pyvfio.dma import allocate
from pyvfio.edu import DMA_MAX, EduDriver
from tests.helpers import expect_errno, expect_ok

PAGE = mmap.PAGESIZE
IOVA = 0x100000  # inside every mode's IOVA ranges and edu's 28-bit DMA mask


def test_edu_dma_round_trip(mode_device: Device) -> None:
    """vfio_dma_mapping_test + a device: edu copies RAM -> device -> RAM through the mapping."""
    with EduDriver(mode_device) as edu:
        data = bytes((i * 7 + 3) % 256 for i in range(DMA_MAX))
        edu.dma_to_device(data)
        assert edu.dma_from_device(DMA_MAX) == data


def test_map_overlap_eexist(mode_device: Device) -> None:
    """Every mode refuses a mapping that overlaps another (EEXIST)."""
    space = mode_device.dma
    first, second = allocate(2 * PAGE), allocate(PAGE)
    m = space.map(first, IOVA)
    expect_errno(errno.EEXIST, space.map, second, IOVA + PAGE)
    m.close()


# What each mode answers: ("ok", bytes unmapped) or ("err", errno).
# Unmapping where nothing is mapped: legacy and compat succeed with 0 bytes, iommufd ENOENT.
UNMAP_NOTHING = {"type1": ("ok", 0), "type1v2": ("ok", 0), "compat-type1": ("ok", 0),
                 "compat-type1v2": ("ok", 0), "iommufd": ("err", errno.ENOENT)}
# Unmapping the first page of a two-page mapping: type1 (v1) takes the whole mapping, type1v2
# refuses (EINVAL), compat-type1 cuts it (vfio_compat.c: iopt_cut_iova), compat-type1v2 and
# iommufd refuse (ENOENT: the area sticks out of the range).
UNMAP_HEAD = {"type1": ("ok", 2 * PAGE), "type1v2": ("err", errno.EINVAL),
              "compat-type1": ("ok", PAGE), "compat-type1v2": ("err", errno.ENOENT),
              "iommufd": ("err", errno.ENOENT)}
# ... and its second page: type1 unmaps nothing (it stops at a mapping that starts before the
# range), compat-type1 cuts again.
UNMAP_TAIL = {"type1": ("ok", 0), "type1v2": ("err", errno.EINVAL), "compat-type1": ("ok", PAGE),
              "compat-type1v2": ("err", errno.ENOENT), "iommufd": ("err", errno.ENOENT)}


def _expect(answer: tuple[str, int], fn: Callable[..., int], *args: int) -> None:
    kind, value = answer
    if kind == "ok":
        assert expect_ok(fn, *args) == value
    else:
        expect_errno(value, fn, *args)


def test_unmap_nothing(mode_device: Device, iommu_mode: str) -> None:
    _expect(UNMAP_NOTHING[iommu_mode], mode_device.dma.unmap, IOVA, PAGE)


@pytest.mark.parametrize("part", ["head", "tail"])
def test_unmap_part_of_mapping(mode_device: Device, iommu_mode: str, part: str) -> None:
    space = mode_device.dma
    m = space.map(allocate(2 * PAGE), IOVA)
    table, start = (UNMAP_HEAD, IOVA) if part == "head" else (UNMAP_TAIL, IOVA + PAGE)
    _expect(table[iommu_mode], space.unmap, start, PAGE)
    m.close()


def test_unmap_whole_mapping(mode_device: Device, iommu_mode: str) -> None:
    """All modes: unmapping exactly a mapping returns its size; then nothing is there."""
    space = mode_device.dma
    space.map(allocate(4 * PAGE), IOVA)
    assert space.unmap(IOVA, 4 * PAGE) == 4 * PAGE
    _expect(UNMAP_NOTHING[iommu_mode], space.unmap, IOVA, 4 * PAGE)


def test_iova_ranges_skip_msi_window(mode_device: Device) -> None:
    """intel-iommu (the lane's vIOMMU and the fake's) reserves the x86 MSI window
    0xfee00000-0xfeefffff in every mode."""
    ranges = mode_device.dma.iova_ranges()
    assert ranges and all(r.last < 0xFEE00000 or r.start > 0xFEEFFFFF for r in ranges)
