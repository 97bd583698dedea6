"""Persistent bindings: driverctl-compatible files, udev rules, permissions; list and remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyvfio.host import persist
from tests.unit.hostfix import SPARE, Env, make_env


@pytest.fixture
def env() -> Env:
    return make_env()


def test_driverctl_file_when_driverctl_is_installed(tmp_path: Path) -> None:
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/driverctl").write_text("#!/bin/bash\n")
    ov = persist.save("0000:01:00.0", "vfio-pci", str(tmp_path))
    assert ov.mechanism == "driverctl"
    # exactly what `driverctl set-override 0000:01:00.0 vfio-pci` saves
    assert (tmp_path / "etc/driverctl.d/pci-0000:01:00.0").read_text() == "vfio-pci\n"
    assert persist.overrides(str(tmp_path)) == [ov]
    assert persist.remove("0000:01:00.0", str(tmp_path)) == [ov]
    assert persist.overrides(str(tmp_path)) == []


def test_udev_rule_otherwise(tmp_path: Path) -> None:
    ov = persist.save("0000:01:00.0", "vfio-pci", str(tmp_path))
    assert ov.mechanism == "udev"
    text = Path(ov.path).read_text()
    assert ov.path.endswith("etc/udev/rules.d/70-pyvfio-0000-01-00.0.rules")
    assert ('ACTION=="add", SUBSYSTEM=="pci", KERNEL=="0000:01:00.0", '
            'ATTR{driver_override}="vfio-pci"') in text
    [listed] = persist.overrides(str(tmp_path))
    assert (listed.bdf, listed.driver) == ("0000:01:00.0", "vfio-pci")


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    persist.save("0000:01:00.0", "vfio-pci", str(tmp_path), dry_run=True)
    assert not list(tmp_path.iterdir())


def test_bad_names_never_reach_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        persist.save("../../etc/passwd", "vfio-pci", str(tmp_path))
    with pytest.raises(ValueError):
        persist.save("0000:01:00.0", 'vfio-pci", RUN+="/bin/sh', str(tmp_path))
    with pytest.raises(ValueError):
        persist.permission_rule('x", RUN+="y', "0000:01:00.0", 3)


def test_permissions(env: Env, tmp_path: Path) -> None:
    nodes = persist.grant(env.kernel, env.host, "0000:00:01.0", "alice")
    assert nodes == ["/dev/vfio/1"]
    assert env.host.owners == {"/dev/vfio/1": (1000, 1000, 0o660)}
    with pytest.raises(KeyError):
        persist.grant(env.kernel, env.host, "0000:00:01.0", "mallory")
    path = persist.save_permissions("alice", "0000:00:01.0", 1, str(tmp_path))
    text = Path(path).read_text()
    assert 'SUBSYSTEM=="vfio", KERNEL=="1", OWNER="alice", MODE="0660"' in text
    assert 'SUBSYSTEM=="vfio-dev", KERNELS=="0000:00:01.0"' in text
    assert persist.grant(env.kernel, env.host, SPARE, "alice") == []  # not on vfio: no node
