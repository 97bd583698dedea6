"""The VM lane's profiles: which kernel boots, with which IOMMU, devices, modules and bindings.

A profile is everything about a guest except the pytest arguments.  ``ALL`` is what
``tools/vm/run --profile all`` (and CI) boots: both kernel versions, so the conformance suite
really runs on Linux 6.12 and 7.3.  The others are device sets for particular work (NVMe
drivers, SR-IOV, intel-iommu scalable mode) or for trying things by hand.

Fixed guest addresses (so BDFs are stable): the edu layout of :mod:`qemu` (00:01.0, 00:02.0 root
port -> 01:00.0 bridge -> 02:01.0, 02:02.0); profile devices on root-bus slots 0x10-0x17 or behind
their own root port; the 9p devices and ``--qemu-device`` take the free slots after that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# intel-iommu options; caching-mode=on always (vm-lane.md pitfall 8: stale translations without)
VTD = "intremap=on,caching-mode=on"
# scalable mode: first/second-level tables through PASID entries (QEMU 7.2: x-scalable-mode;
# x-pasid-mode lets PASID-tagged requests through, for devices that have the capability)
VTD_SCALABLE = VTD + ",x-scalable-mode=on,x-pasid-mode=on"


@dataclass(frozen=True)
class Profile:
    name: str
    kernel: str  # "debian" or a pyvfio.vm.kernels BUILDS name ("iommufd", "iommufd73")
    viommu: str | None  # intel-iommu options, None: no vIOMMU
    append: str  # extra kernel command line
    about: str
    linux: str  # the kernel's version, major.minor (PYVFIO_VM_LINUX in the guest)
    modules: tuple[str, ...] = ()  # loaded in the guest before the tests (modprobe)
    devices: tuple[str, ...] = ()  # extra QEMU -device arguments, fixed addresses
    drives: tuple[str, ...] = ()  # backing drives "ID:SIZE" (see lane.Drive)
    bind: tuple[str, ...] = ()  # BDFs bound to vfio-pci besides the edu devices
    env: dict[str, str] = field(default_factory=dict)  # exported in the guest


def _nvme_pair() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two identical QEMU nvme controllers, each with a 64 MiB raw drive from the run dir."""
    devices = tuple(
        f"nvme,serial=pyvfio-nvme{i},drive=nvme{i},bus=pcie.0,addr=0x{0x10 + i:x}"
        for i in range(2)
    )
    return devices, ("nvme0:64M", "nvme1:64M")


NVME_VFIO, NVME_KERNEL = "0000:00:10.0", "0000:00:11.0"
# an SR-IOV capable nvme (needs an nvme-subsys) on the root bus: PF 00:12.0, VFs 00:12.1 and
# 00:12.2 (each in its own IOMMU group; QEMU leaves VF controllers offline, so no guest driver
# takes them).  Behind a root port it would renumber the edu bridge's bus.
SRIOV_PF = "0000:00:12.0"
SRIOV_DEVICES = (
    "nvme-subsys,id=pyvfio_subsys,nqn=pyvfio-sriov",
    "nvme,serial=pyvfio-sriov,subsys=pyvfio_subsys,bus=pcie.0,addr=0x12,"
    "sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=8",
)

_NVME_DEVICES, _NVME_DRIVES = _nvme_pair()

_PROFILES = [
    Profile("debian", "debian", VTD, "intel_iommu=on",
            "Debian trixie stock 6.12, intel vIOMMU, legacy VFIO (container/group) only", "6.12"),
    Profile("iommufd", "iommufd", VTD, "intel_iommu=on",
            "built 6.12 with IOMMUFD + VFIO cdev, intel vIOMMU", "6.12"),
    Profile("mock", "iommufd", None, "",
            "built 6.12, no vIOMMU: IOMMUFD_TEST mock domains work, vfio-pci cannot bind", "6.12"),
    Profile("noiommu", "iommufd", None, "vfio.enable_unsafe_noiommu_mode=1",
            "built 6.12, no vIOMMU, vfio no-IOMMU mode (/dev/vfio/noiommu-N)", "6.12"),
    Profile("iommufd-7.3", "iommufd73", VTD, "intel_iommu=on vfio_pci.enable_sriov=1",
            f"built 7.3, intel vIOMMU, the mdev samples mtty, mdpy and mbochs loaded, an SR-IOV "
            f"nvme PF {SRIOV_PF} (nvme driver, 2 VFs possible; vfio-pci enable_sriov=1)", "7.3",
            modules=("mtty", "mdpy", "mbochs"), devices=SRIOV_DEVICES,
            env={"PYVFIO_VM_SRIOV_PF": SRIOV_PF}),
    Profile("mock-7.3", "iommufd73", None, "",
            "built 7.3, no vIOMMU: IOMMUFD_TEST mock domains (7.3's ops)", "7.3",
            modules=("mtty",)),
    Profile("noiommu-7.3", "iommufd73", None, "vfio.enable_unsafe_noiommu_mode=1",
            "built 7.3, no vIOMMU, vfio no-IOMMU mode (group and iommufd noiommu)", "7.3"),
    Profile("sm-7.3", "iommufd73", VTD_SCALABLE, "intel_iommu=on,sm_on",
            "built 7.3, intel vIOMMU in scalable mode (x-scalable-mode, x-pasid-mode)", "7.3",
            modules=("mtty",)),
    Profile("nvme", "iommufd73", VTD, "intel_iommu=on",
            f"built 7.3, intel vIOMMU, two QEMU nvme with 64 MiB drives: {NVME_VFIO} on "
            f"vfio-pci, {NVME_KERNEL} on the guest's nvme driver", "7.3",
            devices=_NVME_DEVICES, drives=_NVME_DRIVES, bind=(NVME_VFIO,),
            env={"PYVFIO_VM_NVME_VFIO": NVME_VFIO, "PYVFIO_VM_NVME_KERNEL": NVME_KERNEL}),
]
PROFILES = {p.name: p for p in _PROFILES}
# `--profile all`: CI's set, both kernel versions
ALL = ["debian", "iommufd", "mock", "noiommu", "iommufd-7.3", "mock-7.3"]
