"""Mediated devices on the mtty sample: lifecycle through pyvfio.host.mdev, then VFIO opens.

Specification: drivers/vfio/mdev/mdev_sysfs.c (create_store, remove_store), mdev_core.c
(mdev_device_create), samples/vfio-mdev/mtty.c (24 ports shared by the types mtty-1 and
mtty-2; mtty_init_dev; its emulated-IOMMU VFIO device).  Real: the lane's 7.3 profiles load
``mtty`` (the 6.12 lane kernels have no mdev support: these skip there, saying so).  Fake:
:func:`pyvfio.fake.mtty.add_mtty` (lifecycle, emulated group, device file, cdev).  Every test
removes the mdevs it created.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, new
from pyvfio.fake.mtty import add_mtty
from pyvfio.host import mdev
from pyvfio.kernel import Kernel
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import cfg_read, session
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

U1 = "5e7ee1f0-0000-4000-8000-00000000a001"
U2 = "5e7ee1f0-0000-4000-8000-00000000a002"
MTTY_VENDOR, MTTY_DEVICE = 0x4348, 0x3253  # mtty.c:mtty_create_config_space


@pytest.fixture
def mtty(host: Host) -> Iterator[Kernel]:
    """The kernel with the mtty parent; removes leftover mdevs of the test afterwards."""
    k = host.kernel
    if host.profile == "fake":
        add_mtty(k)  # type: ignore[arg-type]
    elif not k.sysfs_exists("class/mdev_bus/mtty"):
        pytest.skip(f"{host.profile}: no mtty parent (CONFIG_SAMPLE_VFIO_MDEV_MTTY is in the "
                    "lane's 7.3 kernel: profiles iommufd-7.3, mock-7.3)")
    before = {d["uuid"] for d in mdev.devices(k)}
    yield k
    for d in mdev.devices(k):
        if d["uuid"] not in before and d["uuid"]:
            mdev.remove(k, d["uuid"])


def _available(k: Kernel) -> dict[str, int | None]:
    return {t.type: t.available for t in mdev.types(k, "mtty")}


def test_mtty_offers_two_types(mtty: Kernel) -> None:
    """mtty.c: types mtty-1 / mtty-2, device_api vfio-pci, 24 ports -> 24 and 12 instances."""
    assert "mtty" in mdev.parents(mtty)
    types = {t.type: t for t in mdev.types(mtty, "mtty")}
    assert sorted(types) == ["mtty-1", "mtty-2"]
    assert types["mtty-1"].name == "Single port serial"
    assert types["mtty-2"].name == "Dual port serial"
    assert {t.device_api for t in types.values()} == {"vfio-pci"}
    assert _available(mtty) == {"mtty-1": 24, "mtty-2": 12}


def test_create_lists_and_remove_restores(mtty: Kernel) -> None:
    """mdev_core.c:mdev_device_create: the mdev appears on the mdev bus and in its type."""
    assert mdev.create(mtty, "mtty", "mtty-1", U1) == U1
    assert {"uuid": U1, "type": "mtty-1", "parent": "mtty"} in mdev.devices(mtty)
    [t1] = [t for t in mdev.types(mtty, "mtty") if t.type == "mtty-1"]
    assert t1.devices == (U1,)
    mdev.remove(mtty, U1)
    assert U1 not in {d["uuid"] for d in mdev.devices(mtty)}
    assert _available(mtty) == {"mtty-1": 24, "mtty-2": 12}


def test_types_share_one_port_pool(mtty: Kernel) -> None:
    """mtty.c:mtty_get_available: free ports // ports per instance, one pool for both types."""
    mdev.create(mtty, "mtty", "mtty-1", U1)
    assert _available(mtty) == {"mtty-1": 23, "mtty-2": 11}
    mdev.create(mtty, "mtty", "mtty-2", U2)
    assert _available(mtty) == {"mtty-1": 21, "mtty-2": 10}


def test_create_duplicate_uuid_eexist(mtty: Kernel) -> None:
    """mdev_core.c:mdev_device_create: a UUID any mdev has -> EEXIST (also of another type)."""
    mdev.create(mtty, "mtty", "mtty-1", U1)
    expect_errno(errno.EEXIST, mdev.create, mtty, "mtty", "mtty-1", U1)
    expect_errno(errno.EEXIST, mdev.create, mtty, "mtty", "mtty-2", U1)
    assert _available(mtty)["mtty-1"] == 23


@pytest.mark.parametrize("value", ["not-a-uuid", U1 + "xx", U1[:-1], "5e7ee1f0+0000+4000+8000+"
                                   "00000000a001"])
def test_create_malformed_uuid_einval(mtty: Kernel, value: str) -> None:
    """mdev_sysfs.c:create_store: not 36/37 bytes, or guid_parse fails -> EINVAL."""
    path = "class/mdev_bus/mtty/mdev_supported_types/mtty-1/create"
    expect_errno(errno.EINVAL, mtty.sysfs_write, path, value)
    assert mdev.devices(mtty) == [] or all(d["uuid"] != value for d in mdev.devices(mtty))


def test_create_ignores_a_37th_byte(mtty: Kernel) -> None:
    """mdev_sysfs.c:create_store takes 36 or 37 bytes and guid_parse reads 36: any 37th byte
    (the newline of ``echo``, or anything else) is ignored."""
    path = "class/mdev_bus/mtty/mdev_supported_types/mtty-1/create"
    expect_ok(mtty.sysfs_write, path, U1 + "x")
    assert U1 in {d["uuid"] for d in mdev.devices(mtty)}


