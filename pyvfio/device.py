"""A VFIO device fd: info, regions (pread/pwrite/mmap), interrupts, resets, ioeventfds, features.

Opened by :func:`pyvfio.open_device` it is also the driver's one handle: it owns its DMA space,
BARs, eventfds and the group/container or iommufd behind it, and releases them all on close.
"""

from __future__ import annotations

import errno
import mmap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyvfio import _ioctl, irq, region, uapi
from pyvfio._ffi import C, CData, ffi, new, sizeof
from pyvfio._resource import FdOwner
from pyvfio.devinfo import DependentDevice, DeviceCap, DeviceInfo, decode_cap
from pyvfio.dma import check_int
from pyvfio.errors import CloseError
from pyvfio.irq import EventFD, IrqInfo
from pyvfio.kernel import MMIO
from pyvfio.pci import PCIConfig
from pyvfio.region import RegionInfo

if TYPE_CHECKING:
    from pyvfio.group import Group
    from pyvfio.space import DMASpace

_IRQ_NAMES = {"intx": C.VFIO_PCI_INTX_IRQ_INDEX, "msi": C.VFIO_PCI_MSI_IRQ_INDEX,
              "msix": C.VFIO_PCI_MSIX_IRQ_INDEX}
_FEATURE_FLAGS = C.VFIO_DEVICE_FEATURE_GET | C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_PROBE
_IOEVENTFD_WIDTH = {
    1: C.VFIO_DEVICE_IOEVENTFD_8,
    2: C.VFIO_DEVICE_IOEVENTFD_16,
    4: C.VFIO_DEVICE_IOEVENTFD_32,
    8: C.VFIO_DEVICE_IOEVENTFD_64,
}


