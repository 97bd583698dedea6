"""Issue 15's defects of the command line, each as it was found: bad input, faults after the
first write, output that cannot be written, hosts without an IOMMU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvfio.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from pyvfio.fake import DeviceConfig, PCIDevice, standard_host
from pyvfio.fake.hostenv import FakeHostOS
from tests.unit.hostfix import NIC, SPARE, Env, make_env
from tests.unit.test_cli_host import run

Cap = pytest.CaptureFixture[str]
PYVFIO = [sys.executable, "-m", "pyvfio.cli"]


@pytest.fixture
def env() -> Env:
    return make_env()


def left_behind(tmp_path: Path) -> list[str]:
    """Files a command left under its root: rules, driverctl files, previous-driver records."""
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


def test_bind_unknown_user_writes_nothing(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "bind", "--persist", "--user", "bob", SPARE) == EXIT_USAGE
    assert "user 'bob' does not exist" in capsys.readouterr().err
    env.kernel.assert_clean()  # still on nvme, no override
    assert left_behind(tmp_path) == []


@pytest.mark.parametrize("user", ["", "١٢", "-1", "a/b", "x" * 5000])
def test_bind_malformed_user_writes_nothing(env: Env, tmp_path: Path, capsys: Cap,
                                            user: str) -> None:
    env.host.users["١٢"] = (12, 12)  # even where the name resolves, it is not a uid
    assert run(env, tmp_path, "bind", "--user", user, SPARE) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "user must be a user name or a numeric uid" in err and len(err) < 400
    env.kernel.assert_clean()
    assert left_behind(tmp_path) == []


def test_failure_after_the_bind_rolls_everything_back(env: Env, tmp_path: Path, capsys: Cap,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, uid: int, gid: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(env.host, "chown", refuse)
    assert run(env, tmp_path, "bind", "--persist", "--user", "alice", "--timeout", "0.1",
               SPARE) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "PermissionError after binding" in err
    assert "hint: the device is back on its previous driver" in err
    env.kernel.assert_clean()  # on nvme again, override cleared
    assert left_behind(tmp_path) == []  # no udev rule, no previous-driver file


def test_persist_write_failure_rolls_back(env: Env, tmp_path: Path, capsys: Cap) -> None:
    (tmp_path / "etc").write_text("a file where /etc/udev/rules.d should go")
    assert run(env, tmp_path, "bind", "--persist", "--timeout", "0.1", SPARE) == EXIT_FAILED
    assert "back on its previous driver" in capsys.readouterr().err
    env.kernel.assert_clean()
    assert left_behind(tmp_path) == ["etc"]


def test_rollback_restores_a_rule_that_was_there(env: Env, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "etc/udev/rules.d"
    rules.mkdir(parents=True)
    old = rules / f"70-pyvfio-{SPARE.replace(':', '-')}.rules"
    old.write_text("# an older rule\n")
    monkeypatch.setattr(env.host, "chown", lambda *a: (_ for _ in ()).throw(OSError(5, "EIO")))
    assert run(env, tmp_path, "bind", "--persist", "--user", "alice", "--timeout", "0.1",
               SPARE) == EXIT_FAILED
    assert old.read_text() == "# an older rule\n"
    assert sorted(p.name for p in rules.iterdir()) == [old.name]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "1e9", "x"])
def test_time_limits_finite_and_positive(env: Env, tmp_path: Path, capsys: Cap,
                                         value: str) -> None:
    assert run(env, tmp_path, "bind", "--timeout", value, SPARE) == EXIT_USAGE
    assert run(env, tmp_path, "demo", "--timeout", value) == EXIT_USAGE
    assert "Traceback" not in capsys.readouterr().err
    env.kernel.assert_clean()


@pytest.mark.parametrize("value", ["-5", "-5M", "١٢", "5.5M", "", "x" * 5000])
def test_doctor_memlock_must_be_a_size(env: Env, tmp_path: Path, capsys: Cap,
                                       value: str) -> None:
    assert run(env, tmp_path, "doctor", f"--memlock={value}") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "not a size like 64M" in err and len(err) < 1000


def test_long_input_is_not_echoed_in_full(env: Env, tmp_path: Path, capsys: Cap) -> None:
    for argv in (["info", "0" * 5000], ["persist", "y" * 5000], ["group", "9" * 5000]):
        assert run(env, tmp_path, *argv) == EXIT_USAGE
        err = capsys.readouterr().err
        assert len(err) < 1500 and "... (500" in err, argv


def test_unbind_of_a_device_on_its_host_driver_is_a_no_op(env: Env, tmp_path: Path,
                                                          capsys: Cap) -> None:
    for bdf, driver in ((NIC, "e1000e"), (SPARE, "nvme")):  # NIC carries routes: "in use"
        assert run(env, tmp_path, "unbind", bdf) == EXIT_OK
        out = capsys.readouterr().out
        assert out == f"{bdf}: on its host driver {driver}, not on VFIO: nothing to unbind\n"
    env.kernel.assert_clean()
    assert run(env, tmp_path, "unbind", "--json", SPARE) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert (doc["unchanged"], doc["steps"], doc["devices"]) == ({SPARE: "nvme"}, [], [])


def _no_iommu_host() -> Env:
    """No IOMMU groups, no vfio modules: a device on its driver, nothing else of VFIO."""
    kernel = standard_host()
    kernel.sysfs.remove("kernel/iommu_groups")
    kernel.add_device(PCIDevice("0000:00:1f.0", DeviceConfig(vendor=0x1B36, device=0x0010,
                                                             class_code=0x010802)), None)
    return Env(kernel, FakeHostOS(cmdline="root=/dev/sda1"))


def test_bind_dry_run_without_an_iommu_fails(tmp_path: Path, capsys: Cap) -> None:
    env = _no_iommu_host()
    assert run(env, tmp_path, "bind", "--dry-run", "0000:00:1f.0") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "0000:00:1f.0 has no IOMMU group" in err and "pyvfio doctor" in err
    env.host.cmdline += " vfio.enable_unsafe_noiommu_mode=1"  # no-IOMMU mode: the plan works
    assert run(env, tmp_path, "bind", "--dry-run", "0000:00:1f.0") == EXIT_OK


def test_group_on_a_host_without_groups_says_why(tmp_path: Path, capsys: Cap) -> None:
    env = _no_iommu_host()
    assert run(env, tmp_path, "group", "0") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "no IOMMU group 0: this host has no IOMMU groups" in err and "/sys" not in err


def test_group_that_does_not_exist_names_the_range(env: Env, tmp_path: Path,
                                                   capsys: Cap) -> None:
    assert run(env, tmp_path, "group", "99") == EXIT_FAILED
    assert "no IOMMU group 99: this host has groups 0-" in capsys.readouterr().err


def test_demo_device_is_checked(env: Env, tmp_path: Path, capsys: Cap) -> None:
    assert run(env, tmp_path, "demo", "--device", "0000:00:1e.0") == EXIT_FAILED
    assert "No such PCI device" in capsys.readouterr().err
    assert run(env, tmp_path, "demo", "--device", NIC) == EXIT_FAILED
    assert f"{NIC} is bound to e1000e, not to vfio-pci" in capsys.readouterr().err
    assert run(env, tmp_path, "demo", "--device", "../x") == EXIT_USAGE


def test_persist_dry_run_has_help(capsys: Cap) -> None:
    assert main(["persist", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "--dry-run" in out and "would be removed" in out


def _closed_pipe() -> int:
    r, w = os.pipe()
    os.close(r)
    return w


def test_broken_pipe_on_the_error_path_is_no_traceback() -> None:
    """`pyvfio group 99 --json | head -0`: the reader left before the error document."""
    w = _closed_pipe()
    try:
        proc = subprocess.run([*PYVFIO, "group", "99999", "--json"], stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(w)
    assert proc.returncode == EXIT_FAILED, proc.stderr
    assert proc.stderr == ""  # no traceback, no "Exception ignored"


def test_full_disk_on_stdout_is_one_line() -> None:
    """`pyvfio demo > /dev/full`: ENOSPC is said in one line, exit 1."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*PYVFIO, "demo"], stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=120, check=False)
    assert proc.returncode == EXIT_FAILED
    assert proc.stderr == "pyvfio: error: cannot write the output: No space left on device\n"
