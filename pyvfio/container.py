"""The legacy VFIO container (/dev/vfio/vfio): IOMMU model selection and type1 DMA mapping."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, CData, ffi, new, sizeof
from pyvfio._resource import FdOwner
from pyvfio.dma import IOVARange, Mapping, buffer_address, check_int
from pyvfio.errors import UnsupportedAPIError
from pyvfio.kernel import Kernel, default
from pyvfio.space import DMASpace

if TYPE_CHECKING:
    from pyvfio.group import Group

PATH = "/dev/vfio/vfio"
_READ, _WRITE = int(C.VFIO_DMA_MAP_FLAG_READ), int(C.VFIO_DMA_MAP_FLAG_WRITE)  # ffi lib lookups
_AUTO_TYPES = (uapi.IOMMUType.TYPE1v2, uapi.IOMMUType.TYPE1)


@dataclass(frozen=True)
class MigrationCap:
    """``VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION``: dirty-page tracking support."""

    flags: int
    page_sizes: int
    max_dirty_bitmap_size: int


@dataclass(frozen=True)
class IOMMUInfo:
    """``VFIO_IOMMU_GET_INFO`` decoded.

    Attributes:
        flags: ``VFIO_IOMMU_INFO_*`` bits.
        page_sizes: bitmap of supported IOMMU page sizes (``iova_pgsizes``).
        iova_ranges: usable IOVA ranges (empty if the kernel reported none).
        dma_avail: mappings that may still be created, or None if not reported.
        migration: dirty tracking capability, or None.
    """

    flags: uapi.IOMMUInfoFlag
    page_sizes: int
    iova_ranges: tuple[IOVARange, ...]
    dma_avail: int | None
    migration: MigrationCap | None

    @property
    def min_page_size(self) -> int:
        """The smallest IOMMU page size: the alignment of every map and unmap."""
        return self.page_sizes & -self.page_sizes


def _decode_info(info: CData, raw: bytes) -> IOMMUInfo:
    ranges: tuple[IOVARange, ...] = ()
    avail = migration = None
    offset = info.cap_offset if info.flags & C.VFIO_IOMMU_INFO_CAPS else 0
    for cap in _ioctl.walk_caps(raw, offset, sizeof("struct vfio_iommu_type1_info *")):
        if cap.id == C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
            ranges = _iova_ranges(cap)
        elif cap.id == C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL:
            avail = int(_ioctl.cap_struct("struct vfio_iommu_type1_info_dma_avail *", cap).avail)
        elif cap.id == C.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
            m = _ioctl.cap_struct("struct vfio_iommu_type1_info_cap_migration *", cap)
            migration = MigrationCap(
                int(m.flags), int(m.pgsize_bitmap), int(m.max_dirty_bitmap_size)
            )
    return IOMMUInfo(
        uapi.IOMMUInfoFlag(int(info.flags)), int(info.iova_pgsizes), ranges, avail, migration
    )


def _iova_ranges(cap: _ioctl.Capability) -> tuple[IOVARange, ...]:
    c = _ioctl.cap_struct("struct vfio_iommu_type1_info_cap_iova_range *", cap)
    count = int(c.nr_iovas)
    if 16 + 16 * count > len(cap.data):
        raise ValueError(f"IOVA range capability claims {count} ranges in {len(cap.data)} bytes")
    ranges = tuple(
        IOVARange(int(c.iova_ranges[i].start), int(c.iova_ranges[i].end)) for i in range(count)
    )
    for r in ranges:  # vfio_iommu_type1.c reports [start, end] inclusive, start <= end
        if r.start > r.last:
            raise ValueError(f"IOVA range capability has an inverted range "
                             f"{r.start:#x}-{r.last:#x}")
    return ranges


class Container(FdOwner, DMASpace):
    """A VFIO container: groups join it, then it maps DMA for all their devices.

    A :class:`pyvfio.space.DMASpace`: :meth:`map` with no IOVA allocates one inside the IOVA
    ranges the kernel reports (``VFIO_IOMMU_GET_INFO``) and below :attr:`dma_mask`.
    """

    def _init_dma(self) -> None:
        self._init_space()
        self._map_arg = new("struct vfio_iommu_type1_dma_map *")
        self._unmap_arg = new("struct vfio_iommu_type1_dma_unmap *")

    def __init__(self, kernel: Kernel | None = None) -> None:
        """Open /dev/vfio/vfio and check its API version.

        Raises:
            OSError: ENOENT without the vfio module, EACCES without permission.
            UnsupportedAPIError: the kernel's VFIO API version is not ``VFIO_API_VERSION``.
        """
        kernel = default() if kernel is None else kernel
        self.iommu_type: int | None = None
        self._groups: weakref.WeakSet[Group] = weakref.WeakSet()
        self._init_dma()
        self._own(kernel, kernel.open(PATH))
        try:
            version = self.api_version()
            if version != C.VFIO_API_VERSION:
                raise UnsupportedAPIError(f"VFIO API version {version}, pyvfio speaks 0")
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"<Container {PATH} fd={self._fd} iommu_type={self.iommu_type}>"

    def _close_children(self) -> None:
        try:
            for group in list(self._groups):
                group.close()
        finally:
            self._release_all()  # the kernel drops every mapping with the last group

    def _call(self, request: int, arg: CData | int = 0) -> int:
        self._check_open()
        return _ioctl.call(self._kernel, self._fd, request, arg)

    def api_version(self) -> int:
        """Return ``VFIO_GET_API_VERSION`` (0 on every Linux so far)."""
        return self._call(uapi.VFIO_GET_API_VERSION)

    def check_extension(self, extension: int) -> bool:
        """Tell whether the kernel supports ``extension`` (``VFIO_TYPE1v2_IOMMU``, ...).

        Before :meth:`set_iommu` every IOMMU driver answers; afterwards only the chosen one.

        Raises:
            TypeError, ValueError: ``extension`` is not a non-negative int.
        """
        check_int("extension", extension, 0, 0xFFFFFFFF)
        return self._call(uapi.VFIO_CHECK_EXTENSION, extension) > 0

    def set_iommu(self, iommu_type: int | None = None) -> int:
        """Choose the IOMMU model; at least one group must have joined the container.

        Args:
            iommu_type: a ``VFIO_*_IOMMU`` value; None picks ``VFIO_NOIOMMU_IOMMU`` for no-IOMMU
                groups, else the first of type1v2 and type1 the kernel supports.

        Returns:
            The IOMMU type set.

        Raises:
            OSError: EINVAL with no group or when already set, ENODEV for an unsupported type,
                EPERM for unsafe interrupts.
            UnsupportedAPIError: ``iommu_type`` is None and no known type is supported.
        """
        if iommu_type is None:
            iommu_type = self._pick_iommu_type()
        check_int("iommu_type", iommu_type, 0, 0xFFFFFFFF)
        self._call(uapi.VFIO_SET_IOMMU, iommu_type)
        self.iommu_type = iommu_type
        return iommu_type

    def _pick_iommu_type(self) -> int:
        if any(group.noiommu for group in self._groups):
            return uapi.IOMMUType.NOIOMMU
        for t in _AUTO_TYPES:
            if self.check_extension(t):
                return t
        raise UnsupportedAPIError("the kernel has neither VFIO_TYPE1v2_IOMMU nor VFIO_TYPE1_IOMMU")

    def iommu_info(self) -> IOMMUInfo:
        """Return ``VFIO_IOMMU_GET_INFO`` with its capabilities decoded.

        Raises:
            OSError: EINVAL before :meth:`set_iommu`; ENOTTY for the no-IOMMU model.
            ValueError: the kernel's capability chain is malformed.
        """
        self._check_open()
        info, raw = _ioctl.query_info(
            self._kernel, self._fd, uapi.VFIO_IOMMU_GET_INFO, "struct vfio_iommu_type1_info *"
        )
        return _decode_info(info, raw)

    def iova_ranges(self) -> tuple[IOVARange, ...]:
        """Return the IOVA ranges devices may use (see :meth:`iommu_info`)."""
        return self.iommu_info().iova_ranges

    # -- DMASpace: the raw type1 operations (the table is pyvfio.space's) ----------------------

    def _raw_map(self, vaddr: int, size: int, iova: int | None, readable: bool,
                 writable: bool) -> int:
        if self._fd < 0:
            self._check_open()
        assert iova is not None  # type1 has no kernel-chosen IOVA: DMASpace allocates one
        arg = self._map_arg  # reused: DMASpace holds its lock around every raw call
        arg.flags = (_READ if readable else 0) | (_WRITE if writable else 0)
        arg.vaddr, arg.iova, arg.size = vaddr, iova, size
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_IOMMU_MAP_DMA, arg)
        return iova

    def _raw_unmap(self, iova: int, size: int) -> int:
        if self._fd < 0:
            self._check_open()
        arg = self._unmap_arg  # DMASpace holds its lock
        arg.flags, arg.iova, arg.size = 0, iova, size
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
        return int(arg.size)

    def _space_alive(self) -> bool:
        return self._fd >= 0

    def map_dma(self, buffer: Any, iova: int, *, readable: bool = True,
                writable: bool = True) -> Mapping:
        """:meth:`map` at a given ``iova`` (the kernel's VFIO_IOMMU_MAP_DMA call, named so)."""
        return self.map(buffer, check_int("iova", iova), readable=readable, writable=writable)

    def _map_dma(self, flags: int, vaddr: int, iova: int, size: int) -> None:
        arg = new(
            "struct vfio_iommu_type1_dma_map *", flags=flags, vaddr=vaddr, iova=iova, size=size
        )
        self._call(uapi.VFIO_IOMMU_MAP_DMA, arg)

    def unmap(self, iova: int, size: int) -> int:
        """Unmap every mapping inside ``[iova, iova + size)``; return the bytes unmapped.

        Unmapping nothing succeeds and returns 0 (type1 semantics).

        Raises:
            TypeError, ValueError: ``iova``/``size`` not ints in range, ``size`` 0.
            OSError: EINVAL (unaligned, or the range would split a mapping on type1v2).
        """
        return DMASpace.unmap(self, iova, size)

    unmap_dma = unmap

    def unmap_all(self) -> int:
        """Unmap everything (``VFIO_DMA_UNMAP_FLAG_ALL``); return the bytes unmapped.

        Raises:
            OSError: EINVAL if the kernel lacks ``VFIO_UNMAP_ALL``.
        """
        with self._lock:
            done = self._unmap_dma(C.VFIO_DMA_UNMAP_FLAG_ALL, 0, 0)
            self._release_all()
        return done

    def _unmap_dma(self, flags: int, iova: int, size: int) -> int:
        if self._fd < 0:
            self._check_open()
        with self._lock:
            arg = self._unmap_arg
            arg.flags, arg.iova, arg.size = flags, iova, size
            _ioctl.call(self._kernel, self._fd, uapi.VFIO_IOMMU_UNMAP_DMA, arg)
            return int(arg.size)

    def invalidate_vaddr(self, mapping: Mapping) -> None:
        """Tell the kernel ``mapping``'s buffer address is about to go away (DMA continues).

        Raises:
            ValueError: ``mapping`` is not an open mapping of this container.
            OSError: EINVAL if already invalidated; EBUSY with an mdev in the container.
        """
        self._check_mapping(mapping)
        self._unmap_dma(C.VFIO_DMA_UNMAP_FLAG_VADDR, mapping.iova, mapping.size)

    def update_vaddr(self, mapping: Mapping, buffer: Any) -> None:
        """Give an invalidated ``mapping`` its new ``buffer`` (same size, same contents).

        Raises:
            TypeError, ValueError: bad buffer, or its size differs from the mapping's.
            OSError: EINVAL if ``mapping`` was not invalidated; ENOENT if it is gone.
        """
        self._check_mapping(mapping)
        cdata, vaddr, size = buffer_address(buffer, writable=mapping.writable)
        if size != mapping.size:
            raise ValueError(
                f"buffer size {size:#x} differs from the mapping size {mapping.size:#x}"
            )
        with self._lock:
            self._map_dma(C.VFIO_DMA_MAP_FLAG_VADDR, vaddr, mapping.iova, size)
            if self._vaddrs is not None:
                self._vaddrs.remove((mapping.vaddr, mapping.iova))
            mapping._replace(buffer, cdata)
            if self._vaddrs is not None:
                self._vaddrs.add((mapping.vaddr, mapping.iova))

    def _check_mapping(self, mapping: Mapping) -> None:
        if not isinstance(mapping, Mapping):
            raise TypeError(f"mapping must be a Mapping, not {type(mapping).__name__}")
        if self._table.get(mapping.iova) is not mapping:
            raise ValueError(f"mapping: {mapping!r} is not an open mapping of {self!r}")

    def start_dirty_tracking(self) -> None:
        """Start dirty page tracking (``VFIO_IOMMU_DIRTY_PAGES_FLAG_START``; idempotent).

        Raises:
            OSError: EACCES on type1 v1; ENOTTY on iommufd's compat container.
        """
        self._call(
            uapi.VFIO_IOMMU_DIRTY_PAGES,
            new(
                "struct vfio_iommu_type1_dirty_bitmap *", flags=C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START
            ),
        )

    def stop_dirty_tracking(self) -> None:
        """Stop dirty page tracking (idempotent). Raises OSError as :meth:`start_dirty_tracking`."""
        self._call(
            uapi.VFIO_IOMMU_DIRTY_PAGES,
            new("struct vfio_iommu_type1_dirty_bitmap *", flags=C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP),
        )

    def dirty_bitmap(self, iova: int, size: int, page_size: int) -> bytes:
        """Return (and clear) the dirty bitmap of ``[iova, iova + size)``: bit i = page i.

        Args:
            iova, size: a range of whole mappings, aligned to ``page_size``.
            page_size: the smallest IOMMU page size (``iommu_info().min_page_size``).

        Raises:
            TypeError, ValueError: arguments not ints, ``size`` 0, ``page_size`` not a power of 2.
            OSError: EINVAL when tracking is off, unaligned, or splitting a mapping.
        """
        check_int("iova", iova)
        check_int("size", size, 1)
        if check_int("page_size", page_size, 1) & (page_size - 1):
            raise ValueError(f"page_size must be a power of two, not {page_size:#x}")
        pages = -(-size // page_size)
        nbytes = -(-pages // 64) * 8
        bitmap = ffi.new("uint64_t[]", nbytes // 8)
        flags = C.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP
        arg = new("struct vfio_iommu_type1_dirty_bitmap *", 40, flags=flags)
        get = ffi.cast("struct vfio_iommu_type1_dirty_bitmap_get *", arg.data)
        get.iova, get.size = iova, size
        get.bitmap.pgsize, get.bitmap.size, get.bitmap.data = page_size, nbytes, bitmap
        self._call(uapi.VFIO_IOMMU_DIRTY_PAGES, arg)
        return bytes(ffi.buffer(bitmap))

    def _attach(self, group: Group) -> None:
        self._groups.add(group)

    def _detach(self, group: Group) -> None:
        self._groups.discard(group)
        if not self._groups:
            # the kernel releases the IOMMU driver and every mapping with the last group
            self.iommu_type = None
            self._release_all()
