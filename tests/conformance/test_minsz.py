"""Every argsz/size ioctl refuses one byte less than its minimum (reference/minsz-6.12.txt).

The kernel copies ``offsetofend(struct, last field it needs)`` bytes and answers EINVAL below
that (VFIO ``argsz``, iommufd ``size``), before anything else looks at the struct.  One byte short
is the edge: a fake whose minimum were a field too small would accept it.
"""

from __future__ import annotations

import errno

import pytest

from pyvfio import uapi
from pyvfio._ffi import ffi
from tests.conformance.iommufd_helpers import iommufd_session
from tests.conformance.vfio_helpers import session
from tests.conftest import Host
from tests.helpers import expect_errno

DEVICE = {"VFIO_DEVICE_GET_INFO": 16, "VFIO_DEVICE_GET_REGION_INFO": 32,
          "VFIO_DEVICE_GET_IRQ_INFO": 16, "VFIO_DEVICE_SET_IRQS": 20,
          "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO": 12, "VFIO_DEVICE_PCI_HOT_RESET": 12,
          "VFIO_DEVICE_IOEVENTFD": 28, "VFIO_DEVICE_FEATURE": 8}
TYPE1 = {"VFIO_IOMMU_GET_INFO": 16, "VFIO_IOMMU_MAP_DMA": 32, "VFIO_IOMMU_UNMAP_DMA": 24,
         "VFIO_IOMMU_DIRTY_PAGES": 8}
IOMMUFD = {"IOMMU_DESTROY": 8, "IOMMU_IOAS_ALLOC": 12, "IOMMU_IOAS_ALLOW_IOVAS": 24,
           "IOMMU_IOAS_COPY": 40, "IOMMU_IOAS_IOVA_RANGES": 32, "IOMMU_IOAS_MAP": 40,
           "IOMMU_IOAS_UNMAP": 24, "IOMMU_OPTION": 24, "IOMMU_VFIO_IOAS": 12,
           "IOMMU_HWPT_ALLOC": 24, "IOMMU_GET_HW_INFO": 32, "IOMMU_HWPT_SET_DIRTY_TRACKING": 16,
           "IOMMU_HWPT_GET_DIRTY_BITMAP": 48, "IOMMU_HWPT_INVALIDATE": 32,
           "IOMMU_FAULT_QUEUE_ALLOC": 16}
CDEV_BOUND = {"VFIO_DEVICE_ATTACH_IOMMUFD_PT": 12, "VFIO_DEVICE_DETACH_IOMMUFD_PT": 8}


def _short(minsz: int) -> object:
    """A zeroed buffer whose argsz/size word says one byte less than ``minsz``."""
    buf = ffi.new("uint32_t[32]")
    buf[0] = minsz - 1
    return buf


@pytest.mark.parametrize("name", sorted(DEVICE))
def test_device_ioctl_one_byte_short_einval(host: Host, name: str) -> None:
    with session(host) as s:
        _, _, d = s.edu()
        expect_errno(errno.EINVAL, s.k.ioctl, d, uapi.IOCTLS[name], _short(DEVICE[name]))


@pytest.mark.parametrize("name", sorted(TYPE1))
def test_type1_ioctl_one_byte_short_einval(host: Host, name: str) -> None:
    if host.noiommu:
        pytest.skip("noiommu: no type1")
    with session(host) as s:
        c, _ = s.ready(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, c, uapi.IOCTLS[name], _short(TYPE1[name]))


def test_group_status_one_byte_short_einval(host: Host) -> None:
    with session(host) as s:
        g = s.group(host.edu_group)
        expect_errno(errno.EINVAL, s.k.ioctl, g, uapi.VFIO_GROUP_GET_STATUS, _short(8))


@pytest.mark.parametrize("name", sorted(IOMMUFD))
def test_iommufd_ioctl_one_byte_short_einval(host: Host, name: str) -> None:
    with iommufd_session(host) as s:
        fd = s.iommufd()
        expect_errno(errno.EINVAL, s.k.ioctl, fd, uapi.IOCTLS[name], _short(IOMMUFD[name]))


def test_bind_one_byte_short_einval(host: Host) -> None:
    with iommufd_session(host) as s:
        cdev = s.cdev(host.edu)
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.VFIO_DEVICE_BIND_IOMMUFD, _short(16))


@pytest.mark.parametrize("name", sorted(CDEV_BOUND))
def test_cdev_ioctl_one_byte_short_einval(host: Host, name: str) -> None:
    with iommufd_session(host) as s:
        _, _, cdev, _ = s.bound_edu()
        expect_errno(errno.EINVAL, s.k.ioctl, cdev, uapi.IOCTLS[name], _short(CDEV_BOUND[name]))
