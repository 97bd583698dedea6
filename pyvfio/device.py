"""A VFIO device fd: info, resets, features, and what it owns; its regions and interrupts are
:mod:`pyvfio.device_regions` and :mod:`pyvfio.device_irqs` (mixed in).

Opened by :func:`pyvfio.open_device` it is also the driver's one handle: it owns its DMA space,
BARs, eventfds and the group/container or iommufd behind it, and releases them all on close.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, ffi, new, sizeof
from pyvfio._resource import FdOwner
from pyvfio.device_irqs import DeviceInterrupts
from pyvfio.device_regions import DeviceRegions
from pyvfio.devinfo import DependentDevice, DeviceCap, DeviceInfo, decode_cap
from pyvfio.dma import check_int
from pyvfio.errors import CloseError
from pyvfio.irq import EventFD
from pyvfio.kernel import MMIO
from pyvfio.pci import PCIConfig
from pyvfio.region import RegionInfo

if TYPE_CHECKING:
    from pyvfio.group import Group
    from pyvfio.space import DMASpace

_FEATURE_FLAGS = C.VFIO_DEVICE_FEATURE_GET | C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_PROBE


class Device(FdOwner, DeviceRegions, DeviceInterrupts):
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

_attempt = CloseError.attempt


__all__ = ["DependentDevice", "Device", "DeviceCap", "DeviceInfo"]
