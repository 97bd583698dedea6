"""The legacy container fd, /dev/vfio/vfio (drivers/vfio/container.c + vfio_iommu_type1.c).

Without an IOMMU driver the container answers only the core ioctls and EINVAL for anything
else (container.c:``vfio_fops_unl_ioctl``); after ``VFIO_SET_IOMMU`` the type1 driver answers
and unknown requests are ENOTTY (vfio_iommu_type1.c:``vfio_iommu_type1_ioctl``).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Protocol

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import PAGE_SIZE, UserMemory, kerr
from pyvfio.fake.type1 import U64, DmaMap, Knobs, Mapping
from pyvfio.fake.uaccess import FakeFile, IoctlArg

if TYPE_CHECKING:
    from pyvfio.fake.group import GroupFile
    from pyvfio.fake.iommu import IOMMUModel


class HasModel(Protocol):
    """Whoever holds the host's IOMMU description (the kernel's /dev/iommu side)."""

    model: IOMMUModel

_TYPE1_TYPES = (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU)
_NESTING = C.__VFIO_RESERVED_TYPE1_NESTING_IOMMU  # module level: a class body would mangle __name
_TYPE1_EXT = {C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, _NESTING, C.VFIO_UNMAP_ALL}


def _type1_ext(linux: Linux) -> set[int]:
    """vfio_iommu_type1_check_extension's yes: 6.13 removed VFIO_TYPE1_NESTING_IOMMU (the uapi
    renamed it __VFIO_RESERVED_TYPE1_NESTING_IOMMU; the lane's 7.3 answers 0, 6.12 1)."""
    return _TYPE1_EXT - {_NESTING} if linux.at_least("6.13") else _TYPE1_EXT
_SET_EXT = {C.VFIO_UPDATE_VADDR, C.VFIO_DMA_CC_IOMMU}
_MAP_FLAGS = C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE | C.VFIO_DMA_MAP_FLAG_VADDR
_UNMAP_FLAGS = (C.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | C.VFIO_DMA_UNMAP_FLAG_ALL
                | C.VFIO_DMA_UNMAP_FLAG_VADDR)
_DIRTY_FLAGS = (C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START | C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
                | C.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)
MAX_DIRTY_BITMAP_SIZE = 1 << 28


