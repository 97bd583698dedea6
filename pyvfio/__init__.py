"""pyvfio: Linux userspace drivers over VFIO and iommufd, and a fake kernel to test them on."""

from __future__ import annotations

__version__ = "0.1.0"

from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.dma import DMASpace, Mapping, allocate
from pyvfio.errors import (
    BindError,
    GroupNotViableError,
    ModeUnavailableError,
    NotBoundError,
    PyvfioError,
    UnsupportedAPIError,
)
from pyvfio.group import Group
from pyvfio.irq import EventFD
from pyvfio.kernel import Kernel, LinuxKernel
from pyvfio.pci import PCIConfig

__all__ = [
    "BindError",
    "Container",
    "DMASpace",
    "Device",
    "EventFD",
    "Group",
    "GroupNotViableError",
    "Kernel",
    "LinuxKernel",
    "Mapping",
    "ModeUnavailableError",
    "NotBoundError",
    "PCIConfig",
    "PyvfioError",
    "UnsupportedAPIError",
    "__version__",
    "allocate",
]
