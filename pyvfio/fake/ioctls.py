"""Every ioctl of the fake kernel, and which fd answers which: the one dispatch table.

Each handler module lists its ioctls in an ``OPS`` tuple of :class:`~pyvfio.fake.dispatch.Op`
(request, owner, handler, argument convention, struct and last field, ``since``); this module
concatenates them — nothing registers itself on import — and :func:`table` builds the
:class:`~pyvfio.fake.dispatch.IoctlTable` of one FakeKernel for its Linux version.

To add an ioctl: write the handler (``def IOMMU_X(ctx, io) -> None``, reading ``io.cmd`` and, if
an errno changed between versions, ``io.linux.at_least("6.15")``), add
``Op(uapi.IOMMU_X, "iommufd", IOMMU_X, Conv.SIZE, "struct iommu_x", "<last field>",
since="6.15")`` to its module's ``OPS`` and, for a new module, its ``OPS`` to :data:`ALL_OPS`.
Kernels older than ``since`` answer ENOTTY, as they do.

Spaces: what an fd answers in its current state (:meth:`~pyvfio.fake.uaccess.FakeFile.space`),
as a list of owners, and the errno of every other request (reference/uapi.md §1.1).
"""

from __future__ import annotations

import errno

from pyvfio.fake import (
    cdev,
    container,
    dirty,
    fault,
    group,
    hw_queue,
    hwpt,
    iommufd,
    mapfile,
    migration,
    mock_hwpt,
    noiommu,
    option,
    pasid,
    selftest,
    vdevice,
    veventq,
    vfio_compat,
    vfio_pci,
    viommu,
)
from pyvfio.fake.dispatch import IoctlTable, Op
from pyvfio.fake.linux import Linux

ALL_OPS: tuple[Op, ...] = (
    *container.OPS, *group.OPS, *vfio_pci.OPS, *cdev.OPS, *migration.OPS,
    *iommufd.OPS, *mapfile.OPS, *noiommu.OPS, *hwpt.OPS, *option.OPS, *vfio_compat.OPS,
    *viommu.OPS, *vdevice.OPS, *hw_queue.OPS, *mock_hwpt.OPS, *veventq.OPS,
    *dirty.OPS, *fault.OPS,
    selftest.test_cmd_op(pasid.TEST_OPS),
)


def spaces(*, cdev_config: bool) -> dict[str, tuple[int, tuple[str, ...]]]:
    """The fd states and what they answer; ``cdev_config``: CONFIG_VFIO_DEVICE_CDEV (the fake's
    ``iommufd`` knob), without which BIND_IOMMUFD on a group's device fd is ENOTTY."""
    return {
        # container.c:vfio_fops_unl_ioctl: EINVAL until an IOMMU driver is set
        "container": (errno.EINVAL, ("vfio",)),
        "container-type1": (errno.ENOTTY, ("vfio", "type1")),  # vfio_iommu_type1_ioctl
        "container-noiommu": (errno.ENOTTY, ("vfio",)),  # vfio_noiommu_ioctl
        "group": (errno.ENOTTY, ("group",)),  # vfio_group_fops_unl_ioctl
        "device": (errno.ENOTTY, ("device", "device-bind") if cdev_config else ("device",)),
        # vfio_device_fops_unl_ioctl: BIND, else EINVAL until access is granted
        "cdev-unbound": (errno.EINVAL, ("cdev-bind",)),
        "cdev": (errno.ENOTTY, ("device", "cdev-bind", "cdev")),
        "iommufd": (errno.ENOTTY, ("iommufd", "iommufd-vfio")),  # iommufd_fops_ioctl
        "iommufd-fault": (errno.ENOTTY, ()),
        "iommufd-veventq": (errno.ENOTTY, ()),
        "vfio-migration": (errno.ENOTTY, ("migration",)),  # vfio_check_precopy_ioctl
        "vfio-migration-resume": (errno.ENOTTY, ()),
        "dma-buf": (errno.ENOTTY, ()),  # no dma-buf ioctl is modelled (DMA_BUF_IOCTL_SYNC)
        "pagemap": (errno.ENOTTY, ()),  # /proc/self/pagemap (fake/physmem.py): no ioctls
    }


def table(linux: Linux, *, cdev_config: bool = True) -> IoctlTable:
    """Build the ioctl table of a kernel ``linux`` (see :mod:`pyvfio.fake.linux`)."""
    return IoctlTable(ALL_OPS, spaces(cdev_config=cdev_config), linux)
