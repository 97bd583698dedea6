"""The VM lane's host side (pyvfio.vm): profiles, drives, guest command, QEMU command line.

Nothing here boots a guest; the lane's guests run in CI (tools/test -> tools/vm/run).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pyvfio.vm import drives, kernels, lane, profiles, pytest_plugin, qemu


def test_all_runs_both_kernel_versions() -> None:
    assert {profiles.PROFILES[n].linux for n in profiles.ALL} == {"6.12", "7.3"}
    assert all(n in profiles.PROFILES for n in profiles.ALL)


def test_every_profile_names_a_known_kernel() -> None:
    for p in profiles.PROFILES.values():
        assert p.kernel == "debian" or p.kernel in kernels.BUILDS, p.name


def test_the_612_cache_key_is_its_fragment_alone() -> None:
    digest = hashlib.sha256(kernels.FRAGMENT.read_bytes()).hexdigest()[:16]
    assert kernels.fragment_hash() == digest
    assert kernels.BUILDS["iommufd73"].fragment_hash() != digest


def test_73_fragment_has_the_issue_options() -> None:
    text = kernels.FRAGMENT_73.read_text()
    for opt in ("SAMPLE_VFIO_MDEV_MTTY", "VFIO_MDEV", "SAMPLES", "BLK_DEV_NVME", "PCI_IOV",
                "PCI_PASID"):
        assert f"CONFIG_{opt}=" in text


@pytest.mark.parametrize(("spec", "size"), [("d0", 64 << 20), ("d0:1G", 1 << 30),
                                            ("nvme-1:512k", 512 << 10), ("x:4096", 4096)])
def test_drive_created_in_the_run_dir(tmp_path: Path, spec: str, size: int) -> None:
    d = drives.parse(spec)
    args = drives.qemu_args([d], tmp_path)
    image = tmp_path / f"drive-{d.id}.img"
    assert image.stat().st_size == size
    assert args == ["-drive", f"if=none,id={d.id},file={image},format=raw"]


def test_drive_user_image(tmp_path: Path) -> None:
    img = tmp_path / "a,b.img"
    img.write_bytes(b"\0" * 512)
    args = drives.qemu_args([drives.parse(f"d1={img}")], tmp_path / "run")
    assert args[1] == f"if=none,id=d1,file={str(img).replace(',', ',,')},format=raw"


@pytest.mark.parametrize("spec", ["", "1abc", "a b", "d0:0", "d0:12x", "d0=/nonexistent.img"])
def test_drive_bad_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="drive"):
        drives.parse(spec)


def test_drive_twice(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        drives.qemu_args([drives.parse("d0"), drives.parse("d0:1M")], tmp_path)


def test_env_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYVFIO_TEST_X", "from host")
    assert lane.parse_env(["A=1", "PYVFIO_TEST_X", "B="]) == ("A=1", "PYVFIO_TEST_X=from host",
                                                             "B=")
    with pytest.raises(ValueError, match="NAME"):
        lane.parse_env(["1A=2"])
    monkeypatch.delenv("PYVFIO_TEST_X")
    with pytest.raises(ValueError, match="not set"):
        lane.parse_env(["PYVFIO_TEST_X"])


def _script(profile: str, kernel: kernels.Kernel, opts: lane.Options) -> str:
    return lane.guest_script(profiles.PROFILES[profile], kernel, Path("/r"), ["-k", "x y"],
                             False, opts, Path("/work/proj"))


def test_guest_script_env_modules_and_version() -> None:
    k = kernels.Kernel("iommufd73", Path("/k/bzImage"), Path("/k/modroot"), "7.3.4")
    text = _script("iommufd-7.3", k, lane.Options(env=("FOO=a b",), modules=("nvme",)))
    assert "export PYVFIO_VM_LINUX=7.3\n" in text
    assert "export FOO='a b'\n" in text
    assert "modprobe -d /k/modroot -S 7.3.4 mtty ||" in text  # the profile's
    assert "modprobe -d /k/modroot -S 7.3.4 nvme ||" in text  # --modules
    assert text.index("modprobe") < text.index("exec ")
    assert "'x y'" in text


def test_guest_script_without_module_tree_needs_builtin() -> None:
    k = kernels.Kernel("iommufd", Path("/k/bzImage"))
    text = _script("iommufd", k, lane.Options(modules=("vfio-pci",)))
    assert "[ -d /sys/module/vfio_pci ] ||" in text
    assert "export PYVFIO_VM_LINUX=6.12\n" in text


def test_bind_word() -> None:
    assert lane.bind_word([]) == ""
    assert lane.bind_word(["0000:00:10.0", "0000:03:00.1"]) == (
        "pyvfio.bind=0000:00:10.0,0000:03:00.1")
    with pytest.raises(ValueError, match="PCI address"):
        lane.bind_word(["00:10.0"])


def test_qemu_command_profile_devices_before_9p_extra_after(tmp_path: Path) -> None:
    p = profiles.PROFILES["nvme"]
    drive_args = drives.qemu_args([drives.parse(d) for d in p.drives], tmp_path)
    cmd = qemu.command(Path("/k"), Path("/i"), "", tmp_path, viommu=p.viommu,
                       profile_devices=p.devices, extra_devices=["e1000e"], drives=drive_args)
    joined = " ".join(cmd)
    assert f"intel-iommu,{profiles.VTD}" in joined
    first_9p = cmd.index("-virtfs")
    assert cmd.index(p.devices[0]) < first_9p < cmd.index("e1000e")
    assert cmd.index(drive_args[1]) < cmd.index(p.devices[0])
    assert "kernel-irqchip=split" in joined


def test_qemu_command_without_viommu(tmp_path: Path) -> None:
    cmd = qemu.command(Path("/k"), Path("/i"), "", tmp_path, viommu=None)
    assert not any("intel-iommu" in a for a in cmd)
    assert cmd[cmd.index("-machine") + 1] == "q35"


def test_guest_script_runs_in_the_work_directory(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """pyvfio vm run: cwd is the user's project, python its .venv (or PYVFIO_VM_PYTHON)."""
    monkeypatch.delenv("PYVFIO_VM_PYTHON", raising=False)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").touch()
    k = kernels.Kernel("iommufd", Path("/k/bzImage"))
    text = lane.guest_script(profiles.PROFILES["iommufd"], k, Path("/r"), [], False,
                             lane.Options(), tmp_path)
    assert f"cd {tmp_path} || exit 125" in text
    assert f"exec {tmp_path}/.venv/bin/python -m pytest" in text
    monkeypatch.setenv("PYVFIO_VM_PYTHON", "/opt/py/bin/python3")
    assert lane.guest_python(tmp_path) == "/opt/py/bin/python3"


