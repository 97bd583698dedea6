"""The type1 IOMMU driver's DMA map (drivers/vfio/vfio_iommu_type1.c), O(log n) per lookup.

Mappings are kept in the IOAS's :class:`~pyvfio.fake.interval.IntervalMap` (sorted buckets: finding,
inserting and removing one is O(log n) plus a bounded shift) plus a dict from start to
:class:`Mapping`.  A flat sorted list made inserts and removals in the middle O(n): 150 us per
map at 10^6 mappings (tools/bench part 4).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from pyvfio.fake.interval import IntervalMap
from pyvfio.fake.iommu import INTEL_PGSIZES, IOMMUModel
from pyvfio.fake.memory import UserMemory, kerr

U64 = (1 << 64) - 1
INTEL_IOVA_RANGES = IOMMUModel().iova_ranges()  # the lane's VT-d, MSI window excluded


@dataclass
class Knobs:
    """The fake host's tunables (module parameters, rlimits, platform facts).

    Attributes:
        dma_entry_limit: vfio_iommu_type1's ``dma_entry_limit`` module parameter.
        memlock_limit: RLIMIT_MEMLOCK in bytes; None = unlimited (root or CAP_IPC_LOCK).
        iova_ranges: valid IOVA ranges (inclusive ends) after reserved regions; they become the
            IOMMU's aperture and reserved regions (:class:`pyvfio.fake.iommu.IOMMUModel`), which
            type1, iommufd and the compat container all answer from.
        pgsize_bitmap: the IOMMU's supported page sizes.
        iommufd: whether /dev/iommu exists (kept for the iommufd model; absent = ENOENT).
        noiommu: vfio's no-IOMMU mode: groups are /dev/vfio/noiommu-N, no type1.
        transparent_hugepage: CONFIG_TRANSPARENT_HUGEPAGE (Debian's kernels: yes): shows
            /sys/kernel/mm/transparent_hugepage and lets automatic IOVAs align up to 2 MiB.
        cache_coherency: the IOMMU enforces cache coherency (VT-d snoop control, AMD-Vi):
            VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU) answers it. QEMU's intel-iommu has no
            snoop control: False there (the VM lane).
    """

    dma_entry_limit: int = 65535
    memlock_limit: int | None = None
    iova_ranges: tuple[tuple[int, int], ...] = INTEL_IOVA_RANGES
    pgsize_bitmap: int = INTEL_PGSIZES
    iommufd: bool = False
    noiommu: bool = False
    transparent_hugepage: bool = True
    cache_coherency: bool = True


@dataclass
class Mapping:
    """One ``vfio_dma``: [iova, iova+size) -> vaddr with read/write permission."""

    iova: int
    size: int
    vaddr: int
    read: bool
    write: bool
    vaddr_invalid: bool = False

    @property
    def end(self) -> int:
        return self.iova + self.size


@dataclass
class DmaMap:
    """The mappings of one type1 container, with the container's accounting."""

    knobs: Knobs
    v2: bool = True
    ivs: IntervalMap[Mapping] = field(default_factory=IntervalMap)
    maps: dict[int, Mapping] = field(default_factory=dict)
    locked: int = 0
    dirty_tracking: bool = False

    @property
    def dma_avail(self) -> int:
        return self.knobs.dma_entry_limit - len(self.maps)

    def __len__(self) -> int:
        return len(self.maps)

    def first_overlap(self, iova: int, size: int) -> Mapping | None:
        """Return the lowest mapping intersecting [iova, iova+size), or None."""
        pos = self.ivs.first_overlap(iova, iova + size - 1)
        return None if pos is None else self.ivs.get(pos)[2]

    def in_range(self, iova: int, size: int) -> list[Mapping]:
        """Return the mappings intersecting [iova, iova+size) in ascending order."""
        return [self.maps[start] for start, _ in self.ivs.spans(iova, iova + size - 1)]

    def insert(self, m: Mapping) -> None:
        """Add a mapping that overlaps nothing (checked by the caller)."""
        self.ivs.insert(m.iova, m.end - 1, m)
        self.maps[m.iova] = m
        self.locked += m.size

    def remove(self, m: Mapping) -> None:
        """Drop a mapping and give back its accounting."""
        pos = self.ivs.first_overlap(m.iova, m.iova)
        if pos is not None:
            self.ivs.pop(pos)
        del self.maps[m.iova]
        self.locked -= m.size

    def clear(self) -> None:
        """Drop every mapping (the last group left the container)."""
        self.ivs.clear()
        self.maps.clear()
        self.locked = 0
        self.dirty_tracking = False

    def translate(self, iova: int, size: int, *, write: bool) -> list[tuple[int, int]] | None:
        """Translate a device access into (vaddr, length) pieces.

        Returns None if any byte is unmapped or lacks the permission: the IOMMU blocks the
        whole transaction.
        """
        pieces = []
        end = iova + size
        while iova < end:
            m = self.first_overlap(iova, 1)
            if m is None or m.iova > iova or not (m.write if write else m.read):
                return None
            n = min(end, m.end) - iova
            pieces.append((m.vaddr + iova - m.iova, n))
            iova += n
        return pieces

    def check_map(self, iova: int, size: int, ranges: tuple[tuple[int, int], ...]) -> None:
        """Rules 6-8 of ``vfio_dma_do_map``: EEXIST overlap, ENOSPC limit, EINVAL outside ranges
        (the pinning and its RLIMIT_MEMLOCK accounting come after: Container._pin)."""
        if self.first_overlap(iova, size) is not None:
            raise kerr(errno.EEXIST)
        if self.dma_avail <= 0:
            raise kerr(errno.ENOSPC)
        last = iova + size - 1
        if not any(lo <= iova and last <= hi for lo, hi in ranges):
            raise kerr(errno.EINVAL)

    def unmap_v2(self, iova: int, size: int) -> int:
        """Unmap whole mappings in [iova, iova+size); EINVAL if that would bisect one.

        Returns the bytes unmapped (0 when nothing was there: success on type1).
        """
        found = self.in_range(iova, size)
        if found and (found[0].iova < iova or found[-1].end > iova + size):
            raise kerr(errno.EINVAL)
        return self._drop(found)

    def unmap_v1(self, iova: int, size: int) -> int:
        """Legacy type1: whole mappings from the first one starting at/after ``iova``."""
        found = self.in_range(iova, size)
        if found and found[0].iova < iova:
            return 0
        return self._drop(found)

    def _drop(self, found: list[Mapping]) -> int:
        for m in found:
            self.remove(m)
        return sum(m.size for m in found)

    def invalidate_vaddr(self, iova: int, size: int, v2: bool) -> int:
        """UNMAP with FLAG_VADDR: mark vaddrs invalid; EINVAL (and no change) if one already is.

        vfio_dma_do_unmap checks the range before it looks at the flag: on v2 a range that
        would bisect a mapping is EINVAL; on v1 the walk stops at a mapping that starts below
        ``iova`` (nothing invalidated, size 0) and takes a last mapping whole.
        """
        found = self.in_range(iova, size)
        if found and found[0].iova < iova:
            if v2:
                raise kerr(errno.EINVAL)
            return 0
        if v2 and found and found[-1].end > iova + size:
            raise kerr(errno.EINVAL)
        if any(m.vaddr_invalid for m in found):
            raise kerr(errno.EINVAL)
        for m in found:
            m.vaddr_invalid = True
        return sum(m.size for m in found)

    def update_vaddr(self, iova: int, size: int, vaddr: int) -> None:
        """MAP with VFIO_DMA_MAP_FLAG_VADDR: ENOENT none there, EINVAL not invalid/different."""
        m = self.first_overlap(iova, size)
        if m is None:
            raise kerr(errno.ENOENT)
        if not m.vaddr_invalid or m.iova != iova or m.size != size:
            raise kerr(errno.EINVAL)
        m.vaddr, m.vaddr_invalid = vaddr, False

    def write_dirty(self, mem: UserMemory, data: int, iova: int, size: int, pgsize: int) -> None:
        """Write the dirty bits of every mapping in [iova, iova+size) to the user bitmap at
        ``data`` (bit 0 = ``iova``), one mapping at a time as vfio_iommu_type1.c:
        ``update_user_bitmap`` does: only the u64 words holding a mapping's bits are written;
        a first word the mapping shares with lower bits (shift != 0) is ORed with what the user
        had there, all of it (``bitmap_or(.., &leftover, shift)`` works in whole longs); bitmap
        words of no mapping are never touched.  Every page of a mapping reads dirty: vfio-pci
        groups are not in the pinned-page dirty scope (num_non_pinned_groups).  Raises EFAULT."""
        for m in self.in_range(iova, size):
            nbits = m.size // pgsize
            word, shift = divmod((m.iova - iova) // pgsize, 64)
            bits = ((1 << nbits) - 1) << shift
            if shift:
                leftover = int.from_bytes(mem.read(data + 8 * word, 8), "little")
                bits |= leftover
            mem.write(data + 8 * word, bits.to_bytes((nbits + shift + 63) // 64 * 8, "little"))
