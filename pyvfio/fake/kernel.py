"""FakeKernel: the Kernel seam answered by a model of Linux VFIO and iommufd.

Fake fds count up from 10001, so a leaked fake fd can never close a real one; eventfds are real.
Every ioctl goes through one dispatch table (:mod:`pyvfio.fake.ioctls`) built for the Linux
version the kernel imitates, is logged in :attr:`FakeKernel.calls` with its arguments, and may be
failed on purpose (:meth:`inject`, :meth:`fail_nth`).

Thread safety: Linux serializes each object with its own lock, so every ioctl is atomic with
respect to the others on the same object.  The fake gives the same atomicity with one lock held
across each system call (and each DMA of a device model): calls from several threads never see
half-done state; they are only more serialized than on Linux, which no caller can observe but as
timing.  Blocking reads of real eventfds are made outside the lock.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

from pyvfio._ffi import CData
from pyvfio.fake import ioctls
from pyvfio.fake.bus import PCIBus
from pyvfio.fake.call import Call
from pyvfio.fake.container import Container
from pyvfio.fake.dev import DevNodes
from pyvfio.fake.dmabuf import DmaBufFile
from pyvfio.fake.faults import FaultInjector
from pyvfio.fake.fdtable import FdTable
from pyvfio.fake.group import GroupFile
from pyvfio.fake.iommu_nodes import IommuNodes
from pyvfio.fake.iommufd import IommufdFile
from pyvfio.fake.iommufd_mmap import PageMMIO, iommufd_mmap
from pyvfio.fake.linux import Linux, resolve
from pyvfio.fake.memory import PAGE_SIZE, UserMemory, address, foreign, kerr
from pyvfio.fake.pci import PCIDevice
from pyvfio.fake.physmem import PagemapFile
from pyvfio.fake.region import FakeMMIO
from pyvfio.fake.sysfs import SysfsTree
from pyvfio.fake.type1 import Knobs
from pyvfio.fake.uaccess import FakeFile, IoctlArg
from pyvfio.fake.vfio_pci import VFIOPCIDevice
from pyvfio.kernel import PROT_RW, LinuxKernel


class FakeKernel:
    """A fake Linux host with VFIO: sysfs, /dev/vfio, containers, groups and vfio-pci devices.

    Args:
        dma_entry_limit: vfio_iommu_type1 ``dma_entry_limit`` (default 65535).
        memlock_limit: RLIMIT_MEMLOCK in bytes (default None: unlimited, as for root).
        iova_ranges: valid IOVA ranges, inclusive ends (default Intel VT-d minus the MSI window).
        pgsize_bitmap: IOMMU page sizes (default 4K|2M|1G).
        iommufd: whether /dev/iommu and the device cdevs exist (CONFIG_IOMMUFD,
            CONFIG_VFIO_DEVICE_CDEV).
        noiommu: vfio no-IOMMU mode (groups are /dev/vfio/noiommu-N).
        linux: the kernel version to answer as (``"6.12"``, ``"7.3"``; default the newest the VM
            lane verifies): ioctls newer than it are ENOTTY, and errnos follow it.

    Raises:
        ValueError: an unknown ``linux``; TypeError: an unknown knob.
    """

    def __init__(self, *, linux: str | Linux | None = None, **knobs: Any) -> None:
        self.linux = resolve(linux)
        self.knobs = Knobs(**knobs)
        self.ioctls = ioctls.table(self.linux, cdev_config=self.knobs.iommufd)
        self.lock = threading.RLock()
        self.sysfs_root = "/sys"
        self.sysfs = SysfsTree()
        open_devices: dict[str, VFIOPCIDevice] = {}
        self.bus = PCIBus(self.sysfs, noiommu=self.knobs.noiommu, busy=open_devices.__contains__,
                          noiommu_cdev=bool(self.knobs.iommufd) and self.linux.at_least("7.3"))
        if self.knobs.transparent_hugepage:
            thp = "always [madvise] never\n"
            self.sysfs.add_attr("kernel/mm/transparent_hugepage/enabled", thp)
        self.mem = UserMemory()
        self.calls: list[Call] = []
        self.labels: dict[str, Any] = {}
        self.fds = FdTable()
        self.faults = FaultInjector()
        self._mmaps: list[FakeMMIO] = []
        self._vmas: dict[int, list[Any]] = {}  # id(file) -> [file, live BAR mmaps, deferred]
        self._baseline: dict[str, Any] = {}
        self.nodes = DevNodes(self.knobs, self.bus, self.mem, self.sysfs, self.fds, self.faults,
                              self.lock, open_devices)

    def __repr__(self) -> str:
        return f"<FakeKernel devices={len(self.bus.devices)} fds={len(self.fds)}>"

    # -- the parts, by the names tests and device models use -----------------------------------

    @property
    def iommu(self) -> IommuNodes:
        """/dev/iommu, the device cdevs and the IOMMU model (``kernel.iommu.model``)."""
        return self.nodes.iommu

    @property
    def open_groups(self) -> dict[int, GroupFile]:
        """The open groups by number."""
        return self.nodes.open_groups

    @property
    def open_devices(self) -> dict[str, VFIOPCIDevice]:
        """The devices with an open fd, by BDF."""
        return self.nodes.open_devices

    @property
    def _files(self) -> dict[int, FakeFile]:
        return self.fds.files

    def _new_fd(self, f: FakeFile) -> int:
        return self.fds.install(f)

    def add_device(self, dev: PCIDevice, group: int | None, driver: str | None = None) -> None:
        """Plug a device model in (see :class:`pyvfio.fake.bus.PCIBus.add_device`)."""
        dev.dma = self.nodes  # its DMA goes through the IOMMU model
        self.bus.add_device(dev, group, driver)

    def mark_clean(self) -> None:
        """Record the current bindings as the state :meth:`assert_clean` expects back."""
        self._baseline = {"drivers": dict(self.bus.driver_of), "override": dict(self.bus.override)}

    # -- fault injection -------------------------------------------------------------------

    def inject(self, request: int | str, err: int, nth: int = 1) -> None:
        """Fail the ``nth`` next call of ioctl ``request`` (an Ioctl, a number or a kernel name)
        with ``err``, before the handler runs (nothing changes)."""
        self.faults.inject(request, err, nth)

    def fail_nth(self, nth: int | None, err: int = errno.ENOMEM) -> None:
        """Fail the ``nth`` next operation (open, ioctl or mmap) with ``err``; None disarms.

        A sweep arms 1, 2, ... until :attr:`fail_nth_pending` stays true after the sequence.
        """
        self.faults.fail_nth(nth, err)

    @property
    def fail_nth_pending(self) -> bool:
        """True while an armed :meth:`fail_nth` has not fired yet."""
        return self.faults.pending

    # -- ioctl -----------------------------------------------------------------------------

    def ioctl(self, fd: int, request: int, arg: CData | int = 0) -> int:
        """Dispatch ``request`` on ``fd``'s kind; raise ``OSError(errno, ..., IOCTL_NAME)``."""
        req = int(request)
        if not 0 <= req < 1 << 64:
            raise OverflowError(f"ioctl request {req} out of range")
        req &= 0xFFFFFFFF  # sys_ioctl takes an unsigned int
        with self.lock:
            f = self.fds.get(fd)
            if f is None:
                # a real file the fake does not own (eventfd, /dev/null): no VFIO ioctls
                raise kerr(errno.ENOTTY if foreign(fd) else errno.EBADF,
                           getattr(request, "name", None) or f"ioctl {req:#x}")
            label = getattr(request, "name", None) or f"ioctl {req:#x}"
            call = Call(label, fd, f.kind)
            self.calls.append(call)
            io = IoctlArg(self.mem, address(arg), self.linux)
            call._io = io
            try:
                self.faults.operation(label)
                op = self.ioctls.resolve(f, req, io)
                call.name = label = op.name
                call._op = op
                self.faults.ioctl(label, req)
                call.result = self.ioctls.execute(op, f, io)
            except OSError as exc:
                call.errno = exc.errno
                raise kerr(exc.errno or errno.EIO, label) from None
            return call.result

    # -- fds -------------------------------------------------------------------------------

    def file(self, fd: int) -> FakeFile | None:
        """Return the fake file behind ``fd`` (None if not a fake fd)."""
        return self.fds.get(fd)

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        """Open a /dev node (see :meth:`pyvfio.fake.dev.DevNodes.open`)."""
        with self.lock:
            return self.nodes.open(path, flags)

    def listdir(self, path: str) -> list[str]:
        """List /dev/vfio (see :meth:`pyvfio.fake.dev.DevNodes.listdir`)."""
        return self.nodes.listdir(path)

    def exists(self, path: str) -> bool:
        """Tell whether a /dev node exists (/dev/iommu only with the ``iommufd`` knob)."""
        return self.nodes.exists(path)

    def dma_read(self, dev: PCIDevice, iova: int, size: int) -> bytes | None:
        """A device's DMA read through the IOMMU; None (fault recorded) when blocked."""
        return self.nodes.dma_read(dev, iova, size)

    def dma_write(self, dev: PCIDevice, iova: int, data: bytes) -> bool:
        """A device's DMA write through the IOMMU; False (fault recorded, memory untouched)."""
        return self.nodes.dma_write(dev, iova, data)

    def close(self, fd: int) -> None:
        """Close a fake fd (its release runs on the last reference) or a real eventfd."""
        with self.lock:
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self.fds.eventfds:
            self.fds.eventfds.discard(fd)
            os.close(fd)
            return
        f = self.fds.pop(fd)
        if f is None:
            raise kerr(errno.EBADF)
        held = self._vmas.get(id(f))
        if held is not None:  # a BAR mmap holds the file (vma->vm_file): release at munmap
            held[2] += 1
            return
        self.nodes.release(f)

    def _hold(self, f: FakeFile, mmio: FakeMMIO) -> None:
        """Give ``mmio`` a reference to ``f``, as mmap's vma->vm_file: the file's release
        (vfio_device_fops_release: the device's close, its detach from the IOAS or container)
        runs when its fd and the last such mapping are gone.  One FakeFile may stand for
        several fds of the device (its opens count): a close deferred here is one release."""
        held = self._vmas.setdefault(id(f), [f, 0, 0])  # file, live mmaps, deferred releases
        held[1] += 1

        def put() -> None:
            with self.lock:
                held[1] -= 1
                if held[1]:
                    return
                del self._vmas[id(f)]
                for _ in range(held[2]):
                    self.nodes.release(f)
        mmio.vm_file_put = put

    def eventfd(self, initval: int = 0, flags: int = 0) -> int:
        """Create a real eventfd (interrupts must work with select/poll/asyncio)."""
        fd = os.eventfd(initval, flags | os.EFD_CLOEXEC)
        self.fds.eventfds.add(fd)
        return fd

    def read(self, fd: int, size: int) -> bytes:
        """read(2) of an eventfd or a fake fd that reads (fault queues); else EINVAL."""
        with self.lock:
            f = self.fds.get(fd)
            if f is not None:
                if hasattr(f, "read"):
                    return bytes(f.read(size))
                return self._device_stream(fd, f, None, size)  # EINVAL: not a device
        return os.read(fd, size)  # a real eventfd: may block, so outside the lock

    def write(self, fd: int, data: bytes) -> int:
        """write(2) to an eventfd or a fake fd that writes (fault queues); else EINVAL."""
        with self.lock:
            f = self.fds.get(fd)
            if f is not None:
                if hasattr(f, "write"):
                    return int(f.write(data))
                return len(self._device_stream(fd, f, bytes(data), len(data)))
        return os.write(fd, data)

    def _device_stream(self, fd: int, f: FakeFile, data: bytes | None, count: int) -> bytes:
        """read(2)/write(2) of a device fd: vfio_device_fops_read/write at the file position,
        which then advances (the region and offset come from the position, as for pread)."""
        dev = self.nodes.device_of(fd, errno.EINVAL)
        pos = getattr(f, "file_pos", 0)
        result = self.nodes.device_rw(dev, pos, data, count)
        done = len(result) if isinstance(result, bytes) else int(result)
        f.file_pos = pos + done  # type: ignore[attr-defined]
        return result if isinstance(result, bytes) else bytes(done)

    def mmap(self, fd: int, length: int, offset: int,
             prot: int = PROT_RW) -> FakeMMIO | PageMMIO:
        """mmap a BAR of a device fd, or pages an iommufd offers. Raises EBADF, ENODEV (not a
        device; an iommufd before 6.17), EINVAL, ENXIO (iommufd: not an offered region).

        A real file the fake does not own is mapped by the real kernel (eventfd, /dev/null:
        ENODEV)."""
        if fd not in self._files and not foreign(fd):
            raise kerr(errno.EBADF)  # the Kernel seam's mmap (Python's) dups the fd first
        if offset % PAGE_SIZE:
            raise kerr(errno.EINVAL)  # sys_mmap: off & ~PAGE_MASK, before the file's kind
        if fd not in self._files:
            return LinuxKernel().mmap(fd, length, offset, prot)  # type: ignore[return-value]
        with self.lock:
            self.faults.operation("mmap")
            f = self.fds.get(fd)
            if isinstance(f, IommufdFile):  # the vIOMMU pages iommufd offers (7.3)
                if not length:
                    raise kerr(errno.EINVAL)  # do_mmap, before the file's mmap op
                if not self.linux.at_least("6.17"):  # no iommufd_fops_mmap before: do_mmap
                    raise kerr(errno.ENODEV)  # answers ENODEV for a file without mmap
                # the vma is whole pages: iommufd_fops_mmap sees the length rounded up
                return iommufd_mmap(f.ctx, -(-length // PAGE_SIZE) * PAGE_SIZE, offset)
            if isinstance(f, DmaBufFile):
                f.check_mmap(prot)  # always raises: vfio-pci's dma-bufs cannot be mapped
            nodes = self.nodes
            mmio = nodes.device_mmap(nodes.device_of(fd, errno.ENODEV), length, offset)
            self._mmaps.append(mmio)
            if f is not None:  # fd is in self._files
                self._hold(f, mmio)
            return mmio

    def _positional(self, fd: int, offset: int) -> VFIOPCIDevice:
        """fs/read_write.c:ksys_pread64/pwrite64: a negative offset EINVAL, a closed fd EBADF,
        a file without FMODE_PREAD ESPIPE; then the file's own read (EINVAL: not a device)."""
        if offset < 0:
            raise kerr(errno.EINVAL)
        f = self.fds.get(fd)
        if f is not None and not f.positional:
            raise kerr(errno.ESPIPE)
        return self.nodes.device_of(fd, errno.EINVAL)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """pread of a device region (index = offset >> 40); a real file the fake does not own
        is read by the real kernel (eventfd: ESPIPE)."""
        if fd not in self._files and foreign(fd):
            return os.pread(fd, size, offset)
        with self.lock:
            pagemap = self._files.get(fd)
            if isinstance(pagemap, PagemapFile):
                return pagemap.pread(size, offset)
            result = self.nodes.device_rw(self._positional(fd, offset), offset, None, size)
        assert isinstance(result, bytes)
        return result

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """pwrite of a device region; returns the count written (a real file the fake does not
        own is written by the real kernel)."""
        if fd not in self._files and foreign(fd):
            return os.pwrite(fd, data, offset)
        with self.lock:
            result = self.nodes.device_rw(self._positional(fd, offset), offset, bytes(data),
                                          len(data))
        assert isinstance(result, int)
        return result

    # -- sysfs -----------------------------------------------------------------------------

    def sysfs_read(self, relpath: str) -> str:
        with self.lock:
            return self.sysfs.read(relpath)

    def sysfs_write(self, relpath: str, value: str) -> None:
        with self.lock:
            self.sysfs.write(relpath, value)

    def sysfs_readlink(self, relpath: str) -> str:
        return self.sysfs.readlink(relpath)

    def sysfs_listdir(self, relpath: str) -> list[str]:
        return self.sysfs.listdir(relpath)

    def sysfs_exists(self, relpath: str) -> bool:
        return self.sysfs.exists(relpath)

    # -- teardown check --------------------------------------------------------------------

    def leaks(self) -> list[str]:
        """Return what a test left behind: fds, eventfds, mmaps, mappings, changed bindings."""
        out = [f"fd {fd} ({f.kind}) still open" for fd, f in sorted(self._files.items())]
        out += [f"eventfd {fd} still open" for fd in sorted(self.fds.eventfds)]
        out += [f"mmap of BAR {m.index} of {m.regions.dev.bdf} not closed"
                for m in self._mmaps if m.regions is not None]
        live = {id(f): f for f in self._files.values() if isinstance(f, Container)}
        out += [f"container has {len(c.dma)} DMA mappings" for c in live.values() if len(c.dma)]
        for bdf, drv in self.bus.driver_of.items():
            if self._baseline and self._baseline["drivers"].get(bdf) != drv:
                out.append(f"{bdf} bound to {drv}, was {self._baseline['drivers'].get(bdf)}")
        if self._baseline and self._baseline["override"] != self.bus.override:
            out.append(f"driver_override changed: {self.bus.override}")
        return out

    def assert_clean(self) -> None:
        """Raise AssertionError listing every leak (see :meth:`leaks`)."""
        leaks = self.leaks()
        if leaks:
            raise AssertionError("FakeKernel leaked:\n  " + "\n  ".join(leaks))
