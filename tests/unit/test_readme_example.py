"""The README's "Test your driver on the fake kernel" example, verbatim: it must keep working."""

from __future__ import annotations

import errno

import pytest

from pyvfio.edu import EduDriver
from pyvfio.errors import DriverError


def test_factorial_and_dma(fake_kernel, mocker):  # type: ignore[no-untyped-def]
    spy = mocker.spy(fake_kernel, "ioctl")
    bdf = fake_kernel.labels["edu"]
    with EduDriver.open(bdf, mode="legacy", kernel=fake_kernel) as edu:
        assert edu.factorial(5) == 120
        edu.dma_to_device(b"ping")
        assert edu.dma_from_device(4) == b"ping"
    issued = [call.args[1].name for call in spy.call_args_list]
    assert "VFIO_IOMMU_MAP_DMA" in issued
    assert [c.name for c in fake_kernel.calls if c.name.endswith("UNMAP_DMA")]


def test_map_failure_is_reported_with_the_step(fake_kernel):  # type: ignore[no-untyped-def]
    fake_kernel.inject("VFIO_IOMMU_MAP_DMA", errno.ENOMEM)
    with pytest.raises(DriverError) as info:
        EduDriver.open(fake_kernel.labels["edu"], mode="legacy", kernel=fake_kernel)
    assert info.value.step == "map" and info.value.errno == errno.ENOMEM
    # nothing leaked: the fixture's teardown runs fake_kernel.assert_clean()
