"""Constants of the container and IOMMU part of linux/vfio.h (Linux 7.3) as IntEnum/IntFlag.

Extensions and IOMMU models of the container, type1 info/map/unmap/dirty flags, SPAPR/EEH.
Values are read from cdefs/ (``C.<KERNEL_NAME>``); import them from :mod:`pyvfio.uapi`.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from pyvfio._ffi import C

# `C.__VFIO_...` inside a class body would be name-mangled by Python, so it is read here
_RESERVED_TYPE1_NESTING_IOMMU: int = C.__VFIO_RESERVED_TYPE1_NESTING_IOMMU


class Extension(IntEnum):
    """VFIO_CHECK_EXTENSION arguments: VFIO_* (IOMMU types and features)."""
    TYPE1_IOMMU = C.VFIO_TYPE1_IOMMU
    SPAPR_TCE_IOMMU = C.VFIO_SPAPR_TCE_IOMMU
    TYPE1v2_IOMMU = C.VFIO_TYPE1v2_IOMMU
    DMA_CC_IOMMU = C.VFIO_DMA_CC_IOMMU
    EEH = C.VFIO_EEH
    RESERVED_TYPE1_NESTING_IOMMU = _RESERVED_TYPE1_NESTING_IOMMU  # VFIO_TYPE1_NESTING_IOMMU <= 6.12
    SPAPR_TCE_v2_IOMMU = C.VFIO_SPAPR_TCE_v2_IOMMU
    NOIOMMU_IOMMU = C.VFIO_NOIOMMU_IOMMU
    UNMAP_ALL = C.VFIO_UNMAP_ALL
    UPDATE_VADDR = C.VFIO_UPDATE_VADDR


class IOMMUType(IntEnum):
    """VFIO_SET_IOMMU arguments: VFIO_*_IOMMU."""
    TYPE1 = C.VFIO_TYPE1_IOMMU
    SPAPR_TCE = C.VFIO_SPAPR_TCE_IOMMU
    TYPE1v2 = C.VFIO_TYPE1v2_IOMMU
    SPAPR_TCE_v2 = C.VFIO_SPAPR_TCE_v2_IOMMU
    NOIOMMU = C.VFIO_NOIOMMU_IOMMU


class IOMMUInfoFlag(IntFlag):
    """vfio_iommu_type1_info.flags: VFIO_IOMMU_INFO_*."""
    PGSIZES = C.VFIO_IOMMU_INFO_PGSIZES
    CAPS = C.VFIO_IOMMU_INFO_CAPS


class IOMMUType1InfoCap(IntEnum):
    """VFIO_IOMMU_GET_INFO capability ids: VFIO_IOMMU_TYPE1_INFO_CAP_*, _DMA_AVAIL."""
    IOVA_RANGE = C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
    MIGRATION = C.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION
    DMA_AVAIL = C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL


class DMAMapFlag(IntFlag):
    """vfio_iommu_type1_dma_map.flags: VFIO_DMA_MAP_FLAG_*."""
    READ = C.VFIO_DMA_MAP_FLAG_READ
    WRITE = C.VFIO_DMA_MAP_FLAG_WRITE
    VADDR = C.VFIO_DMA_MAP_FLAG_VADDR


class DMAUnmapFlag(IntFlag):
    """vfio_iommu_type1_dma_unmap.flags: VFIO_DMA_UNMAP_FLAG_*."""
    GET_DIRTY_BITMAP = C.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
    ALL = C.VFIO_DMA_UNMAP_FLAG_ALL
    VADDR = C.VFIO_DMA_UNMAP_FLAG_VADDR


class DirtyPagesFlag(IntFlag):
    """vfio_iommu_type1_dirty_bitmap.flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_*."""
    START = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START
    STOP = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
    GET_BITMAP = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP


class SPAPRInfoFlag(IntFlag):
    """vfio_iommu_spapr_tce_info.flags: VFIO_IOMMU_SPAPR_INFO_*."""
    DDW = C.VFIO_IOMMU_SPAPR_INFO_DDW


class EEHPEOp(IntEnum):
    """vfio_eeh_pe_op.op: VFIO_EEH_PE_* operations."""
    DISABLE = C.VFIO_EEH_PE_DISABLE
    ENABLE = C.VFIO_EEH_PE_ENABLE
    UNFREEZE_IO = C.VFIO_EEH_PE_UNFREEZE_IO
    UNFREEZE_DMA = C.VFIO_EEH_PE_UNFREEZE_DMA
    GET_STATE = C.VFIO_EEH_PE_GET_STATE
    RESET_DEACTIVATE = C.VFIO_EEH_PE_RESET_DEACTIVATE
    RESET_HOT = C.VFIO_EEH_PE_RESET_HOT
    RESET_FUNDAMENTAL = C.VFIO_EEH_PE_RESET_FUNDAMENTAL
    CONFIGURE = C.VFIO_EEH_PE_CONFIGURE
    INJECT_ERR = C.VFIO_EEH_PE_INJECT_ERR


class EEHPEState(IntEnum):
    """VFIO_EEH_PE_GET_STATE results: VFIO_EEH_PE_STATE_*."""
    NORMAL = C.VFIO_EEH_PE_STATE_NORMAL
    RESET = C.VFIO_EEH_PE_STATE_RESET
    STOPPED = C.VFIO_EEH_PE_STATE_STOPPED
    STOPPED_DMA = C.VFIO_EEH_PE_STATE_STOPPED_DMA
    UNAVAIL = C.VFIO_EEH_PE_STATE_UNAVAIL


__all__ = [
    "DMAMapFlag",
    "DMAUnmapFlag",
    "DirtyPagesFlag",
    "EEHPEOp",
    "EEHPEState",
    "Extension",
    "IOMMUInfoFlag",
    "IOMMUType",
    "IOMMUType1InfoCap",
    "SPAPRInfoFlag",
]
