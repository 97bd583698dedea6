"""Kernel uAPI names as Python values: ioctl request numbers, flags, indexes, capability ids.

Every VFIO and iommufd request is ``_IO(';', nr)`` (vfio.h, iommufd.h): no size and no direction
bits, so the same number means different ioctls on container, device and migration fds
(0x3b70..0x3b79).  A request is therefore an :class:`Ioctl`, an ``int`` that also carries its
kernel name, so an error can always say which ioctl failed.
"""

from __future__ import annotations

VFIO_TYPE = ord(";")
VFIO_BASE = 100
IOMMUFD_CMD_BASE = 0x80


def _IO(type_: int, nr: int) -> int:  # noqa: N802 - the kernel's macro name
    """Return the request number of ``_IO(type, nr)`` (asm-generic/ioctl.h: no dir, no size)."""
    return (type_ << 8) | nr


class Ioctl(int):
    """An ioctl request number that knows its kernel name (``VFIO_DEVICE_GET_INFO``)."""

    name: str

    def __new__(cls, name: str, nr: int) -> Ioctl:
        self = super().__new__(cls, _IO(VFIO_TYPE, nr))
        self.name = name
        return self

    def __repr__(self) -> str:
        return f"<{self.name} {int(self):#x}>"

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        return (Ioctl, (self.name, int(self) & 0xFF))


