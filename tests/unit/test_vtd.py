"""The fake's VT-d capability registers (pyvfio/fake/vtd.py) against QEMU's and the lane's."""

from __future__ import annotations

import pytest

from pyvfio.fake import vtd
from pyvfio.vm.profiles import VTD, VTD_SCALABLE


def test_lane_options_are_the_profiles() -> None:
    """The fake's IOMMU is the lane's: the same intel-iommu option string."""
    assert vtd.LANE_OPTIONS == VTD


def test_lane_registers_as_recorded() -> None:
    """CAP/ECAP the lane's 6.12 guest reported (tests/differential/recordings/iommufd-6.12.117:
    IOMMU_GET_HW_INFO data 01000000 00000000 860226228c00d200 4a0ff00000000000)."""
    assert vtd.qemu_vtd_registers(VTD) == (0x00D2008C22260286, 0xF00F4A)
    assert vtd.LANE_HW_INFO.hex() == "0100000000000000860226228c00d2004a0ff00000000000"


def test_scalable_mode_bits() -> None:
    """x-scalable-mode adds SMTS/SRS/SLTS, x-pasid-mode PASID (vtd_init; the sm-7.3 guest read
    ECAP 0x490080f00f4a)."""
    cap, ecap = vtd.qemu_vtd_registers(VTD_SCALABLE)
    base_cap, base_ecap = vtd.qemu_vtd_registers(VTD)
    added = vtd.ECAP_SMTS | vtd.ECAP_SRS | vtd.ECAP_SLTS | vtd.ECAP_PASID
    assert (cap, ecap) == (base_cap, base_ecap | added) and ecap == 0x490080F00F4A


def test_defaults_and_widths() -> None:
    """No options: QEMU's defaults (no intremap, no caching mode); aw-bits=48 adds 4-level."""
    cap, ecap = vtd.qemu_vtd_registers("")
    assert not cap & vtd.CAP_CM and not ecap & vtd.ECAP_IR and ecap & vtd.ECAP_PT
    cap48, _ = vtd.qemu_vtd_registers("aw-bits=48")
    assert cap48 & vtd.CAP_SAGAW_48 and (cap48 >> 16) & 0x3F == 47


@pytest.mark.parametrize("options", ["dma-translation=off", "aw-bits=52"])
def test_unmodelled_options_refused(options: str) -> None:
    """An option the model does not know, or a width QEMU refuses: ValueError, not a guess."""
    with pytest.raises(ValueError, match="dma-translation|aw-bits"):
        vtd.qemu_vtd_registers(options)
