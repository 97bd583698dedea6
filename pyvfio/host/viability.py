"""Group viability: can a VFIO user take an IOMMU group, and if not, which devices block it and why.

The kernel's rule (drivers/vfio/group.c:vfio_group_has_device + iommu.c DMA ownership): every device
of the group must be bound to a VFIO driver, bound to a driver that declares ``driver_managed_dma``
(pcieport since 5.19, pci-stub, the vfio-pci variant drivers), or bound to nothing.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from pyvfio import sysfs
from pyvfio.host import discover, validate
from pyvfio.kernel import Kernel

# the rule and its driver lists live in pyvfio.sysfs, shared with Group and the fake's bus
VFIO_DRIVERS, DMA_SAFE_DRIVERS = sysfs.VFIO_DRIVERS, sysfs.DMA_SAFE_DRIVERS
is_vfio_driver = sysfs.is_vfio_driver

OK, BLOCKS = "ok", "blocks"


@dataclass(frozen=True)
class Member:
    """One device of a group and whether it lets the group be viable."""

    name: str  # BDF for PCI devices, the sysfs name otherwise
    driver: str | None
    status: str  # "ok" or "blocks"
    reason: str


@dataclass(frozen=True)
class GroupReport:
    """The diagnosis of one IOMMU group."""

    group: int
    members: tuple[Member, ...] = field(default_factory=tuple)

    @property
    def viable(self) -> bool:
        return all(m.status == OK for m in self.members)

    @property
    def blockers(self) -> list[Member]:
        return [m for m in self.members if m.status == BLOCKS]

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "viable": self.viable,
                "members": [asdict(m) for m in self.members]}


def judge(kernel: Kernel, driver: str | None) -> tuple[str, str]:
    """Return (status, reason) for a group member bound to ``driver``."""
    if driver is None:
        return OK, "no driver"
    validate.driver(driver)
    ok, reason = sysfs.judge(driver, vfio=sysfs.is_vfio_driver(kernel, driver))
    return (OK if ok else BLOCKS), reason


def members(kernel: Kernel, group: int) -> list[str]:
    """Return the sysfs names of the devices of IOMMU group ``group``.

    Raises:
        FileNotFoundError: ENOENT, no such group.
    """
    group = validate.group(group)
    return kernel.sysfs_listdir(f"kernel/iommu_groups/{group}/devices")


def diagnose_group(kernel: Kernel, group: int) -> GroupReport:
    """Return the viability diagnosis of ``group``, one line per member.

    Raises:
        FileNotFoundError: ENOENT, no such group.
    """
    group = validate.group(group)
    out = []
    for name in members(kernel, group):
        link = f"kernel/iommu_groups/{group}/devices/{name}/driver"
        try:
            driver: str | None = posixpath.basename(kernel.sysfs_readlink(link))
        except OSError:
            driver = None
        status, reason = judge(kernel, driver)
        out.append(Member(name, driver, status, reason))
    return GroupReport(group, tuple(out))


def diagnose_device(kernel: Kernel, bdf: str) -> GroupReport | None:
    """Return the diagnosis of the group of ``bdf``, or None when the device has no group.

    Raises:
        ValueError: ``bdf`` is not a PCI address.
    """
    group = discover.group_of(kernel, validate.bdf(bdf))
    return None if group is None else diagnose_group(kernel, group)


def all_groups(kernel: Kernel) -> list[int]:
    """Return the numbers of all IOMMU groups, sorted numerically."""
    try:
        names = kernel.sysfs_listdir("kernel/iommu_groups")
    except OSError:
        return []
    return sorted(int(n) for n in names if n.isdigit())
