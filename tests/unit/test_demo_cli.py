"""``pyvfio demo``: the edu driver on the embedded fake kernel, text and JSON, and its failures."""

from __future__ import annotations

import json

import pytest

from pyvfio import cli
from pyvfio.demo import run_demo
from pyvfio.fake import standard_host


def test_demo_runs_on_the_fake_kernel_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "pyvfio's fake kernel, mode iommufd" in out
    for step in ("identify", "factorial 10!", "DMA 4095 bytes RAM -> device", "verify round trip"):
        assert step in out
    assert "all steps passed" in out and " ms " in out


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
def test_demo_json_for_scripts(capsys: pytest.CaptureFixture[str], mode: str) -> None:
    assert cli.main(["demo", "--json", "--mode", mode]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "pyvfio.demo/1" and doc["ok"] and doc["kernel"] == "fake"
    assert doc["mode"] == mode and doc["mode_reason"]
    assert [s["ok"] for s in doc["steps"]] == [True] * len(doc["steps"]) and len(doc["steps"]) == 9
    assert all(isinstance(s["ms"], float) for s in doc["steps"])
    assert doc["steps"][3]["result"] == 3628800


def test_demo_on_a_device_uses_the_given_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    k = standard_host()  # no iommufd: auto falls back to legacy and says why
    assert cli.main(["demo", "--device", "0000:02:01.0", "--json"], kernel=k) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kernel"] == "real" and doc["mode"] == "legacy"
    assert "/dev/iommu does not exist" in doc["mode_reason"]
    k.assert_clean()


def test_demo_failure_shows_the_step_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    k = standard_host()
    assert cli.main(["demo", "--device", "0000:02:01.0", "--mode", "iommufd"], kernel=k) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "open: opening 0000:02:01.0 in iommufd mode failed" in out
    assert "CONFIG_IOMMUFD" in out


def test_demo_reports_an_interrupt_that_never_came() -> None:
    k = standard_host(iommufd=True)
    k.bus.devices["0000:00:01.0"].send_msi = lambda vector=0: None  # type: ignore[method-assign]
    ok, data = run_demo(k, "0000:00:01.0", "auto", 0.05)
    assert not ok
    failed = data["steps"][-1]
    assert failed["name"].startswith("factorial") and "interrupt never came" in failed["error"]
    assert "bus master on" in failed["hint"]
    k.assert_clean()
