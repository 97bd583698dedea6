"""Host tooling on both kernels: viability of the shared edu group, unbind/rebind through
driver_override + drivers_probe, persistence files, and the CLI's ls/doctor/info.

On the real lane the guest's edu devices start on vfio-pci with ``driver_override`` = vfio-pci
(tools/vm/init.sh); every test puts them back exactly so, and the fake's teardown checks it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvfio.cli import EXIT_FAILED, EXIT_OK, main
from pyvfio.fake.hostenv import FakeHostOS
from pyvfio.host import bind, discover, persist, viability
from pyvfio.host.hostos import HostOS, LinuxHostOS
from tests.conftest import Host


def _hostos(host: Host) -> HostOS:
    return FakeHostOS() if host.profile == "fake" else LinuxHostOS()


def _override(host: Host, bdf: str) -> str | None:
    value = host.kernel.sysfs_read(f"bus/pci/devices/{bdf}/driver_override")
    return None if value in ("", "(null)") else value


def test_shared_group_is_viable_and_names_members(host: Host) -> None:
    report = viability.diagnose_group(host.kernel, host.pair_group)
    names = [m.name for m in report.members]
    assert set(host.pair) <= set(names)
    assert report.viable, report.to_json()
    assert all(m.driver in (None, "vfio-pci", "pcieport") for m in report.members)


def test_unbind_one_of_pair_then_bind_back(host: Host, tmp_path: Path) -> None:
    dev, os_ = host.pair[0], _hostos(host)
    before = _override(host, dev)
    plan = bind.unbind(host.kernel, os_, dev, dry_run=True, state_dir=str(tmp_path))
    assert plan.steps[0] == bind.Step("write", "bus/pci/drivers/vfio-pci/unbind", dev)
    assert discover.driver_of(host.kernel, dev) == "vfio-pci"  # the dry run changed nothing
    try:
        bind.unbind(host.kernel, os_, dev, state_dir=str(tmp_path))
        assert discover.driver_of(host.kernel, dev) is None  # edu has no host driver
        assert _override(host, dev) is None
        # an unbound member does not break viability
        assert viability.diagnose_group(host.kernel, host.pair_group).viable
    finally:
        res = bind.bind(host.kernel, os_, dev, keep_override=before == "vfio-pci",
                        state_dir=str(tmp_path), timeout=10)
    assert discover.driver_of(host.kernel, dev) == "vfio-pci"
    assert _override(host, dev) == before
    assert res.missing_nodes == []
    assert res.nodes[dev][0] == host.group_path(host.pair_group)


def test_persistence_files(host: Host, tmp_path: Path) -> None:
    ov = persist.save(host.edu, "vfio-pci", str(tmp_path))
    assert f'KERNEL=="{host.edu}", ATTR{{driver_override}}="vfio-pci"' in Path(ov.path).read_text()
    assert [o.bdf for o in persist.overrides(str(tmp_path))] == [host.edu]
    persist.remove(host.edu, str(tmp_path))
    assert persist.overrides(str(tmp_path)) == []


def test_cli_ls_and_info(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    os_ = _hostos(host)
    assert main(["ls", "--json"], kernel=host.kernel, host=os_) == EXIT_OK
    devices = {d["bdf"]: d for d in json.loads(capsys.readouterr().out)["devices"]}
    for bdf in (host.edu, *host.pair):
        assert (devices[bdf]["vendor"], devices[bdf]["driver"]) == ("1234", "vfio-pci")
        assert devices[bdf]["viable"] is True
    assert main(["info", "--json", host.edu], kernel=host.kernel, host=os_) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["group"]["group"] == host.edu_group
    assert doc["vfio"] is not None, doc.get("vfio_error")
    assert doc["vfio"]["num_regions"] >= 1


def test_cli_doctor(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--json"], kernel=host.kernel, host=_hostos(host))
    doc = json.loads(capsys.readouterr().out)
    failed = [c["name"] for c in doc["checks"] if c["status"] == "fail"]
    assert doc["ready"] is (not failed)  # ready and the exit code follow from the checks
    assert code == (EXIT_FAILED if failed else EXIT_OK)
    assert all(c["fix"] for c in doc["checks"] if c["status"] == "fail")
