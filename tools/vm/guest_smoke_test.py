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
# what the profile's IOMMU set-up is like (pyvfio/vm/profiles.py): the 7.3 twins, sm-7.3 (an
# intel vIOMMU in scalable mode) and nvme (intel vIOMMU plus nvme controllers) as their kind
_BASE = PROFILE.split("-")[0]
KIND = _BASE if _BASE in ("debian", "iommufd", "mock", "noiommu") else "iommufd"
NVME_VFIO = os.environ.get("PYVFIO_VM_NVME_VFIO")
NVME_KERNEL = os.environ.get("PYVFIO_VM_NVME_KERNEL")
SRIOV_PF = os.environ.get("PYVFIO_VM_SRIOV_PF")
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
    assert PROFILE and KIND in ("debian", "iommufd", "mock", "noiommu")
    assert os.uname().release.startswith(os.environ["PYVFIO_VM_LINUX"] + ".")
    assert os.environ["HOME"] == os.environ["TMPDIR"] == "/run/tmp"
    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
    assert Path.cwd() == Path(__file__).resolve().parent.parent.parent  # the checkout
    assert os.access(os.environ["PYVFIO_VM_RESULTS"], os.W_OK)
    assert os.access(os.environ["TMPDIR"], os.W_OK)


def test_edu_layout() -> None:
    assert edu_devices() == [ROOT_EDU, *BRIDGED_EDU]


def test_devices_bound_to_vfio_pci() -> None:
    if KIND == "mock":  # no IOMMU and no no-IOMMU mode: vfio-pci must refuse the devices
        assert DEVICES == []
        return
    assert sorted(DEVICES) == sorted(edu_devices() + ([NVME_VFIO] if NVME_VFIO else []))
    for bdf in DEVICES:
        assert driver_of(bdf) == "vfio-pci", bdf


def test_iommu_groups() -> None:
    if KIND == "mock":
        assert not any((PCI / bdf / "iommu_group").exists() for bdf in edu_devices())
        return
    groups = {bdf: group_of(bdf) for bdf in DEVICES}
    if KIND == "noiommu":  # vfio makes one fake group per device
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
    if KIND == "debian":
        assert not has_iommu and cdevs == []
    else:
        assert has_iommu
    if KIND == "iommufd":
        assert len(cdevs) == len(DEVICES)
    if KIND == "noiommu":
        assert sorted(p.name for p in Path("/dev/vfio").glob("noiommu-*"))
    else:
        assert not list(Path("/dev/vfio").glob("noiommu-*"))


def test_vfio_get_api_version() -> None:
    fd = os.open("/dev/vfio/vfio", os.O_RDWR)
    try:
        assert fcntl.ioctl(fd, VFIO_GET_API_VERSION) == 0
    finally:
        os.close(fd)


@pytest.mark.skipif(not NVME_KERNEL, reason="profile without the nvme pair")
def test_nvme_pair() -> None:
    """nvme: one controller on vfio-pci, its twin on the guest's nvme driver with a 64 MiB disk."""
    assert driver_of(str(NVME_VFIO)) == "vfio-pci"
    assert driver_of(str(NVME_KERNEL)) == "nvme"
    [disk] = [b for b in Path("/sys/block").glob("nvme*") if NVME_KERNEL in str(b.resolve())]
    assert int((disk / "size").read_text()) * 512 == 64 << 20


@pytest.mark.skipif(not SRIOV_PF, reason="profile without the SR-IOV nvme")
def test_sriov_pf() -> None:
    pf = PCI / str(SRIOV_PF)
    assert (pf / "sriov_totalvfs").read_text().strip() == "2"
    assert (pf / "sriov_numvfs").read_text().strip() == "0"
    assert Path("/sys/module/vfio_pci/parameters/enable_sriov").read_text().strip() == "Y"


@pytest.mark.skipif(PROFILE not in ("iommufd-7.3", "mock-7.3", "sm-7.3"),
                    reason="profile without mtty")
def test_mtty_loaded() -> None:
    types = Path("/sys/class/mdev_bus/mtty/mdev_supported_types")
    assert sorted(p.name for p in types.iterdir()) == ["mtty-1", "mtty-2"]
