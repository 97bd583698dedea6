"""Constants of linux/vfio.h and linux/vfio_zdev.h (Linux 7.3) as IntEnum/IntFlag.

Members are the kernel names without their common prefix; every value is read from cdefs/
(``C.<KERNEL_NAME>``), so a grep for the kernel name finds the cdef, the enum and its users.
Import them from :mod:`pyvfio.uapi`, which re-exports everything here.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from pyvfio._ffi import C

VFIO_API_VERSION: int = C.VFIO_API_VERSION


class GroupFlag(IntFlag):
    """vfio_group_status.flags: VFIO_GROUP_FLAGS_*."""
    VIABLE = C.VFIO_GROUP_FLAGS_VIABLE
    CONTAINER_SET = C.VFIO_GROUP_FLAGS_CONTAINER_SET


class DeviceFlag(IntFlag):
    """vfio_device_info.flags: VFIO_DEVICE_FLAGS_*."""
    RESET = C.VFIO_DEVICE_FLAGS_RESET
    PCI = C.VFIO_DEVICE_FLAGS_PCI
    PLATFORM = C.VFIO_DEVICE_FLAGS_PLATFORM
    AMBA = C.VFIO_DEVICE_FLAGS_AMBA
    CCW = C.VFIO_DEVICE_FLAGS_CCW
    AP = C.VFIO_DEVICE_FLAGS_AP
    FSL_MC = C.VFIO_DEVICE_FLAGS_FSL_MC
    CAPS = C.VFIO_DEVICE_FLAGS_CAPS
    CDX = C.VFIO_DEVICE_FLAGS_CDX


# the device API names of the mdev `device_api` sysfs attribute (strings: not in cdefs)
VFIO_DEVICE_API_PCI_STRING = "vfio-pci"
VFIO_DEVICE_API_PLATFORM_STRING = "vfio-platform"
VFIO_DEVICE_API_AMBA_STRING = "vfio-amba"
VFIO_DEVICE_API_CCW_STRING = "vfio-ccw"
VFIO_DEVICE_API_AP_STRING = "vfio-ap"


class DeviceInfoCap(IntEnum):
    """VFIO_DEVICE_GET_INFO capability ids: VFIO_DEVICE_INFO_CAP_*."""
    ZPCI_BASE = C.VFIO_DEVICE_INFO_CAP_ZPCI_BASE
    ZPCI_GROUP = C.VFIO_DEVICE_INFO_CAP_ZPCI_GROUP
    ZPCI_UTIL = C.VFIO_DEVICE_INFO_CAP_ZPCI_UTIL
    ZPCI_PFIP = C.VFIO_DEVICE_INFO_CAP_ZPCI_PFIP
    PCI_ATOMIC_COMP = C.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP


class PCIAtomicComp(IntFlag):
    """vfio_device_info_cap_pci_atomic_comp.flags: VFIO_PCI_ATOMIC_COMP*."""
    COMP32 = C.VFIO_PCI_ATOMIC_COMP32
    COMP64 = C.VFIO_PCI_ATOMIC_COMP64
    COMP128 = C.VFIO_PCI_ATOMIC_COMP128


class ZPCIFlag(IntFlag):
    """vfio_device_info_cap_zpci_group.flags: VFIO_DEVICE_INFO_ZPCI_FLAG_*."""
    REFRESH = C.VFIO_DEVICE_INFO_ZPCI_FLAG_REFRESH


class RegionInfoFlag(IntFlag):
    """vfio_region_info.flags: VFIO_REGION_INFO_FLAG_*."""
    READ = C.VFIO_REGION_INFO_FLAG_READ
    WRITE = C.VFIO_REGION_INFO_FLAG_WRITE
    MMAP = C.VFIO_REGION_INFO_FLAG_MMAP
    CAPS = C.VFIO_REGION_INFO_FLAG_CAPS


class RegionInfoCap(IntEnum):
    """VFIO_DEVICE_GET_REGION_INFO capability ids: VFIO_REGION_INFO_CAP_*."""
    SPARSE_MMAP = C.VFIO_REGION_INFO_CAP_SPARSE_MMAP
    TYPE = C.VFIO_REGION_INFO_CAP_TYPE
    MSIX_MAPPABLE = C.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE
    NVLINK2_SSATGT = C.VFIO_REGION_INFO_CAP_NVLINK2_SSATGT
    NVLINK2_LNKSPD = C.VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD


class RegionType(IntEnum):
    """vfio_region_info_cap_type.type: VFIO_REGION_TYPE_*.

    A vendor-specific type is ``PCI_VENDOR_TYPE | vendor_id`` (e.g. 0x80008086 for Intel), its
    subtypes are in the RegionSubtype<Vendor> class; PCI_VENDOR_MASK extracts the vendor id.
    """

    PCI_VENDOR_TYPE = C.VFIO_REGION_TYPE_PCI_VENDOR_TYPE
    PCI_VENDOR_MASK = C.VFIO_REGION_TYPE_PCI_VENDOR_MASK
    GFX = C.VFIO_REGION_TYPE_GFX
    CCW = C.VFIO_REGION_TYPE_CCW
    MIGRATION_DEPRECATED = C.VFIO_REGION_TYPE_MIGRATION_DEPRECATED


# subtypes: one number space per region type, hence one class each
class RegionSubtypeIntel(IntEnum):
    """Subtypes of RegionType.PCI_VENDOR_TYPE | 0x8086: VFIO_REGION_SUBTYPE_INTEL_*."""
    IGD_OPREGION = C.VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION
    IGD_HOST_CFG = C.VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG
    IGD_LPC_CFG = C.VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG


class RegionSubtypeNVIDIA(IntEnum):
    """Subtypes of RegionType.PCI_VENDOR_TYPE | 0x10de, deprecated: VFIO_REGION_SUBTYPE_NVIDIA_*."""
    NVLINK2_RAM = C.VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM


class RegionSubtypeIBM(IntEnum):
    """Subtypes of RegionType.PCI_VENDOR_TYPE | 0x1014 (deprecated): VFIO_REGION_SUBTYPE_IBM_*."""
    NVLINK2_ATSD = C.VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD


class RegionSubtypeGFX(IntEnum):
    """Subtypes of RegionType.GFX: VFIO_REGION_SUBTYPE_GFX_*."""
    EDID = C.VFIO_REGION_SUBTYPE_GFX_EDID


class RegionSubtypeCCW(IntEnum):
    """Subtypes of RegionType.CCW: VFIO_REGION_SUBTYPE_CCW_*."""
    ASYNC_CMD = C.VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD
    SCHIB = C.VFIO_REGION_SUBTYPE_CCW_SCHIB
    CRW = C.VFIO_REGION_SUBTYPE_CCW_CRW


class RegionSubtypeMigration(IntEnum):
    """Subtypes of RegionType.MIGRATION_DEPRECATED: VFIO_REGION_SUBTYPE_MIGRATION_*."""
    DEPRECATED = C.VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED


class GFXLinkState(IntEnum):
    """vfio_region_gfx_edid.link_state: VFIO_DEVICE_GFX_LINK_STATE_*."""
    UP = C.VFIO_DEVICE_GFX_LINK_STATE_UP
    DOWN = C.VFIO_DEVICE_GFX_LINK_STATE_DOWN


class DeviceStateV1(IntFlag):
    """vfio_device_migration_info.device_state (v1 protocol): VFIO_DEVICE_STATE_V1_*."""
    STOP = C.VFIO_DEVICE_STATE_V1_STOP
    RUNNING = C.VFIO_DEVICE_STATE_V1_RUNNING
    SAVING = C.VFIO_DEVICE_STATE_V1_SAVING
    RESUMING = C.VFIO_DEVICE_STATE_V1_RESUMING
    MASK = C.VFIO_DEVICE_STATE_MASK


class IrqInfoFlag(IntFlag):
    """vfio_irq_info.flags: VFIO_IRQ_INFO_*."""
    EVENTFD = C.VFIO_IRQ_INFO_EVENTFD
    MASKABLE = C.VFIO_IRQ_INFO_MASKABLE
    AUTOMASKED = C.VFIO_IRQ_INFO_AUTOMASKED
    NORESIZE = C.VFIO_IRQ_INFO_NORESIZE


class IrqSetFlag(IntFlag):
    """vfio_irq_set.flags: VFIO_IRQ_SET_* (one DATA_* and one ACTION_* bit)."""
    DATA_NONE = C.VFIO_IRQ_SET_DATA_NONE
    DATA_BOOL = C.VFIO_IRQ_SET_DATA_BOOL
    DATA_EVENTFD = C.VFIO_IRQ_SET_DATA_EVENTFD
    ACTION_MASK = C.VFIO_IRQ_SET_ACTION_MASK
    ACTION_UNMASK = C.VFIO_IRQ_SET_ACTION_UNMASK
    ACTION_TRIGGER = C.VFIO_IRQ_SET_ACTION_TRIGGER
    DATA_TYPE_MASK = C.VFIO_IRQ_SET_DATA_TYPE_MASK
    ACTION_TYPE_MASK = C.VFIO_IRQ_SET_ACTION_TYPE_MASK


class PCIRegion(IntEnum):
    """vfio-pci region indexes: VFIO_PCI_*_REGION_INDEX (device-specific ones follow)."""
    BAR0 = C.VFIO_PCI_BAR0_REGION_INDEX
    BAR1 = C.VFIO_PCI_BAR1_REGION_INDEX
    BAR2 = C.VFIO_PCI_BAR2_REGION_INDEX
    BAR3 = C.VFIO_PCI_BAR3_REGION_INDEX
    BAR4 = C.VFIO_PCI_BAR4_REGION_INDEX
    BAR5 = C.VFIO_PCI_BAR5_REGION_INDEX
    ROM = C.VFIO_PCI_ROM_REGION_INDEX
    CONFIG = C.VFIO_PCI_CONFIG_REGION_INDEX
    VGA = C.VFIO_PCI_VGA_REGION_INDEX


class PCIIrq(IntEnum):
    """vfio-pci irq indexes: VFIO_PCI_*_IRQ_INDEX."""
    INTX = C.VFIO_PCI_INTX_IRQ_INDEX
    MSI = C.VFIO_PCI_MSI_IRQ_INDEX
    MSIX = C.VFIO_PCI_MSIX_IRQ_INDEX
    ERR = C.VFIO_PCI_ERR_IRQ_INDEX
    REQ = C.VFIO_PCI_REQ_IRQ_INDEX


class CCWRegion(IntEnum):
    """vfio-ccw region indexes: VFIO_CCW_*_REGION_INDEX."""
    CONFIG = C.VFIO_CCW_CONFIG_REGION_INDEX


class CCWIrq(IntEnum):
    """vfio-ccw irq indexes: VFIO_CCW_*_IRQ_INDEX."""
    IO = C.VFIO_CCW_IO_IRQ_INDEX
    CRW = C.VFIO_CCW_CRW_IRQ_INDEX
    REQ = C.VFIO_CCW_REQ_IRQ_INDEX


class APIrq(IntEnum):
    """vfio-ap irq indexes: VFIO_AP_*_IRQ_INDEX."""
    REQ = C.VFIO_AP_REQ_IRQ_INDEX
    CFG_CHG = C.VFIO_AP_CFG_CHG_IRQ_INDEX


VFIO_PCI_NUM_REGIONS: int = C.VFIO_PCI_NUM_REGIONS
VFIO_PCI_NUM_IRQS: int = C.VFIO_PCI_NUM_IRQS
VFIO_CCW_NUM_REGIONS: int = C.VFIO_CCW_NUM_REGIONS
VFIO_CCW_NUM_IRQS: int = C.VFIO_CCW_NUM_IRQS
VFIO_AP_NUM_IRQS: int = C.VFIO_AP_NUM_IRQS  # 1 before VFIO_AP_CFG_CHG_IRQ_INDEX (6.12)


class PCIDevID(IntEnum):
    """vfio_pci_dependent_device.devid: VFIO_PCI_DEVID_*."""
    OWNED = C.VFIO_PCI_DEVID_OWNED
    # the header's -1, as the u32 devid field reads back
    NOT_OWNED = C.VFIO_PCI_DEVID_NOT_OWNED & 0xFFFFFFFF


class PCIHotResetFlag(IntFlag):
    """vfio_pci_hot_reset_info.flags: VFIO_PCI_HOT_RESET_FLAG_*."""
    DEV_ID = C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID
    DEV_ID_OWNED = C.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED


class GFXPlaneType(IntFlag):
    """vfio_device_gfx_plane_info.flags: VFIO_GFX_PLANE_TYPE_*."""
    PROBE = C.VFIO_GFX_PLANE_TYPE_PROBE
    DMABUF = C.VFIO_GFX_PLANE_TYPE_DMABUF
    REGION = C.VFIO_GFX_PLANE_TYPE_REGION


class IoeventfdFlag(IntFlag):
    """vfio_device_ioeventfd.flags: VFIO_DEVICE_IOEVENTFD_{8,16,32,64,SIZE_MASK} (access width)."""
    SIZE_8 = C.VFIO_DEVICE_IOEVENTFD_8
    SIZE_16 = C.VFIO_DEVICE_IOEVENTFD_16
    SIZE_32 = C.VFIO_DEVICE_IOEVENTFD_32
    SIZE_64 = C.VFIO_DEVICE_IOEVENTFD_64
    SIZE_MASK = C.VFIO_DEVICE_IOEVENTFD_SIZE_MASK


class DeviceFeatureFlag(IntFlag):
    """vfio_device_feature.flags: VFIO_DEVICE_FEATURE_{MASK,GET,SET,PROBE}; the low 16 bits
    hold a :class:`DeviceFeature`."""

    MASK = C.VFIO_DEVICE_FEATURE_MASK
    GET = C.VFIO_DEVICE_FEATURE_GET
    SET = C.VFIO_DEVICE_FEATURE_SET
    PROBE = C.VFIO_DEVICE_FEATURE_PROBE


class DeviceFeature(IntEnum):
    """Feature ids of VFIO_DEVICE_FEATURE: VFIO_DEVICE_FEATURE_*."""
    PCI_VF_TOKEN = C.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN
    MIGRATION = C.VFIO_DEVICE_FEATURE_MIGRATION
    MIG_DEVICE_STATE = C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
    LOW_POWER_ENTRY = C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
    LOW_POWER_ENTRY_WITH_WAKEUP = C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
    LOW_POWER_EXIT = C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT
    DMA_LOGGING_START = C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START
    DMA_LOGGING_STOP = C.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP
    DMA_LOGGING_REPORT = C.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT
    MIG_DATA_SIZE = C.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
    BUS_MASTER = C.VFIO_DEVICE_FEATURE_BUS_MASTER
    DMA_BUF = C.VFIO_DEVICE_FEATURE_DMA_BUF
    MIG_PRECOPY_INFOv2 = C.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
    ZPCI_ERROR = C.VFIO_DEVICE_FEATURE_ZPCI_ERROR


class BusMasterOp(IntEnum):
    """vfio_device_feature_bus_master.op: VFIO_DEVICE_FEATURE_{CLEAR,SET}_MASTER."""
    CLEAR_MASTER = C.VFIO_DEVICE_FEATURE_CLEAR_MASTER
    SET_MASTER = C.VFIO_DEVICE_FEATURE_SET_MASTER


class DeviceBindFlag(IntFlag):
    """vfio_device_bind_iommufd.flags: VFIO_DEVICE_BIND_FLAG_*."""
    TOKEN = C.VFIO_DEVICE_BIND_FLAG_TOKEN


class DeviceAttachFlag(IntFlag):
    """vfio_device_attach_iommufd_pt.flags: VFIO_DEVICE_ATTACH_*."""
    PASID = C.VFIO_DEVICE_ATTACH_PASID


class DeviceDetachFlag(IntFlag):
    """vfio_device_detach_iommufd_pt.flags: VFIO_DEVICE_DETACH_*."""
    PASID = C.VFIO_DEVICE_DETACH_PASID


class MigrationFlag(IntFlag):
    """vfio_device_feature_migration.flags: VFIO_MIGRATION_*."""
    STOP_COPY = C.VFIO_MIGRATION_STOP_COPY
    P2P = C.VFIO_MIGRATION_P2P
    PRE_COPY = C.VFIO_MIGRATION_PRE_COPY


class DeviceMigState(IntEnum):
    """enum vfio_device_mig_state: VFIO_DEVICE_STATE_* (VFIO_DEVICE_STATE_NR is the count)."""
    ERROR = C.VFIO_DEVICE_STATE_ERROR
    STOP = C.VFIO_DEVICE_STATE_STOP
    RUNNING = C.VFIO_DEVICE_STATE_RUNNING
    STOP_COPY = C.VFIO_DEVICE_STATE_STOP_COPY
    RESUMING = C.VFIO_DEVICE_STATE_RESUMING
    RUNNING_P2P = C.VFIO_DEVICE_STATE_RUNNING_P2P
    PRE_COPY = C.VFIO_DEVICE_STATE_PRE_COPY
    PRE_COPY_P2P = C.VFIO_DEVICE_STATE_PRE_COPY_P2P


VFIO_DEVICE_STATE_NR: int = C.VFIO_DEVICE_STATE_NR


class PrecopyInfoFlag(IntFlag):
    """vfio_precopy_info.flags: VFIO_PRECOPY_INFO_*."""
    REINIT = C.VFIO_PRECOPY_INFO_REINIT

__all__ = [
    "APIrq",
    "BusMasterOp",
    "CCWIrq",
    "CCWRegion",
    "DeviceAttachFlag",
    "DeviceBindFlag",
    "DeviceDetachFlag",
    "DeviceFeature",
    "DeviceFeatureFlag",
    "DeviceFlag",
    "DeviceInfoCap",
    "DeviceMigState",
    "DeviceStateV1",
    "GFXLinkState",
    "GFXPlaneType",
    "GroupFlag",
    "IoeventfdFlag",
    "IrqInfoFlag",
    "IrqSetFlag",
    "MigrationFlag",
    "PCIAtomicComp",
    "PCIDevID",
    "PCIHotResetFlag",
    "PCIIrq",
    "PCIRegion",
    "PrecopyInfoFlag",
    "RegionInfoCap",
    "RegionInfoFlag",
    "RegionSubtypeCCW",
    "RegionSubtypeGFX",
    "RegionSubtypeIBM",
    "RegionSubtypeIntel",
    "RegionSubtypeMigration",
    "RegionSubtypeNVIDIA",
    "RegionType",
    "VFIO_API_VERSION",
    "VFIO_AP_NUM_IRQS",
    "VFIO_CCW_NUM_IRQS",
    "VFIO_CCW_NUM_REGIONS",
    "VFIO_DEVICE_API_AMBA_STRING",
    "VFIO_DEVICE_API_AP_STRING",
    "VFIO_DEVICE_API_CCW_STRING",
    "VFIO_DEVICE_API_PCI_STRING",
    "VFIO_DEVICE_API_PLATFORM_STRING",
    "VFIO_DEVICE_STATE_NR",
    "VFIO_PCI_NUM_IRQS",
    "VFIO_PCI_NUM_REGIONS",
    "ZPCIFlag",
]
