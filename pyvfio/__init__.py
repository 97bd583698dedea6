"""pyvfio: Linux userspace drivers over VFIO and iommufd, and a fake kernel to test them on."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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

# The object API loads cffi and the generated uAPI module: imported on first use (PEP 562), so
# `pyvfio --help` and the host tooling start without it.
if TYPE_CHECKING:
    from pyvfio.container import Container
    from pyvfio.device import Device
    from pyvfio.dma import Mapping, allocate
    from pyvfio.group import Group
    from pyvfio.irq import EventFD
    from pyvfio.kernel import Kernel, LinuxKernel
    from pyvfio.memory import DMABuffer
    from pyvfio.opener import IOMMU_MODES, MODES, open_device
    from pyvfio.pci import PCIConfig
    from pyvfio.space import DMASpace
    from pyvfio.vfio_compat import CompatContainer

_LAZY = {
    "Container": "pyvfio.container",
    "Device": "pyvfio.device",
    "Mapping": "pyvfio.dma",
    "allocate": "pyvfio.dma",
    "Group": "pyvfio.group",
    "EventFD": "pyvfio.irq",
    "Kernel": "pyvfio.kernel",
    "LinuxKernel": "pyvfio.kernel",
    "DMABuffer": "pyvfio.memory",
    "IOMMU_MODES": "pyvfio.opener",
    "MODES": "pyvfio.opener",
    "open_device": "pyvfio.opener",
    "PCIConfig": "pyvfio.pci",
    "DMASpace": "pyvfio.space",
    "CompatContainer": "pyvfio.vfio_compat",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pyvfio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

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
