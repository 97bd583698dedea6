"""Unit tests run on the fake kernel only: ``host`` is the fake standard host (no real param)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.fake import FakeKernel, standard_host
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


@pytest.fixture
def iommufd_kernel() -> Iterator[FakeKernel]:
    """The fake standard host with /dev/iommu and the device cdevs; checked clean at teardown."""
    k = standard_host(iommufd=True)
    yield k
    k.assert_clean()
