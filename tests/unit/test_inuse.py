"""In-use checks: mounts, swap, holders, signatures, interfaces, routes, boot VGA."""

from __future__ import annotations

import errno

import pytest

from pyvfio import inuse
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
