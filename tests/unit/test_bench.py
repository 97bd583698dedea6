"""``pyvfio bench`` and its parts: each part runs and reports; the numbers are never asserted.

The device parts run here on the fake kernel (the real one: tools/bench/test_bench_vm.py in the
VM lane); the ioctl-cost device part needs real fds and is only checked to be left out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvfio import cli
from pyvfio.bench import cloop, command, device, ioctls, scaling
from pyvfio.fake import FakeKernel, standard_host

TOP = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeKernel]:
    k = standard_host(iommufd=True)
    yield k
    k.assert_clean()


def test_fake_scaling_reports_every_op() -> None:
    results = scaling.run([200, 400])
    growth = scaling.growth(results)
    assert set(growth) == {"type1 DmaMap", "IOAS IOPageTable"}
    assert all(r["bytes/mapping"] > 0 for r in results)


def test_ioctl_variants_issue_the_same_request() -> None:
    ns = ioctls.fionread(50)
    assert ns["object API"] is None
    assert all(v > 0 for k, v in ns.items() if k != "object API")


def test_c_header_declares_every_struct_with_static_asserts() -> None:
    text = cloop.header()
    for name in cloop.STRUCTS:
        assert f"struct {name} {{" in text
        assert f"_Static_assert(sizeof(struct {name}) ==" in text
    assert "struct vfio_iommu_type1_dma_unmap {" in text and "uint8_t data[];" in text


def test_c_loop_builds_and_runs() -> None:
    binary = cloop.compile_c()
    if binary is None:
        pytest.skip("no C compiler on this host")
    assert (cloop.run_c(binary, "fionread", 100, repeat=1) or 0) > 0
    with pytest.raises(RuntimeError, match="C loop"):  # exit 2: unknown mode
        cloop.run_c(binary, "bogus", 10, repeat=1)


def test_run_c_without_compiler_is_none() -> None:
    assert cloop.run_c(None, "fionread", 10) is None


def test_device_parts_on_the_fake_edu(fake: FakeKernel) -> None:
    parts = device.parts(fake, str(fake.labels["edu"]), 2000)
    assert list(parts) == ["device_map_unmap", "device_registers", "fake_vs_real"]
    text, data = parts["device_map_unmap"]()
    assert set(data) == {"legacy 4 KiB", "legacy 2 MiB", "iommufd 4 KiB", "iommufd 2 MiB"}
    assert all(v["C"] is None and v["object API"] > 0 for v in data.values())
    assert "2. map+unmap" in text
    text, data = parts["device_registers"]()
    assert {"read32", "write64", "Registers.read"} <= set(data)
    text, data = parts["fake_vs_real"]()
    assert set(data["real"]) == set(data["fake"])


def test_register_parts_only_on_edu(fake: FakeKernel) -> None:
    nic = str(fake.labels["nic"])
    assert not device.is_edu(fake, nic)
    assert list(device.parts(fake, nic, 2000)) == ["device_map_unmap"]


def test_legacy_only_host_maps_in_legacy_mode() -> None:
    k = standard_host()
    _, data = device.map_unmap_vs_c(k, str(k.labels["edu"]), 2000, None)
    assert set(data) == {"legacy 4 KiB", "legacy 2 MiB"}
    k.assert_clean()


def test_run_validates_before_measuring() -> None:
    with pytest.raises(ValueError, match="number must be at least 100"):
        command.run(number=5)
    with pytest.raises(ValueError, match="max_mappings must be at least 1000"):
        command.run(max_mappings=10)
    with pytest.raises(ValueError, match="'device_ioctl' needs --device"):
        command.run(only=["device_ioctl"])


def test_cli_bench_writes_json_and_prints_tables(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    code = cli.main(["bench", "--only", "ioctl", "--only", "fake_dma", "--number", "1000",
                     "-o", str(out)])
    assert code == 0
    std = capsys.readouterr()
    assert "1. one ioctl" in std.out and "fake edu DMA" in std.out and f"JSON: {out}" in std.out
    assert "[1/2] ioctl" in std.err and "[2/2] fake_dma" in std.err
    doc = json.loads(out.read_text())
    assert doc["schema"] == "pyvfio.bench/1" and doc["ok"] is True
    assert doc["parts"] == ["ioctl", "fake_dma"] and doc["device"] is None
    assert doc["ioctl"]["FIONREAD"]["raw fcntl"] > 0 and doc["fake_dma"]["MB/s"] > 0


def test_registers_part_writes_the_bound_register_ratio(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert cli.main(["bench", "--json", "--only", "registers", "--number", "1000"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["register_vs_cffi_pointer"] == doc["registers"]["bound vs pointer"]["ratio read32"]
    assert doc["register_vs_cffi_pointer"] > 0


def test_cli_bench_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--json", "--only", "fake_scaling", "--max-mappings", "1000"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "pyvfio.bench/1" and doc["ok"] is True
    assert {r["n"] for r in doc["fake_scaling"]["results"]} == {1000}


def test_cli_bench_device_on_a_fake_kernel(fake: FakeKernel,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "--json", "--device", str(fake.labels["edu"]), "--number", "1000",
                     "--only", "device_map_unmap"], kernel=fake)
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["where"] == "device" and "legacy 4 KiB" in doc["device_map_unmap"]


@pytest.mark.parametrize("argv", [["--number", "5"], ["--only", "device_ioctl"],
                                  ["--only", "nonsense"], ["--max-mappings", "10"]])
def test_cli_bench_bad_arguments_are_usage_errors(argv: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", *argv]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_bench_missing_device_fails_cleanly(fake: FakeKernel,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--device", "0000:09:00.0", "--only", "device_map_unmap"],
                    kernel=fake) == 1
    assert "pyvfio: error" in capsys.readouterr().err


def test_tools_bench_run_wrapper_keeps_json_file(tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    res = subprocess.run([sys.executable, str(TOP / "tools" / "bench" / "run.py"), "--only",
                          "registers", "--number", "1000", "--json", str(out)],
                         capture_output=True, text=True, check=False, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "3. register access" in res.stdout
    assert json.loads(out.read_text())["registers"]["fake edu"]["read32"] > 0


def test_dma_space_part_prints_both_modes_and_the_targets() -> None:
    from pyvfio.bench import space

    text, data = space.run(100, population=1000)
    assert "python us <= 3" in text and "scaling <= 1.5" in text
    for mode in ("legacy", "iommufd"):
        row = data[mode]
        assert row["_ioctl.call"] > 0 and row["object API, given IOVA"] > row["_ioctl.call"]
        assert row["scaling"] is not None and row["scaling"] > 0
