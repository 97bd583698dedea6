"""Safe bind/unbind on the fake host: in-use refusal, dry run, rollback, groups, no stale state."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from pyvfio.errors import BindError, InUseError
from pyvfio.fake import FakeKernel
from pyvfio.host import bind, discover
from tests.unit.hostfix import NIC, NVME, SPARE, Env, make_env

BRIDGE = "0000:01:00.0"


@pytest.fixture
def env() -> Env:
    return make_env()


class Recording:
    """Delegates to a FakeKernel, logs sysfs writes, and fails or interrupts a chosen one."""

    def __init__(self, kernel: FakeKernel, fail: str | None = None,
                 exc: BaseException | None = None) -> None:
        self.kernel, self.fail, self.exc = kernel, fail, exc
        self.writes: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kernel, name)

    def sysfs_write(self, relpath: str, value: str) -> None:
        self.writes.append((relpath, value))
        if self.fail and relpath.endswith(self.fail):
            self.fail = None
            raise self.exc or OSError(errno.EIO, "Input/output error", relpath)
        self.kernel.sysfs_write(relpath, value)


def _override(kernel: Any, bdf: str) -> str:
    return str(kernel.sysfs_read(f"bus/pci/devices/{bdf}/driver_override"))


def test_bind_refuses_interface_in_use(env: Env, tmp_path: Path) -> None:
    with pytest.raises(InUseError) as info:
        bind.bind(env.kernel, env.host, NIC, state_dir=str(tmp_path))
    assert info.value.bdf == NIC
    assert "route@eth0" in str(info.value)
    assert env.kernel.leaks() == []


def test_bind_refuses_mounted_disk(env: Env, tmp_path: Path) -> None:
    with pytest.raises(InUseError, match=r"mount@nvme0n1p1: mounted on /"):
        bind.bind(env.kernel, env.host, NVME, state_dir=str(tmp_path))


def test_bind_then_unbind_restores_and_leaves_nothing(env: Env, tmp_path: Path) -> None:
    res = bind.bind(env.kernel, env.host, SPARE, state_dir=str(tmp_path), timeout=0.5)
    assert discover.driver_of(env.kernel, SPARE) == "vfio-pci"
    assert _override(env.kernel, SPARE) == "(null)"  # cleared: no stale override
    assert res.previous == {SPARE: "nvme"}
    assert res.nodes == {SPARE: ["/dev/vfio/12"]}
    assert res.report is not None and res.report.viable
    assert (tmp_path / SPARE).read_text() == "nvme\n"
    back = bind.unbind(env.kernel, env.host, SPARE, state_dir=str(tmp_path))
    assert back.steps[-2] == bind.Step("expect", SPARE, "nvme")
    assert discover.driver_of(env.kernel, SPARE) == "nvme"
    assert not (tmp_path / SPARE).exists()
    env.kernel.assert_clean()


def test_force_binds_in_use_device(env: Env, tmp_path: Path) -> None:
    bind.bind(env.kernel, env.host, NIC, force=True, state_dir=str(tmp_path), timeout=0.1)
    assert discover.driver_of(env.kernel, NIC) == "vfio-pci"


def test_dry_run_writes_nothing(env: Env, tmp_path: Path) -> None:
    rec = Recording(env.kernel)
    res = bind.bind(rec, env.host, SPARE, dry_run=True, state_dir=str(tmp_path))
    assert rec.writes == []
    assert [s.describe() for s in res.steps] == [
        f"write vfio-pci > /sys/bus/pci/devices/{SPARE}/driver_override",
        f"write {SPARE} > /sys/bus/pci/drivers/nvme/unbind",
        f"write {SPARE} > /sys/bus/pci/drivers_probe",
        f"check {SPARE} is bound to vfio-pci",
        f"write (clear) > /sys/bus/pci/devices/{SPARE}/driver_override",
    ]
    assert not list(tmp_path.iterdir())


def test_never_new_id(env: Env, tmp_path: Path) -> None:
    rec = Recording(env.kernel)
    bind.bind(rec, env.host, SPARE, state_dir=str(tmp_path), timeout=0.1)
    bind.unbind(rec, env.host, SPARE, state_dir=str(tmp_path))
    assert not [w for w in rec.writes if w[0].endswith(("new_id", "remove_id"))]


def test_failed_probe_rolls_back(env: Env, tmp_path: Path) -> None:
    rec = Recording(env.kernel, fail="drivers_probe")
    with pytest.raises(BindError) as info:
        bind.bind(rec, env.host, SPARE, state_dir=str(tmp_path))
    assert info.value.rolled_back
    assert "drivers_probe failed" in str(info.value)
    assert discover.driver_of(env.kernel, SPARE) == "nvme"
    env.kernel.assert_clean()


def test_interrupted_bind_rolls_back(env: Env, tmp_path: Path) -> None:
    rec = Recording(env.kernel, fail="drivers_probe", exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        bind.bind(rec, env.host, SPARE, state_dir=str(tmp_path))
    env.kernel.assert_clean()


def test_kernel_refusal_rolls_back(env: Env, tmp_path: Path) -> None:
    # vfio_pci_probe refuses a bridge (header type 1): EINVAL from drivers_probe
    with pytest.raises(BindError, match="Invalid argument") as info:
        bind.bind(env.kernel, env.host, BRIDGE, state_dir=str(tmp_path))
    assert info.value.rolled_back
    assert isinstance(info.value.__cause__, OSError)
    env.kernel.assert_clean()


def test_modprobe_failure_changes_nothing(env: Env, tmp_path: Path) -> None:
    env.host.modprobe_errno = errno.ENOENT
    with pytest.raises(BindError, match="modprobe vfio_foo"):
        bind.bind(env.kernel, env.host, SPARE, driver="vfio-foo", state_dir=str(tmp_path))
    assert env.host.modprobe_log == ["vfio_foo"]
    env.kernel.assert_clean()


def test_whole_group(env: Env, tmp_path: Path) -> None:
    edu, nic = env.kernel.labels["nonviable_edu"], env.kernel.labels["nonviable_nic"]
    res = bind.bind(env.kernel, env.host, edu, whole_group=True, state_dir=str(tmp_path),
                    timeout=0.1)
    assert res.devices == [edu, nic]
    assert res.report is not None and res.report.viable
    bind.unbind(env.kernel, env.host, edu, whole_group=True, state_dir=str(tmp_path))
    assert discover.driver_of(env.kernel, nic) == "e1000e"
    assert discover.driver_of(env.kernel, edu) is None


def test_already_bound_is_a_no_op(env: Env, tmp_path: Path) -> None:
    res = bind.bind(env.kernel, env.host, "0000:00:01.0", state_dir=str(tmp_path), timeout=0.1)
    assert res.steps == []


def test_unknown_device_and_bad_names(env: Env) -> None:
    with pytest.raises(FileNotFoundError):
        bind.bind(env.kernel, env.host, "0000:42:00.0")
    with pytest.raises(ValueError, match="driver"):
        bind.bind(env.kernel, env.host, SPARE, driver="../vfio-pci")


def test_wait_nodes_times_out(env: Env) -> None:
    nodes, missing = bind.wait_nodes(env.kernel, [SPARE], 0.05)
    assert nodes == {SPARE: []}
    assert missing == ["/dev/vfio/12"]


def test_unbind_refuses_while_a_vfio_user_holds_the_group(env: Env, tmp_path: Path) -> None:
    env.host.holders["/dev/vfio/1"] = ["4242 (qemu-system-x86)"]
    with pytest.raises(InUseError, match=r"process@/dev/vfio/1: open by 4242 \(qemu-system-x86\)"):
        bind.unbind(env.kernel, env.host, "0000:00:01.0", state_dir=str(tmp_path))
    env.kernel.assert_clean()
    res = bind.unbind(env.kernel, env.host, "0000:00:01.0", force=True, dry_run=True,
                      state_dir=str(tmp_path))
    assert res.steps


def test_unbind_leaves_a_device_on_its_host_driver_alone(env: Env, tmp_path: Path) -> None:
    """The root disk on nvme: nothing of VFIO is there, so nothing is unbound (issue 15 #11)."""
    res = bind.unbind(env.kernel, env.host, NVME, state_dir=str(tmp_path))
    assert (res.devices, res.steps, res.unchanged) == ([], [], {NVME: "nvme"})
    env.kernel.assert_clean()
