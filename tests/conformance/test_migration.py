"""Migration uAPI v2 and DMA logging on mtty: every arc, the data fds, PRECOPY_INFO, a real move.

Specification: Linux 7.3 drivers/vfio/vfio_main.c (vfio_mig_get_next_state,
vfio_ioctl_device_feature_mig_device_state, ..._logging_start/stop/report, vfio_check_feature)
and samples/vfio-mdev/mtty.c (mtty_set_state, mtty_step_state, the save/resume files).  On Linux
the devices are two mtty-2 mdevs created through sysfs (the lane's 7.3 profiles load mtty), on the
fake too (pyvfio.fake.mtty: the same mdevs, emulated groups, mtty's device file and migration
driver).  Kernels without mtty skip.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
import uuid
from collections.abc import Iterator

import pytest

from pyvfio import uapi
from pyvfio._ffi import C, new
from pyvfio.container import Container
from pyvfio.device import Device
from pyvfio.fake.mtty import add_mtty
from pyvfio.group import Group
from pyvfio.migration import DataFile, Migration
from tests.conformance.mock_helpers import since
from tests.conftest import Host
from tests.helpers import expect_errno, expect_ok

STATES = (C.VFIO_DEVICE_STATE_STOP, C.VFIO_DEVICE_STATE_RUNNING, C.VFIO_DEVICE_STATE_STOP_COPY,
          C.VFIO_DEVICE_STATE_RESUMING, C.VFIO_DEVICE_STATE_RUNNING_P2P,
          C.VFIO_DEVICE_STATE_PRE_COPY, C.VFIO_DEVICE_STATE_PRE_COPY_P2P)
STOP, RUNNING = C.VFIO_DEVICE_STATE_STOP, C.VFIO_DEVICE_STATE_RUNNING
STOP_COPY, RESUMING = C.VFIO_DEVICE_STATE_STOP_COPY, C.VFIO_DEVICE_STATE_RESUMING
PRE_COPY, PRE_COPY_P2P = C.VFIO_DEVICE_STATE_PRE_COPY, C.VFIO_DEVICE_STATE_PRE_COPY_P2P
PRE = (PRE_COPY, PRE_COPY_P2P)
HEADER, PORT = 24, 36  # struct mtty_data up to ports, struct serial_port
MTTY_TYPES = "class/mdev_bus/mtty/mdev_supported_types"
SCR, LCR, IER, RBR = 7, 3, 1, 0


def _mttys(host: Host, n: int) -> Iterator[list[tuple[int, str]]]:
    """``n`` fresh mtty-2 mdevs, created through sysfs (the fake: after ``modprobe mtty``,
    pyvfio.fake.mtty.add_mtty), removed afterwards; (group, UUID) each."""
    k = host.kernel
    create = f"{MTTY_TYPES}/mtty-2/create"
    if host.profile == "fake":
        add_mtty(k)  # type: ignore[arg-type]
    if not k.sysfs_exists(create):
        pytest.skip(f"{host.profile}: no mtty (samples/vfio-mdev, CONFIG_SAMPLE_VFIO_MDEV_MTTY)")
    made: list[str] = []
    try:
        for _ in range(n):
            u = str(uuid.uuid4())
            k.sysfs_write(create, u)
            made.append(u)
        yield [(int(os.path.basename(k.sysfs_readlink(f"bus/mdev/devices/{u}/iommu_group"))), u)
               for u in made]
    finally:
        for u in made:
            k.sysfs_write(f"bus/mdev/devices/{u}/remove", "1")


@pytest.fixture
def mttys(host: Host) -> Iterator[list[Device]]:
    """Two mtty-2 devices opened through their groups in one type1 container."""
    for found in _mttys(host, 2):
        container = Container(host.kernel)
        groups, devices = [], []
        try:
            for number, _ in found:
                group = Group(number, kernel=host.kernel)
                groups.append(group)
                group.set_container(container)
                if len(groups) == 1:
                    container.set_iommu()
            devices = [g.open_device(name) for g, (_, name) in zip(groups, found, strict=True)]
            yield devices
        finally:
            for d in devices:
                d.close()
            for g in groups:
                g.close()
            container.close()


def uart(dev: Device, port: int, reg: int, value: int | None = None) -> int:
    """Read (or write) one register of serial port ``port`` (BAR ``port``)."""
    if value is None:
        return dev.read(port, reg, 1)[0]
    dev.write(port, reg, bytes([value]))
    return value


def test_migration_flags_and_size(mttys: list[Device]) -> None:
    """VFIO_DEVICE_FEATURE_MIGRATION: mtty does STOP_COPY | P2P | PRE_COPY, starts RUNNING, and
    its STOP_COPY data is the header and two ports."""
    mig = Migration(mttys[0])
    want = C.VFIO_MIGRATION_STOP_COPY | C.VFIO_MIGRATION_P2P | C.VFIO_MIGRATION_PRE_COPY
    assert mig.flags == want
    assert mig.state == RUNNING
    assert mig.data_size() == HEADER + 2 * PORT


def test_feature_op_rules(mttys: list[Device]) -> None:
    """vfio_check_feature: MIGRATION is GET-only, LOGGING_STOP SET-only (EINVAL otherwise);
    GET and SET together without PROBE -> EINVAL; PROBE answers which ops exist."""
    dev, mig = mttys[0], Migration(mttys[0])
    get, set_ = C.VFIO_DEVICE_FEATURE_GET, C.VFIO_DEVICE_FEATURE_SET
    expect_errno(errno.EINVAL, dev.feature, C.VFIO_DEVICE_FEATURE_MIGRATION, set_, 8)
    expect_errno(errno.EINVAL, dev.feature, C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, get | set_, 8)
    expect_errno(errno.EINVAL, dev.feature, C.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, get)
    assert mig.supports(C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, get | set_)
    assert not mig.supports(C.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, set_)
    expect_errno(errno.EINVAL, dev.feature, C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, get, 4)


def _valid_stream(dev: Device) -> bytes:
    """A STOP_COPY stream of ``dev`` (left in STOP)."""
    mig = Migration(dev)
    mig.set_state(STOP)
    f = mig.set_state(STOP_COPY)
    assert f is not None
    with f:
        data = f.read_all()
    mig.set_state(STOP)
    return data


def _opens_file(cur: int, new: int) -> bool:
    """mtty_step_state: the arcs whose end returns a new data fd."""
    if cur == new:
        return False
    if new in PRE:
        return cur not in PRE
    if new == STOP_COPY:
        return cur not in PRE  # from PRE_COPY the pre-copy file carries on
    return new == RESUMING


def test_every_arc(mttys: list[Device]) -> None:
    """vfio_mig_get_next_state over all 7 x 7 (cur, new): STOP_COPY -> PRE_COPY(_P2P) is
    EINVAL, everything else reaches ``new``; a data fd comes exactly when the last arc opens a
    file; ERROR is never a target."""
    dev, other = mttys
    mig = Migration(dev)
    stream = _valid_stream(other)
    for cur, target in itertools.product(STATES, STATES):
        dev.reset()
        assert mig.state == RUNNING, (cur, target)
        files: list[DataFile] = []
        try:
            if f := mig.set_state(cur):
                files.append(f)
            if cur == RESUMING:
                assert f is not None
                f.write(stream)
            if cur == STOP_COPY and target in PRE:
                expect_errno(errno.EINVAL, mig.set_state, target)
                assert mig.state == STOP_COPY
                continue
            g = expect_ok(mig.set_state, target)
            if g is not None:
                files.append(g)
            assert (mig.state, g is not None) == (target, _opens_file(cur, target)), (cur, target)
        finally:
            for f in files:
                f.close()
        expect_errno(errno.EINVAL, mig.set_state, C.VFIO_DEVICE_STATE_ERROR)
    dev.reset()


def test_move_running_mtty(mttys: list[Device]) -> None:
    """Save a running mtty (PRE_COPY, then STOP_COPY on the same fd), resume it in another
    (RESUMING, STOP, RUNNING): registers and the loopback FIFO arrive; the destination saves
    the very same bytes."""
    src, dst = mttys
    for reg, value in ((SCR, 0x5A), (LCR, 0x03), (IER, 0x05)):
        uart(src, 0, reg, value)
    uart(src, 1, SCR, 0xA5)
    for ch in b"hi":
        uart(src, 0, RBR, ch)
    out, into = Migration(src), Migration(dst)
    with out.set_state(PRE_COPY) as f:  # type: ignore[union-attr]
        assert f.precopy_info().initial_bytes == HEADER
        stream = f.read(HEADER)
        assert f.precopy_info().initial_bytes == 0
        assert out.set_state(STOP_COPY) is None  # the pre-copy fd goes on
        stream += f.read_all()
    assert len(stream) == out.data_size()
    out.set_state(STOP)
    into.set_state(STOP)
    with into.set_state(RESUMING) as g:  # type: ignore[union-attr]
        assert g.write(stream) == len(stream)
        into.set_state(STOP)
    again = _valid_stream(dst)
    assert again == stream
    into.set_state(RUNNING)
    assert [uart(dst, 0, r) for r in (SCR, LCR, IER)] == [0x5A, 0x03, 0x05]
    assert uart(dst, 1, SCR) == 0xA5
    assert bytes(uart(dst, 0, RBR) for _ in range(2)) == b"hi"
    out.set_state(RUNNING)


def test_data_file_rules(mttys: list[Device]) -> None:
    """PRECOPY_INFO only in PRE_COPY states (EINVAL), a file left behind is disabled (ENODEV),
    a resuming file has no ioctl (ENOTTY); RESUMING takes no more than the device's size
    (ENOMEM), refuses a foreign header (EFAULT) and a short stream at STOP (EINVAL, the device
    stays RESUMING)."""
    dev = mttys[0]
    mig = Migration(dev)
    mig.set_state(STOP)
    with mig.set_state(STOP_COPY) as f:  # type: ignore[union-attr]
        expect_errno(errno.EINVAL, f.precopy_info)
        mig.set_state(STOP)
        expect_errno(errno.ENODEV, f.read)
    with mig.set_state(RESUMING) as g:  # type: ignore[union-attr]
        expect_errno(errno.ENOTTY, g.precopy_info)
        expect_errno(errno.ENOMEM, g.write, bytes(mig.data_size() + 1))
        expect_errno(errno.EFAULT, g.write, bytes(HEADER))
        expect_errno(errno.EINVAL, mig.set_state, STOP)
        assert mig.state == RESUMING
    dev.reset()
    assert mig.state == RUNNING


def test_precopy_info_v2(host: Host, mttys: list[Device]) -> None:
    """MIG_PRECOPY_INFOv2 (7.x) is SET-only; after it PRECOPY_INFO's flags are an output (0)."""
    mig = Migration(mttys[0])
    since(host, "7.x (VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2)", mig.enable_precopy_info_v2)
    with mig.set_state(PRE_COPY) as f:  # type: ignore[union-attr]
        arg = new("struct vfio_precopy_info *", argsz=24, flags=0xFF)
        mttys[0]._kernel.ioctl(f.fileno(), uapi.VFIO_MIG_GET_PRECOPY_INFO, arg)
        assert (arg.flags, arg.initial_bytes) == (0, HEADER)
    mig.set_state(RUNNING)


