"""Divergences of the fake from Linux that the replay knows about, each with its reason.

A key is a divergence kind as test_replay.signature spells it; the replay passes when every
diverging sequence's first differing op is of a listed kind, and fails on any other.  Every
entry is a fake bug not understood or not fixed yet: the list only shrinks.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    # compat GET_INFO (argsz 0x78, flags 0xffffffff in) after the group's only device was
    # opened and closed: Linux answers iova_pgsizes 4K|2M|1G and IOVA_RANGE [0, 0xfedfffff],
    # [0xfef00000, 2^39-1], argsz 0x58; the fake answers as for an IOAS that never had a domain
    # (every page size, one range [0, 2^64-1], argsz 0x48).  Decided by
    # vfio_compat.c:iommufd_vfio_iommu_get_info (iopt->iova_alignment, iopt_get_iova_ranges over
    # the reserved ranges); why the closed device's aperture and MSI window still count there
    # is not verified.  python -m tests.differential.show compat SEED <recording>.  1 of 10000.
    "VFIO_IOMMU_GET_INFO: bytes differ":
        "compat GET_INFO after a device open/close: the domain's page sizes and ranges stay",

}
