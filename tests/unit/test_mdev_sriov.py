"""mdev parents/types/create/remove and SR-IOV VF counts on the fake host."""

from __future__ import annotations

import errno

import pytest

from pyvfio.host import mdev, sriov
from tests.helpers import expect_errno
from tests.unit.hostfix import PF, Env, make_env

U1 = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"


@pytest.fixture
def env() -> Env:
    return make_env()


def test_mdev_lifecycle(env: Env) -> None:
    assert mdev.parents(env.kernel) == [PF]
    [t] = mdev.types(env.kernel)
    assert (t.parent, t.type, t.available, t.device_api) == (PF, "ixgbe-mdev1", 2, "vfio-pci")
    assert mdev.create(env.kernel, PF, "ixgbe-mdev1", U1) == U1
    expect_errno(errno.EEXIST, mdev.create, env.kernel, PF, "ixgbe-mdev1", U1)
    other = mdev.create(env.kernel, PF, "ixgbe-mdev1")
    expect_errno(errno.EUSERS, mdev.create, env.kernel, PF, "ixgbe-mdev1")
    assert {d["uuid"] for d in mdev.devices(env.kernel)} == {U1, other}
    assert mdev.devices(env.kernel)[0]["type"] == "ixgbe-mdev1"
    mdev.remove(env.kernel, U1)
    mdev.remove(env.kernel, other)
    assert mdev.types(env.kernel)[0].available == 2
    expect_errno(errno.ENOENT, mdev.remove, env.kernel, U1)
    with pytest.raises(ValueError):
        mdev.create(env.kernel, PF, "../../x", U1)


def test_sriov(env: Env) -> None:
    st = sriov.state(env.kernel, PF)
    assert (st.totalvfs, st.numvfs, st.vfs) == (4, 0, ())
    st = sriov.set_numvfs(env.kernel, PF, 2)
    assert st.vfs == ("0000:00:19.0", "0000:00:19.2")  # routing ID 00:09.0 + 0x80, stride 2
    assert env.kernel.sysfs_readlink("bus/pci/devices/0000:00:19.2/physfn").endswith(PF)
    st = sriov.set_numvfs(env.kernel, PF, 3)  # through 0: the kernel says EBUSY otherwise
    assert st.numvfs == 3
    with pytest.raises(ValueError, match="above sriov_totalvfs"):
        sriov.set_numvfs(env.kernel, PF, 5)
    assert sriov.set_numvfs(env.kernel, PF, 0).vfs == ()
    with pytest.raises(ValueError, match="not an SR-IOV"):
        sriov.state(env.kernel, "0000:00:01.0")


def test_pf_with_vfs_is_in_use(env: Env) -> None:
    from pyvfio.host import inuse  # noqa: PLC0415

    sriov.set_numvfs(env.kernel, PF, 1)
    [use] = inuse.check(env.kernel, env.host, PF)
    assert (use.kind, use.detail) == ("sriov", f"1 VFs enabled (pyvfio sriov clear {PF})")


def test_sriov_clear_refuses_a_vf_held_by_a_vfio_user(env: Env) -> None:
    """Removing a VF a process holds would block in the kernel: refused, --force overrides."""
    from pyvfio.errors import InUseError  # noqa: PLC0415

    st = sriov.set_numvfs(env.kernel, PF, 2)
    vf = st.vfs[1]
    env.kernel.sysfs_write(f"bus/pci/devices/{vf}/driver_override", "vfio-pci")
    env.kernel.sysfs_write("bus/pci/drivers_probe", vf)
    group = env.kernel.sysfs_readlink(f"bus/pci/devices/{vf}/iommu_group").rsplit("/", 1)[1]
    env.host.holders[f"/dev/vfio/{group}"] = ["qemu (pid 42)"]
    with pytest.raises(InUseError) as info:
        sriov.set_numvfs(env.kernel, PF, 0, env.host)
    assert info.value.bdf == vf and "qemu (pid 42)" in str(info.value)
    assert sriov.state(env.kernel, PF).numvfs == 2  # nothing was written
    with pytest.raises(InUseError):
        sriov.set_numvfs(env.kernel, PF, 1, env.host)  # 2 -> 1 goes through 0
    assert sriov.set_numvfs(env.kernel, PF, 0, env.host, force=True).numvfs == 0


def test_sriov_errno_names_the_attribute(env: Env) -> None:
    """The kernel's errno comes back with the sriov_numvfs path, so the CLI can hint at it."""
    env.kernel.bus.unbind(PF)
    err = expect_errno(errno.ENOENT, sriov.set_numvfs, env.kernel, PF, 1)
    assert err.filename == f"/sys/bus/pci/devices/{PF}/sriov_numvfs"


@pytest.mark.parametrize(("err", "words"), [(errno.ENOENT, "enable_sriov=1"),
                                            (errno.EBUSY, "sriov clear"),
                                            (errno.EPERM, "assigned to guests")])
def test_sriov_hints_per_errno(err: int, words: str) -> None:
    from pyvfio import cli  # noqa: PLC0415

    exc = OSError(err, "x", f"/sys/bus/pci/devices/{PF}/sriov_numvfs")
    assert words in (cli._hint(exc) or "")


@pytest.mark.parametrize("extra", [["--vf-token", "not-a-uuid"], ["--vf-token", "--driver", "nvme"],
                                   ["--vf-token", "--group"]])
def test_bind_vf_token_refused_before_binding(env: Env, extra: list[str]) -> None:
    """A bad --vf-token request is a usage error and binds nothing."""
    from pyvfio import cli  # noqa: PLC0415

    before = env.kernel.sysfs_readlink(f"bus/pci/devices/{PF}/driver")
    assert cli.main(["bind", PF, *extra], kernel=env.kernel, host=env.host) == 2
    assert env.kernel.sysfs_readlink(f"bus/pci/devices/{PF}/driver") == before


def test_bind_vf_token_not_a_pf(env: Env) -> None:
    from pyvfio import cli  # noqa: PLC0415

    assert cli.main(["bind", "0000:00:01.0", "--vf-token"], kernel=env.kernel, host=env.host) == 2


def test_bind_vf_token_dry_run_names_the_token(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from pyvfio import cli  # noqa: PLC0415

    token = "8e3c35d0-9f15-4bb4-9d3f-1ab1a1b2c3d4"
    assert cli.main(["bind", PF, "--vf-token", token, "--dry-run", "--force"],
                    kernel=env.kernel, host=env.host) == 0
    assert f"would set VF token {token} on {PF}" in capsys.readouterr().out
