"""Unit tests run on the fake kernel only: ``host`` is the fake standard host (no real param)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Host
from tests.unit.vfio_env import Opened, fake_host, opened_edu


@pytest.fixture
def host() -> Iterator[Host]:
    """The fake standard host; teardown checks that nothing leaked."""
    with fake_host() as h:
        yield h


@pytest.fixture
def edu(host: Host) -> Iterator[Opened]:
    """Container, group and device of the lone edu, opened through the object API."""
    with opened_edu(host) as o:
        yield o
