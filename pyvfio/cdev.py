"""Devices opened through their VFIO cdev (/dev/vfio/devices/vfioX), and choosing the IOMMU mode.

A cdev device is opened on its own, then bound to an iommufd (until then every other ioctl is
EINVAL, vfio_main.c), then attached to an IOAS or HWPT.  Regions, interrupts and reset are the same
code as for a group-opened :class:`pyvfio.device.Device`.  :func:`pyvfio.open_device` picks iommufd
when /dev/iommu and the cdev exist, the legacy container otherwise, and says why.
"""

from __future__ import annotations

import errno
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvfio import sysfs, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.device import Device
from pyvfio.dma import check_int
from pyvfio.errors import GroupConflictError
from pyvfio.hwpt import HWPT
from pyvfio.iommufd import IOAS, IOMMUFD, U32_MAX
from pyvfio.kernel import Kernel, default

MODES = ("auto", "iommufd", "legacy")

if TYPE_CHECKING:
    from pyvfio.space import DMASpace


def cdev_path(bdf: str, *, kernel: Kernel | None = None) -> str | None:
    """Return /dev/vfio/devices/vfioX of PCI device ``bdf`` from sysfs ``vfio-dev/``, or None.

    Raises:
        TypeError, ValueError: ``bdf`` is not a PCI address.
    """
    kernel = default() if kernel is None else kernel
    return sysfs.cdev_node(kernel, sysfs.check_bdf(bdf))


