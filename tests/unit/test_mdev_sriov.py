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
    assert st.vfs == ("0000:80:00.0", "0000:80:00.1")
    assert env.kernel.sysfs_readlink("bus/pci/devices/0000:80:00.1/physfn").endswith(PF)
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
