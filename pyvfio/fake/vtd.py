"""QEMU's intel-iommu as a guest kernel sees it: the VT-d capability registers.

Linux reads CAP_REG and ECAP_REG once (intel/dmar.c:alloc_iommu) and reports them unchanged to
user space in ``struct iommu_hw_info_vtd`` (intel/iommu.c:intel_iommu_hw_info, with
``flags = IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`` always set), so IOMMU_GET_HW_INFO returns
exactly what QEMU put in them.  QEMU 7.2 (the VM lane's, Debian 12) composes them from its
``-device intel-iommu,...`` options in hw/i386/intel_iommu.c:vtd_init; :func:`qemu_vtd_registers`
does the same from the same option string (:data:`pyvfio.vm.profiles.VTD` is the lane's).

Checked against the lane: the 6.12 iommufd recording (tests/differential) and
tests/conformance/test_hwpt.py on the iommufd, iommufd-7.3 and sm-7.3 (scalable, PASID) profiles.
"""

from __future__ import annotations

import struct

# CAP_REG (QEMU hw/i386/intel_iommu_internal.h)
CAP_ND = (16 - 4) // 2  # VTD_DOMAIN_ID_SHIFT 16: 64K domain ids
CAP_SAGAW_39 = 0x2 << 8  # 3-level tables
CAP_SAGAW_48 = 0x4 << 8  # 4-level tables
CAP_CM = 1 << 7  # caching mode
CAP_FRO = (0x220 >> 4) << 24  # fault recording registers at DMAR_FRCD_REG_OFFSET 0x220
CAP_NFR = 0 << 40  # DMAR_FRCD_REG_NR 1: one fault recording register
CAP_SLLPS = (1 << 34) | (1 << 35)  # 2M and 1G second-level pages
CAP_PSI = 1 << 39  # page-selective invalidation
CAP_MAMV = 18 << 48
CAP_DRAIN = (1 << 54) | (1 << 55)  # read and write draining

# ECAP_REG
ECAP_QI = 1 << 1  # queued invalidation
ECAP_DT = 1 << 2  # device-iotlb
ECAP_IR = 1 << 3  # interrupt remapping
ECAP_EIM = 1 << 4  # extended interrupt mode (x2APIC)
ECAP_PT = 1 << 6  # pass-through
ECAP_SC = 1 << 7  # snoop control
ECAP_IRO = (0xF0 >> 4) << 8  # IOTLB registers at DMAR_IOTLB_REG_OFFSET 0xf0
ECAP_MHMV = 15 << 20
ECAP_SRS = 1 << 31
ECAP_PASID = 1 << 40
ECAP_SMTS = 1 << 43  # scalable mode
ECAP_SLTS = 1 << 46  # second-level translation in scalable mode

# pyvfio.vm.profiles.VTD, the lane's options (a unit test holds them equal)
LANE_OPTIONS = "intremap=on,caching-mode=on"
HW_INFO_VTD_ERRATA_772415_SPR17 = 1  # iommu_hw_info_vtd.flags, set by every Linux that has it

# QEMU 7.2's intel-iommu property defaults (vtd_properties, x86_iommu_properties); "auto" of
# intremap and eim resolves off in a TCG guest without a split irqchip (the lane's)
_DEFAULTS = {"intremap": "auto", "eim": "auto", "caching-mode": "off", "aw-bits": "39",
             "dma-drain": "on", "device-iotlb": "off", "pt": "on", "snoop-control": "off",
             "x-scalable-mode": "off", "x-pasid-mode": "off"}


def _options(text: str) -> dict[str, str]:
    """``intremap=on,caching-mode=on`` over QEMU's defaults. Raises ValueError for an option
    the model does not know (so a profile change cannot go unnoticed)."""
    opts = dict(_DEFAULTS)
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in opts:
            raise ValueError(f"intel-iommu option {name!r} is not modelled (vtd.py)")
        opts[name] = value or "on"
    return opts


# option -> (CAP bits, ECAP bits) it adds when on, in vtd_init's order
_OPTION_BITS = {
    "dma-drain": (CAP_DRAIN, 0),
    "intremap": (0, ECAP_IR | ECAP_MHMV),
    "device-iotlb": (0, ECAP_DT),
    "pt": (0, ECAP_PT),
    "caching-mode": (CAP_CM, 0),
    "x-scalable-mode": (0, ECAP_SMTS | ECAP_SRS | ECAP_SLTS),
    "snoop-control": (0, ECAP_SC),
    "x-pasid-mode": (0, ECAP_PASID),  # 7.2 leaves PSS 0 (the sm-7.3 lane's guest reads so)
}


def qemu_vtd_registers(options: str) -> tuple[int, int]:
    """(CAP_REG, ECAP_REG) of a QEMU 7.2 ``-device intel-iommu,<options>`` under TCG.

    hw/i386/intel_iommu.c:vtd_init; ``auto`` (intremap, eim) counts as off, as in a TCG guest.

    Raises:
        ValueError: an option not modelled, or aw-bits other than 39/48 (QEMU refuses those).
    """
    opts = _options(options)
    on = {name for name, value in opts.items() if value in ("on", "true")}
    aw_bits = int(opts["aw-bits"])
    if aw_bits not in (39, 48):
        raise ValueError(f"aw-bits={aw_bits}: QEMU 7.2 supports 39 and 48")
    cap = (CAP_FRO | CAP_NFR | CAP_ND | CAP_MAMV | CAP_PSI | CAP_SLLPS | (aw_bits - 1) << 16
           | CAP_SAGAW_39 | (CAP_SAGAW_48 if aw_bits == 48 else 0))
    ecap = ECAP_QI | ECAP_IRO
    for name, (cap_bits, ecap_bits) in _OPTION_BITS.items():
        if name in on:
            cap, ecap = cap | cap_bits, ecap | ecap_bits
    if {"intremap", "eim"} <= on:
        ecap |= ECAP_EIM
    return cap, ecap


def hw_info_vtd(cap: int, ecap: int) -> bytes:
    """``struct iommu_hw_info_vtd`` as intel_iommu_hw_info fills it."""
    return struct.pack("<IIQQ", HW_INFO_VTD_ERRATA_772415_SPR17, 0, cap, ecap)


LANE_HW_INFO = hw_info_vtd(*qemu_vtd_registers(LANE_OPTIONS))
"""What IOMMU_GET_HW_INFO returns for a device behind the lane's intel-iommu."""
