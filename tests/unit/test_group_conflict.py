"""The group contract in the object API: GroupConflictError names the neighbours and keeps errno."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from pyvfio.cdev import CdevDevice
from pyvfio.errors import GroupConflictError, PyvfioError
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.group import Group
from pyvfio.iommufd import IOMMUFD

EDU, PAIR, PAIR_GROUP = "0000:00:01.0", ("0000:02:01.0", "0000:02:02.0"), 6


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = standard_host(iommufd=True)
    yield k
    k.assert_clean()


def _conflict(excinfo: pytest.ExceptionInfo[GroupConflictError], err: int) -> GroupConflictError:
    exc = excinfo.value
    assert isinstance(exc, PyvfioError) and isinstance(exc, OSError)
    assert exc.errno == err
    assert isinstance(exc.__cause__, OSError) and exc.__cause__.errno == err
    return exc


def test_bind_while_the_group_is_open(kernel: FakeKernel) -> None:
    group = Group.from_device(PAIR[0], kernel=kernel)
    with group, IOMMUFD(kernel) as fd, CdevDevice(PAIR[1], kernel=kernel) as dev:
        assert group.number == PAIR_GROUP
        with pytest.raises(GroupConflictError) as excinfo:
            dev.bind(fd)
        exc = _conflict(excinfo, errno.EBUSY)
        assert (exc.bdf, exc.group, ) == (PAIR[1], PAIR_GROUP) and PAIR[0] in exc.neighbours
        assert exc.operation == "VFIO_DEVICE_BIND_IOMMUFD"
        assert PAIR[0] in str(exc) and "/dev/vfio/N" in str(exc) and exc.hint in str(exc)
        assert dev.iommufd is None


def test_bind_neighbour_to_another_iommufd(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as one, IOMMUFD(kernel) as two:
        a, b = CdevDevice(PAIR[0], kernel=kernel), CdevDevice(PAIR[1], kernel=kernel)
        a.bind(one)
        with pytest.raises(GroupConflictError) as excinfo:
            b.bind(two)
        exc = _conflict(excinfo, errno.EPERM)
        assert PAIR[0] in exc.neighbours and "same iommufd" in exc.hint
        b.close()


def test_attach_neighbour_to_another_ioas(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd:
        first, second = fd.ioas(), fd.ioas()
        a, b = CdevDevice(PAIR[0], kernel=kernel), CdevDevice(PAIR[1], kernel=kernel)
        a.bind(fd)
        b.bind(fd)
        hwpt = a.attach(first)
        with pytest.raises(GroupConflictError) as excinfo:
            b.attach(second)
        exc = _conflict(excinfo, errno.EINVAL)
        assert exc.operation == "VFIO_DEVICE_ATTACH_IOMMUFD_PT" and PAIR[0] in exc.neighbours
        assert "same" not in exc.hint or "HWPT" in exc.hint
        assert b.attach(first) == hwpt  # what the hint says to do works


def test_lone_device_errors_stay_plain_oserror(kernel: FakeKernel) -> None:
    """Alone in its group, an EINVAL from attach is not a group conflict."""
    with IOMMUFD(kernel) as fd, CdevDevice(EDU, kernel=kernel) as dev:
        dev.bind(fd)
        with pytest.raises(OSError) as excinfo:
            dev.attach(fd.ioas().id + 100)
        assert not isinstance(excinfo.value, GroupConflictError)
        assert excinfo.value.errno == errno.ENOENT


def test_group_open_while_a_cdev_is_bound(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd, CdevDevice(PAIR[0], kernel=kernel) as dev:
        dev.bind(fd)
        with pytest.raises(GroupConflictError) as excinfo:
            Group.from_device(PAIR[1], kernel=kernel)
        exc = _conflict(excinfo, errno.EBUSY)
        assert exc.group == PAIR_GROUP and set(PAIR) <= set(exc.neighbours)
        assert exc.operation == "open" and "cdev" in str(exc)
