"""Rules at their edges, where a mutation of the fake survived the suite (tools/mutate_fake.py).

Each test pins one side of a comparison or a membership the fake's handlers make; the kernel
function is named in the docstring.
"""

from __future__ import annotations

import pytest

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake import standard_host
from tests.conformance.vfio_helpers import session
from tests.conftest import Host, discover


def _noiommu_set(host: Host) -> None:
    """After VFIO_SET_IOMMU(NOIOMMU) the noiommu driver answers CHECK_EXTENSION
    (container.c:vfio_noiommu_ioctl): its own type only."""
    with session(host) as s:
        c, g = s.container(), s.group(host.edu_group)
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, C.VFIO_NOIOMMU_IOMMU)
        assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, C.VFIO_NOIOMMU_IOMMU) == 1
        for ext in (C.VFIO_TYPE1v2_IOMMU, C.VFIO_TYPE1_IOMMU, C.VFIO_UNMAP_ALL):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 0


def test_noiommu_driver_checks_only_its_type(host: Host) -> None:
    if not host.noiommu:
        pytest.skip(f"{host.profile}: not a no-IOMMU host (the fake's runs below)")
    _noiommu_set(host)


@pytest.mark.fake_only("the real host has no noiommu-mode switch per test")
def test_noiommu_driver_checks_only_its_type_fake() -> None:
    host = discover(standard_host(noiommu=True), "noiommu")
    _noiommu_set(host)
    host.kernel.assert_clean()  # type: ignore[attr-defined]


def test_type1_driver_checks_its_extensions(host: Host) -> None:
    """vfio_iommu_type1_check_extension once set: TYPE1, TYPE1v2, UNMAP_ALL and UPDATE_VADDR
    are 1; NOIOMMU and an unknown id 0."""
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        for ext in (C.VFIO_TYPE1_IOMMU, C.VFIO_TYPE1v2_IOMMU, C.VFIO_UNMAP_ALL,
                    C.VFIO_UPDATE_VADDR):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 1, ext
        for ext in (C.VFIO_NOIOMMU_IOMMU, 0x7F):
            assert s.k.ioctl(c, uapi.VFIO_CHECK_EXTENSION, ext) == 0, ext
