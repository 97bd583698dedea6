"""Unit tests of pyvfio.hwpt (HWPT, FaultQueue) and IOAS extras on the FakeKernel."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest

from pyvfio import dma
from pyvfio._ffi import C
from pyvfio.cdev import CdevDevice
from pyvfio.fake import FakeKernel, standard_host
from pyvfio.hwpt import HWPT, FaultQueue
from pyvfio.iommufd import IOAS, IOMMUFD
from tests.helpers import expect_errno

EDU = "0000:00:01.0"
PAGE = 4096


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    k = standard_host(iommufd=True)
    k.iommu.model.dirty_tracking = True
    k.iommu.model.nesting = True
    yield k
    k.assert_clean()


@pytest.fixture
def bound(kernel: FakeKernel) -> Iterator[tuple[IOMMUFD, IOAS, CdevDevice]]:
    with IOMMUFD(kernel) as fd, CdevDevice(EDU, kernel=kernel) as dev:
        dev.bind(fd)
        yield fd, fd.ioas(), dev


def _device_write(kernel: FakeKernel, iova: int, data: bytes) -> bool:
    return kernel.dma_write(kernel.bus.devices[EDU], iova, data)


def test_dirty_tracking_reports_written_pages(kernel: FakeKernel, bound: tuple) -> None:
    fd, ioas, dev = bound
    hwpt = HWPT.alloc(fd, dev.dev_id, ioas, dirty_tracking=True)
    dev.attach(hwpt)
    m = ioas.map(dma.allocate(4 * PAGE), 0x10000)
    hwpt.set_dirty_tracking(True)
    assert _device_write(kernel, 0x10000 + PAGE, b"abc")
    assert hwpt.dirty_bitmap(0x10000, 4 * PAGE, clear=False) == [0x10000 + PAGE]
    assert hwpt.dirty_bitmap(0x10000, 4 * PAGE) == [0x10000 + PAGE]
    assert hwpt.dirty_bitmap(0x10000, 4 * PAGE) == []
    m.close()
    dev.detach()
    hwpt.destroy()


def test_dirty_bitmap_arguments_checked_first(bound: tuple) -> None:
    fd, ioas, dev = bound
    hwpt = HWPT.alloc(fd, dev.dev_id, ioas)
    with pytest.raises(ValueError, match="page_size"):
        hwpt.dirty_bitmap(0x1000, 0x3000, page_size=0x2000)
    expect_errno(errno.EOPNOTSUPP, hwpt.set_dirty_tracking, True)
    hwpt.destroy()
    hwpt.destroy()  # idempotent


def test_destroy_attached_hwpt_ebusy(bound: tuple) -> None:
    fd, ioas, dev = bound
    with HWPT.alloc(fd, dev.dev_id, ioas) as hwpt:
        assert dev.attach(hwpt) == hwpt.id
        expect_errno(errno.EBUSY, hwpt.destroy)
        dev.detach()


def test_nested_hwpt_invalidate(bound: tuple) -> None:
    fd, ioas, dev = bound
    parent = HWPT.alloc(fd, dev.dev_id, ioas, nest_parent=True)
    s1 = struct.pack("<QQII", 0, 0x1000, 0, 0)  # struct iommu_hwpt_vtd_s1: flags, pgtbl, width
    nested = HWPT.alloc(fd, dev.dev_id, parent, data_type=C.IOMMU_HWPT_DATA_VTD_S1, data=s1)
    entry = struct.pack("<QQII", 0x1000, 1, C.IOMMU_VTD_INV_FLAGS_LEAF, 0)
    assert nested.invalidate(entry * 3, len(entry)) == 3
    expect_errno(errno.EBUSY, parent.destroy)  # the nested one holds it
    nested.destroy()
    parent.destroy()


def test_fault_queue_gets_device_faults(kernel: FakeKernel, bound: tuple) -> None:
    fd, ioas, dev = bound
    with FaultQueue(fd) as queue:
        hwpt = HWPT.alloc(fd, dev.dev_id, ioas, fault=queue)
        dev.attach(hwpt)
        assert not _device_write(kernel, 0x5000, b"!")
        [fault] = queue.read()
        assert (fault.dev_id, fault.addr, fault.perm) == (dev.dev_id, 0x5000, 2)
        queue.respond(fault.cookie)
        dev.detach()
        hwpt.destroy()


def test_hwpt_alloc_checks_arguments(bound: tuple) -> None:
    fd, _, dev = bound
    with pytest.raises(TypeError, match="pt"):
        HWPT.alloc(fd, dev.dev_id, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HWPT.alloc(fd, 0, fd.ioas())


def test_map_file_returns_iova(bound: tuple) -> None:
    _, ioas, _ = bound
    memfd = os.memfd_create("pyvfio-test")
    try:
        os.ftruncate(memfd, 2 * PAGE)
        iova = ioas.map_file(memfd, 0, 2 * PAGE)
        assert iova >= PAGE and ioas.unmap(iova, 2 * PAGE) == 2 * PAGE
    finally:
        os.close(memfd)


def test_map_file_absent_before_6_13() -> None:
    kernel = standard_host(iommufd=True, linux="6.12")
    with IOMMUFD(kernel) as fd:
        expect_errno(errno.ENOTTY, fd.ioas().map_file, 3, 0, PAGE)
    kernel.assert_clean()