def test_dma_logging(mttys: list[Device]) -> None:
    """DMA_LOGGING_START checks its ranges (EINVAL: none, unaligned, overlapping); REPORT wants
    a power-of-two page of at least 4 KiB; mtty does no DMA, so nothing is ever dirty."""
    dev, mig = mttys[0], Migration(mttys[0])
    assert mig.start_logging([(0, 1 << 20), (2 << 20, 1 << 20)]) == 4096
    expect_errno(errno.EINVAL, mig.start_logging, [(0, 8192), (4096, 8192)])
    expect_errno(errno.EINVAL, mig.start_logging, [(100, 4096)])
    empty = struct.pack("<QIIQ", 4096, 0, 0, 0)
    expect_errno(errno.EINVAL, dev.feature, C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                 C.VFIO_DEVICE_FEATURE_SET, empty)
    assert mig.report(0, 1 << 20) == []
    expect_errno(errno.EINVAL, mig.report, 0, 1 << 20, 2048)
    expect_errno(errno.EINVAL, mig.report, 0, 1 << 20, 3 * 4096)
    expect_errno(errno.EOVERFLOW, mig.report, (1 << 64) - 4096, 8192)
    expect_ok(mig.stop_logging)


def test_no_migration_on_vfio_pci(host: Host) -> None:
    """vfio-pci without a variant driver has no mig_ops/log_ops: every feature is ENOTTY."""
    bdf, number = host.edu, host.edu_group  # skips first where there is no edu
    with Container(host.kernel) as container, Group(number, kernel=host.kernel) as group:
        group.set_container(container)
        container.set_iommu()
        with group.open_device(bdf) as dev:
            mig = Migration(dev)
            expect_errno(errno.ENOTTY, lambda: mig.flags)
            expect_errno(errno.ENOTTY, lambda: mig.state)
            expect_errno(errno.ENOTTY, mig.set_state, STOP)
            expect_errno(errno.ENOTTY, mig.start_logging, [(0, 4096)])


def test_precopy_info_v2_without_pre_copy(host: Host) -> None:
    """vfio_main.c:vfio_ioctl_device_feature_migration_precopy_info_v2 (7.3) asks
    migration_flags for PRE_COPY before vfio_check_feature: vfio-pci (no migration) answers
    EINVAL to SET, PROBE and GET alike; 6.12 hands feature 12 to the driver (ENOTTY)."""
    bdf, number = host.edu, host.edu_group
    want = errno.EINVAL if host.linux_at_least(7, 3) else errno.ENOTTY
    with Container(host.kernel) as container, Group(number, kernel=host.kernel) as group:
        group.set_container(container)
        container.set_iommu()
        with group.open_device(bdf) as dev:
            for flags in (C.VFIO_DEVICE_FEATURE_SET,
                          C.VFIO_DEVICE_FEATURE_SET | C.VFIO_DEVICE_FEATURE_PROBE,
                          C.VFIO_DEVICE_FEATURE_GET):
                expect_errno(want, dev.feature, C.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, flags)
