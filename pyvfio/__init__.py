"""pyvfio: Linux userspace drivers over VFIO and iommufd, and a fake kernel to test them on."""

from __future__ import annotations

__version__ = "0.1.0"

from pyvfio.errors import (
    BindError,
    GroupNotViableError,
    ModeUnavailableError,
    NotBoundError,
    PyvfioError,
    UnsupportedAPIError,
)
from pyvfio.kernel import Kernel, LinuxKernel

__all__ = [
    "BindError",
    "GroupNotViableError",
    "Kernel",
    "LinuxKernel",
    "ModeUnavailableError",
    "NotBoundError",
    "PyvfioError",
    "UnsupportedAPIError",
    "__version__",
]