class Container(FakeFile):
    """One open of /dev/vfio/vfio: groups, at most one IOMMU driver, and its DMA map."""

    kind = "container"

    def __init__(self, knobs: Knobs, mem: UserMemory, iommu: HasModel) -> None:
        self.knobs = knobs
        self.iommu_hw = iommu  # the host IOMMU's one description (its .model)
        self.mem = mem
        self.groups: list[GroupFile] = []
        self.iommu: int | None = None  # the VFIO_SET_IOMMU type
        self.dma = DmaMap(knobs)

    @property
    def has_domain(self) -> bool:
        """Some group brings an IOMMU domain: mdevs' emulated groups do not
        (vfio_iommu_type1_attach_group puts them on ``emulated_iommu_groups``)."""
        return any(not g.emulated for g in self.groups)

    @property
    def noiommu(self) -> bool:
        return bool(self.groups) and self.groups[0].noiommu

    def space(self) -> str:
        """container.c:vfio_fops_unl_ioctl answers alone (EINVAL for the rest) until
        VFIO_SET_IOMMU; then the IOMMU driver's ioctl answers the rest (ENOTTY)."""
        if self.iommu is None:
            return "container"
        return "container-type1" if self.iommu in _TYPE1_TYPES else "container-noiommu"

    # -- groups ----------------------------------------------------------------------------

    def attach(self, group: GroupFile) -> None:
        """container.c:``vfio_container_attach_group``: EPERM mixing noiommu and IOMMU groups,
        EBUSY while a vaddr is invalid (``vfio_iommu_type1_attach_group``)."""
        if self.groups and group.noiommu != self.noiommu:
            raise kerr(errno.EPERM)
        if self.iommu is not None and any(m.vaddr_invalid for m in self.dma.maps.values()):
            raise kerr(errno.EBUSY)
        self.groups.append(group)

    def detach(self, group: GroupFile) -> None:
        """The last group leaving releases the IOMMU driver and drops every mapping."""
        self.groups.remove(group)
        if not self.groups:
            self.iommu = None
            self.dma.clear()

    def translate(self, iova: int, size: int, *, write: bool) -> list[tuple[int, int]] | None:
        """Translate a device access; None when blocked (no type1 yet, unmapped, read-only)."""
        if self.iommu not in _TYPE1_TYPES:
            return None
        return self.dma.translate(iova, size, write=write)

    # -- core ioctls -----------------------------------------------------------------------

    def VFIO_GET_API_VERSION(self, arg: IoctlArg) -> int:  # noqa: N802
        return int(C.VFIO_API_VERSION)

    def VFIO_CHECK_EXTENSION(self, arg: IoctlArg) -> int:  # noqa: N802
        ext = arg.cmd
        noiommu_ok = self.knobs.noiommu and (not self.groups or self.noiommu)
        type1_ok = not self.groups or not self.noiommu
        if self.iommu is not None:
            if self.iommu == C.VFIO_NOIOMMU_IOMMU:
                return int(ext == C.VFIO_NOIOMMU_IOMMU)
            if ext == C.VFIO_DMA_CC_IOMMU:  # vfio_domains_have_enforce_cache_coherency
                return int(self.knobs.cache_coherency or not self.has_domain)
            if ext == C.VFIO_UPDATE_VADDR and any(g.emulated for g in self.groups):
                return 0  # vfio_iommu_has_emulated: mdevs cannot pin while vaddrs change
            return int(ext in _type1_ext(arg.linux) or ext in _SET_EXT)
        if ext == C.VFIO_NOIOMMU_IOMMU:
            return int(noiommu_ok)
        return int(type1_ok and ext in _type1_ext(arg.linux))

    def VFIO_SET_IOMMU(self, arg: IoctlArg) -> int:  # noqa: N802
        kind = arg.cmd
        if not self.groups or self.iommu is not None:
            raise kerr(errno.EINVAL)
        if not self.VFIO_CHECK_EXTENSION(arg):
            raise kerr(errno.ENODEV)
        if kind not in (*_TYPE1_TYPES, _NESTING, C.VFIO_NOIOMMU_IOMMU):
            # vfio_ioctl_set_iommu: type1 claims the extension (UNMAP_ALL) but its open()
            # refuses any type it cannot be: vfio_iommu_type1_open's default case
            raise kerr(errno.EINVAL)
        if kind == _NESTING:
            raise kerr(errno.EINVAL)  # iommu.c:iommu_enable_nesting: no VT-d/AMD op
        self.iommu = kind
        self.dma.v2 = kind == C.VFIO_TYPE1v2_IOMMU
        return 0

    # -- type1 ioctls ----------------------------------------------------------------------

    def VFIO_IOMMU_GET_INFO(self, arg: IoctlArg) -> int:  # noqa: N802
        info = arg.cmd
        info.flags = C.VFIO_IOMMU_INFO_PGSIZES
        model = self.iommu_hw.model
        # no domain (only mdevs): pgsize_bitmap stays vfio_iommu_type1_open's PAGE_MASK and the
        # IOVA list is empty, so vfio_iommu_iova_build_caps adds no range capability
        info.iova_pgsizes = model.pgsize_bitmap if self.has_domain else U64 & ~(PAGE_SIZE - 1)
        ranges = model.iova_ranges() if self.has_domain else []
        caps = [
            (C.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1,
             struct.pack("<I4xQQ", 0, model.page_size, MAX_DIRTY_BITMAP_SIZE)),
            (C.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, struct.pack("<I", self.dma.dma_avail)),
        ]
        if ranges:
            caps.append((C.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, struct.pack(
                "<II", len(ranges), 0) + b"".join(struct.pack("<QQ", *r) for r in ranges)))
        arg.reply_caps(caps, C.VFIO_IOMMU_INFO_CAPS)
        return 0

    def VFIO_IOMMU_MAP_DMA(self, arg: IoctlArg) -> int:  # noqa: N802
        m = arg.cmd
        prot = m.flags & (C.VFIO_DMA_MAP_FLAG_READ | C.VFIO_DMA_MAP_FLAG_WRITE)
        set_vaddr = bool(m.flags & C.VFIO_DMA_MAP_FLAG_VADDR)
        pg = self.iommu_hw.model.page_size
        if m.flags & ~_MAP_FLAGS:
            raise kerr(errno.EINVAL)
        wraps = m.size and (m.iova + m.size - 1 > U64 or m.vaddr + m.size - 1 > U64)
        if wraps and arg.linux.at_least("7.3"):
            # 7.3 vfio_dma_do_map: !size EINVAL, then check_add_overflow EOVERFLOW before the
            # flags and alignment checks (6.12: every one of them EINVAL)
            raise kerr(errno.EOVERFLOW)
        if bool(prot) == set_vaddr:
            raise kerr(errno.EINVAL)
        if not m.size or (m.size | m.iova | m.vaddr) & (pg - 1) or wraps:
            raise kerr(errno.EINVAL)
        if set_vaddr:
            self.dma.update_vaddr(m.iova, m.size, m.vaddr)
            return 0
        write = bool(m.flags & C.VFIO_DMA_MAP_FLAG_WRITE)
        if self.has_domain:
            self.dma.check_map(m.iova, m.size, self.iommu_hw.model.iova_ranges())
            self._pin(m.vaddr, m.size, write)
        else:  # vfio_dma_do_map: no IOMMU domain, nothing pinned; any IOVA valid (empty list)
            self.dma.check_map(m.iova, m.size, ((0, U64),))
        read = bool(m.flags & C.VFIO_DMA_MAP_FLAG_READ)
        self.dma.insert(Mapping(m.iova, m.size, m.vaddr, read, write))
        return 0

    def _pin(self, vaddr: int, size: int, write: bool) -> None:
        """vfio_pin_pages_remote: pages pin in order; the first unmapped (or, for a writable
        mapping, read-only) page is EFAULT, the first page past RLIMIT_MEMLOCK ENOMEM.  Only the
        pages before the first failure are looked at, whatever size the caller asked for."""
        npages = -(-size // PAGE_SIZE)
        limit = self.knobs.memlock_limit
        allowed = npages if limit is None else max(0, (limit - self.dma.locked) // PAGE_SIZE)
        scan = min(npages, allowed + 1)
        if self.mem.pinnable_pages(vaddr, scan, write=write) < scan:
            raise kerr(errno.EFAULT)
        if npages > allowed:
            raise kerr(errno.ENOMEM)

    def VFIO_IOMMU_UNMAP_DMA(self, arg: IoctlArg) -> int:  # noqa: N802
        u = arg.cmd
        flags = u.flags
        dirty = flags & C.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
        unmap_all = flags & C.VFIO_DMA_UNMAP_FLAG_ALL
        if flags & ~_UNMAP_FLAGS or (dirty and flags & ~dirty):
            raise kerr(errno.EINVAL)
        bitmap = self._unmap_bitmap(arg, u) if dirty else None
        iova, size = self._unmap_range(u.iova, u.size, bool(unmap_all), arg.linux)
        if flags & C.VFIO_DMA_UNMAP_FLAG_VADDR:
            u.size = self.dma.invalidate_vaddr(iova, size, bool(self.dma.v2 or unmap_all))
        else:
            if bitmap is not None:
                pgsize, data = bitmap
                self._check_tracking(pgsize)
                self._check_no_bisect(iova, size)
                self.dma.write_dirty(arg.mem, data, iova, size, pgsize)
            unmap = self.dma.unmap_v2 if self.dma.v2 or unmap_all else self.dma.unmap_v1
            u.size = unmap(iova, size)
        arg.copy_out(u, 24)
        return 0

    def _unmap_range(self, iova: int, size: int, unmap_all: bool,
                     linux: Linux) -> tuple[int, int]:
        """vfio_dma_do_unmap's range checks: EINVAL, or EOVERFLOW on 7.3 for a range that
        wraps (check_add_overflow; 6.12: EINVAL)."""
        pg = self.iommu_hw.model.page_size
        if iova & (pg - 1):
            raise kerr(errno.EINVAL)
        if unmap_all:
            if iova or size:
                raise kerr(errno.EINVAL)
            return 0, 1 << 64
        if not size or size & (pg - 1):
            raise kerr(errno.EINVAL)
        if iova + size - 1 > U64:
            raise kerr(errno.EOVERFLOW if linux.at_least("7.3") else errno.EINVAL)
        return iova, size

    def _unmap_bitmap(self, arg: IoctlArg, u: object) -> tuple[int, int]:
        if arg.size < 24 + 24:
            raise kerr(errno.EINVAL)
        pgsize, size, data = struct.unpack("<QQQ", arg.read(24, 24))
        _verify_bitmap_size(getattr(u, "size", 0), pgsize, size)
        return pgsize, data

    def _check_tracking(self, pgsize: int) -> None:
        """Tracking on and the smallest page size: after the range checks (vfio_dma_do_unmap,
        the GET_BITMAP branch of vfio_iommu_type1_dirty_pages)."""
        if not self.dma.dirty_tracking or pgsize != self.iommu_hw.model.page_size:
            raise kerr(errno.EINVAL)

    def _check_no_bisect(self, iova: int, size: int) -> None:
        found = self.dma.in_range(iova, size)
        if found and (found[0].iova < iova or found[-1].end > iova + size):
            raise kerr(errno.EINVAL)

    def VFIO_IOMMU_DIRTY_PAGES(self, arg: IoctlArg) -> int:  # noqa: N802
        d = arg.cmd
        if d.flags & ~_DIRTY_FLAGS or bin(d.flags).count("1") != 1:
            raise kerr(errno.EINVAL)
        if d.flags & C.VFIO_IOMMU_DIRTY_PAGES_FLAG_START:
            self.dma.dirty_tracking = True
        elif d.flags & C.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP:
            self.dma.dirty_tracking = False
        else:
            self._dirty_get(arg)
        return 0

    def _dirty_get(self, arg: IoctlArg) -> None:
        if arg.size < 8 + 40:
            raise kerr(errno.EINVAL)
        iova, size, pgsize, bsize, data = struct.unpack("<QQQQQ", arg.read(8, 40))
        pg = self.iommu_hw.model.page_size
        if not size:
            raise kerr(errno.EINVAL)
        if arg.linux.at_least("7.3"):
            if iova + size - 1 > U64:  # 7.3: check_add_overflow(iova, size - 1) first
                raise kerr(errno.EOVERFLOW)
        elif iova + size > U64:  # 6.12: range.iova + range.size < range.iova (u64)
            raise kerr(errno.EINVAL)
        _verify_bitmap_size(size, pgsize, bsize)
        if (iova | size) & (pg - 1):
            raise kerr(errno.EINVAL)
        self._check_tracking(pgsize)
        self._check_no_bisect(iova, size)
        self.dma.write_dirty(arg.mem, data, iova, size, pgsize)


def _verify_bitmap_size(span: int, pgsize: int, size: int) -> None:
    """vfio_iommu_type1.c:``verify_bitmap_size(span >> __ffs(pgsize), size)``, in the ioctl
    before the range checks, in pages of the caller's ``pgsize`` (x86-64: __ffs(0) is 64 and
    a shift by 64 shifts by 0); DIRTY_BITMAP_BYTES rounds up to u64 words in 64 bits."""
    shift = (pgsize & -pgsize).bit_length() - 1 if pgsize else 64
    npages = span >> (shift & 63)
    need = ((npages + 63) & ~63 & U64) // 8
    if not npages or not size or size > MAX_DIRTY_BITMAP_SIZE or size < need:
        raise kerr(errno.EINVAL)


def _need_v2(container: Container, arg: IoctlArg) -> None:
    """vfio_iommu_type1_dirty_pages: EACCES on a v1 container, before the copy-in."""
    if not container.dma.v2:
        raise kerr(errno.EACCES)


OPS = (
    Op(uapi.VFIO_GET_API_VERSION, "vfio", Container.VFIO_GET_API_VERSION),
    Op(uapi.VFIO_CHECK_EXTENSION, "vfio", Container.VFIO_CHECK_EXTENSION, Conv.VALUE),
    Op(uapi.VFIO_SET_IOMMU, "vfio", Container.VFIO_SET_IOMMU, Conv.VALUE),
    Op(uapi.VFIO_IOMMU_GET_INFO, "type1", Container.VFIO_IOMMU_GET_INFO, Conv.ARGSZ,
       "struct vfio_iommu_type1_info", "iova_pgsizes"),
    Op(uapi.VFIO_IOMMU_MAP_DMA, "type1", Container.VFIO_IOMMU_MAP_DMA, Conv.ARGSZ,
       "struct vfio_iommu_type1_dma_map", "size"),
    Op(uapi.VFIO_IOMMU_UNMAP_DMA, "type1", Container.VFIO_IOMMU_UNMAP_DMA, Conv.ARGSZ,
       "struct vfio_iommu_type1_dma_unmap", "size"),
    Op(uapi.VFIO_IOMMU_DIRTY_PAGES, "type1", Container.VFIO_IOMMU_DIRTY_PAGES, Conv.ARGSZ,
       "struct vfio_iommu_type1_dirty_bitmap", "flags", before_copy=_need_v2),
)
"""The container's ioctls (owner ``vfio``: container.c; ``type1``: vfio_iommu_type1.c)."""
