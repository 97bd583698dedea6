"""The PCI bus and driver core as sysfs shows them: devices, drivers, IOMMU groups, binding.

Writes follow drivers/base/bus.c and drivers/pci/pci-driver.c: ``driver_override`` restricts
matching, ``drivers_probe`` binds a device to its matching driver, ``bind``/``unbind`` of a driver
take a BDF (ENODEV unknown or not matching, EBUSY already bound), ``new_id`` adds a dynamic id.
vfio-pci matches any device, but only through ``driver_override`` or ``new_id``.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from pyvfio import sysfs as sysfs_facts  # THE viability rule, shared with Group and pyvfio.host
from pyvfio.fake.memory import kerr
from pyvfio.fake.pci import PCIDevice
from pyvfio.fake.sysfs import SysfsTree

VFIO_PCI = "vfio-pci"
# drivers with driver_managed_dma (iommu.c); the viability rule is pyvfio.sysfs.judge
DMA_SAFE_DRIVERS = sysfs_facts.DMA_SAFE_DRIVERS


@dataclass
class Driver:
    """A PCI driver: the (vendor, device) ids it matches (None = any, override only)."""

    name: str
    ids: set[tuple[int, int]] = field(default_factory=set)
    override_only: bool = False


class PCIBus:
    """Devices, drivers, groups and their sysfs files; ``listeners`` hear bind/unbind."""

    def __init__(self, sysfs: SysfsTree, *, noiommu: bool = False, noiommu_cdev: bool = False,
                 busy: Callable[[str], bool] = frozenset().__contains__) -> None:
        self.sysfs = sysfs
        self.noiommu = noiommu
        # vfio_main.c:vfio_device_set_noiommu_and_name (7.3, CONFIG_IOMMUFD_NOIOMMU): in no-IOMMU
        # mode the cdev is noiommu-vfioN and binds to iommufd without an IOMMU (fake/noiommu.py)
        self.noiommu_cdev = noiommu and noiommu_cdev
        self.devices: dict[str, PCIDevice] = {}
        self.group_of: dict[str, int] = {}
        self.driver_of: dict[str, str | None] = {}
        self.override: dict[str, str] = {}
        self.drivers: dict[str, Driver] = {}
        self.vfio_dev: dict[str, int] = {}
        self.claimed: set[int] = set()  # groups whose DMA ownership VFIO holds
        self.busy = busy  # a VFIO device fd of this BDF is open
        self._vfio_index = 0
        # mdevs (pyvfio/fake/mdev.py): their drivers register VFIO devices too, each in an
        # emulated IOMMU group that no host driver can make non-viable
        self.vfio_drivers: set[str] = {VFIO_PCI}
        self.emulated_groups: set[int] = set()
        sysfs.mkdir("bus/pci/devices")
        sysfs.add_attr("bus/pci/drivers_probe", "", self._drivers_probe)
        sysfs.add_attr("bus/pci/drivers_autoprobe", "1")
        self.add_driver(Driver(VFIO_PCI, override_only=True))
        self.add_driver(Driver("pci-stub", override_only=True))

    # -- building --------------------------------------------------------------------------

    def add_driver(self, drv: Driver) -> None:
        """Register a driver and its sysfs directory."""
        self.drivers[drv.name] = drv
        base = f"bus/pci/drivers/{drv.name}"
        self.sysfs.add_attr(f"{base}/bind", "", functools.partial(self._bind_to, drv.name))
        self.sysfs.add_attr(f"{base}/unbind", "", functools.partial(self._unbind_from, drv.name))
        self.sysfs.add_attr(f"{base}/new_id", "", functools.partial(self._new_id, drv))
        self.sysfs.add_attr(f"{base}/remove_id", "", functools.partial(self._remove_id, drv))

    def add_device(self, dev: PCIDevice, group: int | None, driver: str | None = None) -> None:
        """Plug ``dev`` in, in IOMMU ``group`` (None: no IOMMU), bound to ``driver``."""
        bdf, c = dev.bdf, dev.cfg
        self.devices[bdf] = dev
        base = f"bus/pci/devices/{bdf}"
        for name, value, digits in (
            ("vendor", c.vendor, 4), ("device", c.device, 4),
            ("subsystem_vendor", c.subsystem_vendor, 4),
            ("subsystem_device", c.subsystem_device, 4),
            ("class", c.class_code, 6), ("revision", c.revision, 2),
        ):
            self.sysfs.add_attr(f"{base}/{name}", f"0x{value:0{digits}x}\n")
        self.sysfs.add_attr(f"{base}/numa_node", "-1\n")
        self.sysfs.add_attr(f"{base}/irq", "11\n")
        self.sysfs.add_attr(f"{base}/config", lambda: bytes(dev.config).decode("latin-1"))
        self.sysfs.add_attr(f"{base}/resource", lambda: _resource(dev))
        self.sysfs.add_attr(f"{base}/driver_override", lambda: self.override.get(bdf, "(null)"),
                            lambda v: self._set_override(bdf, v))
        self.driver_of[bdf] = None
        if group is not None:
            self.group_of[bdf] = group
            gdir = f"kernel/iommu_groups/{group}"
            self.sysfs.add_attr(f"{gdir}/type", "DMA\n")
            self.sysfs.add_attr(f"{gdir}/reserved_regions",
                                "0x00000000fee00000 0x00000000feefffff msi\n")
            self.sysfs.symlink(f"{gdir}/devices/{bdf}", base)
            self.sysfs.symlink(f"{base}/iommu_group", gdir)
        if driver is not None:
            self._attach(bdf, driver)

    # -- queries ---------------------------------------------------------------------------

    def members(self, group: int) -> list[str]:
        """Return the BDFs of IOMMU group ``group``, sorted."""
        return sorted(b for b, g in self.group_of.items() if g == group)

    def blockers(self, group: int) -> list[str]:
        """Return the members bound to a driver that uses the DMA API (they break viability)."""
        if group in self.emulated_groups:
            return []
        return [b for b in self.members(group) if not sysfs_facts.judge(self.driver_of[b])[0]]

    def vfio_groups(self) -> set[int]:
        """Return the groups that have a VFIO group device (some member bound to vfio-pci, or
        an mdev's emulated group)."""
        return {self.group_of[b] for b, d in self.driver_of.items()
                if d in self.vfio_drivers and b in self.group_of}

    def free_group(self) -> int:
        """iommu_group_alloc: the lowest number no IOMMU group has (a VF's, an mdev's)."""
        number = 0
        while number in self.group_of.values() or self.sysfs.exists(
                f"kernel/iommu_groups/{number}"):
            number += 1
        return number

    def probe(self, bdf: str) -> None:
        """bus_probe_device of a device just added (drivers_autoprobe): bind the first driver
        that matches it and whose probe accepts it (a model's ``probe_rejects`` names drivers
        whose probe fails on it: the device then stays unbound, dd.c:really_probe)."""
        rejects: frozenset[str] = getattr(self.devices[bdf], "probe_rejects", frozenset())
        for drv in self.drivers.values():
            if self._matches(bdf, drv):
                if drv.name not in rejects:
                    self._probe(bdf, drv.name)
                return

    def next_vfio_index(self) -> int:
        """The next vfio-dev minor (vfio_main.c: one ida for every VFIO device's cdev)."""
        index = self._vfio_index
        self._vfio_index += 1
        return index

    # -- driver core -----------------------------------------------------------------------

    def bind(self, bdf: str, driver: str) -> None:
        """Write to drivers/<driver>/bind. Raises ENODEV, EBUSY, EINVAL (vfio-pci probe)."""
        drv = self.drivers.get(driver)
        if bdf not in self.devices or drv is None or not self._matches(bdf, drv):
            raise kerr(errno.ENODEV)
        if self.driver_of[bdf] is not None:
            raise kerr(errno.EBUSY)
        self._probe(bdf, driver)

    def unbind(self, bdf: str) -> None:
        """Write to <device>/driver/unbind. Raises ENODEV if unbound."""
        if self.driver_of.get(bdf) is None:
            raise kerr(errno.ENODEV)
        if self.busy(bdf):
            # vfio_unregister_group_dev would block (sending REQ) until the fd is closed
            raise kerr(errno.EBUSY)
        drv = self.driver_of[bdf]
        self.driver_of[bdf] = None
        self.sysfs.remove(f"bus/pci/devices/{bdf}/driver")
        self.sysfs.remove(f"bus/pci/drivers/{drv}/{bdf}")
        if drv == VFIO_PCI:
            self.sysfs.remove(f"bus/pci/devices/{bdf}/vfio-dev")
            self.vfio_dev.pop(bdf, None)

    def _bind_to(self, driver: str, value: str) -> None:
        self.bind(value.strip(), driver)

    def _unbind_from(self, driver: str, value: str) -> None:
        bdf = value.strip()
        if self.driver_of.get(bdf) != driver:
            raise kerr(errno.ENODEV)
        self.unbind(bdf)

    def _matches(self, bdf: str, drv: Driver) -> bool:
        over = self.override.get(bdf)
        if over is not None:
            return over == drv.name
        c = self.devices[bdf].cfg
        return (c.vendor, c.device) in drv.ids

    def _probe(self, bdf: str, driver: str) -> None:
        dev = self.devices[bdf]
        group = self.group_of.get(bdf)
        if driver == VFIO_PCI:
            if dev.config[0x0E] & 0x7F != 0 or (group is None and not self.noiommu):
                raise kerr(errno.EINVAL)  # vfio_pci_probe: header type 0 only, needs a group
        elif not sysfs_facts.judge(driver)[0] and group in self.claimed:
            raise kerr(errno.EBUSY)  # iommu_device_use_default_domain: VFIO owns the group
        self._attach(bdf, driver)

    def _attach(self, bdf: str, driver: str) -> None:
        self.driver_of[bdf] = driver
        base = f"bus/pci/devices/{bdf}"
        self.sysfs.symlink(f"{base}/driver", f"bus/pci/drivers/{driver}")
        self.sysfs.symlink(f"bus/pci/drivers/{driver}/{bdf}", base)
        if driver == VFIO_PCI:
            index = self.next_vfio_index()
            self.vfio_dev[bdf] = index
            self.sysfs.add_attr(f"{base}/vfio-dev/{self.cdev_name(bdf)}/dev", f"511:{index}\n")

    def cdev_name(self, key: str) -> str:
        """The name under /dev/vfio/devices of the cdev of ``key`` (a BDF, or an mdev's name:
        an mdev sits behind its emulated IOMMU group, never in no-IOMMU mode)."""
        prefix = "noiommu-" if self.noiommu_cdev and key in self.devices else ""
        return f"{prefix}vfio{self.vfio_dev[key]}"

    def _drivers_probe(self, value: str) -> None:
        bdf = value.strip()
        if bdf not in self.devices:
            raise kerr(errno.ENODEV)
        if self.driver_of[bdf] is not None:
            return
        for drv in self.drivers.values():
            if self._matches(bdf, drv):
                self._probe(bdf, drv.name)
                return

    def _remove_id(self, drv: Driver, value: str) -> None:
        ident = _parse_id(value)
        if ident not in drv.ids:
            raise kerr(errno.ENODEV)
        drv.ids.discard(ident)

    def _set_override(self, bdf: str, value: str) -> None:
        name = value.strip()
        if name:
            self.override[bdf] = name
        else:
            self.override.pop(bdf, None)

    def _new_id(self, drv: Driver, value: str) -> None:
        ident = _parse_id(value)
        if ident in drv.ids:
            raise kerr(errno.EEXIST)
        drv.ids.add(ident)
        for bdf, dev in self.devices.items():
            unbound = self.driver_of[bdf] is None and self.override.get(bdf, drv.name) == drv.name
            if unbound and (dev.cfg.vendor, dev.cfg.device) == ident:
                self._probe(bdf, drv.name)


def _parse_id(value: str) -> tuple[int, int]:
    """Parse ``"vvvv dddd [...]"`` (pci-driver.c:new_id_store): EINVAL under two hex fields."""
    fields = value.split()
    try:
        return int(fields[0], 16), int(fields[1], 16)
    except (IndexError, ValueError):
        raise kerr(errno.EINVAL) from None


def _resource(dev: PCIDevice) -> str:
    lines = []
    for bar in [*dev.bars, None, None, None, None, None, None, None]:
        if bar is None or not bar.size or not bar.address:
            lines.append(f"0x{0:016x} 0x{0:016x} 0x{0:016x}")
        else:
            flags = 0x40200 | (0x100000 if bar.mem64 else 0)
            end = bar.address + bar.size - 1
            lines.append(f"0x{bar.address:016x} 0x{end:016x} 0x{flags:016x}")
    return "\n".join(lines[:13]) + "\n"
