"""doctor: each problem found with its exact fix; a ready host passes."""

from __future__ import annotations

import pytest

from pyvfio.fake import standard_host
from pyvfio.fake.hostenv import FakeHostOS, iommu_host
from pyvfio.host import doctor
from tests.unit.hostfix import Env, make_env


@pytest.fixture
def env() -> Env:
    return make_env()


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_ready_host(env: Env) -> None:
    checks = _by_name(doctor.run(env.kernel, env.host))
    assert not [c for c in checks.values() if c.status == doctor.FAIL]
    assert checks["iommu-firmware"].summary == "DMAR (Intel VT-d) table present"
    assert checks["interrupt-remapping"].status == doctor.OK
    assert checks["dev-vfio"].status == doctor.OK
    assert checks["memlock"].summary == "RLIMIT_MEMLOCK is unlimited"
    assert "intel_iommu=on" in checks["cmdline"].summary


def test_memlock_too_low() -> None:
    kernel, host = standard_host(), FakeHostOS(memlock_limit=(8 << 20, 8 << 20))
    c = _by_name(doctor.run(kernel, host, planned=1 << 30))["memlock"]
    assert c.status == doctor.FAIL
    assert c.fix is not None and "ulimit -l 1048576" in c.fix and "LimitMEMLOCK=1024M" in c.fix


def test_memlock_low_is_fine_with_cap_ipc_lock() -> None:
    """Root without CAP_IPC_LOCK is limited; a user with it is not: the capability decides."""
    low = (8 << 20, 8 << 20)
    ok = _by_name(doctor.run(standard_host(), FakeHostOS(memlock_limit=low, cap_eff=1 << 14),
                             planned=1 << 30))["memlock"]
    assert ok.status == doctor.OK and "CAP_IPC_LOCK" in ok.summary
    others = FakeHostOS(memlock_limit=low, cap_eff=~(1 << 14) & (1 << 41) - 1)  # all but it
    assert _by_name(doctor.run(standard_host(), others, planned=1 << 30))["memlock"].status == \
        doctor.FAIL


def test_iommu_off_in_kernel() -> None:
    kernel = standard_host()
    kernel.sysfs.add_attr("firmware/acpi/tables/DMAR", "")
    kernel.sysfs.remove("kernel/iommu_groups")
    c = _by_name(doctor.run(kernel, FakeHostOS(cmdline="root=/dev/sda")))["iommu-enabled"]
    assert c.status == doctor.FAIL
    assert c.fix is not None and "intel_iommu=on" in c.fix and "update-grub" in c.fix


def test_no_iommu_at_all() -> None:
    kernel = standard_host()
    kernel.sysfs.remove("kernel/iommu_groups")
    c = _by_name(doctor.run(kernel, FakeHostOS()))["iommu-firmware"]
    assert c.status == doctor.FAIL
    assert c.fix is not None and "VT-d" in c.fix


def test_modules_and_interrupt_remapping() -> None:
    kernel = standard_host()
    iommu_host(kernel, ir=False, modules=("vfio",))
    checks = _by_name(doctor.run(kernel, FakeHostOS()))
    assert checks["module-vfio_pci"].status == doctor.FAIL
    assert checks["module-vfio_pci"].fix is not None
    assert checks["module-vfio_pci"].fix.startswith("modprobe vfio_pci")
    assert checks["module-iommufd"].status == doctor.INFO
    assert checks["interrupt-remapping"].status == doctor.FAIL
    assert checks["dev-iommu"].status == doctor.INFO


def test_noiommu_mode_warns() -> None:
    kernel = standard_host()
    kernel.sysfs.add_attr("module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n")
    c = _by_name(doctor.run(kernel, FakeHostOS()))["noiommu"]
    assert c.status == doctor.WARN
