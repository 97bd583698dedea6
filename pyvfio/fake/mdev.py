"""Mediated devices as VFIO devices: the emulated IOMMU group and the vfio-dev cdev of an mdev.

An mdev driver's probe calls ``vfio_register_emulated_iommu_dev`` (drivers/vfio/vfio_main.c),
and group.c:vfio_group_find_or_alloc gives such a device a group of type
``VFIO_EMULATED_IOMMU``: a fresh IOMMU group (``iommu_group_alloc``: the lowest free number)
holding only that device, with no IOMMU behind it.  What follows from that, and is modelled:

* the group is always viable and nobody claims its DMA ownership (group.c only claims it for
  ``VFIO_IOMMU`` groups), so /dev/vfio/<N> opens and joins a type1 container without a check;
* in a type1 container the group brings no IOMMU domain (vfio_iommu_type1.c:
  vfio_iommu_type1_attach_group puts it on ``emulated_iommu_groups``), see
  :mod:`pyvfio.fake.container`;
* GET_DEVICE_FD takes the mdev's name (its UUID) exactly: mdev drivers have no ``match`` op, so
  vfio_device_get_from_name compares with strcmp;
* with iommufd the device binds as an *access* (vfio/iommufd.c:vfio_iommufd_emulated_bind), see
  :mod:`pyvfio.fake.emulated`.

:func:`register` and :func:`unregister` are what an mdev driver model (``pyvfio.fake.mtty``)
calls from its create/remove paths; the fake's bus keeps the device under its UUID beside the
PCI devices so the group and cdev code finds it like any VFIO device.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pyvfio.fake.memory import kerr

if TYPE_CHECKING:
    from pyvfio.fake.kernel import FakeKernel
    from pyvfio.fake.pci import PCIDevice


def register(kernel: FakeKernel, model: PCIDevice, sysfs_dir: str, driver: str) -> int:
    """vfio_register_emulated_iommu_dev for the mdev ``model`` (its ``bdf`` is the UUID) whose
    device directory is ``sysfs_dir``: an emulated IOMMU group of its own and a ``vfio-dev``
    cdev.  Returns the group number."""
    bus, sysfs, name = kernel.bus, kernel.sysfs, model.bdf
    group = bus.free_group()
    model.dma = kernel.nodes
    bus.devices[name] = model
    bus.group_of[name] = group
    bus.driver_of[name] = driver
    bus.emulated_groups.add(group)
    bus.vfio_drivers.add(driver)
    gdir = f"kernel/iommu_groups/{group}"
    sysfs.add_attr(f"{gdir}/type", "DMA\n")  # iommu.c:iommu_group_show_type, no default domain
    sysfs.add_attr(f"{gdir}/reserved_regions", "")
    sysfs.symlink(f"{gdir}/devices/{name}", sysfs_dir)
    sysfs.symlink(f"{sysfs_dir}/iommu_group", gdir)
    index = bus.next_vfio_index()
    bus.vfio_dev[name] = index
    sysfs.add_attr(f"{sysfs_dir}/vfio-dev/vfio{index}/dev", f"511:{index}\n")
    return group


def unregister(kernel: FakeKernel, name: str, sysfs_dir: str) -> None:
    """vfio_unregister_group_dev + the group's release.  Linux blocks until every fd of the
    device is closed (sending the REQ interrupt); the fake answers EBUSY instead and keeps
    the device, as its PCI unbind does."""
    bus = kernel.bus
    if bus.busy(name) or kernel.iommu.bound(name):
        raise kerr(errno.EBUSY)
    group = bus.group_of.pop(name)
    for table in (bus.devices, bus.driver_of, bus.vfio_dev):
        table.pop(name, None)
    bus.emulated_groups.discard(group)
    kernel.sysfs.remove(f"kernel/iommu_groups/{group}")
    kernel.sysfs.remove(f"{sysfs_dir}/iommu_group")
    kernel.sysfs.remove(f"{sysfs_dir}/vfio-dev")
