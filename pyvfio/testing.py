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

:func:`fail_nth_sweep` runs a flow (open, map, start a driver, close, ...) once per system call
it makes, failing that one call (the kernel selftests' fail-nth), and reports every injection
point where the error that came out was not the injected one, or something leaked.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pyvfio.device import Device
from pyvfio.errors import CloseError, DriverError
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


@dataclass
class SweepReport:
    """What :func:`fail_nth_sweep` saw.

    Attributes:
        points: the injection points (system calls of the flow that were failed in turn).
        leaks: ``(nth, leak)`` for each leak the fake's check found after a failed run.
        wrong: ``(nth, exception)`` for each run that raised something other than the injected
            errno (an ``OSError``, or a ``DriverError``/``CloseError`` caused by one).
    """

    points: int = 0
    leaks: list[tuple[int, str]] = field(default_factory=list)
    wrong: list[tuple[int, BaseException]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every injection point gave the injected errno and leaked nothing."""
        return not self.leaks and not self.wrong


def _carries(exc: BaseException, err: int) -> bool:
    if isinstance(exc, CloseError):
        return any(_carries(e, err) for _, e in exc.failures)
    if isinstance(exc, DriverError):
        return exc.cause is not None and _carries(exc.cause, err)
    return isinstance(exc, OSError) and exc.errno == err


def fail_nth_sweep(make_kernel: Callable[[], FakeKernel], flow: Callable[[FakeKernel], object],
                   *, err: int = errno.ENOMEM, limit: int = 1000) -> SweepReport:
    """Run ``flow`` on a fresh kernel once per system call it makes, failing the n-th one.

    Args:
        make_kernel: returns a fresh fake host (e.g. ``lambda: standard_host(iommufd=True)``).
        flow: what to sweep; it must close what it opens (its ``with`` blocks do).
        err: the errno injected (``ENOMEM``: what a kernel allocation failure answers).
        limit: stop after this many points (a flow that never ends).

    Returns:
        The report: injection points, leaks and unexpected errors.
    """
    report = SweepReport()
    for nth in range(1, limit + 1):
        kernel = make_kernel()
        kernel.fail_nth(nth, err)
        try:
            flow(kernel)
        except Exception as exc:  # judged: the injected errno, or reported
            if not _carries(exc, err):
                report.wrong.append((nth, exc))
        fired = not kernel.fail_nth_pending
        kernel.fail_nth(None)
        if not fired:
            break  # the flow made fewer than nth calls: every point was swept
        report.points += 1
        report.leaks += [(nth, leak) for leak in kernel.leaks()]
    return report
