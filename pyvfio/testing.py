"""pytest plugin of pyvfio (entry point ``pytest11``): fixtures that give a ready fake host.

Every fixture yields a :class:`pyvfio.fake.FakeKernel` and, at teardown, calls its
``assert_clean()``: a test that leaks an fd, an eventfd, an mmap, a DMA mapping or a changed
driver binding fails.  Pass the kernel to pyvfio's objects explicitly (``kernel=fake_kernel``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pyvfio.fake import FakeKernel, nonviable_host, standard_host


@pytest.fixture
def fake_kernel() -> Iterator[FakeKernel]:
    """A fake host laid out like the VM lane's guest (see :func:`pyvfio.fake.standard_host`).

    ``fake_kernel.labels`` names its parts: ``edu`` (BDF alone in group ``edu_group``),
    ``pair`` (two edu BDFs sharing ``pair_group``), ``nic`` (on a host driver).
    """
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
    kernel = nonviable_host()
    yield kernel
    kernel.assert_clean()
