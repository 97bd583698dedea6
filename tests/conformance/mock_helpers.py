"""The IOMMUFD_TEST mock device for the 7.x conformance tests, through pyvfio's object API.

:func:`mock_iommufd` gives an :class:`~pyvfio.iommufd.IOMMUFD`, an IOAS and a mock device bound
and attached to it (the selftest's ``test_cmd_mock_domain``), and skips where the kernel cannot:
no iommufd, no CONFIG_IOMMUFD_TEST (ENOTTY), or a real IOMMU driver beside the mock (EINVAL: only
the lane's ``mock`` profiles create mock devices).  :func:`test_cmd` issues one IOMMU_TEST_CMD op.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, CData, new
from pyvfio.hwpt import HWPT
from pyvfio.iommufd import IOAS, IOMMUFD
from tests.conformance.iommufd_helpers import require_iommufd
from tests.conftest import Host

TEST_CMD = uapi.TEST_IOCTLS["IOMMU_TEST_CMD"]
T = TypeVar("T")


def test_cmd(fd: IOMMUFD, op: int, obj_id: int = 0, **union: dict[str, int]) -> CData:
    """IOMMU_TEST_CMD ``op`` on object ``obj_id``; ``union`` = {member: {field: value}}."""
    cmd = new("struct iommu_test_cmd *", op=op, id=obj_id)
    for member, fields in union.items():
        for name, value in fields.items():
            setattr(getattr(cmd, member), name, value)
    fd.call(TEST_CMD, cmd)
    return cmd


test_cmd.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test


@dataclass
class MockDevice:
    """A mock device: its selftest object, DEVICE id and the HWPT it is attached to."""

    stdev: int
    idev: int
    hwpt: int

    def replace(self, fd: IOMMUFD, pt_id: int) -> int:
        """MOCK_DOMAIN_REPLACE: move the device to ``pt_id``; return the HWPT id."""
        cmd = test_cmd(fd, C.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, self.stdev,
                       mock_domain_replace={"pt_id": pt_id})
        self.hwpt = int(cmd.mock_domain_replace.pt_id)
        return self.hwpt


def mock_domain(fd: IOMMUFD, pt_id: int, dev_flags: int = 0) -> MockDevice:
    """MOCK_DOMAIN(_FLAGS): a mock device bound to ``fd`` and attached to ``pt_id``."""
    op = C.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS if dev_flags else C.IOMMU_TEST_OP_MOCK_DOMAIN
    cmd = test_cmd(fd, op, pt_id, mock_domain_flags={"dev_flags": dev_flags})
    md = cmd.mock_domain
    return MockDevice(int(md.out_stdev_id), int(md.out_idev_id), int(md.out_hwpt_id))


@contextmanager
def mock_iommufd(host: Host, dev_flags: int = 0) -> Iterator[tuple[IOMMUFD, IOAS, MockDevice]]:
    """An iommufd, an IOAS and a mock device attached to it (skips where impossible)."""
    require_iommufd(host)
    fd = IOMMUFD(host.kernel)
    try:
        ioas = fd.ioas()
        try:
            dev = mock_domain(fd, ioas.id, dev_flags)
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                pytest.skip(f"{host.profile}: kernel without CONFIG_IOMMUFD_TEST")
            if exc.errno == errno.EINVAL:
                pytest.skip(f"{host.profile}: MOCK_DOMAIN is EINVAL (next to a real IOMMU "
                            f"driver, or device flags {dev_flags:#x} this kernel lacks)")
            raise
        yield fd, ioas, dev
    finally:
        fd.close()


def nest_parent(fd: IOMMUFD, ioas: IOAS, dev: MockDevice, **flags: bool) -> HWPT:
    """A NEST_PARENT paging HWPT of the mock device over ``ioas``."""
    return HWPT.alloc(fd, dev.idev, ioas, nest_parent=True, **flags)


def since(host: Host, version: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``; skip the test when the kernel answers ENOTTY (an ioctl of Linux ``version``),
    or EOPNOTSUPP from an IOMMU_TEST_CMD op it does not know (selftest.c: the default case)."""
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        test_op = exc.filename == "IOMMU_TEST_CMD" and exc.errno == errno.EOPNOTSUPP
        if exc.errno == errno.ENOTTY or test_op:
            name = errno.errorcode.get(exc.errno or 0, exc.errno)
            pytest.skip(f"{host.profile}: kernel before Linux {version} ({name})")
        raise


def require_linux(host: Host, version: str) -> None:
    """Skip unless the kernel is at least ``version`` (a flag of an older ioctl, not a new one).

    A fake kernel without a version model (no ``linux`` attribute) answers as the newest.
    """
    want = tuple(int(x) for x in version.split("."))
    model = getattr(host.kernel, "linux", None)
    if model is not None and hasattr(model, "at_least"):  # a FakeKernel's version model
        old = not model.at_least(version)
    else:
        old = not host.linux_at_least(want[0], want[1])
    if old:
        pytest.skip(f"{host.profile}: needs Linux {version}")
