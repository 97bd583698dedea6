"""Constants of linux/iommufd.h (Linux 7.3) as IntEnum/IntFlag.

Members are the kernel names without their common prefix; every value is read from cdefs/
(``C.<KERNEL_NAME>``).  Import them from :mod:`pyvfio.uapi`, which re-exports everything here.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from pyvfio._ffi import C


class IOASMapFlag(IntFlag):
    """iommu_ioas_map(_file).flags, iommu_ioas_copy.flags: IOMMU_IOAS_MAP_*."""
    FIXED_IOVA = C.IOMMU_IOAS_MAP_FIXED_IOVA
    WRITEABLE = C.IOMMU_IOAS_MAP_WRITEABLE
    READABLE = C.IOMMU_IOAS_MAP_READABLE


class IOMMUOption(IntEnum):
    """iommu_option.option_id: IOMMU_OPTION_*."""
    RLIMIT_MODE = C.IOMMU_OPTION_RLIMIT_MODE
    HUGE_PAGES = C.IOMMU_OPTION_HUGE_PAGES


class IOMMUOptionOp(IntEnum):
    """iommu_option.op: IOMMU_OPTION_OP_*."""
    SET = C.IOMMU_OPTION_OP_SET
    GET = C.IOMMU_OPTION_OP_GET


class VFIOIOASOp(IntEnum):
    """iommu_vfio_ioas.op: IOMMU_VFIO_IOAS_*."""
    GET = C.IOMMU_VFIO_IOAS_GET
    SET = C.IOMMU_VFIO_IOAS_SET
    CLEAR = C.IOMMU_VFIO_IOAS_CLEAR


class HWPTAllocFlag(IntFlag):
    """iommu_hwpt_alloc.flags: IOMMU_HWPT_ALLOC_*, IOMMU_HWPT_FAULT_ID_VALID."""
    NEST_PARENT = C.IOMMU_HWPT_ALLOC_NEST_PARENT
    DIRTY_TRACKING = C.IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    FAULT_ID_VALID = C.IOMMU_HWPT_FAULT_ID_VALID
    PASID = C.IOMMU_HWPT_ALLOC_PASID


class HWPTDataType(IntEnum):
    """iommu_hwpt_alloc.data_type: IOMMU_HWPT_DATA_*."""
    NONE = C.IOMMU_HWPT_DATA_NONE
    VTD_S1 = C.IOMMU_HWPT_DATA_VTD_S1
    ARM_SMMUV3 = C.IOMMU_HWPT_DATA_ARM_SMMUV3
    AMD_GUEST = C.IOMMU_HWPT_DATA_AMD_GUEST


class VTDS1Flag(IntFlag):
    """iommu_hwpt_vtd_s1.flags: IOMMU_VTD_S1_*."""
    SRE = C.IOMMU_VTD_S1_SRE
    EAFE = C.IOMMU_VTD_S1_EAFE
    WPE = C.IOMMU_VTD_S1_WPE


class HWInfoType(IntEnum):
    """iommu_hw_info.{in,out}_data_type: IOMMU_HW_INFO_TYPE_* (DEFAULT is an alias of NONE)."""
    NONE = C.IOMMU_HW_INFO_TYPE_NONE
    DEFAULT = C.IOMMU_HW_INFO_TYPE_DEFAULT
    INTEL_VTD = C.IOMMU_HW_INFO_TYPE_INTEL_VTD
    ARM_SMMUV3 = C.IOMMU_HW_INFO_TYPE_ARM_SMMUV3
    TEGRA241_CMDQV = C.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV
    AMD = C.IOMMU_HW_INFO_TYPE_AMD


class HWInfoFlag(IntFlag):
    """iommu_hw_info.flags: IOMMU_HW_INFO_FLAG_*."""
    INPUT_TYPE = C.IOMMU_HW_INFO_FLAG_INPUT_TYPE


class HWCap(IntFlag):
    """iommu_hw_info.out_capabilities: IOMMU_HW_CAP_*."""
    DIRTY_TRACKING = C.IOMMU_HW_CAP_DIRTY_TRACKING
    PCI_PASID_EXEC = C.IOMMU_HW_CAP_PCI_PASID_EXEC
    PCI_PASID_PRIV = C.IOMMU_HW_CAP_PCI_PASID_PRIV
    PCI_ATS_NOT_SUPPORTED = C.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED


class HWInfoVTDFlag(IntFlag):
    """iommu_hw_info_vtd.flags: IOMMU_HW_INFO_VTD_*."""
    ERRATA_772415_SPR17 = C.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17


class HWInfoARMSMMUv3Flag(IntFlag):
    """iommu_hw_info_arm_smmuv3.flags: IOMMU_HW_INFO_ARM_SMMUV3_*."""
    ERRATA_REPEAT_TLBI_CFGI = C.IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI


class HWPTDirtyTrackingFlag(IntFlag):
    """iommu_hwpt_set_dirty_tracking.flags: IOMMU_HWPT_DIRTY_TRACKING_*."""
    ENABLE = C.IOMMU_HWPT_DIRTY_TRACKING_ENABLE


class HWPTGetDirtyBitmapFlag(IntFlag):
    """iommu_hwpt_get_dirty_bitmap.flags: IOMMU_HWPT_GET_DIRTY_BITMAP_*."""
    NO_CLEAR = C.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR


class HWPTInvalidateDataType(IntEnum):
    """iommu_hwpt_invalidate.data_type: IOMMU_{HWPT,VIOMMU}_INVALIDATE_DATA_*."""
    VTD_S1 = C.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1
    VIOMMU_ARM_SMMUV3 = C.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3


class VTDInvalidateFlag(IntFlag):
    """iommu_hwpt_vtd_s1_invalidate.flags: IOMMU_VTD_INV_FLAGS_*."""
    LEAF = C.IOMMU_VTD_INV_FLAGS_LEAF


class PgfaultFlag(IntFlag):
    """iommu_hwpt_pgfault.flags (read from a fault fd): IOMMU_PGFAULT_FLAGS_*."""
    PASID_VALID = C.IOMMU_PGFAULT_FLAGS_PASID_VALID
    LAST_PAGE = C.IOMMU_PGFAULT_FLAGS_LAST_PAGE


class PgfaultPerm(IntFlag):
    """iommu_hwpt_pgfault.perm: IOMMU_PGFAULT_PERM_*."""
    READ = C.IOMMU_PGFAULT_PERM_READ
    WRITE = C.IOMMU_PGFAULT_PERM_WRITE
    EXEC = C.IOMMU_PGFAULT_PERM_EXEC
    PRIV = C.IOMMU_PGFAULT_PERM_PRIV


class PageResponseCode(IntEnum):
    """iommu_hwpt_page_response.code (written to a fault fd): IOMMUFD_PAGE_RESP_*."""
    SUCCESS = C.IOMMUFD_PAGE_RESP_SUCCESS
    INVALID = C.IOMMUFD_PAGE_RESP_INVALID


class VIOMMUType(IntEnum):
    """iommu_viommu_alloc.type: IOMMU_VIOMMU_TYPE_*."""
    DEFAULT = C.IOMMU_VIOMMU_TYPE_DEFAULT
    ARM_SMMUV3 = C.IOMMU_VIOMMU_TYPE_ARM_SMMUV3
    TEGRA241_CMDQV = C.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV


class VEventQFlag(IntFlag):
    """iommufd_vevent_header.flags: IOMMU_VEVENTQ_FLAG_*."""
    LOST_EVENTS = C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS


class VEventQType(IntEnum):
    """iommu_veventq_alloc.type: IOMMU_VEVENTQ_TYPE_*."""
    DEFAULT = C.IOMMU_VEVENTQ_TYPE_DEFAULT
    ARM_SMMUV3 = C.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3
    TEGRA241_CMDQV = C.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV


class HWQueueType(IntEnum):
    """iommu_hw_queue_alloc.type: IOMMU_HW_QUEUE_TYPE_*."""
    DEFAULT = C.IOMMU_HW_QUEUE_TYPE_DEFAULT
    TEGRA241_CMDQV = C.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV

__all__ = [
    "HWCap",
    "HWInfoARMSMMUv3Flag",
    "HWInfoFlag",
    "HWInfoType",
    "HWInfoVTDFlag",
    "HWPTAllocFlag",
    "HWPTDataType",
    "HWPTDirtyTrackingFlag",
    "HWPTGetDirtyBitmapFlag",
    "HWPTInvalidateDataType",
    "HWQueueType",
    "IOASMapFlag",
    "IOMMUOption",
    "IOMMUOptionOp",
    "PageResponseCode",
    "PgfaultFlag",
    "PgfaultPerm",
    "VEventQFlag",
    "VEventQType",
    "VFIOIOASOp",
    "VIOMMUType",
    "VTDInvalidateFlag",
    "VTDS1Flag",
]
