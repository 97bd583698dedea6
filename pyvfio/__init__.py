"""pyvfio: Linux userspace drivers over VFIO and iommufd, and a fake kernel to test them on."""

from __future__ import annotations

__version__ = "0.1.0"

from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.dma import DMASpace, Mapping, allocate
from pyvfio.errors import (
    BindError,
    GroupConflictError,
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
from pyvfio.vfio_compat import CompatContainer

__all__ = [
    "BindError",
    "CompatContainer",
    "Container",
    "DMASpace",
    "Device",
    "EventFD",
    "Group",
    "GroupConflictError",
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
