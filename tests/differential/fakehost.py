"""The FakeKernel a recording is replayed on: laid out like the guest that recorded it."""

from __future__ import annotations

import inspect
from typing import Any

from pyvfio.fake import FakeKernel, standard_host
from tests.differential.harness import edu_devices, linux_version
from tests.differential.runner import Env

# The lane's QEMU 7.2 intel-iommu has aw-bits=39: its IOVA space ends at 2^39 - 1 (Linux shows
# it in VFIO_IOMMU_GET_INFO's IOVA_RANGE cap and IOMMU_IOAS_IOVA_RANGES), minus the MSI window.
# Its intel-iommu has no snoop control either: VFIO_DMA_CC_IOMMU is 0 after SET_IOMMU.
LANE_IOVA_RANGES = ((0, 0xFEDFFFFF), (0xFEF00000, (1 << 39) - 1))
# BAR0 of the lane's edu as its firmware (qboot) placed it, for recordings whose header lacks
# "bar0" (recorded before the recorder wrote it): config space shows it.
LANE_BAR0 = {"0000:00:01.0": 0x40000000, "0000:02:01.0": 0x40100000,
             "0000:02:02.0": 0x40200000}
# ... and the interrupt line its firmware wrote (vfio passes PCI_INTERRUPT_LINE through)
LANE_INTERRUPT_LINE = {"0000:00:01.0": 0x0B, "0000:02:01.0": 0x0A, "0000:02:02.0": 0x0A}


def fake_for(header: dict[str, Any]) -> tuple[FakeKernel, Env]:
    """A fake host like the recording's guest, and its Env (checked equal to the guest's).

    Raises:
        AssertionError: the fake's layout (edu BDFs, IOMMU groups, cdev names) is not the
            guest's; the recording cannot be replayed on it.
    """
    knobs: dict[str, Any] = {"iommufd": bool(header.get("iommufd", True)),
                             "noiommu": bool(header.get("noiommu")),
                             "transparent_hugepage": bool(header.get("thp", True)),
                             "iova_ranges": LANE_IOVA_RANGES, "cache_coherency": False}
    if "linux" in inspect.signature(FakeKernel.__init__).parameters:  # fake with kernel versions
        knobs["linux"] = linux_version(header["kernel"])
    kernel = standard_host(groups={d["bdf"]: d["group"] for d in header["devices"]}, **knobs)
    kernel.iommu.model.aperture = (0, LANE_IOVA_RANGES[-1][1])
    for bdf, address in header.get("bar0", LANE_BAR0).items():
        kernel.bus.devices[bdf].bars[0].address = address
    lines = {bdf: bytes.fromhex(cfg)[0x3C] for bdf, cfg in header.get("config", {}).items()}
    for bdf, line in (lines or LANE_INTERRUPT_LINE).items():
        kernel.bus.devices[bdf].config[0x3C] = line
    bdfs = edu_devices(kernel)
    env = Env.discover(kernel, bdfs, noiommu=knobs["noiommu"])
    assert env.devices == header["devices"], (
        f"the fake host is not laid out like the recording's guest: {env.devices} != "
        f"{header['devices']}")
    return kernel, env
