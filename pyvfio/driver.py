"""The base of a pyvfio driver: open a device for it in one call, and say which IOMMU mode.

A driver class takes the opened :class:`~pyvfio.device.Device` (``owned=True``: it closes the
device with itself) and starts it, each step named with :class:`pyvfio.errors.step`;
:meth:`Driver.open` adds the first step, ``open``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pyvfio.errors import DriverError

if TYPE_CHECKING:
    from pyvfio.device import Device
    from pyvfio.kernel import Kernel

D = TypeVar("D", bound="Driver")


class Driver:
    """A userspace driver on one device: ``SomeDriver.open(bdf)`` or ``SomeDriver(device)``."""

    device: Device

    def __init__(self, device: Device, *, owned: bool = False, **options: Any) -> None:
        """Drive ``device``; ``owned``: close it with the driver.  Subclasses start it here."""
        self.device = device

    @classmethod
    def open(cls: type[D], bdf: str, mode: str = "auto", *, kernel: Kernel | None = None,
             **options: Any) -> D:
        """Open ``bdf`` in IOMMU ``mode`` (see :func:`pyvfio.open_device`) and start the driver
        on it; ``options`` go to the driver's constructor.

        Raises:
            DriverError: step ``open`` (``cause``: the ``OSError``, ``ValueError`` or
                :class:`~pyvfio.errors.PyvfioError` of :func:`pyvfio.open_device`), or a step
                of the driver's start.
        """
        from pyvfio.opener import open_device  # noqa: PLC0415 - the opener imports the errors

        try:
            device = open_device(bdf, mode=mode, kernel=kernel)
        except Exception as exc:  # OSError, ValueError, or a PyvfioError (not viable, no mode)
            raise DriverError("open", f"opening {bdf} in {mode} mode failed", exc) from exc
        return cls(device, owned=True, **options)

    @property
    def mode(self) -> str:
        """The IOMMU mode the device was opened in (``iommufd``, ``legacy``, ``compat``)."""
        return self.device.mode or "unknown"
