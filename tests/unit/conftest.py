"""Unit tests run on the fake kernel only: ``host`` is the plugin's ``fake_kernel`` (pyvfio.testing)
seen as a conformance ``Host``; the plugin's teardown checks that nothing leaked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.fake import FakeKernel
from tests.conftest import Host, discover
from tests.unit.vfio_env import Opened, opened_edu


@pytest.fixture
def host(fake_kernel: FakeKernel) -> Host:
    """The fake standard host (with iommufd)."""
    return discover(fake_kernel, "fake")


@pytest.fixture
def edu(host: Host) -> Iterator[Opened]:
    """Container, group and device of the lone edu, opened through the object API."""
    with opened_edu(host) as o:
        yield o
