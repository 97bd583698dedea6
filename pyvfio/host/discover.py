"""Discovery: the PCI devices of a host with names, driver, IOMMU group, NUMA node, SR-IOV state and
VFIO nodes.

On the real host (a :class:`LinuxKernel` on ``/sys``) the device list comes from libudev through
pyudev, with the hwdb names udev knows; when pyudev, libudev or its database is missing, and always
on any other kernel (a fake sysfs, a test tree), it comes from plain sysfs.  Attributes are read
through the ``Kernel`` seam either way, so both paths report the same thing.
"""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import asdict, dataclass
from typing import Any

from pyvfio import sysfs
from pyvfio.host import validate
from pyvfio.host.pciids import PciIds, class_name
from pyvfio.kernel import Kernel

VFIO_DRIVER = "vfio-pci"


@dataclass(frozen=True)
class PciDevice:
    """One PCI function as sysfs and /dev show it."""

    bdf: str
    vendor: int
    device: int
    subsystem_vendor: int | None
    subsystem_device: int | None
    class_code: int
    vendor_name: str | None
    device_name: str | None
    class_name: str
    driver: str | None
    driver_override: str | None
    iommu_group: int | None
    numa_node: int | None
    sriov_totalvfs: int | None
    sriov_numvfs: int | None
    physfn: str | None
    boot_vga: bool
    group_node: str | None  # /dev/vfio/N or /dev/vfio/noiommu-N when it exists
    cdevs: tuple[str, ...]  # /dev/vfio/devices/vfioX of the device's vfio-dev class devices

    @property
    def is_bridge(self) -> bool:
        return self.class_code >> 16 == 0x06

    def to_json(self) -> dict[str, Any]:
        """Return the device as a JSON-ready dict (the ``device`` object of the CLI schema)."""
        d = asdict(self)
        d["vendor"], d["device"] = f"{self.vendor:04x}", f"{self.device:04x}"
        d["class_code"] = f"{self.class_code:06x}"
        for k in ("subsystem_vendor", "subsystem_device"):
            d[k] = None if d[k] is None else f"{d[k]:04x}"
        d["cdevs"] = list(self.cdevs)
        return d


def _int(kernel: Kernel, path: str, base: int = 0) -> int | None:
    try:
        return int(kernel.sysfs_read(path), base)
    except (OSError, ValueError):
        return None


def _link_name(kernel: Kernel, path: str) -> str | None:
    try:
        return posixpath.basename(kernel.sysfs_readlink(path))
    except OSError:
        return None


def device_path(bdf: str) -> str:
    """Return the sysfs path of a device, after validating the address."""
    return f"bus/pci/devices/{validate.bdf(bdf)}"


def exists(kernel: Kernel, bdf: str) -> bool:
    """Tell whether PCI device ``bdf`` exists."""
    return kernel.sysfs_exists(device_path(bdf))


def require(kernel: Kernel, bdf: str) -> str:
    """Return the canonical ``bdf`` if the device exists.

    Raises:
        ValueError: not a PCI address.
        FileNotFoundError: ENOENT, no such device.
    """
    path = device_path(bdf)
    if not kernel.sysfs_exists(path):
        raise FileNotFoundError(2, "No such PCI device", f"{kernel.sysfs_root}/{path}")
    return validate.bdf(bdf)


def driver_of(kernel: Kernel, bdf: str) -> str | None:
    """Return the name of the driver bound to ``bdf``, or None."""
    return _link_name(kernel, f"{device_path(bdf)}/driver")


def group_of(kernel: Kernel, bdf: str) -> int | None:
    """Return the IOMMU group number of ``bdf``, or None when it has none (no IOMMU)."""
    name = _link_name(kernel, f"{device_path(bdf)}/iommu_group")
    return int(name) if name is not None and name.isdigit() else None


group_node = sysfs.group_node  # the /dev node of a group: one definition, in pyvfio.sysfs


def cdev_names(kernel: Kernel, bdf: str) -> list[str]:
    """Return the vfio-dev class device names (``vfio0``; ``noiommu-vfio0`` in 7.3's iommufd
    no-IOMMU mode) of a device bound to a VFIO driver."""
    path = f"{device_path(bdf)}/vfio-dev"
    if not kernel.sysfs_exists(path):
        return []
    names = kernel.sysfs_listdir(path)
    return [n for n in names if (b := n.removeprefix("noiommu-"))[:4] == "vfio" and b[4:].isdigit()]