class Device(FdOwner):
    """An open VFIO device.  Obtain it with :meth:`pyvfio.group.Group.open_device`."""

    #: The IOMMU family the device was opened in: ``"legacy"``, ``"compat"`` or ``"iommufd"``
    #: (None when opened by hand and not yet attached).
    mode: str | None = None
    #: Why :func:`pyvfio.open_device` chose :attr:`mode` (and not the others).
    mode_reason: str | None = None
    #: The exact IOMMU mode: ``type1``, ``type1v2``, ``compat-type1``, ``compat-type1v2``,
    #: ``iommufd`` (None when opened by hand).
    iommu_mode: str | None = None
    #: The DMA space the device sees: its container, compat container or IOAS (or None).
    dma: DMASpace | None = None

    def __init__(self, group: Group, name: str, fd: int) -> None:
        self.group = group  # the device keeps its group (and container) alive
        self.name = name
        self._init_handle()
        self.dma = group.container
        self._own(group._kernel, fd)

    def _init_handle(self) -> None:
        self._maps: list[MMIO] = []
        self._bars: dict[int, MMIO] = {}
        self._regions: dict[int, RegionInfo] = {}
        self._eventfds: list[EventFD] = []
        self._irqs_on: set[int] = set()
        self._owners: list[Any] = []  # closed after the device fd (group+container, iommufd)
        self._owns_dma = False
        self._config: PCIConfig | None = None

    def __repr__(self) -> str:
        return f"<Device {self.name} fd={self._fd}>"

    def _adopt_owners(self, owners: Sequence[Any], dma: DMASpace, mode: str, reason: str,
                      iommu_mode: str) -> None:
        """Own ``owners`` (closed after the device fd, in order) and ``dma`` (unmapped first)."""
        self._owners, self._owns_dma = list(owners), True
        self.dma, self.mode, self.mode_reason, self.iommu_mode = dma, mode, reason, iommu_mode

    def close(self) -> None:
        """Release everything the device holds, then raise one error naming what failed.

        In order: disable the interrupts enabled through :meth:`enable_interrupts`, unmap the
        DMA mappings (when :func:`pyvfio.open_device` opened it: the space is the device's),
        unmap the BARs and region mmaps, close the device fd, its eventfds, then what
        :func:`pyvfio.open_device` opened for it (group and container, or the iommufd).  A
        failing step does not stop the others; a second close does nothing.

        Raises:
            CloseError: some steps failed (``failures`` names each with its exception); every fd,
                mmap and mapping is released all the same.
        """
        if self._fd < 0 or self._closing:
            return
        failures: list[tuple[str, BaseException]] = []
        for index in sorted(self._irqs_on):
            _attempt(failures, f"disable interrupts {index}", self.disable_irq, index)
        if self._owns_dma and self.dma is not None:
            failures += self.dma.unmap_dma_all()
        _attempt(failures, "close device fd", super().close)
        for efd in self._eventfds:
            _attempt(failures, f"close eventfd {efd.fileno() if not efd.closed else ''}",
                     efd.close)
        self._eventfds.clear()
        owners, self._owners = self._owners, []
        for owner in owners:
            _attempt(failures, f"close {owner!r}", owner.close)
        if failures:
            raise CloseError(repr(self), failures)

    def _close_children(self) -> None:
        failures: list[tuple[str, BaseException]] = []
        for m in self._maps:
            _attempt(failures, f"munmap {m!r}", m.close)  # the mmaps go before the device fd
        self._maps.clear()
        self._bars.clear()
        if failures:
            raise failures[0][1]

    def _call(self, request: int, arg: CData | int = 0) -> int:
        self._check_open()
        return _ioctl.call(self._kernel, self._fd, request, arg)

    def info(self) -> DeviceInfo:
        """Return ``VFIO_DEVICE_GET_INFO`` with capabilities (zPCI, PCI atomics) decoded.

        Raises:
            OSError: EINVAL on a cdev fd not yet bound to iommufd.
            ValueError: the kernel's capability chain is malformed.
        """
        self._check_open()
        info, raw = _ioctl.query_info(
            self._kernel, self._fd, uapi.VFIO_DEVICE_GET_INFO, "struct vfio_device_info *"
        )
        offset = info.cap_offset if info.flags & C.VFIO_DEVICE_FLAGS_CAPS else 0
        caps = _ioctl.walk_caps(raw, offset, sizeof("struct vfio_device_info *"))
        return DeviceInfo(
            uapi.DeviceFlag(int(info.flags)),
            int(info.num_regions),
            int(info.num_irqs),
            tuple(decode_cap(c) for c in caps),
        )

    def region_info(self, index: int) -> RegionInfo:
        """Return region ``index`` (see :func:`pyvfio.region.region_info` for errors)."""
        self._check_open()
        info = region.region_info(self._kernel, self._fd, index)
        self._regions[index] = info
        return info

    def _region(self, index: int) -> RegionInfo:
        return self._regions.get(index) or self.region_info(index)

    def read(self, index: int, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` of region ``index`` (pread; may return fewer).

        Raises:
            TypeError, ValueError: bad arguments, span outside the region, region not readable.
            OSError: EIO (memory BAR while COMMAND.MEMORY is off), EFAULT, EINVAL.
        """
        r = self._region(index)
        region.check_span(r, offset, size)
        if not r.readable:
            raise ValueError(f"region {index} is not readable")
        return self._kernel.pread(self._fd, size, r.offset + offset)

    def write(self, index: int, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of region ``index`` (pwrite); return the count written.

        Raises:
            TypeError, ValueError: bad arguments, span outside the region, region not writable.
            OSError: EIO (memory BAR while COMMAND.MEMORY is off), EFAULT, EINVAL.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        r = self._region(index)
        region.check_span(r, offset, len(data))
        if not r.writable:
            raise ValueError(f"region {index} is not writable")
        return self._kernel.pwrite(self._fd, bytes(data), r.offset + offset)

    def mmap(self, index: int, offset: int = 0, length: int | None = None) -> MMIO:
        """Map part of a region; the result has exact-width ``read``/``write``.

        A region the kernel lets map only in parts (sparse mmap areas, e.g. around an MSI-X
        table) comes back as a :class:`~pyvfio.sparse.SparseMMIO`: the areas mapped, the holes
        (listed in its ``holes``) served by pread/pwrite.

        The mapping closes with the device.

        Raises:
            TypeError, ValueError: bad arguments; region or area not mmappable; unaligned offset.
            OSError: EINVAL (not mmappable for the kernel), ENOMEM.
        """
        r = self._region(index)
        length = r.size - check_int("offset", offset) if length is None else length
        region.check_span(r, offset, length)
        if offset % mmap.PAGESIZE:
            raise ValueError(f"offset {offset:#x} is not page aligned")
        if not r.mmap_allowed(offset, length):
            if r.mmappable and r.sparse_areas:
                return self._mmap_sparse(r, offset, length)
            raise ValueError(f"[{offset:#x}, +{length:#x}) of region {index} is not mmappable")
        m = self._kernel.mmap(self._fd, length, r.offset + offset)
        self._maps.append(m)
        return m

    def _mmap_sparse(self, r: RegionInfo, offset: int, length: int) -> MMIO:
        """Map the sparse areas of ``[offset, +length)``; the holes (e.g. an MSI-X table the
        kernel keeps) are served by pread/pwrite: :attr:`SparseMMIO.holes` names them."""
        from pyvfio.sparse import SparseMMIO  # noqa: PLC0415 - only sparse BARs need it

        areas: list[tuple[int, MMIO]] = []
        try:
            for a in r.sparse_areas or ():
                start, end = max(a.offset, offset), min(a.offset + a.size, offset + length)
                if start < end:
                    m = self._kernel.mmap(self._fd, end - start, r.offset + start)
                    areas.append((start - offset, m))
        except BaseException:
            for _, m in areas:
                m.close()
            raise
        base = r.offset + offset
        sparse = SparseMMIO(areas, length, lambda at, n: self._kernel.pread(self._fd, n, base + at),
                            lambda at, data: self._kernel.pwrite(self._fd, data, base + at))
        self._maps.append(sparse)
        return sparse

    def bar(self, index: int) -> MMIO:
        """Map all of BAR ``index`` (cached: the same mapping each time; closed with the device).

        Raises:
            ValueError: the BAR is not mmappable (size 0, I/O port BAR, or no mmap flag).
            OSError: EINVAL, ENOMEM from mmap.
        """
        m = self._bars.get(index)
        if m is None:
            m = self._bars[index] = self.mmap(index)
        return m

    @property
    def config(self) -> PCIConfig:
        """PCI config space accessors (region 7)."""
        if self._config is None:
            self._config = PCIConfig(self)
        return self._config

    def enable_bus_master(self) -> None:
        """Set PCI COMMAND bit 2: vfio-pci leaves it off, and DMA and MSI need it.

        Raises:
            OSError: the config write failed.
        """
        self.config.enable_bus_master()

    def eventfd(self) -> EventFD:
        """Return a new eventfd on the device's kernel, closed with the device."""
        self._check_open()
        efd = EventFD(self._kernel)
        self._eventfds.append(efd)
        return efd

    def enable_interrupts(self, index: int | str = "msi", count: int = 1) -> list[EventFD]:
        """Signal ``count`` new eventfds for vectors 0.. of ``index`` (``"intx"``, ``"msi"``,
        ``"msix"``, or a ``VFIO_PCI_*_IRQ_INDEX``); disabled and closed with the device.

        Returns:
            The eventfds, one per vector: ``wait()`` on them.

        Raises:
            ValueError: an unknown index name, ``count`` out of range.
            OSError: EINVAL (no such vectors, another MSI type on), and as :meth:`enable_irq`.
        """
        idx = _IRQ_NAMES.get(index) if isinstance(index, str) else index
        if idx is None:
            raise ValueError(f"index must be one of {sorted(_IRQ_NAMES)} or an int, not {index!r}")
        check_int("count", count, 1, 2048)
        efds = [self.eventfd() for _ in range(count)]
        try:
            got = self.enable_irq(idx, efds)
            if got:  # fewer vectors available: nothing was enabled
                raise OSError(errno.ENOSPC, f"only {got} vectors available",
                              "VFIO_DEVICE_SET_IRQS")
        except BaseException:
            for efd in efds:
                self._eventfds.remove(efd)
                efd.close()
            raise
        self._irqs_on.add(idx)
        return efds

    def reset(self) -> None:
        """Reset the device (``VFIO_DEVICE_RESET``).

        Raises:
            OSError: EINVAL if the device has no reset method; EAGAIN if its lock is busy.
        """
        self._call(uapi.VFIO_DEVICE_RESET)

    def hot_reset_info(self) -> tuple[int, tuple[DependentDevice, ...]]:
        """Return ``(flags, devices)``: the devices a bus/slot hot reset would affect.

        Raises:
            OSError: ENODEV (no slot or bus reset possible), EPERM.
        """
        count = 0
        while True:
            arg = new("struct vfio_pci_hot_reset_info *", count)
            try:
                self._call(uapi.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, arg)
                break
            except OSError as exc:  # ENOSPC: the kernel wrote the count it needs
                if exc.errno != errno.ENOSPC or arg.count <= count:
                    raise
                count = int(arg.count)
        devs = [arg.devices[i] for i in range(arg.count)]
        return int(arg.flags), tuple(
            DependentDevice(int(d.group_id), int(d.segment), int(d.bus), int(d.devfn)) for d in devs
        )

    def hot_reset(self, groups: Sequence[Group]) -> None:
        """Reset the bus or slot; ``groups`` must own every affected device.

        Raises:
            ValueError: a group is closed, or none given.
            OSError: EINVAL (a device not owned by ``groups``), ENODEV, EBUSY, EBADF.
        """
        fds = [g.fileno() for g in groups]
        if not fds:
            raise ValueError("groups must name at least one group")
        arg = new("struct vfio_pci_hot_reset *", len(fds), count=len(fds))
        for i, fd in enumerate(fds):
            arg.group_fds[i] = fd
        self._call(uapi.VFIO_DEVICE_PCI_HOT_RESET, arg)

    def ioeventfd(
        self, index: int, offset: int, width: int, data: int, *, eventfd: EventFD | None
    ) -> None:
        """Make the kernel write ``data`` at BAR ``index`` + ``offset`` whenever ``eventfd`` fires.

        ``eventfd`` None removes the matching ioeventfd.

        Raises:
            TypeError, ValueError: bad arguments, span outside the region.
            OSError: EINVAL (not a BAR, overlaps the MSI-X table), EEXIST, ENODEV (nothing to
                remove), ENOSPC (over 1000).
        """
        if width not in _IOEVENTFD_WIDTH:
            raise ValueError(f"width must be 1, 2, 4 or 8, not {width!r}")
        check_int("data", data, 0, (1 << (8 * width)) - 1)
        r = self._region(index)
        region.check_span(r, offset, width)
        fd = -1 if eventfd is None else eventfd.fileno()
        arg = new(
            "struct vfio_device_ioeventfd *",
            flags=_IOEVENTFD_WIDTH[width],
            offset=r.offset + offset,
            data=data,
            fd=fd,
        )
        self._call(uapi.VFIO_DEVICE_IOEVENTFD, arg)

    def feature(self, feature: int, flags: int, data: bytes | int = b"") -> bytes:
        """Issue ``VFIO_DEVICE_FEATURE``: ``flags`` is GET, SET and/or PROBE; ``data`` the payload
        (or, for GET, its size).  Returns the payload after the call.

        Raises:
            TypeError, ValueError: bad feature id, flags or data.
            OSError: ENOTTY (unsupported feature), EINVAL (unsupported GET/SET, short payload).
        """
        check_int("feature", feature, 0, C.VFIO_DEVICE_FEATURE_MASK)
        if check_int("flags", flags) & ~_FEATURE_FLAGS or not flags:
            raise ValueError(f"flags must be a non-empty mix of GET, SET and PROBE, not {flags:#x}")
        if isinstance(data, int):
            data = bytes(check_int("data", data, 0, 1 << 16))
        arg = new("struct vfio_device_feature *", len(data), flags=feature | flags)
        ffi.memmove(arg.data, bytes(data), len(data))
        self._call(uapi.VFIO_DEVICE_FEATURE, arg)
        return bytes(ffi.buffer(arg.data, len(data)))

    def probe_feature(self, feature: int, flags: int = 0) -> bool:
        """Tell whether ``feature`` supports ``flags`` (GET/SET, or 0 for "exists").

        Raises:
            OSError: any errno but ENOTTY and EINVAL, which mean "no".
        """
        try:
            self.feature(feature, flags | C.VFIO_DEVICE_FEATURE_PROBE)
        except OSError as exc:
            if exc.errno in (errno.ENOTTY, errno.EINVAL):
                return False
            raise
        return True

    def irq_info(self, index: int) -> IrqInfo:
        """Return interrupt info of ``index`` (see :func:`pyvfio.irq.irq_info` for errors)."""
        self._check_open()
        return irq.irq_info(self._kernel, self._fd, index)

    def enable_irq(self, index: int, eventfds: Sequence[EventFD | None], *, start: int = 0) -> int:
        """Signal ``eventfds`` for vectors ``start..`` of ``index`` (None: detach that vector).

        Returns:
            0; for MSI/MSI-X, the vectors available if fewer could be allocated (none enabled).

        Raises:
            OSError: as :func:`pyvfio.irq.set_irqs`.
        """
        if not eventfds:
            raise ValueError("eventfds must not be empty (use disable_irq)")
        fds = [-1 if e is None else e.fileno() for e in eventfds]
        self._check_open()
        flags = irq.TRIGGER_EVENTFD
        return irq.set_irqs(self._kernel, self._fd, index, flags, start=start, fds=fds)

    def disable_irq(self, index: int) -> None:
        """Disable every vector of ``index`` (DATA_NONE|ACTION_TRIGGER, count 0).

        Raises:
            OSError: EINVAL if the index has no interrupts or is not enabled.
        """
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.TRIGGER_NONE, count=0)
        self._irqs_on.discard(index)

    def mask_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Mask vectors of a maskable index (INTx). Raises OSError: EINVAL, ENOTTY (MSI/MSI-X)."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.MASK_NONE, start=start, count=count)

    def unmask_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Unmask vectors (INTx is automasked after each interrupt). Raises OSError as mask_irq."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.UNMASK_NONE, start=start, count=count)

    def trigger_irq(self, index: int, *, start: int = 0, count: int = 1) -> None:
        """Signal vectors' eventfds from the kernel (loopback). Raises OSError EINVAL if off."""
        self._check_open()
        irq.set_irqs(self._kernel, self._fd, index, irq.TRIGGER_NONE, start=start, count=count)


_attempt = CloseError.attempt


__all__ = ["DependentDevice", "Device", "DeviceCap", "DeviceInfo"]
