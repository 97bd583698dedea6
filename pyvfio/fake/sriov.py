"""An SR-IOV physical function in the fake's sysfs: ``sriov_numvfs`` creating and removing VFs.

drivers/pci/iov.c, as Linux 6.12 and 7.3 have it:

* ``sriov_numvfs`` (sriov_numvfs_store): kstrtou16 (base 0, a trailing newline) or EINVAL;
  above ``sriov_totalvfs`` ERANGE; the current count again: nothing happens (before any other
  check); no driver, or a driver without ``sriov_configure``: ENOENT; 0 disables; a nonzero
  count while VFs are enabled: EBUSY;
* the PF's driver decides: vfio-pci (vfio_pci.c:vfio_pci_sriov_configure) is ENOENT unless its
  ``enable_sriov`` module parameter is set — for disabling too — then
  vfio_pci_core_sriov_configure enables them; the other drivers here use
  pci_sriov_configure_simple;
* each VF (pci_iov_add_virtfn) gets the routing ID PF + ``sriov_offset`` + i * ``sriov_stride``,
  the PF's vendor and ``sriov_vf_device``, ``virtfnN``/``physfn`` links and an IOMMU group of its
  own (iommu_group_alloc: the lowest free number); a vfio-pci PF's bus notifier
  (vfio_pci_core.c:vfio_pci_bus_notifier) sets the VF's ``driver_override`` to vfio-pci; then
  the driver core probes the VF if ``sriov_drivers_autoprobe`` (kstrtobool, default 1) is set
  or the VF has a driver_override (pci-driver.c:pci_device_can_probe), so a vfio-pci PF's VFs
  always land on vfio-pci;
* disabling removes the VFs; a VF someone has open through VFIO is EBUSY here (Linux blocks in
  vfio_unregister_group_dev until the user closes it).

Not modelled: pci_device_can_probe refusing a later explicit bind of a VF without override
while autoprobe is off; unbinding a vfio-pci PF (vfio_pci_core_unregister_device disables its
VFs); VF MSI-X vectors (``sriov_vf_total_msix``); VFs on a bus of their own.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING

from pyvfio.fake.bus import VFIO_PCI
from pyvfio.fake.memory import kerr
from pyvfio.fake.pci import DeviceConfig, PCIDevice

if TYPE_CHECKING:
    from pyvfio.fake.kernel import FakeKernel

ENABLE_SRIOV = "module/vfio_pci/parameters/enable_sriov"
# drivers whose struct pci_driver has .sriov_configure (the fake's host drivers of that kind)
SRIOV_CONFIGURE_DRIVERS = frozenset({VFIO_PCI, "nvme", "igb", "ixgbe", "i40e", "ice",
                                     "mlx5_core"})
_DIGITS = {16: r"[0-9a-fA-F]+", 8: r"[0-7]+", 10: r"[0-9]+"}


def kstrtou16(value: str) -> int:
    """kstrtou16(buf, 0): an optional ``+``, base by prefix (0x, 0), one trailing newline.
    Raises EINVAL (not a number), ERANGE (above 65535)."""
    text = value[:-1] if value.endswith("\n") else value
    text = text[1:] if text.startswith("+") else text
    if text[:2].lower() == "0x":
        base, digits = 16, text[2:]
    elif text.startswith("0") and len(text) > 1:
        base, digits = 8, text[1:]
    else:
        base, digits = 10, text
    if not re.fullmatch(_DIGITS[base], digits):
        raise kerr(errno.EINVAL)
    number = int(digits, base)
    if number > 0xFFFF:
        raise kerr(errno.ERANGE)
    return number


def kstrtobool(value: str) -> bool:
    """kstrtobool: only the first characters count (y/Y/1, n/N/0, on/off). Raises EINVAL."""
    first, second = value[:1], value[1:2].lower()
    if first in ("y", "Y", "1"):
        return True
    if first in ("n", "N", "0"):
        return False
    if first in ("o", "O") and second in ("n", "f"):
        return second == "n"
    raise kerr(errno.EINVAL)


class SriovPF:
    """The SR-IOV state of one PF (``struct pci_sriov``)."""

    def __init__(self, kernel: FakeKernel, pf: str, totalvfs: int, vf_device: int,
                 offset: int, stride: int, vf_probe_rejects: frozenset[str]) -> None:
        self.kernel, self.pf = kernel, pf
        self.vf_probe_rejects = vf_probe_rejects
        self.totalvfs, self.vf_device = totalvfs, vf_device
        self.offset, self.stride = offset, stride
        self.vfs: list[str] = []
        self.autoprobe = True

    def vf_bdf(self, i: int) -> str:
        """pci_iov_virtfn_bus/devfn: the PF's routing ID plus offset + i * stride."""
        dom, bus, slot_fn = self.pf.split(":")
        slot, fn = slot_fn.split(".")
        rid = (int(bus, 16) << 8 | int(slot, 16) << 3 | int(fn)) + self.offset + i * self.stride
        return f"{dom}:{rid >> 8:02x}:{(rid >> 3) & 0x1F:02x}.{rid & 7}"

    def show_numvfs(self) -> str:
        return f"{len(self.vfs)}\n"

    def store_numvfs(self, value: str) -> None:
        """sriov_numvfs_store, then the driver's sriov_configure."""
        bus = self.kernel.bus
        try:
            num = kstrtou16(value)
        except OSError:
            raise kerr(errno.EINVAL) from None  # any kstrtou16 failure, ERANGE too
        if num > self.totalvfs:
            raise kerr(errno.ERANGE)
        if num == len(self.vfs):
            return
        driver = bus.driver_of.get(self.pf)
        if driver is None or driver not in SRIOV_CONFIGURE_DRIVERS:
            raise kerr(errno.ENOENT)
        if driver == VFIO_PCI and not kstrtobool(self.kernel.sysfs.read(ENABLE_SRIOV)):
            raise kerr(errno.ENOENT)  # vfio_pci_sriov_configure: enable_sriov off
        if num == 0:
            self._remove_vfs()
            return
        if self.vfs:
            raise kerr(errno.EBUSY)
        for i in range(num):
            self._add_vf(i, driver)

    def _add_vf(self, i: int, pf_driver: str) -> None:
        k, bus = self.kernel, self.kernel.bus
        vf, pfcfg = self.vf_bdf(i), bus.devices[self.pf].cfg
        model = PCIDevice(vf, DeviceConfig(vendor=pfcfg.vendor, device=self.vf_device,
                                           class_code=pfcfg.class_code, pcie=True))
        model.probe_rejects = self.vf_probe_rejects  # type: ignore[attr-defined]
        k.add_device(model, bus.free_group())
        self.vfs.append(vf)
        k.sysfs.symlink(f"bus/pci/devices/{self.pf}/virtfn{i}", f"bus/pci/devices/{vf}")
        k.sysfs.symlink(f"bus/pci/devices/{vf}/physfn", f"bus/pci/devices/{self.pf}")
        if pf_driver == VFIO_PCI:
            bus.override[vf] = VFIO_PCI  # vfio_pci_bus_notifier, BUS_NOTIFY_ADD_DEVICE
        if self.autoprobe or vf in bus.override:  # pci-driver.c:pci_device_can_probe
            bus.probe(vf)

    def _remove_vfs(self) -> None:
        k, bus = self.kernel, self.kernel.bus
        if any(bus.busy(vf) or k.iommu.bound(vf) for vf in self.vfs):
            raise kerr(errno.EBUSY)  # Linux waits for the VFIO users to close (see above)
        for i, vf in reversed(list(enumerate(self.vfs))):
            if bus.driver_of.get(vf):
                bus.unbind(vf)
            group = bus.group_of.pop(vf, None)
            for table in (bus.devices, bus.driver_of, bus.override):
                table.pop(vf, None)
            for path in (f"bus/pci/devices/{vf}", f"bus/pci/devices/{self.pf}/virtfn{i}",
                         f"kernel/iommu_groups/{group}"):
                k.sysfs.remove(path)
        self.vfs.clear()

    def store_autoprobe(self, value: str) -> None:
        self.autoprobe = kstrtobool(value)


