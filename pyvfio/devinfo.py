"""What ``VFIO_DEVICE_GET_INFO`` and ``VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`` report, decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C

_DEVICE_CAPS = {
    C.VFIO_DEVICE_INFO_CAP_ZPCI_BASE: "struct vfio_device_info_cap_zpci_base *",
    C.VFIO_DEVICE_INFO_CAP_ZPCI_GROUP: "struct vfio_device_info_cap_zpci_group *",
    C.VFIO_DEVICE_INFO_CAP_ZPCI_UTIL: "struct vfio_device_info_cap_zpci_util *",
    C.VFIO_DEVICE_INFO_CAP_ZPCI_PFIP: "struct vfio_device_info_cap_zpci_pfip *",
    C.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP: "struct vfio_device_info_cap_pci_atomic_comp *",
}

@dataclass(frozen=True)
class DeviceCap:
    """A device-info capability: ``fields`` holds its integer fields by kernel name, ``payload``
    the variable part (zPCI ``util_str``/``pfip``), ``data`` the raw bytes."""

    id: int
    version: int
    fields: dict[str, int] = field(hash=False)
    payload: bytes
    data: bytes


@dataclass(frozen=True)
class DeviceInfo:
    """``VFIO_DEVICE_GET_INFO`` decoded; ``flags`` are ``VFIO_DEVICE_FLAGS_*`` bits."""

    flags: uapi.DeviceFlag
    num_regions: int
    num_irqs: int
    caps: tuple[DeviceCap, ...] = ()

    @property
    def reset_supported(self) -> bool:
        """:meth:`Device.reset` can work (``VFIO_DEVICE_FLAGS_RESET``)."""
        return bool(self.flags & C.VFIO_DEVICE_FLAGS_RESET)

    @property
    def pci(self) -> bool:
        """The device is a vfio-pci device."""
        return bool(self.flags & C.VFIO_DEVICE_FLAGS_PCI)


@dataclass(frozen=True)
class DependentDevice:
    """A device a hot reset affects: ``id`` is its group id (or devid with iommufd)."""

    id: int
    segment: int
    bus: int
    devfn: int

    @property
    def bdf(self) -> str:
        """The PCI address, ``ssss:bb:dd.f``."""
        return f"{self.segment:04x}:{self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7:x}"


def decode_cap(cap: _ioctl.Capability) -> DeviceCap:
    ctype = _DEVICE_CAPS.get(cap.id)
    if ctype is None:
        return DeviceCap(cap.id, cap.version, {}, b"", cap.data)
    fields = _ioctl.int_fields(_ioctl.cap_struct(ctype, cap))
    payload = b""
    if cap.id in (C.VFIO_DEVICE_INFO_CAP_ZPCI_UTIL, C.VFIO_DEVICE_INFO_CAP_ZPCI_PFIP):
        payload = cap.data[12 : 12 + fields["size"]]
    return DeviceCap(cap.id, cap.version, fields, payload, cap.data)
