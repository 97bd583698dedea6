"""Group on the fake kernel: viability (and who blocks it), container, device fds, close order."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from pyvfio import uapi
from pyvfio.container import Container
from pyvfio.errors import GroupNotViableError
from pyvfio.fake import standard_host
from pyvfio.group import Group
from tests.conftest import Host, discover
from tests.helpers import expect_errno


class NotViable:
    """The fake kernel, except that GROUP_GET_STATUS says not viable and one device has e1000."""

    def __init__(self, kernel: Any, bdf: str) -> None:
        self._k, self._bdf = kernel, bdf

    def __getattr__(self, name: str) -> Any:
        return getattr(self._k, name)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        rc = int(self._k.ioctl(fd, request, arg))
        if request == uapi.VFIO_GROUP_GET_STATUS:
            arg.flags = 0
        return rc

    def sysfs_readlink(self, relpath: str) -> str:
        if relpath.endswith(f"{self._bdf}/driver"):
            return "../../../../bus/pci/drivers/e1000"
        return str(self._k.sysfs_readlink(relpath))


def test_group_status_viable_then_container_set(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        assert g.viable and not g.status().container_set
        g.set_container(c)
        assert g.status().container_set and g.container is c
        assert g.path == f"/dev/vfio/{host.edu_group}" and not g.noiommu


def test_group_devices_from_sysfs(host: Host) -> None:
    with Group(host.pair_group, kernel=host.kernel) as g:
        assert set(host.pair) <= set(g.devices())  # with the bridge above them
        assert g.blockers() == []


def test_group_from_device(host: Host) -> None:
    with Group.from_device(host.edu, kernel=host.kernel) as g:
        assert g.number == host.edu_group


@pytest.mark.parametrize("bdf", ["../../../../dev", "0000:00:01.0/..", "", "0000:00:01.8"])
def test_group_from_device_checks_the_bdf(host: Host, bdf: str) -> None:
    with pytest.raises(ValueError, match="bdf"):
        Group.from_device(bdf, kernel=host.kernel)
    with pytest.raises(TypeError, match="bdf"):
        Group.from_device(1, kernel=host.kernel)  # type: ignore[arg-type]


def test_group_second_open_ebusy(host: Host) -> None:
    with Group(host.edu_group, kernel=host.kernel):
        expect_errno(errno.EBUSY, Group, host.edu_group, kernel=host.kernel)


def test_group_missing_enoent(host: Host) -> None:
    expect_errno(errno.ENOENT, Group, 9999, kernel=host.kernel)


def test_group_bad_number_before_syscall(host: Host) -> None:
    with pytest.raises(TypeError, match="number"):
        Group("5", kernel=host.kernel)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="number"):
        Group(-1, kernel=host.kernel)


def test_not_viable_names_blockers(host: Host) -> None:
    kernel = NotViable(host.kernel, host.pair[1])
    with Container(host.kernel) as c, Group(host.pair_group, kernel=kernel) as g:
        with pytest.raises(GroupNotViableError) as info:
            g.set_container(c)
        assert info.value.group == host.pair_group
        assert info.value.blockers == [(host.pair[1], "e1000")]
        assert host.pair[1] in str(info.value) and "e1000" in str(info.value)
        assert not g.status().container_set  # refused before the syscall


def test_set_container_twice_einval(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        g.set_container(c)
        expect_errno(errno.EINVAL, g.set_container, c)
        with pytest.raises(TypeError, match="container"):
            g.set_container(3)  # type: ignore[arg-type]


def test_open_device_errors(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        expect_errno(errno.EINVAL, g.open_device, host.edu)  # no container
        g.set_container(c)
        expect_errno(errno.EINVAL, g.open_device, host.edu)  # no IOMMU set
        c.set_iommu()
        expect_errno(errno.ENODEV, g.open_device, host.pair[0])
        with pytest.raises(ValueError, match="name"):
            g.open_device("")
        with pytest.raises(ValueError):
            g.open_device(host.edu, vf_token="not-a-uuid")


def test_unset_container_busy_while_device_open(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        g.set_container(c)
        c.set_iommu()
        d = g.open_device(host.edu)
        expect_errno(errno.EBUSY, g.unset_container)
        d.close()
        g.unset_container()
        assert g.container is None and c.iommu_type is None
        expect_errno(errno.EINVAL, g.unset_container)


def test_group_close_closes_devices_first(host: Host) -> None:
    with Container(host.kernel) as c:
        g = Group(host.edu_group, kernel=host.kernel)
        g.set_container(c)
        c.set_iommu()
        d = g.open_device(host.edu)
        assert d.group is g and d.name == host.edu
        g.close()
        assert d.closed and g.closed and g.container is None


def test_two_groups_one_container(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as a:
        a.set_container(c)
        c.set_iommu()
        with Group(host.pair_group, kernel=host.kernel) as b:
            b.set_container(c)
            with b.open_device(host.pair[0]) as d1, b.open_device(host.pair[1]) as d2:
                assert not d1.closed and not d2.closed


def test_noiommu_group_path_and_iommu_type() -> None:
    kernel = standard_host(noiommu=True)
    host = discover(kernel, "noiommu")
    with Container(kernel) as c, Group(host.edu_group, kernel=kernel) as g:
        assert g.noiommu and g.path == f"/dev/vfio/noiommu-{host.edu_group}"
        g.set_container(c)
        assert c.set_iommu() == uapi.IOMMUType.NOIOMMU
        with g.open_device(host.edu) as d:
            assert d.info().pci
    kernel.assert_clean()
