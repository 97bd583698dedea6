"""I/O page faults through a fault queue: TRIGGER_IOPF on the mock, read, respond (mock).

Specification: Linux 7.3 tools/testing/selftests/iommu/iommufd.c (``iommufd_ioas.alloc_hwpt_nested``
iopf part, ``iommufd_viommu.viommu_alloc_nested_iopf``, ``_test_cmd_trigger_iopf``),
drivers/iommu/iommufd/eventq.c (iommufd_fault_fops_read/write) and selftest.c
(iommufd_test_trigger_iopf).  Needs CONFIG_IOMMUFD_TEST with mock devices (the lane's mock
profiles, 6.12 and 7.3: TRIGGER_IOPF and fault queues exist since 6.11).
"""

from __future__ import annotations

import errno
import struct

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, ffi, new
from pyvfio.hwpt import HWPT, FaultQueue
from pyvfio.iommufd import IOMMUFD
from pyvfio.viommu import VDevice
from tests.conformance.mock_helpers import (
    MockDevice,
    mock_iommufd,
    nest_parent,
    require_linux,
    test_cmd,
)
from tests.conformance.test_viommu import nested, selftest_data, viommu_fixture
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

PGFAULT = ffi.sizeof("struct iommu_hwpt_pgfault")
RW = C.IOMMU_PGFAULT_PERM_READ | C.IOMMU_PGFAULT_PERM_WRITE


def trigger_iopf(fd: IOMMUFD, dev: MockDevice, pasid: int = 1, addr: int = 0xDEADBEAF) -> None:
    """_test_cmd_trigger_iopf's request: grpid 2, read+write."""
    test_cmd(fd, C.IOMMU_TEST_OP_TRIGGER_IOPF, trigger_iopf={
        "dev_id": dev.idev, "pasid": pasid, "grpid": 2, "perm": RW, "addr": addr})


# Linux 6.12's mock refuses every HWPT with a fault queue (seen in the lane's 6.12 mock profile:
# a nested one EINVAL before the fault id is looked up, a paging one EOPNOTSUPP from
# hw_pagetable.c:iommufd_hwpt_paging_alloc's valid_flags); 7.3 accepts both.  The release between
# them that changed it is not pinned: the lane runs 6.12 and 7.3 only, so "7.3" is the gate.
IOPF_HWPT = "7.3"


def bad_fault_id_alloc(dev: MockDevice, parent: HWPT) -> tuple[object, object]:
    """IOMMU_HWPT_ALLOC of a nested selftest HWPT under ``parent`` with FAULT_ID_VALID and a
    fault id that is no object; returns the argument and the data buffer it points to (keep it)."""
    data = ffi.from_buffer(selftest_data())
    arg = new("struct iommu_hwpt_alloc *", flags=C.IOMMU_HWPT_FAULT_ID_VALID, dev_id=dev.idev,
              pt_id=parent.id, data_type=C.IOMMU_HWPT_DATA_SELFTEST, data_len=len(data),
              data_uptr=int(ffi.cast("uintptr_t", data)), fault_id=0xFFFFFFFF)
    return arg, data


def require_linux_before(host: Host, version: str) -> None:
    """Skip on ``version`` and newer (a rule of the older kernels only)."""
    major, minor = (int(x) for x in version.split("."))
    if host.linux_at_least(major, minor):
        pytest.skip(f"{host.profile}: kernel before Linux {version} only")


def test_iopf_hwpt_alloc_refused_before_7_3(host: Host) -> None:
    """6.12's mock: nested + FAULT_ID_VALID -> EINVAL (even for a bad fault id), paging +
    FAULT_ID_VALID -> EOPNOTSUPP."""
    if host.profile == "fake":
        pytest.skip("real 6.12 only: the fake does not model 6.12's refusal (7.3's fault HWPTs)")
    require_linux_before(host, IOPF_HWPT)
    with mock_iommufd(host) as (fd, ioas, dev):
        parent = nest_parent(fd, ioas, dev)
        with FaultQueue(fd) as queue:
            arg, _data = bad_fault_id_alloc(dev, parent)
            expect_errno(errno.EINVAL, fd.call, uapi.IOMMU_HWPT_ALLOC, arg)
            expect_errno(errno.EINVAL, HWPT.alloc, fd, dev.idev, parent, fault=queue,
                         data_type=C.IOMMU_HWPT_DATA_SELFTEST, data=selftest_data())
            expect_errno(errno.EOPNOTSUPP, HWPT.alloc, fd, dev.idev, ioas, fault=queue)


def test_iopf_hwpt_alloc_checks(host: Host) -> None:
    """A fault id that is no FAULT -> ENOENT; FAULT_ID_VALID with NEST_PARENT -> EOPNOTSUPP."""
    require_linux(host, IOPF_HWPT)
    with mock_iommufd(host) as (fd, ioas, dev):
        parent = nest_parent(fd, ioas, dev)
        with FaultQueue(fd) as queue:
            arg, _data = bad_fault_id_alloc(dev, parent)
            expect_errno(errno.ENOENT, fd.call, uapi.IOMMU_HWPT_ALLOC, arg)
            expect_errno(errno.EOPNOTSUPP, HWPT.alloc, fd, dev.idev, ioas, nest_parent=True,
                         fault=queue)
            hwpt = HWPT.alloc(fd, dev.idev, parent, fault=queue,
                              data_type=C.IOMMU_HWPT_DATA_SELFTEST, data=selftest_data())
            expect_errno(errno.EBUSY, fd.destroy, queue.id)  # the HWPT and the fd hold it
            hwpt.destroy()


