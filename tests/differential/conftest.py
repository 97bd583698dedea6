"""Options of the differential recorder (tests/differential/record_lane.py)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("differential", "differential recording (VM lane)")
    group.addoption("--diff-count", type=int, default=10000,
                    help="sequences per IOMMU mode to record (default 10000)")
    group.addoption("--diff-seconds", type=float, default=1800.0,
                    help="time budget for all modes of one profile (default 1800 s)")
    group.addoption("--diff-modes", default="", help="comma-separated modes to record")
    group.addoption("--diff-ops", default="",
                    help="directory of sequences generated ahead by the host (opsfile.py)")
    group.addoption("--diff-profile", action="store_true",
                    help="time kernel calls by kind and profile the Python side (timing.py)")