class _Param:
    """A bool module parameter (param_set_bool: kstrtobool; shown as Y/N)."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def show(self) -> str:
        return "Y\n" if self.value else "N\n"

    def store(self, text: str) -> None:
        self.value = kstrtobool(text)


def add_sriov(kernel: FakeKernel, bdf: str, totalvfs: int, *, vf_device: int | None = None,
              offset: int = 1, stride: int = 1,
              vf_probe_rejects: frozenset[str] = frozenset()) -> SriovPF:
    """Make ``bdf`` an SR-IOV PF of ``totalvfs`` VFs (QEMU's nvme: VF offset 1, stride 1, the
    PF's device id); gives the fake vfio-pci its ``enable_sriov`` parameter (off) if missing.
    ``vf_probe_rejects`` names host drivers whose probe fails on a VF (QEMU's nvme VFs are
    offline controllers: the guest's nvme probe fails, ENODEV, and they stay unbound)."""
    dev = kernel.bus.devices[bdf]
    pf = SriovPF(kernel, bdf, totalvfs, dev.cfg.device if vf_device is None else vf_device,
                 offset, stride, vf_probe_rejects)
    base = f"bus/pci/devices/{bdf}"
    sysfs = kernel.sysfs
    sysfs.add_attr(f"{base}/sriov_totalvfs", f"{totalvfs}\n")
    sysfs.add_attr(f"{base}/sriov_numvfs", pf.show_numvfs, pf.store_numvfs)
    sysfs.add_attr(f"{base}/sriov_offset", f"{offset}\n")
    sysfs.add_attr(f"{base}/sriov_stride", f"{stride}\n")
    sysfs.add_attr(f"{base}/sriov_vf_device", f"{pf.vf_device:x}\n")
    sysfs.add_attr(f"{base}/sriov_drivers_autoprobe", lambda: f"{int(pf.autoprobe)}\n",
                   pf.store_autoprobe)
    if not sysfs.exists(ENABLE_SRIOV):
        param = _Param(False)  # vfio_pci.c: module_param(enable_sriov, bool, 0644)
        sysfs.add_attr(ENABLE_SRIOV, param.show, param.store)
    return pf
