"""The generator's contract: a pure function of (mode, seed, devices, kernel version); the uAPI
newer than 6.12 only for a kernel that has it; sequences generated ahead are the same."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path
from typing import Any

import pytest

from pyvfio import uapi
from tests.differential import gen_newer, opsfile
from tests.differential.fakehost import fake_for
from tests.differential.gen import Gen, sequence
from tests.differential.harness import profile_modes, run_sequences, stuck_groups
from tests.differential.recording import fingerprint
from tests.differential.runner import Env, Runner
from tests.differential.timing import TimedKernel

BDFS = ["0000:00:01.0", "0000:02:01.0", "0000:02:02.0"]
NEWER_IOCTLS = {uapi.IOMMU_IOAS_MAP_FILE, uapi.IOMMU_VIOMMU_ALLOC, uapi.IOMMU_VDEVICE_ALLOC,
                uapi.IOMMU_IOAS_CHANGE_PROCESS, uapi.IOMMU_VEVENTQ_ALLOC,
                uapi.IOMMU_HW_QUEUE_ALLOC}


def _header(release: str) -> dict[str, Any]:
    """A recording header of the lane's layout (what fake_for needs)."""
    return {"kernel": release, "iommufd": True, "devices": [
        {"bdf": BDFS[0], "group": 1, "cdev": "vfio0"},
        {"bdf": BDFS[1], "group": 6, "cdev": "vfio1"},
        {"bdf": BDFS[2], "group": 6, "cdev": "vfio2"}]}


def _ioctls(ops: list[tuple]) -> set[int]:
    return {int(op[2]) for op in ops if op[0] == "ioctl"}


@pytest.mark.parametrize("mode", ["type1v2", "type1", "iommufd", "compat", "noiommu"])
def test_pure(mode: str) -> None:
    for seed in range(20):
        assert fingerprint(sequence(mode, seed, BDFS, "7.3")) == fingerprint(
            sequence(mode, seed, BDFS, "7.3"))


@pytest.mark.parametrize("mode", ["type1v2", "type1", "iommufd", "compat", "noiommu"])
def test_no_newer_family_on_6_12(mode: str) -> None:
    assert gen_newer.families(Gen(mode, 0, BDFS, "6.12")) == []
    assert gen_newer.families(Gen(mode, 0, BDFS, "6.12.117+deb13-amd64")) == []


def test_7_3_draws_every_newer_family() -> None:
    """Over a few hundred iommufd sequences on 7.3, each 6.13-6.19 ioctl, the memfd, the dma-buf
    feature and the PASID attach appear; the 6.12 sequences of the same seeds differ."""
    seen: set[int] = set()
    kinds: set[str] = set()
    features: set[int] = set()
    pasid = False
    differ = 0
    for seed in range(400):
        ops = sequence("iommufd", seed, BDFS, "7.3")
        differ += fingerprint(ops) != fingerprint(sequence("iommufd", seed, BDFS, "6.12"))
        seen |= _ioctls(ops)
        kinds |= {op[0] for op in ops}
        for op in ops:
            if op[0] == "ioctl" and op[2] == uapi.VFIO_DEVICE_FEATURE:
                features.add(int.from_bytes(op[3].data[4:6], "little"))
            if op[0] == "ioctl" and op[2] == uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT:
                pasid |= len(op[3].data) == 16 and op[3].data[4] & 1 == 1
    assert seen >= NEWER_IOCTLS
    assert {"memfd", "mmap", "read"} <= kinds
    assert 11 in features  # VFIO_DEVICE_FEATURE_DMA_BUF
    assert pasid
    assert differ > 300


def test_profile_modes() -> None:
    assert profile_modes("iommufd-7.3", True) == ("type1v2", "type1", "iommufd", "compat")
    assert profile_modes("noiommu-7.3", True) == ("noiommu",)
    assert profile_modes("debian", False) == ("type1v2", "type1")
    assert profile_modes("sm-7.3", True) == ("type1v2", "type1", "iommufd", "compat")


def test_generated_ahead_is_generated(tmp_path: Path) -> None:
    opsfile.write(tmp_path, "compat", "7.3", BDFS, 300)
    got = list(opsfile.read(tmp_path, "compat", "7.3", BDFS) or ())
    assert [s for s, _, _ in got] == list(range(300))
    for seed, fp, ops in got[::37]:
        assert fp == fingerprint(ops) == fingerprint(sequence("compat", seed, BDFS, "7.3"))


def test_generated_ahead_for_another_kernel_is_not_used(tmp_path: Path) -> None:
    opsfile.write(tmp_path, "compat", "7.3", BDFS, 3)
    assert opsfile.read(tmp_path, "compat", "6.12", BDFS) is None
    assert opsfile.read(tmp_path, "compat", "7.3", BDFS[:2]) is None
    assert opsfile.read(tmp_path, "iommufd", "7.3", BDFS) is None


@pytest.mark.parametrize(("release", "linux"), [("7.3.4", "7.3"), ("6.12.117", "6.12"),
                                                ("6.12.117+deb13-amd64", "6.12")])
def test_replay_fake_is_the_recorded_version(release: str, linux: str) -> None:
    """A recording replays on FakeKernel(linux=<the guest's major.minor>)."""
    kernel, _ = fake_for(_header(release))
    assert str(kernel.linux) == linux


def test_timed_kernel_adds_up_calls_by_kind() -> None:
    """tools/diff-record --timing's kernel wrapper: every call counted under its kind."""
    kernel, env = fake_for(_header("6.12"))
    timed = TimedKernel(kernel)
    runner = Runner(timed, Env(env.devices))
    try:
        for _ in run_sequences(runner, "type1v2", range(5), BDFS, "6.12"):
            pass
    finally:
        runner.close()
    assert timed.calls["open container"] >= 5
    assert timed.calls["ioctl VFIO_GROUP_SET_CONTAINER"] >= 1
    assert "close group" in timed.calls
    assert "open container" in timed.report(1.0)


def test_stuck_groups_none_when_all_closed() -> None:
    """The recorder's check after each mode: every edu group opens once the run closed all."""
    kernel, env = fake_for(_header("6.12"))
    runner = Runner(kernel, Env(env.devices))
    try:
        for _ in run_sequences(runner, "compat", range(20), BDFS, "6.12"):
            pass
    finally:
        runner.close()
    assert stuck_groups(kernel, env) == []


def test_stuck_groups_names_a_busy_group() -> None:
    """A group whose device is open through its cdev answers EBUSY: reported, not raised."""
    kernel, env = fake_for(_header("6.12"))
    iommufd = kernel.open("/dev/iommu")
    cdev = kernel.open("/dev/vfio/devices/vfio0")
    bind = ctypes.create_string_buffer(struct.pack("<IIiI", 16, 0, iommufd, 0))
    try:
        kernel.ioctl(cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, ctypes.addressof(bind))
        assert stuck_groups(kernel, env) == ["/dev/vfio/1: Device or resource busy"]
    finally:
        kernel.close(cdev)
        kernel.close(iommufd)
