"""Group viability names its blockers and knows the drivers that are fine."""

from __future__ import annotations

import pytest

from pyvfio.host import viability
from tests.unit.hostfix import Env, make_env


@pytest.fixture
def env() -> Env:
    return make_env()


def test_viable_group_with_bridge_unbound(env: Env) -> None:
    report = viability.diagnose_group(env.kernel, 6)
    assert report.viable
    assert [(m.name, m.status) for m in report.members] == [
        ("0000:01:00.0", "ok"), ("0000:02:01.0", "ok"), ("0000:02:02.0", "ok")]


def test_pcieport_is_fine(env: Env) -> None:
    [member] = viability.diagnose_group(env.kernel, 3).members
    assert member.driver == "pcieport"
    assert member.status == "ok"
    assert "driver_managed_dma" in member.reason


def test_mixed_group_names_the_blocker(env: Env) -> None:
    report = viability.diagnose_group(env.kernel, 7)
    assert not report.viable
    [blocker] = report.blockers
    assert (blocker.name, blocker.driver) == ("0000:00:05.1", "e1000e")
    assert "host driver e1000e" in blocker.reason
    assert report.to_json()["viable"] is False


@pytest.mark.parametrize("driver,status", [
    (None, "ok"), ("vfio-pci", "ok"), ("pci-stub", "ok"), ("pcieport", "ok"),
    ("mlx5_vfio_pci", "ok"), ("hisi-acc-vfio-pci", "ok"), ("nvme", "blocks"), ("e1000e", "blocks"),
])
def test_judge(env: Env, driver: str | None, status: str) -> None:
    assert viability.judge(env.kernel, driver)[0] == status


def test_unknown_group_and_device_without_group(env: Env) -> None:
    with pytest.raises(FileNotFoundError):
        viability.diagnose_group(env.kernel, 99)
    assert viability.diagnose_device(env.kernel, "0000:00:01.0") is not None
    assert 7 in viability.all_groups(env.kernel)
