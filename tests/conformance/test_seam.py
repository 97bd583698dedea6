"""The Kernel seam itself: a bad fd is the kernel's EBADF on both kernels, never a Python error
or, for mmap, an anonymous mapping (found by tests/differential: fd -1 reached fcntl/mmap)."""

from __future__ import annotations

import errno

from pyvfio import uapi
from tests.conftest import Host
from tests.helpers import expect_errno


def test_ioctl_negative_fd_ebadf(host: Host) -> None:
    """ioctl(2) on fd -1 -> EBADF (fcntl.ioctl would raise ValueError)."""
    expect_errno(errno.EBADF, host.kernel.ioctl, -1, uapi.VFIO_GET_API_VERSION, 0)
    expect_errno(errno.EBADF, host.kernel.ioctl, -1, uapi.VFIO_CHECK_EXTENSION, 3)


def test_mmap_negative_fd_ebadf(host: Host) -> None:
    """mmap(2) of fd -1 without MAP_ANONYMOUS -> EBADF (Python's mmap would map anonymous
    memory)."""
    expect_errno(errno.EBADF, host.kernel.mmap, -1, 4096, 0)
