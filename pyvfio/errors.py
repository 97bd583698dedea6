"""pyvfio's own errors: preconditions that no single system call reports.

A kernel refusal is never one of these: it stays the builtin ``OSError`` with the kernel's errno.
"""

from __future__ import annotations


class PyvfioError(Exception):
    """Base class of pyvfio's own errors."""


class UnsupportedAPIError(PyvfioError):
    """The kernel's VFIO API version or a needed extension is not supported."""


class GroupNotViableError(PyvfioError):
    """An IOMMU group cannot be used: some of its devices are bound to host drivers.

    Attributes:
        group: the IOMMU group number.
        blockers: ``(bdf, driver)`` pairs of the devices that make it non-viable.
    """

    def __init__(self, group: int, blockers: list[tuple[str, str | None]]) -> None:
        self.group = group
        self.blockers = list(blockers)
        names = ", ".join(f"{bdf} (driver {drv or 'none'})" for bdf, drv in self.blockers)
        hint = "bind them to vfio-pci (pyvfio bind --group) or unbind them"
        super().__init__(
            f"IOMMU group {group} is not viable: {names or 'unknown device'} not bound to "
            f"vfio-pci; {hint}"
        )


class NotBoundError(PyvfioError):
    """A device is not bound to vfio-pci (or a vfio-pci variant driver)."""


class BindError(PyvfioError):
    """Binding or unbinding a device failed; the previous state was restored."""


class ModeUnavailableError(PyvfioError):
    """The requested IOMMU mode (legacy container or iommufd) is not available on this host."""
