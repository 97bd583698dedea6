"""The IOMMU-mode axis of the DMA conformance tests (the kernel selftests' five variants).

``iommu_mode`` comes from pyvfio's pytest plugin (:mod:`pyvfio.testing`): ``type1``, ``type1v2``
(the legacy container, vfio_type1_iommu / vfio_type1v2_iommu in tools/testing/selftests/vfio),
``compat-type1``, ``compat-type1v2`` (the container API on /dev/iommu: iommufd_compat_type1 /
iommufd_compat_type1v2) and ``iommufd`` (native).  :func:`mode_device` opens the host's lone edu
in that mode, on the fake and on the real kernel alike, and skips where the profile cannot offer
the mode (Debian's kernels have no /dev/iommu; noiommu has no IOMMU types).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.device import Device
from pyvfio.errors import ModeUnavailableError
from pyvfio.opener import open_device
from tests.conformance.vfio_helpers import Session, session
from tests.conftest import Host


@pytest.fixture
def mode_device(host: Host, iommu_mode: str) -> Iterator[Device]:
    """The lone edu opened with :func:`pyvfio.open_device` in ``iommu_mode``."""
    if host.noiommu:
        pytest.skip("noiommu: no IOMMU type and no IOVA, so no IOMMU mode to test")
    bdf = host.edu
    try:
        device = open_device(bdf, mode=iommu_mode, kernel=host.kernel)
    except ModeUnavailableError as exc:
        pytest.skip(f"{host.profile}: {exc}")
    try:
        assert device.iommu_mode == iommu_mode
        yield device
    finally:
        device.close()


@pytest.fixture
def edu_iommufd(host: Host) -> Iterator[Device]:
    """The lone edu in iommufd mode (cdev + IOAS: a domain pins what is mapped)."""
    if host.noiommu:
        pytest.skip("noiommu: no IOAS domain to pin file pages")
    try:
        device = open_device(host.edu, mode="iommufd", kernel=host.kernel)
    except ModeUnavailableError as exc:
        pytest.skip(f"{host.profile}: {exc}")
    with device:
        yield device


@pytest.fixture
def t1(host: Host) -> Iterator[tuple[Session, int]]:
    """A session with a type1v2 container holding the lone edu's group: (session, container)."""
    if host.noiommu:
        pytest.skip("noiommu: no type1 DMA mapping")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        yield s, c
