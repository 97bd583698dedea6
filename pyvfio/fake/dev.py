"""/dev/vfio and the files behind it: opening groups and devices, device I/O, and DMA routing.

A part of :class:`pyvfio.fake.kernel.FakeKernel` (which holds one and delegates to it): the
device nodes and what the fds opened from them reach, over the kernel's fd table, bus and memory.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import TYPE_CHECKING, Any

from pyvfio.fake.container import Container
from pyvfio.fake.group import GroupFile, compat_owner
from pyvfio.fake.hot_reset import ResetDomain
from pyvfio.fake.iommu_nodes import IommuNodes
from pyvfio.fake.memory import PAGE_SIZE, foreign, kerr
from pyvfio.fake.pci import Fault, PCIDevice
from pyvfio.fake.physmem import PAGEMAP, PagemapFile
from pyvfio.fake.region import CONFIG_INDEX, NUM_BARS, OFFSET_SHIFT, FakeMMIO
from pyvfio.fake.vf_token import VFTokens
from pyvfio.fake.vfio_pci import NUM_REGIONS, VFIOPCIDevice

if TYPE_CHECKING:
    from pyvfio.fake.bus import PCIBus
    from pyvfio.fake.faults import FaultInjector
    from pyvfio.fake.fdtable import FdTable
    from pyvfio.fake.memory import UserMemory
    from pyvfio.fake.sysfs import SysfsTree
    from pyvfio.fake.type1 import Knobs
    from pyvfio.fake.uaccess import FakeFile

_OFFSET_MASK = (1 << OFFSET_SHIFT) - 1


class DevNodes:
    """/dev/vfio/vfio, /dev/vfio/<N> (or noiommu-<N>), device fds, and the DMA port.

    Args:
        knobs, bus, mem, sysfs: the kernel's tunables, PCI bus, user memory and sysfs tree.
        fds: the kernel's fd table (files are installed there).
        faults: the kernel's fault injector (every open counts as an operation).
        lock: the kernel's lock (device models doing DMA from threads take it).
        open_devices: the devices with an open fd, by BDF (shared with the bus, which refuses
            to unbind them).
    """

    def __init__(self, knobs: Knobs, bus: PCIBus, mem: UserMemory, sysfs: SysfsTree,
                 fds: FdTable, faults: FaultInjector, lock: threading.RLock,
                 open_devices: dict[str, VFIOPCIDevice]) -> None:
        self.knobs, self.bus, self.mem, self.sysfs = knobs, bus, mem, sysfs
        self.fds, self.faults, self.lock = fds, faults, lock
        self.open_groups: dict[int, GroupFile] = {}  # group->opened_file
        # released group files whose device fds are still open: an iommufd-opened device does
        # not pin its group file (only vfio_group_use_container does), so the group can be
        # closed and opened again under it
        self.held_groups: list[GroupFile] = []
        self.compat_bound: dict[str, tuple[Any, Any]] = {}  # GroupFile.bound, shared
        self.open_devices = open_devices
        self.iommu = IommuNodes(self)  # /dev/iommu and the device cdevs (fake/iommu_nodes.py)
        self.vf_tokens = VFTokens(sysfs, bus.driver_of.get, open_devices.keys, bus.vfio_dev.get)
        self.reset_domain = ResetDomain(bus, self._group_of_fd)

    def _new_fd(self, f: FakeFile) -> int:
        """Install ``f`` in the fd table and return its fd."""
        return self.fds.install(f)

    def file(self, fd: int) -> FakeFile | None:
        """Return the open file behind fake ``fd``, or None."""
        return self.fds.get(fd)

    @property
    def _files(self) -> dict[int, FakeFile]:
        return self.fds.files

    def _group_path(self, group: int) -> str:
        return f"/dev/vfio/noiommu-{group}" if self.knobs.noiommu else f"/dev/vfio/{group}"

    def listdir(self, path: str) -> list[str]:
        """List /dev/vfio: ``vfio`` and one node per VFIO group. Raises ENOENT."""
        if path.rstrip("/") != "/dev/vfio":
            raise kerr(errno.ENOENT, path)
        return sorted(["vfio", *(os.path.basename(self._group_path(g))
                                 for g in self.bus.vfio_groups())])

    def exists(self, path: str) -> bool:
        """Tell whether a /dev node exists (/dev/iommu only with the ``iommufd`` knob)."""
        if self.iommu.handles(path):
            return self.iommu.exists(path)
        return path in ("/dev/vfio", "/dev/vfio/vfio") or path in {
            self._group_path(g) for g in self.bus.vfio_groups()}

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        """Open /dev/vfio/vfio (a new container) or a group node (exclusive: EBUSY)."""
        self.faults.operation(path)
        if path == "/dev/vfio/vfio":
            return self._new_fd(Container(self.knobs, self.mem, self.iommu))
        if self.iommu.handles(path):
            return self.iommu.open(path)
        if path == PAGEMAP:  # the invented physical addresses (fake/physmem.py)
            return self._new_fd(PagemapFile(self.mem))
        groups = {self._group_path(g): g for g in self.bus.vfio_groups()}
        if path not in groups:
            err = errno.ENODEV if path == "/dev/iommu" and self.knobs.iommufd else errno.ENOENT
            raise kerr(err, path)
        number = groups[path]
        if number in self.open_groups or self.iommu.gate.group_blocked(number):
            raise kerr(errno.EBUSY, path)  # group.c:vfio_group_fops_open, opened_file
        group = GroupFile(number, self.bus, self.file, self._open_device, self.vf_tokens,
                          self.compat_bound)
        self.open_groups[number] = group
        return self._new_fd(group)

    def _open_device(self, group: GroupFile, bdf: str) -> int:
        dev = self.open_devices.get(bdf)
        if dev is None:
            model = self.bus.devices[bdf]  # an mdev model brings its driver's device file
            dev = getattr(model, "vfio_file", VFIOPCIDevice)(
                model, self.reset_domain)
            dev.install_fd = self._new_fd  # dma-buf export (fake/dmabuf.py)
            dev.vf_tokens = self.vf_tokens
            self.open_devices[bdf] = dev
        dev.opens += 1
        group.devices.append(dev)
        return self._new_fd(dev)

    def _group_of_fd(self, fd: int) -> int | None:
        """The group number behind ``fd``; -1 for an open file that is not a group, None for
        an fd that is not open."""
        f = self.file(fd)
        if f is None:
            return -1 if foreign(fd) else None
        return f.number if isinstance(f, GroupFile) else -1

    def release(self, f: FakeFile) -> None:
        """The last fd of ``f`` closed: run its release, and the group's if it was waiting."""
        if isinstance(f, GroupFile):
            f.fd_closed = True
            if not f.devices or f.container is None:  # a container's users hold the file
                self._release_group(f)
            return
        f.release()
        self.iommu.released(f)
        if isinstance(f, VFIOPCIDevice):
            group = next(g for g in self.group_files() if f in g.devices)
            group.devices.remove(f)
            if f.opens == 0:
                group.device_closed(f.dev.bdf)
                del self.open_devices[f.dev.bdf]
            if not group.devices and group.fd_closed:
                if group in self.held_groups:
                    self.held_groups.remove(group)
                else:
                    self._release_group(group)

    def compat_owner(self, number: int) -> Any:
        """The iommufd owning group ``number``'s DMA through a device opened by its group."""
        return compat_owner(self.bus, self.compat_bound, number)

    def group_files(self) -> list[GroupFile]:
        """The open group files and the released ones that still have open devices."""
        return [*self.open_groups.values(), *self.held_groups]

    def _release_group(self, group: GroupFile) -> None:
        """vfio_group_fops_release: leave the container or iommufd; /dev/vfio/N can be opened
        again.  Devices the file opened stay open (and bound to their iommufd)."""
        group.release()
        del self.open_groups[group.number]
        if group.devices:
            self.held_groups.append(group)

    # -- device I/O ------------------------------------------------------------------------

    def device_of(self, fd: int, err: int) -> VFIOPCIDevice:
        """The device file behind ``fd`` (a cdev's once bound). Raises EBADF, ``err``."""
        f = self.file(fd)
        if f is None:
            raise kerr(errno.EBADF)
        f = self.iommu.device_file(f)  # a cdev reaches its device once bound
        if not isinstance(f, VFIOPCIDevice):
            raise kerr(err)
        return f

    def device_rw(self, dev: VFIOPCIDevice, offset: int, data: bytes | None,
                  count: int) -> bytes | int:
        """vfio_pci_rw: dispatch a pread/pwrite to config space or a BAR (an mdev's device
        file has read/write ops of its own: its ``rw``)."""
        own = getattr(dev, "rw", None)
        if own is not None:
            result: bytes | int = own(offset, data, count)
            return result
        index, pos = offset >> OFFSET_SHIFT, offset & _OFFSET_MASK
        if count == 0:  # nothing to transfer: 0 whatever the region (as Linux 6.12 answers)
            return b"" if data is None else 0
        if index >= NUM_REGIONS:
            raise kerr(errno.EINVAL)
        if index == CONFIG_INDEX:
            out = dev.regions.config_rw(pos, data, count)
            return out if data is None else count
        if index >= NUM_BARS:
            raise kerr(errno.EINVAL)  # no ROM, not VGA
        return dev.regions.bar_rw(index, pos, data, count)

    def device_mmap(self, dev: VFIOPCIDevice, length: int, offset: int) -> FakeMMIO:
        """vfio_pci_core_mmap: BARs 0-5 with MMAP only, within the page-rounded BAR."""
        index, pos = offset >> OFFSET_SHIFT, offset & _OFFSET_MASK
        if length <= 0 or offset % PAGE_SIZE or index >= NUM_BARS \
                or not dev.regions.mmappable(index):
            raise kerr(errno.EINVAL)
        size = -(-dev.dev.bars[index].size // PAGE_SIZE) * PAGE_SIZE
        if pos + length > size:
            raise kerr(errno.EINVAL)
        return FakeMMIO(dev.regions, index, pos, length)

    # -- the IOMMU as the devices' DMA port --------------------------------------------------

    def _container_of(self, dev: PCIDevice) -> Container | None:
        group = self.open_groups.get(self.bus.group_of.get(dev.bdf, -1))
        return group.container if group is not None else None

    def _translate(self, dev: PCIDevice, iova: int, size: int,
                   write: bool) -> list[tuple[int, int]]:
        if self.iommu.bound(dev.bdf):  # bound through its cdev: the iommufd HWPT translates
            cdev_pieces = self.iommu.translate(dev.bdf, iova, size, write)
            if cdev_pieces is None:
                dev.faults.append(Fault("IOVA not mapped in the HWPT", iova, size, write))
                return []
            return cdev_pieces
        group = next((g for g in self.group_files() if dev.bdf in g.bound), None)
        if group is not None:  # opened with an iommufd as container
            compat_pieces = group.translate(dev.bdf, iova, size, write)
            if compat_pieces is None:
                dev.faults.append(Fault("IOVA not mapped in the compat IOAS", iova, size, write))
                return []
            return compat_pieces
        container = self._container_of(dev)
        pieces = container.translate(iova, size, write=write) if container else None
        if pieces is None:
            reason = "IOVA not mapped" if container else "no IOMMU domain"
            dev.faults.append(Fault(reason + (" for write" if write else ""), iova, size, write))
            return []
        return pieces

    def dma_read(self, dev: PCIDevice, iova: int, size: int) -> bytes | None:
        """A device's DMA read through the IOMMU; None (fault recorded) when blocked."""
        with self.lock:
            return self._dma_read(dev, iova, size)

    def _dma_read(self, dev: PCIDevice, iova: int, size: int) -> bytes | None:
        pieces = self._translate(dev, iova, size, False)
        try:
            return b"".join(self.mem.read(va, n) for va, n in pieces) if pieces else None
        except OSError:
            dev.faults.append(Fault("user memory gone", iova, size, False))
            return None

    def dma_write(self, dev: PCIDevice, iova: int, data: bytes) -> bool:
        """A device's DMA write through the IOMMU; False (fault recorded, memory untouched)."""
        with self.lock:
            return self._dma_write(dev, iova, data)

    def _dma_write(self, dev: PCIDevice, iova: int, data: bytes) -> bool:
        pieces = self._translate(dev, iova, len(data), True)
        done = 0
        try:
            for va, n in pieces:
                self.mem.write(va, data[done : done + n])
                done += n
        except OSError:
            dev.faults.append(Fault("user memory gone", iova, len(data), True))
            return False
        return bool(pieces)
