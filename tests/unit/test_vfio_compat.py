"""Unit tests of pyvfio.vfio_compat on the FakeKernel: an iommufd as the groups' container."""

from __future__ import annotations

import errno
import mmap

import pytest

from pyvfio import uapi
from pyvfio.dma import allocate
from pyvfio.errors import CloseError
from pyvfio.fake import FakeKernel
from pyvfio.group import Group
from pyvfio.iommufd import IOMMUFD
from pyvfio.vfio_compat import CompatContainer
from tests.helpers import expect_errno
from tests.unit.vfio_env import load_example

EDU_GROUP = 1  # the lone edu of standard_host
PAGE = mmap.PAGESIZE


@pytest.fixture
def kernel(fake_kernel: FakeKernel) -> FakeKernel:
    return fake_kernel



def _edu_group(kernel: FakeKernel) -> Group:
    bdf = "0000:00:01.0"
    return Group.from_device(bdf, kernel=kernel)


def test_example_driver_through_the_compat_container(kernel: FakeKernel) -> None:
    """SET_CONTAINER(iommufd) creates the compat IOAS; the device DMAs through it."""
    example = load_example()
    with IOMMUFD(kernel) as fd:
        container = CompatContainer(fd)
        assert container.ioas_id is None
        group = _edu_group(kernel)
        group.set_container(container)
        assert container.ioas_id is not None and group.status().container_set
        assert container.set_iommu() == uapi.IOMMUType.TYPE1v2
        with group.open_device("0000:00:01.0") as device:
            back = example.exercise(device)
        assert back == bytes(i * 7 % 251 for i in range(example.COUNT))
    assert container.closed and group.closed


def test_compat_differences_from_type1(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd:
        ioas = fd.ioas()
        container = CompatContainer(fd, ioas)
        assert container.ioas_id == ioas.id
        buf = allocate(2 * PAGE)
        mapping = container.map(buf, 1 << 20)
        expect_errno(errno.ENOENT, container.unmap, 1 << 20, PAGE)  # type1v2: EINVAL
        assert container.unmap(1 << 24, PAGE) == 0  # nothing there: 0, as type1
        expect_errno(errno.ENOTTY, container.start_dirty_tracking)
        info = container.iommu_info()
        assert info.dma_avail == (1 << 32) - 1 and info.migration is None
        assert container.unmap(1 << 20, 2 * PAGE) == 2 * PAGE and mapping.closed


def test_no_compat_ioas_is_enodev(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd:
        container = CompatContainer(fd)
        expect_errno(errno.ENODEV, container.map, allocate(PAGE), 1 << 20)
        expect_errno(errno.ENODEV, container.iommu_info)


def test_closing_the_container_unmaps_its_mappings(kernel: FakeKernel) -> None:
    with IOMMUFD(kernel) as fd:
        ioas = fd.ioas()
        container = CompatContainer(fd, ioas)
        mapping = container.map(allocate(PAGE), 1 << 20)
        container.close()
        container.close()
        assert mapping.closed and container.closed
        with pytest.raises(ValueError, match="closed"):
            container.map(allocate(PAGE), 1 << 20)
        assert ioas.iova_ranges()  # the iommufd and its IOAS live on


def test_mappings_outlive_the_group(kernel: FakeKernel) -> None:
    """Unlike a legacy container, the compat IOAS keeps its mappings when the last group goes."""
    with IOMMUFD(kernel) as fd:
        container = CompatContainer(fd)
        group = _edu_group(kernel)
        group.set_container(container)
        mapping = container.map(allocate(PAGE), 1 << 20)
        group.close()
        assert not mapping.closed
        assert container.unmap(1 << 20, PAGE) == PAGE


def test_close_reports_a_refused_unmap_after_releasing_everything(kernel: FakeKernel) -> None:
    # fake-only: the real kernel cannot be made to refuse one unmap on demand (fault injection)
    with IOMMUFD(kernel) as fd:
        container = CompatContainer(fd, fd.ioas())
        first = container.map(allocate(PAGE), 1 << 20)
        second = container.map(allocate(PAGE), 2 << 20)
        kernel.inject(uapi.VFIO_IOMMU_UNMAP_DMA, errno.EIO)
        with pytest.raises(CloseError) as info:
            container.close()
        assert [step for step, _ in info.value.failures] == [f"unmap IOVA {1 << 20:#x}+{PAGE:#x}"]
        assert info.value.errno == errno.EIO
        assert first.closed and second.closed and container.closed and len(container) == 0
        container.close()  # a second close does nothing