def test_iopf_delivered_and_answered(host: Host) -> None:
    """TRIGGER_IOPF on a device in a HWPT with a fault queue: one record (LAST_PAGE, PASID_VALID
    for PASID 1 reaching the RID's nested domain), cookie from 1; the response takes it once."""
    require_linux(host, IOPF_HWPT)
    with mock_iommufd(host) as (fd, ioas, dev):
        parent = nest_parent(fd, ioas, dev)
        queue = FaultQueue(fd)
        hwpt = HWPT.alloc(fd, dev.idev, parent, fault=queue,
                          data_type=C.IOMMU_HWPT_DATA_SELFTEST, data=selftest_data())
        dev.replace(fd, hwpt.id)
        expect_errno(errno.EBUSY, hwpt.destroy)
        assert queue.read() == []  # nothing yet: the kernel does not block
        trigger_iopf(fd, dev)
        [fault] = queue.read()
        flags = C.IOMMU_PGFAULT_FLAGS_LAST_PAGE | C.IOMMU_PGFAULT_FLAGS_PASID_VALID
        assert (fault.flags, fault.dev_id, fault.pasid, fault.grpid, fault.perm) == (
            flags, dev.idev, 1, 2, RW)
        assert (fault.addr, fault.length, fault.cookie) == (0xDEADBEAF, 0, 1)
        expect_ok(queue.respond, fault.cookie)
        expect_errno(errno.EINVAL, queue.respond, fault.cookie)
        dev.replace(fd, ioas.id)
        hwpt.destroy()
        queue.close()
        expect_ok(fd.destroy, queue.id)


def test_fault_fd_read_write_rules(host: Host) -> None:
    """iommufd_fault_fops_read/write: a size that is no multiple of the record -> ESPIPE; a
    waiting fault that does not fit -> EINVAL; a bad response code or cookie -> EINVAL."""
    require_linux(host, IOPF_HWPT)
    with mock_iommufd(host) as (fd, ioas, dev):
        queue = FaultQueue(fd)
        hwpt = HWPT.alloc(fd, dev.idev, ioas, fault=queue)
        dev.replace(fd, hwpt.id)
        k, qfd = fd.kernel, queue.fileno()
        expect_errno(errno.ESPIPE, k.read, qfd, PGFAULT + 1)
        trigger_iopf(fd, dev, pasid=0)
        expect_errno(errno.EINVAL, k.read, qfd, 0)
        raw = k.read(qfd, 2 * PGFAULT)
        assert len(raw) == PGFAULT
        cookie = struct.unpack_from("<I", raw, 36)[0]
        expect_errno(errno.ESPIPE, k.write, qfd, struct.pack("<II", cookie, 0) + b"\0")
        expect_errno(errno.EINVAL, k.write, qfd, struct.pack("<II", cookie, 2))
        expect_errno(errno.EINVAL, k.write, qfd, struct.pack("<II", cookie + 1, 0))
        assert k.write(qfd, struct.pack("<II", cookie, C.IOMMUFD_PAGE_RESP_INVALID)) == 8
        dev.replace(fd, ioas.id)
        hwpt.destroy()
        queue.close()


def test_iopf_without_fault_queue_is_dropped(host: Host) -> None:
    """A page request to a domain without a fault queue goes nowhere; the op still succeeds."""
    with mock_iommufd(host) as (fd, _, dev):
        queue = FaultQueue(fd)
        expect_ok(trigger_iopf, fd, dev, 0)
        assert queue.read() == []
        queue.close()


def test_viommu_nested_iopf(host: Host) -> None:
    """viommu_alloc_nested_iopf: a vIOMMU's nested HWPT with a fault queue takes the device once
    it has a vDEVICE, and its faults reach the queue."""
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        queue = FaultQueue(fd)
        expect_errno(errno.EOPNOTSUPP, HWPT.alloc, fd, dev.idev, viommu, nest_parent=True,
                     fault=queue, data_type=C.IOMMU_HWPT_DATA_SELFTEST, data=selftest_data())
        hwpt = nested(fd, dev, viommu, fault=queue)
        expect_errno(errno.ENOENT, dev.replace, fd, hwpt.id)
        vdev = VDevice.alloc(viommu, dev.idev, 0x99)
        dev.replace(fd, hwpt.id)
        expect_errno(errno.EBUSY, hwpt.destroy)
        trigger_iopf(fd, dev)
        [fault] = queue.read()
        queue.respond(fault.cookie)
        dev.replace(fd, ioas.id)
        hwpt.destroy()
        vdev.destroy()
        queue.close()
