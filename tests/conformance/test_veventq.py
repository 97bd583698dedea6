"""vEVENTQs: allocation limits, the read rules and events raised with TRIGGER_VEVENT (mock).

Specification: Linux 7.3 tools/testing/selftests/iommu/iommufd.c ``iommufd_viommu.vdevice_alloc``,
drivers/iommu/iommufd/eventq.c (iommufd_veventq_alloc, iommufd_veventq_fops_read), driver.c
(iommufd_viommu_report_event) and selftest.c (iommufd_test_trigger_vevent).  Needs a 6.15+ kernel
with CONFIG_IOMMUFD_TEST and mock devices (the lane's 7.3 mock profile); skips elsewhere.
"""

from __future__ import annotations

import errno
import struct

from pyvfio._ffi import C
from pyvfio.iommufd import IOMMUFD
from pyvfio.veventq import HEADER, VEVENTQ_MAX_DEPTH, VEventQ
from pyvfio.viommu import VDevice
from tests.conformance.mock_helpers import MockDevice, since, test_cmd
from tests.conformance.test_viommu import nested, viommu_fixture
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

SELFTEST = C.IOMMU_VEVENTQ_TYPE_SELFTEST
EVENT = HEADER.size + 4  # header + struct iommu_viommu_event_selftest


def trigger(fd: IOMMUFD, dev: MockDevice, n: int = 1) -> None:
    for _ in range(n):
        test_cmd(fd, C.IOMMU_TEST_OP_TRIGGER_VEVENT, trigger_vevent={"dev_id": dev.idev})


def test_veventq_depth_bounds_and_one_per_type(host: Host) -> None:
    with viommu_fixture(host) as (_, _, _, _, viommu):
        expect_errno(errno.EINVAL, since, host, "6.15", VEventQ, viommu, SELFTEST, 0)
        expect_errno(errno.EINVAL, VEventQ, viommu, SELFTEST, VEVENTQ_MAX_DEPTH + 1)
        expect_errno(errno.EOPNOTSUPP, VEventQ, viommu, C.IOMMU_VEVENTQ_TYPE_DEFAULT, 2)
        big = VEventQ(viommu, SELFTEST, VEVENTQ_MAX_DEPTH)
        expect_errno(errno.EEXIST, VEventQ, viommu, SELFTEST, 2)
        expect_ok(big.destroy)
        VEventQ(viommu, SELFTEST, 2).destroy()


def test_veventq_fd_holds_the_object(host: Host) -> None:
    """iommufd_eventq_init: the fd holds the object (IOMMU_DESTROY is EBUSY until it closes),
    and the queue holds its vIOMMU."""
    with viommu_fixture(host) as (fd, _, _, _, viommu):
        q = since(host, "6.15", VEventQ, viommu, SELFTEST, 2)
        expect_errno(errno.EBUSY, fd.destroy, q.id)
        expect_errno(errno.EBUSY, viommu.destroy)
        q.close()
        expect_ok(fd.destroy, q.id)


def test_veventq_read_rules(host: Host) -> None:
    """iommufd_veventq_fops_read: less than a header -> EINVAL, empty or not; a header without
    room for the event's data -> EINVAL; an empty queue reads 0 bytes."""
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        q = since(host, "6.15", VEventQ, viommu, SELFTEST, 2)
        k = fd.kernel
        expect_errno(errno.EINVAL, k.read, q.fileno(), 0)
        expect_errno(errno.EINVAL, k.read, q.fileno(), HEADER.size - 1)
        assert k.read(q.fileno(), EVENT) == b""
        hwpt = nested(fd, dev, viommu)
        vdev = VDevice.alloc(viommu, dev.idev, 0x99)
        dev.replace(fd, hwpt.id)
        trigger(fd, dev)
        expect_errno(errno.EINVAL, k.read, q.fileno(), 0)
        expect_errno(errno.EINVAL, k.read, q.fileno(), HEADER.size)
        [ev] = q.read()
        assert (ev.flags, ev.lost, struct.unpack("<I", ev.data)) == (0, 0, (0x99,))
        dev.replace(fd, ioas.id)
        vdev.destroy()
        hwpt.destroy()
        q.destroy()


def test_trigger_vevent_needs_vdevice_and_queue(host: Host) -> None:
    """iommufd_test_trigger_vevent: ENOENT unless the device sits in the vIOMMU's nested domain
    with a vDEVICE; EOPNOTSUPP when the vIOMMU has no queue of the type."""
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        expect_errno(errno.ENOENT, since, host, "6.15", trigger, fd, dev)
        hwpt = nested(fd, dev, viommu)
        vdev = VDevice.alloc(viommu, dev.idev, 0x99)
        dev.replace(fd, hwpt.id)
        expect_errno(errno.EOPNOTSUPP, trigger, fd, dev)
        dev.replace(fd, ioas.id)
        vdev.destroy()
        hwpt.destroy()


def test_veventq_overflow_and_sequence(host: Host) -> None:
    """vdevice_alloc: with depth 2 a third event is lost: the reader sees two events and a
    LOST_EVENTS header (no data); later events continue the sequence after the loss."""
    with viommu_fixture(host) as (fd, ioas, dev, _, viommu):
        q = since(host, "6.15", VEventQ, viommu, SELFTEST, 2)
        hwpt = nested(fd, dev, viommu)
        vdev = VDevice.alloc(viommu, dev.idev, 0x88)
        dev.replace(fd, hwpt.id)
        trigger(fd, dev, 3)
        events = q.read(8)
        assert [(e.flags, e.sequence) for e in events] == [
            (0, 0), (0, 1), (C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, 2)]
        assert [e.data for e in events] == [struct.pack("<I", 0x88)] * 2 + [b""]
        trigger(fd, dev)
        [after] = q.read()
        assert (after.flags, after.sequence, after.lost) == (0, 3, 0)
        dev.replace(fd, ioas.id)
        vdev.destroy()
        hwpt.destroy()
        q.destroy()