def get(kernel: Kernel, bdf: str, ids: PciIds | None = None) -> PciDevice:
    """Return the device at ``bdf``.

    Raises:
        ValueError: ``bdf`` is not a PCI address.
        FileNotFoundError: ENOENT, no such device.
    """
    bdf = validate.bdf(bdf)
    base = device_path(bdf)
    vendor, device = _int(kernel, f"{base}/vendor"), _int(kernel, f"{base}/device")
    if vendor is None or device is None:
        raise FileNotFoundError(2, "No such PCI device", f"{kernel.sysfs_root}/{base}")
    cls = _int(kernel, f"{base}/class") or 0
    override = None
    with contextlib.suppress(OSError):
        override = kernel.sysfs_read(f"{base}/driver_override") or None
    if override == "(null)":
        override = None
    group = group_of(kernel, bdf)
    numa = _int(kernel, f"{base}/numa_node", 10)
    names = (ids or PciIds.system()).names(vendor, device)
    return PciDevice(
        bdf=bdf, vendor=vendor, device=device,
        subsystem_vendor=_int(kernel, f"{base}/subsystem_vendor"),
        subsystem_device=_int(kernel, f"{base}/subsystem_device"),
        class_code=cls, vendor_name=names[0], device_name=names[1],
        class_name=(ids or PciIds.system()).class_name(cls) or class_name(cls),
        driver=driver_of(kernel, bdf), driver_override=override, iommu_group=group,
        numa_node=None if numa is None or numa < 0 else numa,
        sriov_totalvfs=_int(kernel, f"{base}/sriov_totalvfs", 10),
        sriov_numvfs=_int(kernel, f"{base}/sriov_numvfs", 10),
        physfn=_link_name(kernel, f"{base}/physfn"),
        boot_vga=_int(kernel, f"{base}/boot_vga", 10) == 1,
        group_node=None if group is None else group_node(kernel, group),
        cdevs=tuple(
            f"/dev/vfio/devices/{n}" for n in cdev_names(kernel, bdf)
            if kernel.exists(f"/dev/vfio/devices/{n}")
        ),
    )


def uses_udev(kernel: Kernel) -> bool:
    """Tell whether discovery on ``kernel`` may go through libudev (the real host only)."""
    return bool(getattr(kernel, "is_host_sysfs", False))  # LinuxKernel on /sys says so


def _udev_bdfs() -> tuple[list[str], dict[str, tuple[str | None, str | None]]] | None:
    try:
        import pyudev  # noqa: PLC0415 - optional at run time: plain sysfs when it is missing

        devices = list(pyudev.Context().list_devices(subsystem="pci"))
    except Exception:
        return None
    names = {
        d.sys_name: (d.properties.get("ID_VENDOR_FROM_DATABASE"),
                     d.properties.get("ID_MODEL_FROM_DATABASE"))
        for d in devices
    }
    return sorted(n for n in names if validate.is_bdf(n)), names


def list_bdfs(kernel: Kernel) -> list[str]:
    """Return the addresses of all PCI devices, sorted (plain sysfs)."""
    try:
        entries = kernel.sysfs_listdir("bus/pci/devices")
    except OSError:
        return []
    return [n for n in entries if validate.is_bdf(n)]


def list_devices(kernel: Kernel, ids: PciIds | None = None) -> list[PciDevice]:
    """Return every PCI device of the host, sorted by address.

    Through pyudev on the real host (names from udev's hwdb win over pci.ids), plain sysfs
    otherwise.  A device that disappears while being read (hot-unplug) is skipped.
    """
    ids = ids or PciIds.system()
    udev = _udev_bdfs() if uses_udev(kernel) else None
    bdfs, hwdb = udev if udev is not None else (list_bdfs(kernel), {})
    out = []
    for bdf in bdfs:
        try:
            dev = get(kernel, bdf, ids)
        except FileNotFoundError:
            continue
        vname, dname = hwdb.get(bdf, (None, None))
        if vname or dname:
            dev = PciDevice(**{**asdict(dev), "vendor_name": vname or dev.vendor_name,
                               "device_name": dname or dev.device_name,
                               "cdevs": dev.cdevs})
        out.append(dev)
    return out
