"""examples/edu_dma.py runs its whole driver flow on the fake kernel."""

from __future__ import annotations

import pytest

from tests.unit.vfio_env import load_example


def test_edu_dma_example_on_fake(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_example()
    assert module.main([]) == 0
    assert "ok" in capsys.readouterr().out
