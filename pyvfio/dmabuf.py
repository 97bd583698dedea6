"""dma-bufs of vfio-pci BARs (VFIO_DEVICE_FEATURE_DMA_BUF, Linux 6.19+, vfio_pci_dmabuf.c).

A :class:`DmaBuf` exports page-aligned ranges of a BAR as a dma-buf fd, for peer-to-peer DMA:
iommufd maps it with :meth:`pyvfio.ioas.IOAS.map_file` (one range only), so another device can
reach the BAR through an IOVA -- the fix for "mapping a BAR into an IOAS fails with EFAULT".  The
kernel revokes the dma-buf while the device's memory decoding is off (MAP_FILE: ENODEV).
"""

from __future__ import annotations

import os
import struct

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.device import Device
from pyvfio.dma import check_int

U64_MAX = (1 << 64) - 1


class DmaBuf(FdOwner):
    """A dma-buf fd over ranges of one BAR of a VFIO PCI device."""

    def __init__(self, device: Device, region: int, ranges: list[tuple[int, int]], *,
                 open_flags: int = os.O_RDWR | os.O_CLOEXEC) -> None:
        """``VFIO_DEVICE_FEATURE_DMA_BUF`` GET: export ``ranges`` ((offset, length) in bytes,
        page aligned) of BAR ``region``.

        Raises:
            ValueError: no ranges.
            OSError: ENOTTY (kernel before 6.19, or a device without the feature), EOPNOTSUPP
                (a driver without dma-buf support), ENODEV (not an implemented BAR), EINVAL
                (an empty, unaligned or out-of-BAR range; flags), EOVERFLOW (a range whose end
                from the BAR's bus address wraps past 2^64).
        """
        check_int("region", region, 0, C.VFIO_PCI_ROM_REGION_INDEX)
        if not ranges:
            raise ValueError("ranges must not be empty")
        payload = struct.pack("<IIII", region, check_int("open_flags", open_flags, 0, 1 << 31),
                              0, len(ranges))
        for offset, length in ranges:
            payload += struct.pack("<QQ", check_int("offset", offset, 0, U64_MAX),
                                   check_int("length", length, 0, U64_MAX))
        arg = new("struct vfio_device_feature *", len(payload),
                  flags=C.VFIO_DEVICE_FEATURE_DMA_BUF | C.VFIO_DEVICE_FEATURE_GET)
        ffi.memmove(arg.data, payload, len(payload))
        fd = device._call(uapi.VFIO_DEVICE_FEATURE, arg)
        self.device, self.region, self.ranges = device, region, list(ranges)
        self.size = sum(length for _, length in ranges)
        self._own(device._kernel, fd)

    def __repr__(self) -> str:
        return f"<DmaBuf BAR{self.region} of {self.device!r} size={self.size:#x} fd={self._fd}>"
