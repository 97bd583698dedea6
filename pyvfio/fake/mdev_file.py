"""What the device files of Linux's sample mdev drivers (mtty, mdpy, mbochs) share.

Each sample registers an emulated-IOMMU VFIO device (no IOMMU, see :mod:`pyvfio.fake.mdev`)
whose ``vfio_device_ops`` are its own, with the same skeleton:

* GET_INFO: ``VFIO_DEVICE_FLAGS_PCI``, 9 regions, 5 irqs, remembered in ``mdev_state->dev_info``
  (:attr:`SampleMdevModel.dev_info_num_irqs`, zero until the first GET_INFO);
* every ioctl the driver does not know is ENOTTY, including the vfio-pci ones (hot reset,
  IOEVENTFD) and every device feature but the core's migration ones;
* read/write go through the driver's ``mdev_access`` in 4-, 2- or 1-byte pieces by alignment
  (:meth:`SampleMdevFile.rw`); a piece the driver does not handle fails the access with EFAULT;
* the last close runs the driver's ``close_device`` (:meth:`SampleMdevFile.close_device`).
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio._ffi import C
from pyvfio.fake import migration
from pyvfio.fake.memory import kerr
from pyvfio.fake.pci import DeviceConfig, PCIDevice
from pyvfio.fake.uaccess import IoctlArg
from pyvfio.fake.vfio_pci import VFIOPCIDevice

NUM_REGIONS, NUM_IRQS = C.VFIO_PCI_NUM_REGIONS, C.VFIO_PCI_NUM_IRQS
_FEATURE_FLAGS = (C.VFIO_DEVICE_FEATURE_MASK | C.VFIO_DEVICE_FEATURE_GET
                  | C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_PROBE)


class SampleMdevModel(PCIDevice):
    """The state an mdev keeps for its whole life (``struct mdev_state``), named by UUID."""

    def __init__(self, uid: str, vconfig: bytearray) -> None:
        super().__init__(uid, DeviceConfig(bars=(), msi_vectors=0, intx=False, reset=False))
        self.vconfig = vconfig
        self.dev_info_num_irqs = 0
        self.migration: migration.MigrationDriver | None = None


class SampleMdevFile(VFIOPCIDevice):
    """An open sample mdev; subclasses give :meth:`access` and their own ioctls."""

    emulated = True  # vfio_register_emulated_iommu_dev

    def __init__(self, dev: Any, reset_domain: Any) -> None:
        super().__init__(dev, reset_domain)
        self.model = dev

    def release(self) -> None:
        self.opens -= 1
        if self.opens == 0:
            self.close_device()

    def close_device(self) -> None:
        """The driver's close_device (nothing by default)."""
        return None

    def held_fds(self) -> list[int]:
        return []

    def VFIO_DEVICE_GET_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        info.flags = C.VFIO_DEVICE_FLAGS_PCI
        info.num_regions, info.num_irqs = NUM_REGIONS, NUM_IRQS
        self.model.dev_info_num_irqs = NUM_IRQS
        arg.copy_out(info)
        return 0

    def VFIO_DEVICE_FEATURE(self, arg: IoctlArg) -> int:  # noqa: N802
        """vfio_ioctl_device_feature: the migration features reach the driver's mig_ops;
        anything else is ENOTTY (no device_feature op)."""
        flags = arg.cmd.flags
        get, set_ = flags & C.VFIO_DEVICE_FEATURE_GET, flags & C.VFIO_DEVICE_FEATURE_SET
        if flags & ~_FEATURE_FLAGS or (get and set_ and not flags & C.VFIO_DEVICE_FEATURE_PROBE):
            raise kerr(errno.EINVAL)
        if flags & C.VFIO_DEVICE_FEATURE_MASK not in migration.MIGRATION_FEATURES:
            raise kerr(errno.ENOTTY)
        return migration.feature(self.model.migration, flags, arg, self.install_fd)

    def _enotty(self, arg: IoctlArg) -> int:
        raise kerr(errno.ENOTTY)  # the driver's ioctl: default case

    VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = _enotty
    VFIO_DEVICE_PCI_HOT_RESET = _enotty
    VFIO_DEVICE_IOEVENTFD = _enotty
    VFIO_DEVICE_QUERY_GFX_PLANE = _enotty
    VFIO_DEVICE_GET_GFX_DMABUF = _enotty

    def rw(self, offset: int, data: bytes | None, count: int) -> bytes | int:
        """The driver's read/write: 4, 2 or 1 bytes at a time by alignment. Raises EFAULT."""
        out, done, pos = b"", 0, offset
        while done < count:
            width = 4 if count - done >= 4 and not pos % 4 else (
                2 if count - done >= 2 and not pos % 2 else 1)
            chunk = None if data is None else data[done:done + width]
            out += self.access(pos, width, chunk)
            done, pos = done + width, pos + width
        return out if data is None else count

    def access(self, pos: int, width: int, chunk: bytes | None) -> bytes:
        """mdev_access of one piece: the bytes read (``chunk`` None) or b"" after a write."""
        raise kerr(errno.EFAULT)
