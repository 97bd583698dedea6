"""Smoke test of the VM lane itself; runs inside the guest:

    tools/vm/run --profile P -- tools/vm/guest_smoke_test.py

It checks what tools/vm promises the conformance suite (see tools/vm/lane.py), nothing of pyvfio.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

PROFILE = os.environ.get("PYVFIO_VM_PROFILE", "")
DEVICES = os.environ.get("PYVFIO_VM_DEVICES", "").split()
PCI = Path("/sys/bus/pci/devices")
EDU = ("0x1234", "0x11e8")
ROOT_EDU = "0000:00:01.0"
BRIDGED_EDU = ["0000:02:01.0", "0000:02:02.0"]
VFIO_GET_API_VERSION = 0x3B64  # _IO(';', 100)

pytestmark = pytest.mark.skipif(not PROFILE, reason="only meaningful inside tools/vm/run")


def group_of(bdf: str) -> str:
    return os.path.basename(os.readlink(PCI / bdf / "iommu_group"))


def driver_of(bdf: str) -> str | None:
    link = PCI / bdf / "driver"
    return os.path.basename(os.readlink(link)) if link.exists() else None


def edu_devices() -> list[str]:
    return sorted(
        d.name
        for d in PCI.iterdir()
        if ((d / "vendor").read_text().strip(), (d / "device").read_text().strip()) == EDU
    )


def test_environment() -> None:
    assert os.environ["PYVFIO_KERNEL"] == "real"
    assert PROFILE in ("debian", "iommufd", "mock", "noiommu")
    assert os.environ["HOME"] == os.environ["TMPDIR"] == "/run/tmp"
    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
    assert Path.cwd() == Path(__file__).resolve().parent.parent.parent  # the checkout
    assert os.access(os.environ["PYVFIO_VM_RESULTS"], os.W_OK)
    assert os.access(os.environ["TMPDIR"], os.W_OK)


def test_edu_layout() -> None:
    assert edu_devices() == [ROOT_EDU, *BRIDGED_EDU]


def test_devices_bound_to_vfio_pci() -> None:
    if PROFILE == "mock":  # no IOMMU and no no-IOMMU mode: vfio-pci must refuse the devices
        assert DEVICES == []
        return
    assert sorted(DEVICES) == edu_devices()
    for bdf in DEVICES:
        assert driver_of(bdf) == "vfio-pci", bdf


def test_iommu_groups() -> None:
    if PROFILE == "mock":
        assert not any((PCI / bdf / "iommu_group").exists() for bdf in edu_devices())
        return
    groups = {bdf: group_of(bdf) for bdf in DEVICES}
    if PROFILE == "noiommu":  # vfio makes one fake group per device
        assert len(set(groups.values())) == 3
        for bdf, group in groups.items():
            assert Path(f"/dev/vfio/noiommu-{group}").exists(), bdf
        return
    assert groups[BRIDGED_EDU[0]] == groups[BRIDGED_EDU[1]]
    assert groups[ROOT_EDU] != groups[BRIDGED_EDU[0]]
    members = sorted(p.name for p in (PCI / ROOT_EDU / "iommu_group" / "devices").iterdir())
    assert members == [ROOT_EDU]
    for group in set(groups.values()):
        assert Path(f"/dev/vfio/{group}").exists()


def test_dev_nodes() -> None:
    assert Path("/dev/vfio/vfio").exists()
    has_iommu = Path("/dev/iommu").exists()
    cdevs = sorted(p.name for p in Path("/dev/vfio/devices").glob("vfio*"))
    if PROFILE == "debian":
        assert not has_iommu and cdevs == []
    else:
        assert has_iommu
    if PROFILE == "iommufd":
        assert len(cdevs) == len(DEVICES)
    if PROFILE == "noiommu":
        assert sorted(p.name for p in Path("/dev/vfio").glob("noiommu-*"))
    else:
        assert not list(Path("/dev/vfio").glob("noiommu-*"))


def test_vfio_get_api_version() -> None:
    fd = os.open("/dev/vfio/vfio", os.O_RDWR)
    try:
        assert fcntl.ioctl(fd, VFIO_GET_API_VERSION) == 0
    finally:
        os.close(fd)
