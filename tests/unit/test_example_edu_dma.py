"""examples/edu_dma.py runs its whole driver flow on the fake kernel."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "edu_dma.py"


def test_edu_dma_example_on_fake(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("edu_dma", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([]) == 0
    assert "ok" in capsys.readouterr().out
