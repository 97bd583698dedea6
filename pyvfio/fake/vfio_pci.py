"""The vfio-pci device fd (drivers/vfio/pci/vfio_pci_core.c): info, regions, irqs, reset.

One :class:`VFIOPCIDevice` exists per device while any fd of it is open (the group path may open
a device several times); the first open enables it, the last close disables its interrupts and
resets it, as ``vfio_pci_core_enable``/``vfio_pci_core_disable`` do.
"""

from __future__ import annotations

import errno
import functools
import struct
from collections.abc import Callable
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import dmabuf, hot_reset, migration
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.irq import ERR, INTX, MSIX, Interrupts, eventfd_get, put
from pyvfio.fake.memory import kerr
from pyvfio.fake.pci import (
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_MSI,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCIDevice,
)
from pyvfio.fake.region import CONFIG_INDEX, NUM_BARS, OFFSET_SHIFT, Regions
from pyvfio.fake.uaccess import FakeFile, IoctlArg

NUM_REGIONS, NUM_IRQS = C.VFIO_PCI_NUM_REGIONS, C.VFIO_PCI_NUM_IRQS
_IRQ_SET_MASK = (C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_DATA_BOOL | C.VFIO_IRQ_SET_DATA_EVENTFD
                 | C.VFIO_IRQ_SET_ACTION_MASK | C.VFIO_IRQ_SET_ACTION_UNMASK
                 | C.VFIO_IRQ_SET_ACTION_TRIGGER)
_FEATURE_FLAGS = (C.VFIO_DEVICE_FEATURE_MASK | C.VFIO_DEVICE_FEATURE_GET
                  | C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_PROBE)
# vfio_pci_core_ioctl_feature: feature -> payload size; all SET-only
_FEATURES = {C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: 0,
             C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: 8,
             C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: 0}
MAX_IOEVENTFDS = 1000
_RW = C.VFIO_REGION_INFO_FLAG_READ | C.VFIO_REGION_INFO_FLAG_WRITE


