"""Device on the fake kernel: info, region access, mmap, reset, hot reset, ioeventfd, features."""

from __future__ import annotations

import errno
import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pyvfio import uapi
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.fake import standard_host
from pyvfio.fake.pci import DeviceConfig, PCIDevice
from pyvfio.group import Group
from pyvfio.irq import EventFD
from pyvfio.uapi import PCIRegion
from tests.conftest import Host
from tests.helpers import expect_errno
from tests.unit.vfio_env import Opened, opened_edu

EDU_IDENT = 0x010000ED




def test_device_info_pci_without_reset(edu: Opened) -> None:
    info = edu.device.info()
    assert info.pci and info.flags & uapi.DeviceFlag.PCI
    assert not info.reset_supported  # edu has no FLR, no PM reset, no bus reset
    assert (info.num_regions, info.num_irqs) >= (9, 5)
    assert isinstance(info.caps, tuple)


def test_device_read_write_config(edu: Opened) -> None:
    assert edu.device.read(PCIRegion.CONFIG, 0, 4) == bytes.fromhex("3412e811")
    assert edu.device.write(PCIRegion.CONFIG, 0x3C, b"\x0b") == 1
    assert edu.device.read(PCIRegion.CONFIG, 0x3C, 1) == b"\x0b"


def test_device_read_outside_region_valueerror(edu: Opened) -> None:
    size = edu.device.region_info(PCIRegion.CONFIG).size
    with pytest.raises(ValueError, match="outside region"):
        edu.device.read(PCIRegion.CONFIG, size - 2, 4)
    with pytest.raises(TypeError, match="data"):
        edu.device.write(PCIRegion.CONFIG, 0, "x")  # type: ignore[arg-type]


def test_device_bar_pread_ident(edu: Opened) -> None:
    data = edu.device.read(PCIRegion.BAR0, 0, 4)
    assert int.from_bytes(data, "little") == EDU_IDENT


def test_device_mmap_bar0_exact_width(edu: Opened) -> None:
    bar = edu.device.mmap(PCIRegion.BAR0)
    assert len(bar) == 1 << 20
    assert bar.read(0, 4) == EDU_IDENT
    bar.write(0x04, 4, 0x12345678)  # liveness: reads back inverted
    assert bar.read(0x04, 4) == 0x12345678 ^ 0xFFFFFFFF


def test_device_mmap_not_mmappable_valueerror(edu: Opened) -> None:
    with pytest.raises(ValueError, match="not mmappable"):
        edu.device.mmap(PCIRegion.CONFIG)
    with pytest.raises(ValueError, match="page aligned"):
        edu.device.mmap(PCIRegion.BAR0, 0x10, 0x100)


def test_device_close_closes_mmaps(host: Host) -> None:
    with opened_edu(host) as o:
        bar = o.device.mmap(PCIRegion.BAR0)
        o.device.close()
        assert o.device.closed
        with pytest.raises(ValueError):
            bar.read(0, 4)


def test_device_reset_unsupported_einval(edu: Opened) -> None:
    err = expect_errno(errno.EINVAL, edu.device.reset)
    assert err.filename == "VFIO_DEVICE_RESET"


@contextmanager
def resettable(bdf: str, group_id: int) -> Iterator[tuple[PCIDevice, Group, Device]]:
    """A device with a reset method on vfio-pci, opened; the kernel is checked clean after."""
    kernel = standard_host()
    model = PCIDevice(bdf, DeviceConfig(reset=True))
    kernel.add_device(model, group=group_id, driver="vfio-pci")
    kernel.mark_clean()
    with Container(kernel) as container, Group(group_id, kernel=kernel) as group:
        group.set_container(container)
        container.set_iommu()
        with group.open_device(bdf) as device:
            yield model, group, device
    kernel.assert_clean()


def test_device_reset_with_reset_method() -> None:
    with resettable("0000:00:07.0", 9) as (model, _, device):
        assert device.info().reset_supported
        before = model.resets  # vfio-pci also resets on open and on release
        device.reset()
        assert model.resets == before + 1


def test_device_hot_reset_on_a_root_bus_enodev(edu: Opened) -> None:
    """The edu sits on bus 00, a root bus: no slot or bus to reset (vfio_pci_core.c:
    vfio_pci_ioctl_get_pci_hot_reset_info via pci_probe_reset_slot/bus answers ENODEV)."""
    expect_errno(errno.ENODEV, edu.device.hot_reset_info)
    expect_errno(errno.ENODEV, edu.device.hot_reset, [edu.group])


def test_device_hot_reset_behind_a_bridge() -> None:
    """On bus 05 the whole bus resets: the info lists the bus's devices with their groups, and
    VFIO_DEVICE_PCI_HOT_RESET with every affected group's fd resets the device once."""
    with resettable("0000:05:00.0", 20) as (model, group, device):
        flags, devices = device.hot_reset_info()
        assert [(d.bdf, d.id) for d in devices] == [("0000:05:00.0", 20)]
        assert not flags & uapi.PCIHotResetFlag.DEV_ID
        before = model.resets
        device.hot_reset([group])
        assert model.resets == before + 1


def test_device_hot_reset_needs_groups(edu: Opened) -> None:
    with pytest.raises(ValueError, match="groups"):
        edu.device.hot_reset([])


def test_device_ioeventfd_add_duplicate_remove(edu: Opened) -> None:
    with EventFD(edu.host.kernel) as efd:
        edu.device.ioeventfd(PCIRegion.BAR0, 0x04, 4, 7, eventfd=efd)
        expect_errno(errno.EEXIST, edu.device.ioeventfd, PCIRegion.BAR0, 0x04, 4, 7, eventfd=efd)
        edu.device.ioeventfd(PCIRegion.BAR0, 0x04, 4, 7, eventfd=None)
        expect_errno(errno.ENODEV, edu.device.ioeventfd, PCIRegion.BAR0, 0x04, 4, 7, eventfd=None)


def test_device_ioeventfd_bad_args(edu: Opened) -> None:
    with pytest.raises(ValueError, match="width"):
        edu.device.ioeventfd(PCIRegion.BAR0, 0, 3, 0, eventfd=None)
    with pytest.raises(ValueError, match="data"):
        edu.device.ioeventfd(PCIRegion.BAR0, 0, 1, 256, eventfd=None)


def test_device_feature_probe(edu: Opened) -> None:
    assert not edu.device.probe_feature(uapi.DeviceFeature.MIGRATION, uapi.DeviceFeatureFlag.GET)
    expect_errno(
        errno.ENOTTY,
        edu.device.feature,
        uapi.DeviceFeature.MIGRATION,
        uapi.DeviceFeatureFlag.GET,
        8,
    )
    with pytest.raises(ValueError, match="flags"):
        edu.device.feature(uapi.DeviceFeature.MIGRATION, 0)


def test_device_forgotten_warns(host: Host) -> None:
    with Container(host.kernel) as c, Group(host.edu_group, kernel=host.kernel) as g:
        g.set_container(c)
        c.set_iommu()
        with pytest.warns(ResourceWarning, match="unclosed <Device"):
            g.open_device(host.edu)  # dropped at once
            gc.collect()
        with g.open_device(host.edu):  # the forgotten fd was closed: it opens again
            pass
