"""pytest plugin of pyvfio (entry point ``pytest11``): fixtures that give a ready fake host.

Every kernel fixture yields a :class:`pyvfio.fake.FakeKernel` and, at teardown, calls its
``assert_clean()``: a test that leaks an fd, an eventfd, an mmap, a DMA mapping or a changed
driver binding fails.  Pass the kernel to pyvfio explicitly (``kernel=fake_kernel``).

Run a test once per IOMMU mode, like the kernel selftests' fixture variants, by asking for
``iommu_mode`` (one of :data:`pyvfio.IOMMU_MODES`: ``type1``, ``type1v2``, ``compat-type1``,
``compat-type1v2``, ``iommufd``; the test ids carry the name) or directly for ``fake_device``,
the fake host's edu opened in that mode::

    def test_my_driver(fake_device):
        drv = MyDriver(fake_device)          # fake_device.dma, .bar(0), .enable_interrupts()
        ...

To narrow the modes of one test: ``@pytest.mark.parametrize("iommu_mode", ["iommufd"])``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.device import Device
from pyvfio.fake import FakeKernel, nonviable_host, standard_host
from pyvfio.opener import IOMMU_MODES, open_device


@pytest.fixture
def fake_kernel() -> Iterator[FakeKernel]:
    """A fake host laid out like the VM lane's guest, with /dev/iommu and the VFIO cdevs
    (see :func:`pyvfio.fake.standard_host`); every IOMMU mode works on it.

    ``fake_kernel.labels`` names its parts: ``edu`` (BDF alone in group ``edu_group``),
    ``pair`` (two edu BDFs sharing ``pair_group``), ``nic`` (on a host driver).
    """
    kernel = standard_host(iommufd=True)
    yield kernel
    kernel.assert_clean()


@pytest.fixture
def fake_kernel_no_iommufd() -> Iterator[FakeKernel]:
    """The standard host as Debian's stock kernels are: no /dev/iommu, legacy container only."""
    kernel = standard_host()
    yield kernel
    kernel.assert_clean()


@pytest.fixture
def fake_kernel_shared_group(fake_kernel: FakeKernel) -> tuple[FakeKernel, int, tuple[str, str]]:
    """The standard host, with the shared group picked out: ``(kernel, group, (bdf1, bdf2))``."""
    return fake_kernel, fake_kernel.labels["pair_group"], fake_kernel.labels["pair"]


@pytest.fixture
def fake_kernel_nonviable() -> Iterator[FakeKernel]:
    """The standard host plus a group that is not viable (one member on a host driver).

    ``labels``: ``nonviable_group``, ``nonviable_edu`` (on vfio-pci), ``nonviable_nic`` (e1000e).
    """
    kernel = nonviable_host(iommufd=True)
    yield kernel
    kernel.assert_clean()


@pytest.fixture(params=IOMMU_MODES)
def iommu_mode(request: pytest.FixtureRequest) -> str:
    """Each of the five IOMMU modes in turn (the test runs once per mode)."""
    return str(request.param)


@pytest.fixture
def fake_device(fake_kernel: FakeKernel, iommu_mode: str) -> Iterator[Device]:
    """The fake host's lone edu opened with :func:`pyvfio.open_device` in ``iommu_mode``;
    closed (with everything it owns) after the test, before the leak check."""
    device = open_device(fake_kernel.labels["edu"], mode=iommu_mode, kernel=fake_kernel)
    try:
        yield device
    finally:
        device.close()