class VFIOPCIDevice(FakeFile):
    """A device opened through vfio-pci; ``reset_domain`` is what its bus reset reaches."""

    kind = "device"

    def __init__(self, dev: PCIDevice, reset_domain: hot_reset.ResetDomain) -> None:
        self.dev = dev
        self.opens = 0
        self.regions = Regions(dev)
        self.irqs = Interrupts(dev)
        self.ioeventfds: dict[tuple[int, int, int, int], int] = {}
        self.low_power = False
        self._wakeup: int | None = None  # LOW_POWER_ENTRY_WITH_WAKEUP's eventfd reference
        self._reset_domain = reset_domain
        # vfio_device_cdev_opened + vfio_iommufd_device_ictx: the iommufd of a cdev open (BIND)
        self.cdev_ctx: Any = None
        self.install_fd: Callable[[Any], int] | None = None  # the kernel's, for dma-buf fds
        self.vf_tokens: Any = None  # the kernel's VF tokens (fake/vf_token.py), set at open
        dev.irq = self.irqs
        self._reset()  # vfio_pci_core_enable: pci_enable_device (MEMORY on), try FLR; master off
        dev.config[4] = (dev.config[4] | PCI_COMMAND_MEMORY) & ~PCI_COMMAND_MASTER
        # vfio_pci_core_enable: pci_save_state; vfio_pci_core_disable restores it (via
        # pci_load_and_free_saved_state + pci_restore_state), so config writes do not outlive
        # the last close (the VM lane's recordings show the next open reading the saved values)
        self._saved_config = bytes(dev.config)

    def release(self) -> None:
        self.opens -= 1
        if self.opens == 0:
            self.irqs.close()
            for fd in self.ioeventfds.values():
                put(fd)
            self.ioeventfds.clear()
            self._low_power_exit()
            self.dev.irq = None
            self._reset()
            # pci_restore_state rewrites the 16 header dwords (and enabled capabilities' state):
            # device-specific bytes after the header keep what was written (QEMU's edu has them
            # writable, the lane shows them persisting)
            self.dev.config[:0x40] = self._saved_config[:0x40]
            msi = self.dev.caps.get(PCI_CAP_ID_MSI)
            if msi is not None:  # virtualized by vfio (vconfig, built again at each open)
                flags = self._saved_config[msi + 2]
                size = 10 + (4 if flags & 0x80 else 0) + (10 if self._saved_config[msi + 3] & 1
                                                          else 0)
                self.dev.config[msi : msi + size] = self._saved_config[msi : msi + size]
            self.dev.config[4] &= ~PCI_COMMAND_MASTER  # vfio_pci_core_disable: pci_clear_master

    def held_fds(self) -> list[int]:
        """Return the eventfd references the device holds."""
        wakeup = [self._wakeup] if self._wakeup is not None else []
        return [*self.irqs.held(), *self.ioeventfds.values(), *wakeup]

    def _reset(self) -> None:
        if self.dev.cfg.reset:
            saved = bytes(self.dev.config)
            self.dev.reset()
            self.dev.config[:0x40] = saved[:0x40]  # pci_reset_function saves/restores state

    # -- info ------------------------------------------------------------------------------

    def VFIO_DEVICE_GET_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        info.flags = C.VFIO_DEVICE_FLAGS_PCI
        if self.dev.cfg.reset:
            info.flags |= C.VFIO_DEVICE_FLAGS_RESET
        info.num_regions, info.num_irqs = NUM_REGIONS, NUM_IRQS
        arg.copy_out(info)
        return 0

    def VFIO_DEVICE_GET_REGION_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        index = info.index
        if index >= NUM_REGIONS:
            raise kerr(errno.EINVAL)  # default case: no device-specific regions
        info.offset = index << OFFSET_SHIFT
        caps: list[tuple[int, int, bytes]] = []
        if index < NUM_BARS:
            info.size = self.dev.bars[index].size
            info.flags = _RW if info.size else 0
            if self.regions.mmappable(index):
                info.flags |= C.VFIO_REGION_INFO_FLAG_MMAP
                caps = self._region_caps(index)
        elif index == C.VFIO_PCI_ROM_REGION_INDEX:
            info.size, info.flags = 0, 0  # no ROM
        elif index == CONFIG_INDEX:
            info.size = len(self.dev.config)
            info.flags = _RW
        else:
            raise kerr(errno.EINVAL)  # VGA only for VGA-class devices; no device regions
        arg.reply_caps(caps, C.VFIO_REGION_INFO_FLAG_CAPS)
        return 0

    def _region_caps(self, index: int) -> list[tuple[int, int, bytes]]:
        c = self.dev.cfg
        caps: list[tuple[int, int, bytes]] = []
        if index == 0 and c.sparse_mmap:
            body = struct.pack("<II", len(c.sparse_mmap), 0)
            body += b"".join(struct.pack("<QQ", off, size) for off, size in c.sparse_mmap)
            caps.append((C.VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, body))
        if c.msix_vectors and index == c.msix_bar:
            caps.append((C.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, b""))
        return caps

    def VFIO_DEVICE_GET_IRQ_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        index = info.index
        # 6.12: the ERR index of a conventional PCI device is EINVAL; 7.3 answers it, count 1
        # (its vfio_pci_get_irq_count returns 1 for ERR whether or not the device is PCIe)
        err_always = arg.linux.at_least("7.3")
        pcie_only = not err_always and PCI_CAP_ID_EXP not in self.dev.caps
        if index >= NUM_IRQS or (index == ERR and pcie_only):
            raise kerr(errno.EINVAL)
        info.flags = C.VFIO_IRQ_INFO_EVENTFD
        if index == INTX:
            info.flags |= C.VFIO_IRQ_INFO_MASKABLE | C.VFIO_IRQ_INFO_AUTOMASKED
        elif index != MSIX or not self.dev.cfg.msix_vectors:
            # has_dyn_msix = pci_msix_can_alloc_dyn(): false without an MSI-X capability
            info.flags |= C.VFIO_IRQ_INFO_NORESIZE
        info.count = self.irqs.count(index, err_always=err_always)
        arg.copy_out(info, 16)
        return 0

    # -- interrupts ------------------------------------------------------------------------

    def VFIO_DEVICE_SET_IRQS(self, arg: IoctlArg) -> int:  # noqa: N802
        hdr = arg.cmd
        flags, index, start, count = hdr.flags, hdr.index, hdr.start, hdr.count
        if index >= NUM_IRQS or count >= 0xFFFFFFFF - start or flags & ~_IRQ_SET_MASK:
            raise kerr(errno.EINVAL)
        # 7.3 vfio_pci_get_irq_count: every device has an ERR IRQ, so SET_IRQS reaches
        # vfio_pci_set_err_trigger (6.12: PCIe only; a conventional device's max is 0: EINVAL)
        err_always = arg.linux.at_least("7.3")
        limit = self.irqs.count(index, err_always=err_always)
        if start >= limit or start + count > limit:
            raise kerr(errno.EINVAL)
        kind = flags & (C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_DATA_BOOL
                        | C.VFIO_IRQ_SET_DATA_EVENTFD)
        size = {C.VFIO_IRQ_SET_DATA_NONE: 0, C.VFIO_IRQ_SET_DATA_BOOL: 1,
                C.VFIO_IRQ_SET_DATA_EVENTFD: 4}.get(kind)
        if size is None or arg.size - 20 < count * size:
            raise kerr(errno.EINVAL)
        raw = arg.read(20, count * size)
        data = ([1] * count if not size else list(raw) if size == 1
                else list(struct.unpack(f"<{count}i", raw)))
        arg.extra["data"] = data
        return self.irqs.set_irqs(flags, index, start, data, err_always=err_always)

    # -- reset -----------------------------------------------------------------------------

    def VFIO_DEVICE_RESET(self, arg: IoctlArg) -> int:  # noqa: N802
        if not self.dev.cfg.reset:
            raise kerr(errno.EINVAL)
        self._reset()
        return 0

    def VFIO_DEVICE_GET_PCI_HOT_RESET_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        return hot_reset.get_info(self.dev.bdf, self._reset_domain, self.cdev_ctx, arg)

    def VFIO_DEVICE_PCI_HOT_RESET(self, arg: IoctlArg) -> int:  # noqa: N802
        hot_reset.check_reset(self.dev.bdf, self._reset_domain, self.cdev_ctx, arg)
        self._reset()
        return 0

    # -- ioeventfd and features ------------------------------------------------------------

    def VFIO_DEVICE_IOEVENTFD(self, arg: IoctlArg) -> int:  # noqa: N802
        io = arg.cmd
        size = io.flags & C.VFIO_DEVICE_IOEVENTFD_SIZE_MASK
        if io.flags & ~C.VFIO_DEVICE_IOEVENTFD_SIZE_MASK or bin(size).count("1") != 1 or io.fd < -1:
            raise kerr(errno.EINVAL)
        width = {1: 1, 2: 2, 4: 4, 8: 8}[size]
        index, pos = io.offset >> OFFSET_SHIFT, io.offset & ((1 << OFFSET_SHIFT) - 1)
        if index >= NUM_BARS or pos + width > self.dev.bars[index].size:
            raise kerr(errno.EINVAL)
        key = (index, pos, io.data, width)
        if key in self.ioeventfds:
            if io.fd != -1:
                raise kerr(errno.EEXIST)
            put(self.ioeventfds.pop(key))
            return 0
        if io.fd == -1:
            raise kerr(errno.ENODEV)
        if len(self.ioeventfds) >= MAX_IOEVENTFDS:
            raise kerr(errno.ENOSPC)
        self.ioeventfds[key] = eventfd_get(io.fd)
        return 0

    def VFIO_DEVICE_FEATURE(self, arg: IoctlArg) -> int:  # noqa: N802
        feat = arg.cmd
        flags = feat.flags
        get, set_, probe = (flags & C.VFIO_DEVICE_FEATURE_GET, flags & C.VFIO_DEVICE_FEATURE_SET,
                            flags & C.VFIO_DEVICE_FEATURE_PROBE)
        if flags & ~_FEATURE_FLAGS or (get and set_ and not probe):
            raise kerr(errno.EINVAL)
        if flags & C.VFIO_DEVICE_FEATURE_MASK in migration.MIGRATION_FEATURES:
            driver = getattr(self.dev, "migration", None)  # mig_ops/log_ops (fake/migration.py)
            return migration.feature(driver, flags, arg, getattr(driver, "install_fd", None))
        if flags & C.VFIO_DEVICE_FEATURE_MASK == C.VFIO_DEVICE_FEATURE_DMA_BUF \
                and arg.linux.at_least("6.19"):
            return dmabuf.feature_dma_buf(self.dev, flags, arg, self.install_fd)
        if flags & C.VFIO_DEVICE_FEATURE_MASK == C.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN \
                and self.vf_tokens is not None:
            return int(self.vf_tokens.feature(self.dev.bdf, flags, lambda: arg.read(8, 16),
                                              arg.size - 8))
        payload = _FEATURES.get(flags & C.VFIO_DEVICE_FEATURE_MASK)
        if payload is None:
            raise kerr(errno.ENOTTY)  # no migration/logging ops, not an SR-IOV PF
        if get:
            raise kerr(errno.EINVAL)  # vfio_check_feature: SET only
        if probe:
            return 0
        if not set_ or arg.size - 8 < payload:
            raise kerr(errno.EINVAL)
        return self._low_power(flags & C.VFIO_DEVICE_FEATURE_MASK, arg)

    def VFIO_DEVICE_QUERY_GFX_PLANE(self, arg: IoctlArg) -> int:  # noqa: N802
        raise kerr(errno.ENOTTY)  # vfio_pci_core_ioctl: no display planes (mdev drivers have)

    def VFIO_DEVICE_GET_GFX_DMABUF(self, arg: IoctlArg) -> int:  # noqa: N802
        raise kerr(errno.ENOTTY)  # vfio_pci_core_ioctl: no display planes

    def _low_power(self, feature: int, arg: IoctlArg) -> int:
        """vfio_pci_core_pm_entry(_with_wakeup) / _pm_exit, after vfio_check_feature."""
        if feature == C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
            self._low_power_exit()
            return 0
        wakeup = None
        if feature == C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
            (fd,) = struct.unpack("<i", arg.read(8, 4))
            if fd < 0:
                raise kerr(errno.EINVAL)  # vfio_pci_core_pm_entry_with_wakeup
            wakeup = eventfd_get(fd)  # EBADF, EINVAL (not an eventfd)
        if self.low_power:  # vfio_pci_runtime_pm_entry: pm_runtime_engaged already
            put(wakeup)
            raise kerr(errno.EINVAL)
        self.low_power, self._wakeup = True, wakeup
        return 0

    def _low_power_exit(self) -> None:
        put(self._wakeup)
        self.low_power, self._wakeup = False, None


