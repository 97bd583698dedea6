"""In-use checks: mounts, swap, holders, signatures, interfaces, routes, boot VGA."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pyvfio.host import inuse
from pyvfio.host.hostos import LinuxHostOS
from tests.unit.hostfix import NIC, NVME, NVME2, SPARE, VGA, Env, hold, make_env


@pytest.fixture
def env() -> Env:
    return make_env()


def _kinds(uses: list[inuse.Use]) -> set[tuple[str, str]]:
    return {(u.kind, u.name) for u in uses}


def test_mounted_and_swap(env: Env) -> None:
    uses = inuse.check(env.kernel, env.host, NVME)
    assert ("mount", "nvme0n1p1") in _kinds(uses)
    assert ("swap", "nvme0n1p2") in _kinds(uses)
    assert any("mounted on /" in u.detail for u in uses)


def test_holder(env: Env) -> None:
    hold(env.kernel, "nvme2n1", "dm-0")
    assert _kinds(inuse.check(env.kernel, env.host, SPARE)) == {("holder", "nvme2n1")}


def test_filesystem_signature(env: Env) -> None:
    [use] = inuse.check(env.kernel, env.host, NVME2)
    assert (use.kind, use.name, use.detail) == ("signature", "nvme1n1", "holds data: ext2/3/4 "
                                                "filesystem")


def test_unreadable_disk_is_reported(env: Env) -> None:
    del env.host.heads["nvme2n1"]
    [use] = inuse.check(env.kernel, env.host, SPARE)
    assert use.kind == "unchecked"
    assert errno.errorcode[errno.ENOENT] in use.detail


def test_blank_disk_is_free(env: Env) -> None:
    assert inuse.check(env.kernel, env.host, SPARE) == []


def test_network_interface(env: Env) -> None:
    kinds = _kinds(inuse.check(env.kernel, env.host, NIC))
    assert kinds == {("interface", "eth0"), ("address", "eth0"), ("route", "eth0")}
    detail = [u.detail for u in inuse.check(env.kernel, env.host, NIC)]
    assert "carries route 10.0.2.0/24" in detail
    assert "has address 10.0.2.15" in detail


def test_link_local_route_ignored(env: Env) -> None:
    env.host.routes = [("eth0", "169.254.0.0/16")]
    env.host.addresses["eth0"] = []
    assert _kinds(inuse.check(env.kernel, env.host, NIC)) == {("interface", "eth0")}


def test_boot_vga(env: Env) -> None:
    assert _kinds(inuse.check(env.kernel, env.host, VGA)) == {("vga", VGA), ("console", "fb0")}


def test_signatures() -> None:
    assert inuse.signature(b"\0" * 0x200 + b"EFI PART") == "GPT partition table"
    assert inuse.signature(b"XFSB") == "xfs filesystem"
    assert inuse.signature(b"\0" * 4096) is None


def test_linux_hostos_reads_proc_under_its_root(env: Env, tmp_path: Path) -> None:
    from pyvfio.fake.hostenv import add_netdev  # noqa: PLC0415

    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "self/mountinfo").write_text("")
    (proc / "swaps").write_text("Filename Type Size Used Priority\n")
    (proc / "net/route").write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\t"
                                    "Mask\nqa9\t0000FEA9\t00000000\t0001\t0\t0\t0\t0000FFFF\n")
    (proc / "net/ipv6_route").write_text(
        "fd000000000000000000000000000000 40 " + "00000000000000000000000000000000 00 " + "0" * 32
        + " 00000100 00000001 00000000 00000001 qa9\n"
        "fe800000000000000000000000000000 40 " + "00000000000000000000000000000000 00 " + "0" * 32
        + " 00000100 00000001 00000000 00000001 qa9\n")
    (proc / "net/if_inet6").write_text("fd000000000000000000000000000002 02 40 00 80 qa9\n"
                                       "fe800000000000000000000000000002 02 40 20 80 qa9\n")
    add_netdev(env.kernel, env.host, SPARE, "qa9", up=False)
    uses = inuse.net_uses(env.kernel, LinuxHostOS(str(tmp_path)), SPARE)
    assert [str(u) for u in uses] == ["address@qa9: has address fd00::2",
                                      "route@qa9: carries route fd00::/64"]
    with pytest.raises(ValueError):
        LinuxHostOS(str(tmp_path)).read_proc("../etc/shadow")
