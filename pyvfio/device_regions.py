"""The regions of a VFIO device: info, pread/pwrite, mmap (sparse areas too), BARs, PCI config,
ioeventfds.  A part of :class:`pyvfio.device.Device` (which mixes it in)."""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

from pyvfio import region, uapi
from pyvfio._ffi import C, CData, new
from pyvfio.dma import check_int
from pyvfio.irq import EventFD
from pyvfio.kernel import MMIO, Kernel
from pyvfio.pci import PCIConfig
from pyvfio.region import RegionInfo

_IOEVENTFD_WIDTH = {
    1: C.VFIO_DEVICE_IOEVENTFD_8,
    2: C.VFIO_DEVICE_IOEVENTFD_16,
    4: C.VFIO_DEVICE_IOEVENTFD_32,
    8: C.VFIO_DEVICE_IOEVENTFD_64,
}


class DeviceRegions:
    """Region access of an open device fd (``_kernel``, ``_fd`` and the caches come from
    :class:`pyvfio.device.Device`)."""

    _kernel: Kernel
    _fd: int
    _maps: list[MMIO]
    _bars: dict[int, MMIO]
    _regions: dict[int, RegionInfo]
    _config: PCIConfig | None

    if TYPE_CHECKING:
        def _check_open(self) -> None: ...
        def _call(self, request: int, arg: CData | int = 0) -> int: ...

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
