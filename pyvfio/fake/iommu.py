"""The one description of the fake host's IOMMU, shared by type1, iommufd and the compat container.

Linux derives every IOVA rule from the same hardware facts: the domain's aperture and page sizes
(``iommu_domain.geometry``, ``pgsize_bitmap``) and the devices' reserved regions (the x86 MSI
window).  type1 reports aperture minus reserved regions as ``VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE``
(vfio_iommu_type1.c:vfio_iommu_aper_resize / resv_refresh); iommufd reserves the same holes in an
IOAS when a domain attaches (io_pagetable.c:iopt_table_add_domain,
iopt_table_enforce_dev_resv_regions) and reports them through ``IOMMU_IOAS_IOVA_RANGES``; the
compat container reports the IOAS's.  So the fake keeps them in one :class:`IOMMUModel`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pyvfio.fake.vtd import LANE_HW_INFO

PAGE_SIZE = 4096
HPAGE_SIZE = 2 << 20  # x86 PMD size
INTEL_PGSIZES = 0x40201000  # 4K | 2M | 1G, what intel/iommu.c reports
X86_MSI_WINDOW = (0xFEE00000, 0xFEEFFFFF)  # IOMMU_RESV_MSI of every x86 device
QEMU_VTD_APERTURE = (0, (1 << 39) - 1)  # QEMU 7.2 intel-iommu: aw-bits=39 (the VM lane's)


@dataclass
class IOMMUModel:
    """What the fake IOMMU hardware offers (the knobs of a host's vIOMMU).

    Defaults imitate the VM lane's QEMU 7.2 intel-iommu: VT-d hw info with its capability
    registers (:mod:`pyvfio.fake.vtd`), a 39-bit aperture, the x86 MSI window reserved, 4K/2M/1G
    pages, no dirty tracking, no nesting.

    Attributes:
        aperture: the first and last IOVA a domain can map (``geometry``).
        reserved: reserved regions (first, last) every device behind it has.
        pgsize_bitmap: the page sizes; the smallest is the IOVA alignment after an attach.
        map_needs_access: the domain's map refuses a mapping neither readable nor writable
            (intel/iommu.c:__domain_mapping EINVAL, so a compat MAP_DMA without flags fails
            with a domain and a domain cannot fill an IOAS holding one); the mock maps it.
        max_iova_alignment: the kernel's, not the IOMMU's: automatic IOVAs are aligned at most to
            HPAGE_SIZE with CONFIG_TRANSPARENT_HUGEPAGE, to PAGE_SIZE without
            (io_pagetable.c:iopt_alloc_iova).
    """

    hw_info_type: int = 1  # IOMMU_HW_INFO_TYPE_INTEL_VTD
    hw_info_data: bytes = LANE_HW_INFO  # struct iommu_hw_info_vtd: QEMU's CAP/ECAP registers
    capabilities: int = 0
    max_pasid_log2: int = 0
    aperture: tuple[int, int] = QEMU_VTD_APERTURE
    reserved: tuple[tuple[int, int], ...] = (X86_MSI_WINDOW,)
    pgsize_bitmap: int = INTEL_PGSIZES
    dirty_tracking: bool = False
    nesting: bool = False
    map_needs_access: bool = True  # VT-d __domain_mapping: no READ and no WRITE -> EINVAL
    ats: bool = False  # devices get ATS (VT-d: ECAP.DT, QEMU device-iotlb=on, and the device's)
    enforce_cache_coherency: bool = True  # VT-d snoop control; QEMU's intel-iommu: False
    iommufd_test: bool = True  # CONFIG_IOMMUFD_TEST: IOMMU_TEST_CMD (fake/selftest.py)
    max_iova_alignment: int = HPAGE_SIZE
    noiommu: bool = False  # iommufd's software-only noiommu domains (fake/noiommu.py)

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]], **fields: Any) -> IOMMUModel:
        """The model whose usable IOVA ranges are ``ranges`` (inclusive ends): the aperture
        spans them, the gaps between them are reserved.

        Raises:
            ValueError: no range, an inverted one, or ranges that overlap.
        """
        spans = sorted((int(lo), int(hi)) for lo, hi in ranges)
        if not spans or any(lo > hi for lo, hi in spans):
            raise ValueError(f"iova_ranges must be (first, last) pairs, got {spans!r}")
        gaps = []
        for (_, hi), (lo, _) in pairwise(spans):
            if lo <= hi:
                raise ValueError(f"iova_ranges overlap: {spans!r}")
            if lo > hi + 1:
                gaps.append((hi + 1, lo - 1))
        return cls(aperture=(spans[0][0], spans[-1][1]), reserved=tuple(gaps), **fields)

    @property
    def page_size(self) -> int:
        """The smallest IOMMU page (``1 << __ffs(pgsize_bitmap)``)."""
        return self.pgsize_bitmap & -self.pgsize_bitmap

    def iova_ranges(self) -> tuple[tuple[int, int], ...]:
        """The usable IOVA ranges: the aperture minus the reserved regions (inclusive ends)."""
        out, cur = [], self.aperture[0]
        for lo, hi in sorted(self.reserved):
            if hi < cur or lo > self.aperture[1]:
                continue
            if lo > cur:
                out.append((cur, lo - 1))
            cur = max(cur, hi + 1)
        if cur <= self.aperture[1]:
            out.append((cur, self.aperture[1]))
        return tuple(out)