def _bind_on_group_fd(dev: VFIOPCIDevice, arg: IoctlArg) -> int:
    """device_cdev.c:vfio_df_ioctl_bind_iommufd: "only allowed for cdev fds" (EINVAL, after the
    struct's own checks, which answer EINVAL too)."""
    raise kerr(errno.EINVAL)


def _op(request: uapi.Ioctl, handler: Callable[[VFIOPCIDevice, IoctlArg], int],
        ctype: str | None = None, last: str | None = None) -> Op:
    name = handler.__name__

    @functools.wraps(handler)
    def late(dev: VFIOPCIDevice, arg: IoctlArg) -> int:
        result: int = getattr(dev, name)(arg)  # an mdev driver's device file overrides it
        return result

    return Op(request, "device", late, Conv.ARGSZ if ctype else Conv.NONE, ctype, last)


OPS = (
    _op(uapi.VFIO_DEVICE_GET_INFO, VFIOPCIDevice.VFIO_DEVICE_GET_INFO,
        "struct vfio_device_info", "num_irqs"),
    _op(uapi.VFIO_DEVICE_GET_REGION_INFO, VFIOPCIDevice.VFIO_DEVICE_GET_REGION_INFO,
        "struct vfio_region_info", "offset"),
    _op(uapi.VFIO_DEVICE_GET_IRQ_INFO, VFIOPCIDevice.VFIO_DEVICE_GET_IRQ_INFO,
        "struct vfio_irq_info", "count"),
    _op(uapi.VFIO_DEVICE_SET_IRQS, VFIOPCIDevice.VFIO_DEVICE_SET_IRQS,
        "struct vfio_irq_set", "count"),
    _op(uapi.VFIO_DEVICE_RESET, VFIOPCIDevice.VFIO_DEVICE_RESET),
    _op(uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIOPCIDevice.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
        "struct vfio_pci_hot_reset_info", "count"),
    _op(uapi.VFIO_DEVICE_PCI_HOT_RESET, VFIOPCIDevice.VFIO_DEVICE_PCI_HOT_RESET,
        "struct vfio_pci_hot_reset", "count"),
    _op(uapi.VFIO_DEVICE_IOEVENTFD, VFIOPCIDevice.VFIO_DEVICE_IOEVENTFD,
        "struct vfio_device_ioeventfd", "fd"),
    _op(uapi.VFIO_DEVICE_FEATURE, VFIOPCIDevice.VFIO_DEVICE_FEATURE,
        "struct vfio_device_feature", "flags"),
    _op(uapi.VFIO_DEVICE_QUERY_GFX_PLANE, VFIOPCIDevice.VFIO_DEVICE_QUERY_GFX_PLANE),
    _op(uapi.VFIO_DEVICE_GET_GFX_DMABUF, VFIOPCIDevice.VFIO_DEVICE_GET_GFX_DMABUF),
    Op(uapi.VFIO_DEVICE_BIND_IOMMUFD, "device-bind", _bind_on_group_fd, Conv.ARGSZ,
       "struct vfio_device_bind_iommufd", "out_devid", since="6.6", struct_since="6.17"),
)
"""The vfio-pci device fd's ioctls (vfio_main.c:vfio_device_fops_unl_ioctl, vfio_pci_core.c).

``device-bind`` is VFIO_DEVICE_BIND_IOMMUFD on a device fd opened through its group: the kernel
(with CONFIG_VFIO_DEVICE_CDEV) checks the struct, then refuses it."""
