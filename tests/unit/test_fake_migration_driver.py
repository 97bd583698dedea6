"""pyvfio.fake.migration.MigrationDriver is an ABC: a driver model must give both ops."""

from __future__ import annotations

import pytest

from pyvfio.fake.migration import RUNNING, STOP, DataFile, MigrationDriver


class _StepOnly(MigrationDriver):
    def step(self, new: int) -> DataFile | None:
        return None


class _Minimal(_StepOnly):
    def data_size(self) -> int:
        return 0


def test_driver_without_data_size_cannot_be_made() -> None:
    with pytest.raises(TypeError, match="data_size"):
        _StepOnly()  # type: ignore[abstract]


def test_resume_check_accepts_by_default() -> None:
    drv = _Minimal()
    f = DataFile(drv, saving=False, limit=8)
    assert f.write(b"anything") == 8


def test_set_state_walks_the_arcs() -> None:
    drv = _Minimal()
    assert drv.set_state(STOP) is None
    assert drv.state == STOP
    drv.set_state(RUNNING)
    assert drv.state == RUNNING