VFIO_GET_API_VERSION = Ioctl("VFIO_GET_API_VERSION", VFIO_BASE + 0)
VFIO_CHECK_EXTENSION = Ioctl("VFIO_CHECK_EXTENSION", VFIO_BASE + 1)
VFIO_SET_IOMMU = Ioctl("VFIO_SET_IOMMU", VFIO_BASE + 2)
VFIO_GROUP_GET_STATUS = Ioctl("VFIO_GROUP_GET_STATUS", VFIO_BASE + 3)
VFIO_GROUP_SET_CONTAINER = Ioctl("VFIO_GROUP_SET_CONTAINER", VFIO_BASE + 4)
VFIO_GROUP_UNSET_CONTAINER = Ioctl("VFIO_GROUP_UNSET_CONTAINER", VFIO_BASE + 5)
VFIO_GROUP_GET_DEVICE_FD = Ioctl("VFIO_GROUP_GET_DEVICE_FD", VFIO_BASE + 6)
VFIO_DEVICE_GET_INFO = Ioctl("VFIO_DEVICE_GET_INFO", VFIO_BASE + 7)
VFIO_DEVICE_GET_REGION_INFO = Ioctl("VFIO_DEVICE_GET_REGION_INFO", VFIO_BASE + 8)
VFIO_DEVICE_GET_IRQ_INFO = Ioctl("VFIO_DEVICE_GET_IRQ_INFO", VFIO_BASE + 9)
VFIO_DEVICE_SET_IRQS = Ioctl("VFIO_DEVICE_SET_IRQS", VFIO_BASE + 10)
VFIO_DEVICE_RESET = Ioctl("VFIO_DEVICE_RESET", VFIO_BASE + 11)
VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = Ioctl("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", VFIO_BASE + 12)
VFIO_DEVICE_PCI_HOT_RESET = Ioctl("VFIO_DEVICE_PCI_HOT_RESET", VFIO_BASE + 13)
VFIO_DEVICE_QUERY_GFX_PLANE = Ioctl("VFIO_DEVICE_QUERY_GFX_PLANE", VFIO_BASE + 14)
VFIO_DEVICE_GET_GFX_DMABUF = Ioctl("VFIO_DEVICE_GET_GFX_DMABUF", VFIO_BASE + 15)
VFIO_DEVICE_IOEVENTFD = Ioctl("VFIO_DEVICE_IOEVENTFD", VFIO_BASE + 16)
VFIO_DEVICE_FEATURE = Ioctl("VFIO_DEVICE_FEATURE", VFIO_BASE + 17)
VFIO_DEVICE_BIND_IOMMUFD = Ioctl("VFIO_DEVICE_BIND_IOMMUFD", VFIO_BASE + 18)
VFIO_DEVICE_ATTACH_IOMMUFD_PT = Ioctl("VFIO_DEVICE_ATTACH_IOMMUFD_PT", VFIO_BASE + 19)
VFIO_DEVICE_DETACH_IOMMUFD_PT = Ioctl("VFIO_DEVICE_DETACH_IOMMUFD_PT", VFIO_BASE + 20)
VFIO_MIG_GET_PRECOPY_INFO = Ioctl("VFIO_MIG_GET_PRECOPY_INFO", VFIO_BASE + 21)
VFIO_IOMMU_GET_INFO = Ioctl("VFIO_IOMMU_GET_INFO", VFIO_BASE + 12)
VFIO_IOMMU_MAP_DMA = Ioctl("VFIO_IOMMU_MAP_DMA", VFIO_BASE + 13)
VFIO_IOMMU_UNMAP_DMA = Ioctl("VFIO_IOMMU_UNMAP_DMA", VFIO_BASE + 14)
VFIO_IOMMU_ENABLE = Ioctl("VFIO_IOMMU_ENABLE", VFIO_BASE + 15)
VFIO_IOMMU_DISABLE = Ioctl("VFIO_IOMMU_DISABLE", VFIO_BASE + 16)
VFIO_IOMMU_DIRTY_PAGES = Ioctl("VFIO_IOMMU_DIRTY_PAGES", VFIO_BASE + 17)
VFIO_IOMMU_SPAPR_TCE_GET_INFO = Ioctl("VFIO_IOMMU_SPAPR_TCE_GET_INFO", VFIO_BASE + 12)
VFIO_EEH_PE_OP = Ioctl("VFIO_EEH_PE_OP", VFIO_BASE + 21)
VFIO_IOMMU_SPAPR_REGISTER_MEMORY = Ioctl("VFIO_IOMMU_SPAPR_REGISTER_MEMORY", VFIO_BASE + 17)
VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = Ioctl("VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY", VFIO_BASE + 18)
VFIO_IOMMU_SPAPR_TCE_CREATE = Ioctl("VFIO_IOMMU_SPAPR_TCE_CREATE", VFIO_BASE + 19)
VFIO_IOMMU_SPAPR_TCE_REMOVE = Ioctl("VFIO_IOMMU_SPAPR_TCE_REMOVE", VFIO_BASE + 20)
IOMMU_DESTROY = Ioctl("IOMMU_DESTROY", IOMMUFD_CMD_BASE + 0)
IOMMU_IOAS_ALLOC = Ioctl("IOMMU_IOAS_ALLOC", IOMMUFD_CMD_BASE + 1)
IOMMU_IOAS_ALLOW_IOVAS = Ioctl("IOMMU_IOAS_ALLOW_IOVAS", IOMMUFD_CMD_BASE + 2)
IOMMU_IOAS_COPY = Ioctl("IOMMU_IOAS_COPY", IOMMUFD_CMD_BASE + 3)
IOMMU_IOAS_IOVA_RANGES = Ioctl("IOMMU_IOAS_IOVA_RANGES", IOMMUFD_CMD_BASE + 4)
IOMMU_IOAS_MAP = Ioctl("IOMMU_IOAS_MAP", IOMMUFD_CMD_BASE + 5)
IOMMU_IOAS_UNMAP = Ioctl("IOMMU_IOAS_UNMAP", IOMMUFD_CMD_BASE + 6)
IOMMU_OPTION = Ioctl("IOMMU_OPTION", IOMMUFD_CMD_BASE + 7)
IOMMU_VFIO_IOAS = Ioctl("IOMMU_VFIO_IOAS", IOMMUFD_CMD_BASE + 8)
IOMMU_HWPT_ALLOC = Ioctl("IOMMU_HWPT_ALLOC", IOMMUFD_CMD_BASE + 9)
IOMMU_GET_HW_INFO = Ioctl("IOMMU_GET_HW_INFO", IOMMUFD_CMD_BASE + 10)
IOMMU_HWPT_SET_DIRTY_TRACKING = Ioctl("IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMUFD_CMD_BASE + 11)
IOMMU_HWPT_GET_DIRTY_BITMAP = Ioctl("IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMUFD_CMD_BASE + 12)
IOMMU_HWPT_INVALIDATE = Ioctl("IOMMU_HWPT_INVALIDATE", IOMMUFD_CMD_BASE + 13)
IOMMU_FAULT_QUEUE_ALLOC = Ioctl("IOMMU_FAULT_QUEUE_ALLOC", IOMMUFD_CMD_BASE + 14)
IOMMU_IOAS_MAP_FILE = Ioctl("IOMMU_IOAS_MAP_FILE", IOMMUFD_CMD_BASE + 15)
IOMMU_VIOMMU_ALLOC = Ioctl("IOMMU_VIOMMU_ALLOC", IOMMUFD_CMD_BASE + 16)
IOMMU_VDEVICE_ALLOC = Ioctl("IOMMU_VDEVICE_ALLOC", IOMMUFD_CMD_BASE + 17)
IOMMU_IOAS_CHANGE_PROCESS = Ioctl("IOMMU_IOAS_CHANGE_PROCESS", IOMMUFD_CMD_BASE + 18)
IOMMU_VEVENTQ_ALLOC = Ioctl("IOMMU_VEVENTQ_ALLOC", IOMMUFD_CMD_BASE + 19)
IOMMU_HW_QUEUE_ALLOC = Ioctl("IOMMU_HW_QUEUE_ALLOC", IOMMUFD_CMD_BASE + 20)
IOMMU_IOAS_NOIOMMU_GET_PA = Ioctl("IOMMU_IOAS_NOIOMMU_GET_PA", IOMMUFD_CMD_BASE + 21)

IOCTLS: dict[str, Ioctl] = {
    name: value for name, value in globals().items() if isinstance(value, Ioctl)
}
"""Every ioctl of vfio.h and iommufd.h by kernel name (56 as of Linux 7.3)."""

# Not uAPI: drivers/iommu/iommufd/iommufd_test.h (cdefs/iommufd_test.h), answered only by kernels
# built with CONFIG_IOMMUFD_TEST (the selftest's mock domain), so kept out of IOCTLS.
TEST_IOCTLS: dict[str, Ioctl] = {
    "IOMMU_TEST_CMD": Ioctl("IOMMU_TEST_CMD", IOMMUFD_CMD_BASE + 32),
}
"""The kernel-internal test ioctls by kernel name (``IOMMU_TEST_CMD`` = ``_IO(';', 0xa0)``)."""


# The constants of each header live in a module of their own; uapi is the one name to import.
from pyvfio.uapi_iommufd import *  # noqa: E402, F403
from pyvfio.uapi_type1 import *  # noqa: E402, F403
from pyvfio.uapi_vfio import *  # noqa: E402, F403
