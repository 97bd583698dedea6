"""The pytest plugin (pyvfio.testing) as a user's test suite sees it, loaded by its entry point."""

from __future__ import annotations

import pytest

import pyvfio
from pyvfio.fake import FakeKernel


def test_fake_kernel_has_iommufd(fake_kernel: FakeKernel) -> None:
    """Issue 11: a user's mode="iommufd" test works on the plugin's host, and auto picks it."""
    with pyvfio.open_device(fake_kernel.labels["edu"], mode="iommufd", kernel=fake_kernel) as d:
        assert d.mode == "iommufd"
    with pyvfio.open_device(fake_kernel.labels["edu"], kernel=fake_kernel) as d:
        assert d.mode == "iommufd"


def test_fake_kernel_no_iommufd_is_legacy_only(fake_kernel_no_iommufd: FakeKernel) -> None:
    with pyvfio.open_device(fake_kernel_no_iommufd.labels["edu"],
                            kernel=fake_kernel_no_iommufd) as d:
        assert d.mode == "legacy" and "does not exist" in (d.mode_reason or "")


def test_fake_device_runs_once_per_mode(fake_device: pyvfio.Device, iommu_mode: str,
                                        request: pytest.FixtureRequest) -> None:
    assert fake_device.iommu_mode == iommu_mode and request.node.callspec.id == iommu_mode
    assert fake_device.dma is not None and fake_device.dma.allocate(4096).iova > 0


@pytest.mark.parametrize("iommu_mode", ["iommufd"])
def test_one_mode_can_be_picked(fake_device: pyvfio.Device) -> None:
    assert fake_device.iommu_mode == "iommufd"