class CdevDevice(Device):
    """A VFIO device opened through its cdev; bind it to an :class:`IOMMUFD` before use."""

    def __init__(self, bdf: str, *, kernel: Kernel | None = None, path: str | None = None) -> None:
        """Open the cdev of ``bdf`` (``path`` overrides the sysfs lookup).

        Raises:
            TypeError: ``bdf`` not a str.
            FileNotFoundError: the device has no cdev (not bound to vfio-pci, or a kernel
                without CONFIG_VFIO_DEVICE_CDEV).
        """
        kernel = default() if kernel is None else kernel
        path = path or cdev_path(bdf, kernel=kernel)
        if path is None:
            raise FileNotFoundError(2, f"{bdf} has no VFIO cdev (sysfs vfio-dev)", bdf)
        # what Device.__init__ sets up, without a group: the cdev stands alone
        self.group = None  # type: ignore[assignment]
        self.name, self.path = bdf, path
        self._init_handle()
        self.iommufd: IOMMUFD | None = None
        self.dev_id: int | None = None
        self.hwpt_id: int | None = None
        self._own(kernel, kernel.open(path))

    def __repr__(self) -> str:
        return f"<CdevDevice {self.name} {self.path} fd={self._fd} dev_id={self.dev_id}>"

    def bind(self, iommufd: IOMMUFD, *, vf_token: uuid.UUID | str | None = None) -> int:
        """Bind to ``iommufd`` (``VFIO_DEVICE_BIND_IOMMUFD``); return the DEVICE id.

        Raises:
            ValueError: already bound through this object, or a malformed ``vf_token``.
            GroupConflictError: (an OSError) EBUSY, the group is open through /dev/vfio/N;
                EPERM with group neighbours, the group's DMA is owned elsewhere.
            OSError: EINVAL (bound already,
                or a token on kernels before 6.16 / on a device that is not PF or VF), EPERM
                (DMA owner conflict in the group, no interrupt remapping).
        """
        if self.iommufd is not None:
            raise ValueError(f"{self!r} is already bound")
        if not isinstance(iommufd, IOMMUFD):
            raise TypeError(f"iommufd must be an IOMMUFD, not {type(iommufd).__name__}")
        token = None
        if vf_token is not None:
            token = ffi.new("uint8_t[16]", list(uuid.UUID(str(vf_token)).bytes))
        arg = new("struct vfio_device_bind_iommufd *", iommufd=iommufd.fileno(),
                  flags=C.VFIO_DEVICE_BIND_FLAG_TOKEN if token is not None else 0,
                  token_uuid_ptr=int(ffi.cast("uintptr_t", token)) if token is not None else 0)
        if token is None:
            arg.argsz = 16  # the 6.12 layout: older kernels need not see the new field
        try:
            self._call(uapi.VFIO_DEVICE_BIND_IOMMUFD, arg)
        except OSError as exc:
            group_conflict(self._kernel, self.name, exc, "VFIO_DEVICE_BIND_IOMMUFD")
            raise
        self.iommufd, self.dev_id = iommufd, int(arg.out_devid)
        iommufd._adopt(self)  # the iommufd closes its devices first
        return self.dev_id

    def attach(self, pt: IOAS | HWPT | int) -> int:
        """Attach to an IOAS (an automatic HWPT) or a HWPT; replaces a previous attachment.

        Returns:
            The id of the HWPT now in use.

        Raises:
            ValueError: not bound.
            GroupConflictError: (an OSError, EINVAL) another device of the IOMMU group is
                attached to a different IOAS/HWPT.
            OSError: ENOENT (no such object), EINVAL (not an IOAS/HWPT), EADDRINUSE (reserved
                regions collide with mappings or allowed ranges), EBUSY (during reset, 6.16+).
        """
        pt_id = pt if isinstance(pt, int) else getattr(pt, "id", None)
        if not isinstance(pt_id, int) or isinstance(pt_id, bool):
            raise TypeError(f"pt must be an IOAS, a HWPT or an id, not {type(pt).__name__}")
        check_int("pt_id", pt_id, 0, U32_MAX)
        self._check_bound()
        arg = new("struct vfio_device_attach_iommufd_pt *", pt_id=pt_id)
        arg.argsz = 12  # 6.12 layout (no pasid)
        try:
            self._call(uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg)
        except OSError as exc:
            if isinstance(pt, (IOAS, HWPT)):  # the right kind of object: EINVAL is the group
                group_conflict(self._kernel, self.name, exc, "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
            raise
        self.hwpt_id = int(arg.pt_id)
        if isinstance(pt, IOAS):
            self.dma = pt
        return self.hwpt_id

    def detach(self) -> None:
        """Detach from the IOAS/HWPT; nothing happens if not attached.

        Raises:
            ValueError: not bound.
        """
        self._check_bound()
        arg = new("struct vfio_device_detach_iommufd_pt *")
        arg.argsz = 8
        self._call(uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, arg)
        self.hwpt_id = None

    def hw_info(self) -> Any:
        """Return :meth:`IOMMUFD.hw_info` of this device."""
        self._check_bound()
        assert self.iommufd is not None and self.dev_id is not None
        return self.iommufd.hw_info(self.dev_id)

    def _check_bound(self) -> None:
        self._check_open()
        if self.iommufd is None:
            raise ValueError(f"{self!r} is not bound to an iommufd")

    def close(self) -> None:
        """Close the cdev: the kernel detaches and unbinds (idempotent)."""
        super().close()
        self.hwpt_id = None


def group_neighbours(kernel: Kernel, bdf: str) -> tuple[int, list[str]]:
    """Return ``bdf``'s IOMMU group and the other devices in it (sysfs iommu_groups/N/devices)."""
    group = sysfs.iommu_group(kernel, bdf)
    return group, [m for m in sysfs.group_members(kernel, group) if m != bdf]


_CONFLICTS = {  # (operation, errno) -> (reason, hint); EPERM/EINVAL only with neighbours
    ("VFIO_DEVICE_BIND_IOMMUFD", errno.EBUSY): (
        "its IOMMU group is open through /dev/vfio/N (in this or another process)",
        "close that group fd and its devices, or open every device of the group by its cdev"),
    ("VFIO_DEVICE_BIND_IOMMUFD", errno.EPERM): (
        "the group's DMA is owned elsewhere (a neighbour bound to another iommufd, used through "
        "a legacy container, or bound to a host driver), or interrupts cannot be isolated",
        "bind every device of the group to the same iommufd and unbind host drivers "
        "(pyvfio bind --group)"),
    ("VFIO_DEVICE_ATTACH_IOMMUFD_PT", errno.EINVAL): (
        "another device of its IOMMU group is attached to a different IOAS/HWPT",
        "attach it to the HWPT its neighbours use, or detach them first: a group shares one "
        "domain"),
}


def group_conflict(kernel: Kernel, bdf: str, exc: OSError, operation: str) -> None:
    """Raise :class:`GroupConflictError` from ``exc`` if it is a group-contract refusal.

    Returns without raising when ``exc`` is something else (the caller re-raises it).
    """
    entry = _CONFLICTS.get((operation, exc.errno or 0))
    if entry is None:
        return
    try:
        group, neighbours = group_neighbours(kernel, bdf)
    except OSError:
        return  # no sysfs view of the group: the kernel's errno is all there is
    if not neighbours and exc.errno != errno.EBUSY:
        return  # alone in its group: EPERM/EINVAL have other causes
    reason, hint = entry
    raise GroupConflictError(exc.errno or 0, bdf, group, neighbours, operation, reason,
                             hint) from exc


@dataclass(frozen=True)
class OpenedDevice:
    """The older shape of :func:`pyvfio.open_device`'s result: ``device``, ``dma``, ``mode``,
    ``reason``.  Kept for existing callers; new code uses the :class:`Device` handle itself.

    Attributes:
        device: the device, ready for regions, interrupts and DMA; it owns everything else.
        dma: its DMA space (an :class:`IOAS` or a legacy ``Container``).
        mode: ``"iommufd"``, ``"legacy"`` or ``"compat"``.
        reason: why that mode was chosen.
    """

    device: Device
    dma: DMASpace
    mode: str
    reason: str

    def close(self) -> None:
        """Close the device and everything opened for it (see :meth:`Device.close`)."""
        self.device.close()

    def __enter__(self) -> OpenedDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_device(bdf: str, mode: str = "auto", *, kernel: Kernel | None = None) -> OpenedDevice:
    """:func:`pyvfio.open_device` in the older shape (``mode`` may be positional).

    Raises:
        As :func:`pyvfio.open_device`.
    """
    from pyvfio.opener import open_device as open_handle  # noqa: PLC0415 - opener imports us

    device = open_handle(bdf, mode=mode, kernel=kernel)
    assert device.dma is not None and device.mode is not None
    return OpenedDevice(device, device.dma, device.mode, device.mode_reason or "")
