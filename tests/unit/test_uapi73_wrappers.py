"""Argument checks of the 7.x wrappers (migration, dma-buf, vIOMMU, vEVENTQ, HW queue): bad input
is a ValueError/TypeError before any system call, and leaves nothing open."""

from __future__ import annotations

import os

import pytest

from pyvfio.device import Device
from pyvfio.dmabuf import DmaBuf
from pyvfio.fake import FakeKernel
from pyvfio.hwpt import HWPT
from pyvfio.iommufd import IOMMUFD
from pyvfio.migration import Migration
from pyvfio.veventq import VEventQ
from pyvfio.viommu import VIOMMU, HWQueue, VDevice


def test_migration_rejects_unknown_state(fake_device: Device) -> None:
    mig = Migration(fake_device)
    with pytest.raises(ValueError):
        mig.set_state(99)
    with pytest.raises(ValueError, match="ranges"):
        mig.start_logging([])
    with pytest.raises(ValueError):
        mig.report(0, 0)


def test_dmabuf_argument_checks(fake_device: Device) -> None:
    with pytest.raises(ValueError, match="ranges"):
        DmaBuf(fake_device, 0, [])
    with pytest.raises(ValueError):
        DmaBuf(fake_device, 7, [(0, 4096)])  # the ROM and beyond are no BARs
    with pytest.raises(ValueError):
        DmaBuf(fake_device, 0, [(-1, 4096)])
    before = set(os.listdir("/proc/self/fd"))
    with DmaBuf(fake_device, 0, [(0, 4096)], open_flags=os.O_RDWR) as buf:
        assert buf.size == 4096 and buf.fileno() >= 0
    assert set(os.listdir("/proc/self/fd")) == before


def test_viommu_wrappers_check_ids(fake_kernel: FakeKernel) -> None:
    with IOMMUFD(fake_kernel) as fd:
        parent = HWPT(fd, 1)
        with pytest.raises(ValueError):
            VIOMMU.alloc(fd, 0, parent, 1)  # dev_id 0 is never a device
        viommu = VIOMMU(fd, 5, parent, 1)
        with pytest.raises(ValueError):
            VDevice.alloc(viommu, 1, -1)
        with pytest.raises(ValueError):
            HWQueue.alloc(viommu, 1, 0, 1 << 64, 4096)
        with pytest.raises(ValueError):
            viommu.invalidate(b"\0" * 5, 4, 0)  # not a whole number of records
        with pytest.raises(TypeError):
            VEventQ(viommu, "selftest", 2)  # type: ignore[arg-type]
