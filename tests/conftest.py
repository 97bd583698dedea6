"""The ``kernel`` fixture: every conformance test runs on the fake kernel and on real Linux.

``fake``: a FakeKernel laid out like the VM lane's guest (one edu alone in its IOMMU group, two edu
sharing a group, all bound to vfio-pci); its teardown check proves nothing leaked.
``real``: LinuxKernel, only inside the VM lane (``PYVFIO_KERNEL=real``, set by tools/vm/run), on
the devices the guest bound to vfio-pci; teardown checks that no fd leaked.
On the host the real parameter skips, saying how to run it; in the guest the fake one does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pyvfio.kernel import Kernel, LinuxKernel

REAL = os.environ.get("PYVFIO_KERNEL") == "real"
PROFILE = os.environ.get("PYVFIO_VM_PROFILE", "fake")
EDU_IDS = ("0x1234", "0x11e8")


@dataclass(frozen=True)
class Host:
    """What a conformance test may use: the kernel and the vfio-pci devices it offers.

    A profile without an IOMMU for the devices (``mock``: no vIOMMU, so nothing binds to
    vfio-pci) still runs the device-less tests; a test that asks for a device it lacks skips.
    """

    kernel: Kernel
    profile: str  # "fake", or the VM lane's profile (tools/vm/profiles.py: iommufd, mock-7.3, ..)
    groups: dict[int, tuple[str, ...]]  # IOMMU group -> edu devices bound to vfio-pci
    linux: tuple[int, int] = (6, 12)  # the kernel's version: real = uname -r, fake = its model

    def linux_at_least(self, major: int, minor: int) -> bool:
        """Whether the kernel under test is Linux ``major.minor`` or newer (for 6.12/7.3 forks)."""
        return self.linux >= (major, minor)

    @property
    def noiommu(self) -> bool:
        return self.profile.split("-")[0] == "noiommu"

    def group_path(self, group: int) -> str:
        return f"/dev/vfio/noiommu-{group}" if self.noiommu else f"/dev/vfio/{group}"

    def _groups_of(self, size: int) -> list[tuple[int, tuple[str, ...]]]:
        found = sorted((g, d) for g, d in self.groups.items() if len(d) == size)
        if not found:
            what = "no edu alone in its IOMMU group" if size == 1 else "no two edu sharing a group"
            pytest.skip(f"{self.profile}: {what} bound to vfio-pci (found {self.groups})")
        return found

    @property
    def edu(self) -> str:
        """BDF of an edu device alone in its IOMMU group (skips the test if there is none)."""
        return self._groups_of(1)[0][1][0]

    @property
    def edu_group(self) -> int:
        return self._groups_of(1)[0][0]

    @property
    def pair(self) -> tuple[str, str]:
        """Two edu devices sharing one IOMMU group (skips the test if there are none)."""
        devices = self._groups_of(2)[0][1]
        return devices[0], devices[1]

    @property
    def pair_group(self) -> int:
        return self._groups_of(2)[0][0]


def linux_version(kernel: Kernel) -> tuple[int, int]:
    """``(major, minor)`` of the kernel under test: the fake's ``linux`` model, else ``uname -r``."""
    model = getattr(kernel, "linux", None)
    if hasattr(model, "major") and hasattr(model, "minor"):  # pyvfio.fake.linux.Linux
        return int(model.major), int(model.minor)
    if isinstance(model, tuple):
        return int(model[0]), int(model[1])
    text = model if isinstance(model, str) else os.uname().release
    major, minor = text.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def discover(kernel: Kernel, profile: str) -> Host:
    """Find the edu devices bound to vfio-pci through the kernel's sysfs, grouped by IOMMU group."""
    groups: dict[int, list[str]] = {}
    driver_dir = "bus/pci/drivers/vfio-pci"
    bound = kernel.sysfs_listdir(driver_dir) if kernel.sysfs_exists(driver_dir) else []
    for bdf in bound:
        if ":" not in bdf:
            continue
        base = f"bus/pci/devices/{bdf}"
        ids = (kernel.sysfs_read(f"{base}/vendor"), kernel.sysfs_read(f"{base}/device"))
        if ids != EDU_IDS or not kernel.sysfs_exists(f"{base}/iommu_group"):
            continue
        group = int(os.path.basename(kernel.sysfs_readlink(f"{base}/iommu_group")))
        groups.setdefault(group, []).append(bdf)
    return Host(kernel, profile, {g: tuple(sorted(d)) for g, d in groups.items()},
                linux_version(kernel) if REAL or hasattr(kernel, "linux") else (6, 12))


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}




def _real_host() -> Iterator[Host]:
    before = _open_fds()
    yield discover(LinuxKernel(), PROFILE)
    leaked = _open_fds() - before
    assert not leaked, f"fds leaked by the test: {sorted(leaked)}"


@pytest.fixture(
    params=[pytest.param("fake", marks=pytest.mark.fake), pytest.param("real", marks=pytest.mark.real)]
)
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """The kernel under test with its devices; parametrized fake / real."""
    if request.param == "real" and not REAL:
        pytest.skip("real kernel: runs in the VM lane (tools/vm/run), not on this host")
    if request.param == "fake" and REAL:
        pytest.skip("fake kernel: runs on the host; this is the VM lane's real-kernel run")
    if request.node.get_closest_marker("fake_only") and request.param == "real":
        pytest.skip("fake_only: " + str(request.node.get_closest_marker("fake_only").args[0]))
    if request.param == "real":
        yield from _real_host()
    else:  # the pytest plugin's fake host (pyvfio.testing): iommufd on, leak check at teardown
        yield discover(request.getfixturevalue("fake_kernel"), "fake")


@pytest.fixture
def kernel(host: Host) -> Kernel:
    """The kernel of :func:`host`."""
    return host.kernel
