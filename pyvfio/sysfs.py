"""Facts about PCI devices that sysfs and /dev tell: IOMMU group, members, driver, nodes, viability.

One module below both the object modules and :mod:`pyvfio.host` (and used by the fake's bus), so
that ``GroupNotViableError`` and ``pyvfio group`` always name the same blockers.  Every function
takes a :class:`~pyvfio.kernel.Kernel` and reads through it (paths relative to its sysfs root).

The viability rule (drivers/vfio/group.c:vfio_group_has_device, drivers/iommu/iommu.c DMA
ownership): a group is viable when each member is unbound, bound to a VFIO driver (vfio-pci or a
variant such as ``mlx5_vfio_pci``), or bound to a driver that sets ``driver_managed_dma``
(pcieport since 5.19, pci-stub): those never DMA on their own.
"""

from __future__ import annotations

import posixpath
import re

from pyvfio.kernel import Kernel

# sysfs names PCI devices "%04x:%02x:%02x.%d": the domain has 4 hex digits or more (Intel VMD
# uses 10000 and up), the device number is 5 bits and the function 3
_BDF = re.compile(r"(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])")

VFIO_DRIVERS = frozenset({"vfio-pci", "vfio_pci", "vfio-platform", "vfio-fsl-mc", "vfio_mdev"})
#: drivers that set driver_managed_dma: VFIO may share their group
DMA_SAFE_DRIVERS = frozenset({"pcieport", "pci-stub", "pci_stub"})


def check_bdf(bdf: object, name: str = "bdf") -> str:
    """Return ``bdf`` as the canonical sysfs name ``dddd:bb:dd.f`` (domain 0000 if omitted).

    Raises:
        TypeError: ``bdf`` is not a str.
        ValueError: it is not a PCI address (``0000:00:03.0``, ``00:03.0``, ``10000:e0:17.0``).
    """
    if not isinstance(bdf, str):
        raise TypeError(f"{name} must be a str, not {type(bdf).__name__}")
    m = _BDF.fullmatch(bdf)
    if m is None:
        cut = f"{bdf[:60]!r}... ({len(bdf)} chars)" if len(bdf) > 60 else repr(bdf)
        raise ValueError(f"{name} must be a PCI address like 0000:00:03.0, not {cut}")
    dom, bus, dev, fn = m.groups()
    return f"{int(dom or '0', 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"  # 00000 -> 0000


def device_dir(bdf: str) -> str:
    """Return the sysfs directory of PCI device ``bdf`` (relative to the sysfs root)."""
    return f"bus/pci/devices/{bdf}"


def iommu_group(kernel: Kernel, bdf: str) -> int:
    """Return the IOMMU group number of ``bdf``.

    Raises:
        FileNotFoundError: the device does not exist or has no IOMMU group (no IOMMU).
    """
    return int(posixpath.basename(kernel.sysfs_readlink(f"{device_dir(bdf)}/iommu_group")))


def group_members(kernel: Kernel, group: int) -> list[str]:
    """Return the sysfs names (BDFs) of the devices of IOMMU group ``group``, sorted.

    Raises:
        FileNotFoundError: no such group.
    """
    return sorted(kernel.sysfs_listdir(f"kernel/iommu_groups/{group}/devices"))


def driver(kernel: Kernel, bdf: str, *, group: int | None = None) -> str | None:
    """Return the name of the driver ``bdf`` is bound to, or None when unbound.

    With ``group``, ``bdf`` is any member's name under ``kernel/iommu_groups/<group>/devices``
    (platform devices have no PCI address).
    """
    where = device_dir(bdf) if group is None else f"kernel/iommu_groups/{group}/devices/{bdf}"
    try:
        return posixpath.basename(kernel.sysfs_readlink(f"{where}/driver"))
    except OSError:
        return None


def group_node(kernel: Kernel, group: int) -> str | None:
    """Return the /dev node of VFIO group ``group`` (normal or no-IOMMU), or None."""
    for path in (f"/dev/vfio/{group}", f"/dev/vfio/noiommu-{group}"):
        if kernel.exists(path):
            return path
    return None


def cdev_node(kernel: Kernel, bdf: str) -> str | None:
    """Return the VFIO cdev (/dev/vfio/devices/vfioX, noiommu-vfioX for a device in 7.3's
    iommufd no-IOMMU mode) of ``bdf`` from sysfs ``vfio-dev/``."""
    rel = f"{device_dir(bdf)}/vfio-dev"
    if not kernel.sysfs_exists(rel):
        return None
    names = sorted(n for n in kernel.sysfs_listdir(rel) if n.startswith(("vfio", "noiommu-vfio")))
    return f"/dev/vfio/devices/{names[0]}" if names else None


def is_vfio_name(name: str) -> bool:
    """Tell whether driver ``name`` is vfio-pci or, by its name, a vfio-pci variant."""
    if name in VFIO_DRIVERS:
        return True
    norm = name.replace("-", "_")
    return norm.endswith("_vfio_pci") or norm.startswith("vfio_pci_")


def is_vfio_driver(kernel: Kernel, name: str) -> bool:
    """Tell whether driver ``name`` is a VFIO driver: by name, or a module that depends on
    ``vfio_pci_core`` (a variant whose name says nothing)."""
    if is_vfio_name(name):
        return True
    try:
        holders = kernel.sysfs_listdir("module/vfio_pci_core/holders")
        module = posixpath.basename(kernel.sysfs_readlink(f"bus/pci/drivers/{name}/module"))
    except OSError:
        return False
    return module in holders


def judge(driver_name: str | None, *, vfio: bool | None = None) -> tuple[bool, str]:
    """THE viability rule for one group member bound to ``driver_name`` (None: unbound).

    Args:
        driver_name: the member's driver.
        vfio: whether it is a VFIO driver, when the caller checked beyond the name
            (:func:`is_vfio_driver`); None: judge by the name.

    Returns:
        ``(ok, reason)``: ok is False when the member makes the group not viable.
    """
    if driver_name is None:
        return True, "no driver"
    if vfio if vfio is not None else is_vfio_name(driver_name):
        return True, f"bound to VFIO driver {driver_name}"
    if driver_name in DMA_SAFE_DRIVERS:
        return True, f"{driver_name} is driver_managed_dma (does no DMA of its own)"
    return False, f"bound to host driver {driver_name}; bind it to vfio-pci or unbind it"


def blockers(kernel: Kernel, group: int) -> list[tuple[str, str | None]]:
    """Return ``(bdf, driver)`` of each member that makes ``group`` not viable.

    Raises:
        FileNotFoundError: no such group.
    """
    out: list[tuple[str, str | None]] = []
    for bdf in group_members(kernel, group):
        name = driver(kernel, bdf, group=group)
        if name is not None and not judge(name, vfio=is_vfio_driver(kernel, name))[0]:
            out.append((bdf, name))
    return out
