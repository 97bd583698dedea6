"""The pyvfio subcommands end to end: text, JSON schema, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyvfio.cli import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from pyvfio.host.pciids import PciIds
from tests.unit.hostfix import NIC, NVME, PF, SPARE, Env, make_env

Cap = pytest.CaptureFixture[str]


@pytest.fixture
def env() -> Env:
    return make_env()


def run(env: Env, tmp_path: Path, *argv: str) -> int:
    return main(list(argv), kernel=env.kernel, host=env.host, root=str(tmp_path),
                state_dir=str(tmp_path / "state"))


def js(env: Env, tmp_path: Path, capsys: Cap, *argv: str) -> tuple[int, dict[str, Any]]:
    code = run(env, tmp_path, *argv, "--json")
    return code, json.loads(capsys.readouterr().out)


def test_ls(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "ls") == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["BDF", "ID", "CLASS", "NAME", "DRIVER", "GROUP", "VIABLE"]
    row = next(line for line in out if line.startswith("0000:00:05.1"))
    assert row.split()[-3:] == ["e1000e", "7", "no"]
    code, doc = js(env, tmp_path, capsys, "ls")
    assert (code, doc["schema"], doc["ok"], doc["iommu"]) == (EXIT_OK, "pyvfio.ls/1", True, True)
    dev = next(d for d in doc["devices"] if d["bdf"] == "0000:00:01.0")
    assert {k: dev[k] for k in ("vendor", "device", "driver", "iommu_group", "viable")} == {
        "vendor": "1234", "device": "11e8", "driver": "vfio-pci", "iommu_group": 1, "viable": True}


def test_group(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "group", "7") == EXIT_OK
    out = capsys.readouterr().out
    assert "IOMMU group 7: NOT viable" in out
    assert "bound to host driver e1000e" in out
    code, doc = js(env, tmp_path, capsys, "group", "7")
    assert (code, doc["viable"]) == (EXIT_OK, False)
    assert [m["status"] for m in doc["members"]] == ["ok", "blocks"]
    assert run(env, tmp_path, "group", "99") == EXIT_FAILED
    assert run(env, tmp_path, "group", "../1") == EXIT_USAGE


def test_info(env: Env, tmp_path: Path, capsys: Cap) -> None:
    code, doc = js(env, tmp_path, capsys, "info", NIC)
    assert code == EXIT_OK
    assert doc["device"]["driver"] == "e1000e"
    assert {u["kind"] for u in doc["in_use"]} == {"interface", "address", "route"}
    assert doc["vfio"] is None
    code, doc = js(env, tmp_path, capsys, "info", "0000:00:01.0")
    assert code == EXIT_OK
    assert doc["group"]["viable"] is True
    assert "vfio_error" not in doc  # read through the object API
    assert doc["vfio"]["flags"] == "PCI"
    assert doc["vfio"]["regions"][0]["flags"] == "READ|WRITE|MMAP"
    assert doc["vfio"]["irqs"][0]["flags"] == "EVENTFD|MASKABLE|AUTOMASKED"
    assert run(env, tmp_path, "info", "0000:00:01.0") == EXIT_OK
    out = capsys.readouterr().out
    assert "    region 0: size 0x100000 READ|WRITE|MMAP\n" in out
    assert "    irq 1: count 1 EVENTFD|NORESIZE\n" in out


def test_flag_names_with_unnamed_bits() -> None:
    from pyvfio.host.vfioinfo import flag_names  # noqa: PLC0415
    from pyvfio.uapi import RegionInfoFlag  # noqa: PLC0415

    assert flag_names(RegionInfoFlag(0)) == "0"
    assert flag_names(RegionInfoFlag(0x1 | 0x400)) == "READ|0x400"


def test_ls_names_devices_from_pci_ids(env: Env, tmp_path: Path, capsys: Cap,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids = PciIds("1234  Technical Corp.\n\t11e8  Edu device\n")  # the system's pci.ids format
    monkeypatch.setattr(PciIds, "system", staticmethod(lambda: ids))
    assert run(env, tmp_path, "ls") == EXIT_OK
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("0000:00:01.0"))
    assert "Technical Corp. Edu device" in row


def test_bind_in_use_is_refused(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "bind", NVME) == EXIT_REFUSED
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"pyvfio: error: {NVME} is in use by the host: mount@nvme0n1p1")
    assert err[1].startswith("hint: ") and "--force" in err[1]
    code, doc = js(env, tmp_path, capsys, "bind", NIC)
    assert (code, doc["schema"], doc["error"]["type"]) == (EXIT_REFUSED, "pyvfio.error/1",
                                                           "InUseError")
    assert "route@eth0: carries route 10.0.2.0/24" in doc["error"]["uses"]
    env.kernel.assert_clean()


def test_bind_dry_run(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "bind", "--dry-run", "--persist", SPARE) == EXIT_OK
    out = capsys.readouterr().out
    assert f"would run: write {SPARE} > /sys/bus/pci/drivers/nvme/unbind" in out
    assert "(clear)" not in out  # --persist keeps the override
    assert "persistent (udev)" in out
    assert not (tmp_path / "etc").exists()
    env.kernel.assert_clean()


def test_bind_persist_user_then_unbind(env: Env, tmp_path: Path, capsys: Cap) -> None:
    code, doc = js(env, tmp_path, capsys, "bind", "--persist", "--user", "alice",
                   "--timeout", "0.2", SPARE)
    assert code == EXIT_OK, doc
    assert doc["devices"] == [SPARE] and doc["previous"] == {SPARE: "nvme"}
    assert doc["nodes"] == {SPARE: ["/dev/vfio/12"]}
    assert doc["granted"] == ["/dev/vfio/12"]
    assert len(doc["persist"]) == 2
    assert env.kernel.sysfs_read(f"bus/pci/devices/{SPARE}/driver_override") == "vfio-pci"
    assert run(env, tmp_path, "persist", "list") == EXIT_OK
    assert SPARE in capsys.readouterr().out
    code, doc = js(env, tmp_path, capsys, "unbind", "--persist", SPARE)
    assert code == EXIT_OK
    assert doc["unpersisted"] and doc["schema"] == "pyvfio.unbind/1"
    env.kernel.assert_clean()  # back on nvme, no stale override
    assert not any(p.name.startswith("70-") for p in (tmp_path / "etc/udev/rules.d").iterdir())


def test_bind_group(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "bind", "--group", "--timeout", "0.1", "0000:00:05.0") == EXIT_OK
    assert run(env, tmp_path, "group", "7") == EXIT_OK
    assert "IOMMU group 7: viable" in capsys.readouterr().out


def test_bind_failure_is_one_line(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "bind", "0000:01:00.0") == EXIT_FAILED
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "drivers_probe failed: Invalid argument" in err[0]
    assert err[1] == "hint: the device is back on its previous driver"


@pytest.mark.parametrize("argv", [["bind", "0000:00:03.0;reboot"], ["info", "../../etc"],
                                  ["bind", SPARE, "--driver", "../x"], ["mdev", "remove"],
                                  ["sriov", "set", PF], ["nonsense"], ["doctor", "--memlock", "x"]])
def test_usage_errors(env: Env, tmp_path: Path, capsys: Cap, argv: list[str]) -> None:
    assert run(env, tmp_path, *argv) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err


def test_doctor(env: Env, tmp_path: Path, capsys: Cap) -> None:
    code, doc = js(env, tmp_path, capsys, "doctor")
    assert (code, doc["ready"]) == (EXIT_OK, True)
    env.host.memlock_limit = (1 << 20, 1 << 20)
    assert run(env, tmp_path, "doctor", "--memlock", "1G") == EXIT_FAILED
    out = capsys.readouterr().out
    assert "[FAIL] memlock" in out and "fix: ulimit -l 1048576" in out


def test_mdev_and_sriov(env: Env, tmp_path: Path, capsys: Cap) -> None:
    code, doc = js(env, tmp_path, capsys, "mdev", "types")
    assert doc["types"][0]["available"] == 2
    code, doc = js(env, tmp_path, capsys, "mdev", "create", PF, "ixgbe-mdev1")
    assert code == EXIT_OK
    assert run(env, tmp_path, "mdev", "remove", "--uuid", doc["uuid"]) == EXIT_OK
    assert capsys.readouterr().out == f"removed {doc['uuid']}\n"
    code, doc = js(env, tmp_path, capsys, "sriov", "set", PF, "2")
    assert (code, doc["numvfs"], len(doc["vfs"])) == (EXIT_OK, 2, 2)
    assert run(env, tmp_path, "sriov", "clear", PF) == EXIT_OK


def test_this_host(capsys: Cap) -> None:
    """The command runs on this real host: ls lists its PCI devices, doctor explains."""
    if not os.path.isdir("/sys/bus/pci/devices"):
        pytest.skip("no PCI bus here")
    assert main(["ls", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert {d["bdf"] for d in doc["devices"]} == set(os.listdir("/sys/bus/pci/devices"))
    code = main(["doctor", "--json"])
    doc = json.loads(capsys.readouterr().out)
    failed = [c["name"] for c in doc["checks"] if c["status"] == "fail"]
    assert doc["ready"] is (not failed)  # ready and the exit code follow from the checks
    assert code == (EXIT_FAILED if failed else EXIT_OK)
    assert all(c["fix"] for c in doc["checks"] if c["status"] == "fail")
