"""Device regions: ``VFIO_DEVICE_GET_REGION_INFO`` decoded, with its capability chain.

A region is a window of the device fd: vfio-pci places region ``index`` at file offset
``index << 40`` (vfio_pci_core.h: VFIO_PCI_OFFSET_SHIFT), but callers must use the ``offset`` the
kernel reports, which is what :class:`RegionInfo` carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, sizeof
from pyvfio.dma import check_int
from pyvfio.kernel import Kernel


@dataclass(frozen=True)
class SparseArea:
    """An mmappable area of a region (``VFIO_REGION_INFO_CAP_SPARSE_MMAP``), region-relative."""

    offset: int
    size: int


@dataclass(frozen=True)
class RegionType:
    """``VFIO_REGION_INFO_CAP_TYPE``: what a device-specific region is."""

    type: int
    subtype: int


@dataclass(frozen=True)
class RegionInfo:
    """``VFIO_DEVICE_GET_REGION_INFO`` decoded.

    Attributes:
        index: the region index.
        flags: ``VFIO_REGION_INFO_FLAG_*`` bits.
        size: bytes in the region (0: not implemented).
        offset: the region's offset in the device fd (for pread/pwrite/mmap).
        sparse_areas: the only mmappable areas, or None if the whole region is (when MMAP).
        type: the region type of a device-specific region, or None.
        msix_mappable: the MSI-X table in this BAR may be mmapped too.
        caps: every capability, undecoded ones included.
    """

    index: int
    flags: uapi.RegionInfoFlag
    size: int
    offset: int
    sparse_areas: tuple[SparseArea, ...] | None = None
    type: RegionType | None = None
    msix_mappable: bool = False
    caps: tuple[_ioctl.Capability, ...] = ()

    @property
    def readable(self) -> bool:
        """The region can be read (pread)."""
        return bool(self.flags & C.VFIO_REGION_INFO_FLAG_READ)

    @property
    def writable(self) -> bool:
        """The region can be written (pwrite)."""
        return bool(self.flags & C.VFIO_REGION_INFO_FLAG_WRITE)

    @property
    def mmappable(self) -> bool:
        """The region (or its sparse areas) can be mmapped."""
        return bool(self.flags & C.VFIO_REGION_INFO_FLAG_MMAP)

    def mmap_allowed(self, offset: int, length: int) -> bool:
        """Tell whether ``[offset, offset + length)`` may be mmapped."""
        if not self.mmappable or not 0 <= offset < offset + length <= self.size:
            return False
        if self.sparse_areas is None:
            return True
        end = offset + length
        return any(a.offset <= offset and end <= a.offset + a.size for a in self.sparse_areas)


def _sparse_areas(cap: _ioctl.Capability) -> tuple[SparseArea, ...]:
    c = _ioctl.cap_struct("struct vfio_region_info_cap_sparse_mmap *", cap)
    count = int(c.nr_areas)
    if 16 + 16 * count > len(cap.data):
        raise ValueError(f"sparse mmap capability claims {count} areas in {len(cap.data)} bytes")
    return tuple(SparseArea(int(c.areas[i].offset), int(c.areas[i].size)) for i in range(count))


def decode_region_info(info: CData, raw: bytes) -> RegionInfo:
    """Decode a filled ``struct vfio_region_info`` and its buffer into a :class:`RegionInfo`.

    Raises:
        ValueError: the capability chain is malformed.
    """
    offset = info.cap_offset if info.flags & C.VFIO_REGION_INFO_FLAG_CAPS else 0
    caps = tuple(_ioctl.walk_caps(raw, offset, sizeof("struct vfio_region_info *")))
    sparse = rtype = None
    msix = False
    for cap in caps:
        if cap.id == C.VFIO_REGION_INFO_CAP_SPARSE_MMAP:
            sparse = _sparse_areas(cap)
        elif cap.id == C.VFIO_REGION_INFO_CAP_TYPE:
            t = _ioctl.cap_struct("struct vfio_region_info_cap_type *", cap)
            rtype = RegionType(int(t.type), int(t.subtype))
        elif cap.id == C.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
            msix = True
    return RegionInfo(
        int(info.index),
        uapi.RegionInfoFlag(int(info.flags)),
        int(info.size),
        int(info.offset),
        sparse,
        rtype,
        msix,
        caps,
    )


def region_info(kernel: Kernel, fd: int, index: int) -> RegionInfo:
    """Return region ``index`` of device ``fd``.

    Raises:
        TypeError, ValueError: ``index`` is not a u32.
        OSError: EINVAL for an index the device does not have (or VGA on a non-VGA device).
    """
    check_int("index", index, 0, 0xFFFFFFFF)
    info, raw = _ioctl.query_info(
        kernel, fd, uapi.VFIO_DEVICE_GET_REGION_INFO, "struct vfio_region_info *", index=index
    )
    return decode_region_info(info, raw)


def check_span(region: RegionInfo, offset: int, size: int) -> None:
    """Check that ``[offset, offset + size)`` lies inside ``region``.

    Raises:
        TypeError: ``offset`` or ``size`` is not an int.
        ValueError: the span is empty or leaves the region.
    """
    check_int("offset", offset)
    check_int("size", size, 1)
    if offset + size > region.size:
        raise ValueError(
            f"[{offset:#x}, +{size:#x}) is outside region {region.index} of {region.size:#x} bytes"
        )
