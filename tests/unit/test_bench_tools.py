"""tools/bench runs (a smoke test: the numbers are never asserted, only that each part works)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import fake_scaling  # noqa: E402
import ioctls  # noqa: E402


def test_fake_scaling_reports_every_op() -> None:
    results = fake_scaling.run([200, 400])
    growth = fake_scaling.growth(results)
    assert set(growth) == {"type1 DmaMap", "IOAS IOPageTable"}
    assert all(r["bytes/mapping"] > 0 for r in results)


def test_ioctl_variants_issue_the_same_request() -> None:
    ns = ioctls.fionread(50)
    assert all(v is None or v > 0 for v in ns.values())


def test_c_loop_builds_and_runs() -> None:
    binary = common.compile_c()
    if binary is None:
        pytest.skip("no C compiler on this host")
    assert (common.run_c(binary, "fionread", 100, repeat=1) or 0) > 0


def test_run_quick_prints_tables_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import run  # noqa: PLC0415

    part4 = run.part4
    monkeypatch.setattr(run, "part4", lambda sizes: part4([100, 200]))
    assert run.main(["--quick", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "1. one ioctl" in out and "4. fake IOVA structures" in out
    assert '"schema": "pyvfio.bench/1"' in (tmp_path / "b.json").read_text()