def test_create_malformed_uuid_refused_before_the_kernel(mtty: Kernel) -> None:
    """pyvfio validates the UUID itself (ValueError naming it), nothing is written."""
    with pytest.raises(ValueError, match="uuid"):
        mdev.create(mtty, "mtty", "mtty-1", "not-a-uuid")


def test_create_without_ports_enospc(mtty: Kernel) -> None:
    """mtty.c:mtty_init_dev: fewer free ports than the type needs -> ENOSPC (not EUSERS:
    mtty has get_available, so mdev_core.c leaves the count to the driver)."""
    made = [mdev.create(mtty, "mtty", "mtty-2") for _ in range(12)]
    assert _available(mtty) == {"mtty-1": 0, "mtty-2": 0}
    expect_errno(errno.ENOSPC, mdev.create, mtty, "mtty", "mtty-1", U1)
    mdev.remove(mtty, made[0])
    assert _available(mtty) == {"mtty-1": 2, "mtty-2": 1}


def test_remove_zero_keeps_the_device(mtty: Kernel) -> None:
    """mdev_sysfs.c:remove_store: ``0`` is accepted and removes nothing."""
    mdev.create(mtty, "mtty", "mtty-1", U1)
    expect_ok(mtty.sysfs_write, f"bus/mdev/devices/{U1}/remove", "0")
    assert U1 in {d["uuid"] for d in mdev.devices(mtty)}


def test_remove_not_a_number_einval(mtty: Kernel) -> None:
    """mdev_sysfs.c:remove_store: kstrtoul fails -> EINVAL, the device stays."""
    mdev.create(mtty, "mtty", "mtty-1", U1)
    expect_errno(errno.EINVAL, mtty.sysfs_write, f"bus/mdev/devices/{U1}/remove", "yes")
    assert U1 in {d["uuid"] for d in mdev.devices(mtty)}


def test_remove_unknown_enoent(mtty: Kernel) -> None:
    """No such mdev: its ``remove`` attribute does not exist -> ENOENT."""
    expect_errno(errno.ENOENT, mdev.remove, mtty, U2)


# ------------------------------------------------------------------ the mdev as a VFIO device


def _real_mdev(host: Host, mtty: Kernel) -> str:
    return mdev.create(mtty, "mtty", "mtty-2", U1)


def _group_of(k: Kernel, uuid: str) -> int:
    return int(os.path.basename(k.sysfs_readlink(f"bus/mdev/devices/{uuid}/iommu_group")))


def test_mdev_has_its_own_group_and_cdev(host: Host, mtty: Kernel) -> None:
    """vfio_register_emulated_iommu_dev: a group of its own; a vfio-dev cdev with iommufd."""
    uuid = _real_mdev(host, mtty)
    group = _group_of(mtty, uuid)
    assert mtty.sysfs_listdir(f"kernel/iommu_groups/{group}/devices") == [uuid]
    if mtty.exists("/dev/iommu"):
        [cdev] = mtty.sysfs_listdir(f"bus/mdev/devices/{uuid}/vfio-dev")
        assert cdev.startswith("vfio")


def test_mdev_opens_through_its_group(host: Host, mtty: Kernel) -> None:
    """group.c: GET_DEVICE_FD by the mdev's UUID on a type1 container; mtty's PCI identity."""
    uuid = _real_mdev(host, mtty)
    with session(host) as s:
        c, g = s.container(), s.group(_group_of(mtty, uuid))
        s.attach(g, c)
        s.k.ioctl(c, uapi.VFIO_SET_IOMMU, int(C.VFIO_TYPE1v2_IOMMU))
        dev = s.device(g, uuid)
        info = new("struct vfio_device_info *")
        s.k.ioctl(dev, uapi.VFIO_DEVICE_GET_INFO, info)
        assert info.flags & C.VFIO_DEVICE_FLAGS_PCI
        assert (info.num_regions, info.num_irqs) == (C.VFIO_PCI_NUM_REGIONS, C.VFIO_PCI_NUM_IRQS)
        assert cfg_read(host, dev, 0, 2) == MTTY_VENDOR
        assert cfg_read(host, dev, 2, 2) == MTTY_DEVICE


def test_mdev_opens_through_its_cdev(host: Host, mtty: Kernel) -> None:
    """device_cdev.c + vfio/iommufd.c (emulated bind/attach): BIND_IOMMUFD, ATTACH to an IOAS."""
    uuid = _real_mdev(host, mtty)
    with iommufd_session(host) as s:
        [name] = mtty.sysfs_listdir(f"bus/mdev/devices/{uuid}/vfio-dev")
        fd, ioas = s.iommufd(), 0
        ioas = s.ioas(fd)
        cdev = s.track(s.k.open(f"/dev/vfio/devices/{name}"))
        assert s.bind(cdev, fd) >= 1
        assert s.attach(cdev, ioas) == ioas
        info = new("struct vfio_device_info *")
        s.k.ioctl(cdev, uapi.VFIO_DEVICE_GET_INFO, info)
        assert info.flags & C.VFIO_DEVICE_FLAGS_PCI
        assert cfg_read(host, cdev, 0, 2) == MTTY_VENDOR
