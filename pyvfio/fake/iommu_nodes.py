"""/dev/iommu and the VFIO device cdevs /dev/vfio/devices/vfioX as nodes of a FakeKernel.

Opening /dev/iommu makes an iommufd (:mod:`pyvfio.fake.iommufd`); opening a cdev always works
(device_cdev.c:vfio_device_fops_cdev_open) and gives a :class:`pyvfio.fake.cdev.CdevFile`.  The
kernel's device-node code (:mod:`pyvfio.fake.dev`) asks this class about those paths, about
group opens (EBUSY while a cdev of the group is bound) and about DMA of cdev-bound devices.
"""

from __future__ import annotations

import errno
from typing import Any

from pyvfio.fake import hwpt as fhwpt
from pyvfio.fake.cdev import CdevFile, GroupGate
from pyvfio.fake.ioas import HPAGE_SIZE, PAGE_SIZE
from pyvfio.fake.iommu import IOMMUModel
from pyvfio.fake.iommufd import IommufdFile
from pyvfio.fake.iommufd_device import dma_pieces
from pyvfio.fake.memory import kerr
from pyvfio.fake.noiommu import NOIOMMU_MODEL
from pyvfio.fake.vfio_pci import VFIOPCIDevice

CDEV_DIR = "/dev/vfio/devices/"


class IommuNodes:
    """/dev/iommu and /dev/vfio/devices/vfioX of a FakeKernel (only with its ``iommufd`` knob).

    The kernel keeps one of these; its device-node code asks it about these paths, about group
    opens (EBUSY while a cdev of the group is bound) and about DMA of cdev-bound devices.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        knobs = kernel.knobs
        self.model = IOMMUModel.from_ranges(
            knobs.iova_ranges, pgsize_bitmap=knobs.pgsize_bitmap,
            max_iova_alignment=HPAGE_SIZE if knobs.transparent_hugepage else PAGE_SIZE,
            enforce_cache_coherency=knobs.cache_coherency)
        self.gate = GroupGate(group_open=kernel.open_groups.__contains__,
                              compat_owner=kernel.compat_owner)
        self.cdevs: dict[str, CdevFile] = {}  # bdf -> the bound cdev file

    def handles(self, path: str) -> bool:
        """Tell whether ``path`` is one of the nodes this class answers for."""
        return path == "/dev/iommu" or path.startswith(CDEV_DIR)

    def _cdev_bdf(self, path: str) -> str | None:
        if not self.kernel.knobs.iommufd or not path.startswith(CDEV_DIR):
            return None
        name, bus = path[len(CDEV_DIR) :], self.kernel.bus
        return next((b for b in bus.vfio_dev if bus.cdev_name(b) == name), None)

    def exists(self, path: str) -> bool:
        """Tell whether the node exists."""
        if path == "/dev/iommu":
            return bool(self.kernel.knobs.iommufd)
        return self._cdev_bdf(path) is not None

    def open(self, path: str) -> int:
        """Open /dev/iommu (a new iommufd) or a cdev (device_cdev.c: always succeeds)."""
        k = self.kernel
        if path == "/dev/iommu":
            if not k.knobs.iommufd:
                raise kerr(errno.ENOENT, path)
            f = IommufdFile(self.model, k.mem, k._new_fd)
            f.ctx.lookup_fd = k.file  # MAP_FILE of a fake dma-buf fd (fake/mapfile.py)
            return int(k._new_fd(f))
        bdf = self._cdev_bdf(path)
        if bdf is None:
            raise kerr(errno.ENOENT, path)
        dev = k.open_devices.get(bdf)
        if dev is None:
            model = k.bus.devices[bdf]
            dev = getattr(model, "vfio_file", VFIOPCIDevice)(
                model, k.reset_domain)
            dev.install_fd = k._new_fd  # dma-buf export (fake/dmabuf.py)
            dev.vf_tokens = k.vf_tokens
            k.open_devices[bdf] = dev
        cdev = CdevFile(dev, k.bus.group_of[bdf], self.gate, k.file)
        if k.bus.noiommu_cdev:
            cdev.model = NOIOMMU_MODEL  # bound without an IOMMU (device.c:iommufd_bind_noiommu)
        return int(k._new_fd(cdev))

    def device_file(self, f: Any) -> Any:
        """Unwrap a cdev to its device file for read/write/mmap (EINVAL before BIND)."""
        if isinstance(f, CdevFile):
            if not f.bound:
                raise kerr(errno.EINVAL)
            return f.device
        return f

    def released(self, f: Any) -> None:
        """After a cdev's release: forget its device file once nobody has it open."""
        if isinstance(f, CdevFile):
            dev, k = f.device, self.kernel
            held = any(dev in g.devices for g in k.group_files())
            if dev.opens == 0 and not held and k.open_devices.get(dev.dev.bdf) is dev:
                del k.open_devices[dev.dev.bdf]

    def translate(self, bdf: str, iova: int, size: int,
                  write: bool) -> list[tuple[int, int]] | None:
        """DMA of a cdev-bound device: ``(user address, length)`` pieces, or None (blocked)."""
        for f in self.kernel._files.values():
            if isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf:
                if f.iommufd is None or not isinstance(f.obj, fhwpt.DeviceObj):
                    return None
                return dma_pieces(f.iommufd.ctx, f.obj, iova, size, write)
        return None

    def bound(self, bdf: str) -> bool:
        """Tell whether a cdev of ``bdf`` is bound (its DMA goes through iommufd)."""
        return any(isinstance(f, CdevFile) and f.bound and f.device.dev.bdf == bdf
                   for f in self.kernel._files.values())
