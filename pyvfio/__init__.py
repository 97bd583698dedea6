"""pyvfio: Linux userspace drivers over VFIO and iommufd, and a fake kernel to test them on."""

from __future__ import annotations

__version__ = "0.1.0"

from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.dma import Mapping, allocate
from pyvfio.errors import (
    BindError,
    CloseError,
    DriverError,
    GroupConflictError,
    GroupNotViableError,
    IOVAExhaustedError,
    ModeUnavailableError,
    NotBoundError,
    NotMappedError,
    PyvfioError,
    UnsupportedAPIError,
)
from pyvfio.group import Group
from pyvfio.irq import EventFD
from pyvfio.kernel import Kernel, LinuxKernel
from pyvfio.memory import DMABuffer
from pyvfio.opener import IOMMU_MODES, MODES, open_device
from pyvfio.pci import PCIConfig
from pyvfio.space import DMASpace
from pyvfio.vfio_compat import CompatContainer

__all__ = [
    "BindError",
    "CloseError",
    "DMABuffer",
    "DriverError",
    "IOVAExhaustedError",
    "NotMappedError",
    "CompatContainer",
    "Container",
    "DMASpace",
    "Device",
    "EventFD",
    "Group",
    "GroupConflictError",
    "GroupNotViableError",
    "IOMMU_MODES",
    "Kernel",
    "LinuxKernel",
    "MODES",
    "Mapping",
    "ModeUnavailableError",
    "NotBoundError",
    "PCIConfig",
    "PyvfioError",
    "UnsupportedAPIError",
    "__version__",
    "allocate",
    "open_device",
]