@pytest.mark.parametrize(("args", "kept"), [
    (["--pyvfio-kernel=vm:iommufd", "-k", "x"], ["-k", "x"]),
    (["--pyvfio-kernel", "vm:all", "tests", "--pyvfio-vm", "--drive=d0"], ["tests"]),
    (["--pyvfio-vm=--env=A=1", "-q"], ["-q"]),
])
def test_pytest_option_is_not_passed_to_the_guest(args: list[str], kept: list[str]) -> None:
    assert pytest_plugin.strip_options(args) == kept


def test_vm_cli_lists_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    from pyvfio.vm import cli  # noqa: PLC0415

    assert cli.main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in profiles.PROFILES)
    assert cli.main(["frobnicate"]) == 2


def test_check_config_tolerates_symbols_the_kernel_dropped(tmp_path: Path) -> None:
    """The common fragment serves 6.12 and 7.3; 7.3 has no VFIO_PCI_MMAP any more."""
    frag = tmp_path / "f.fragment"
    frag.write_text("CONFIG_A=y\nCONFIG_GONE=y\n# CONFIG_C is not set\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src/Kconfig").write_text("config A\n\tbool\nconfig GONE_NOT\n\tbool\n")
    config = tmp_path / ".config"
    config.write_text("CONFIG_A=y\n")
    kernels._check_config(config, (frag,), tmp_path / "src")  # GONE: a note only
    config.write_text("# CONFIG_A is not set\n")
    with pytest.raises(kernels.KernelError, match="CONFIG_A=y"):
        kernels._check_config(config, (frag,), tmp_path / "src")
