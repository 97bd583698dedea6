"""VFIO migration uAPI v2 and DMA logging for fake devices (Linux 7.3 drivers/vfio/vfio_main.c).

The core half is the kernel's: VFIO_DEVICE_FEATURE_MIGRATION (GET the flags),
MIG_DEVICE_STATE (GET the state; SET walks :func:`next_state`'s arcs one by one, the driver
taking each, and hands out a data fd when the last arc opens one), MIG_DATA_SIZE,
MIG_PRECOPY_INFOv2, DMA_LOGGING_START/STOP/REPORT, each with vfio_check_feature's rules.  A device
without a driver here answers ENOTTY, as vfio-pci without a variant driver does.

The driver half is a :class:`MigrationDriver`; :class:`pyvfio.fake.mtty.MttyMigration` is the one
modelled (samples/vfio-mdev/mtty.c).  Data fds are :class:`DataFile`: reading a saving file,
writing a resuming one, VFIO_MIG_GET_PRECOPY_INFO in the PRE_COPY states.
"""

from __future__ import annotations

import abc
import errno
import struct
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg

ERROR, STOP = C.VFIO_DEVICE_STATE_ERROR, C.VFIO_DEVICE_STATE_STOP
RUNNING = C.VFIO_DEVICE_STATE_RUNNING
STOP_COPY, RESUMING = C.VFIO_DEVICE_STATE_STOP_COPY, C.VFIO_DEVICE_STATE_RESUMING
RUNNING_P2P, PRE_COPY = C.VFIO_DEVICE_STATE_RUNNING_P2P, C.VFIO_DEVICE_STATE_PRE_COPY
PRE_COPY_P2P = C.VFIO_DEVICE_STATE_PRE_COPY_P2P
NUM_STATES = PRE_COPY_P2P + 1
SC, P2P, PRE = C.VFIO_MIGRATION_STOP_COPY, C.VFIO_MIGRATION_P2P, C.VFIO_MIGRATION_PRE_COPY
LOG_MAX_RANGES = 1024  # vfio_main.c
GET, SET = C.VFIO_DEVICE_FEATURE_GET, C.VFIO_DEVICE_FEATURE_SET

# vfio_mig_get_next_state: FROM[cur][new] is the next state on the way from cur to new
_ORDER = (STOP, RUNNING, PRE_COPY, PRE_COPY_P2P, STOP_COPY, RESUMING, RUNNING_P2P, ERROR)
_ROWS = {
    STOP: (STOP, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P, STOP_COPY, RESUMING, RUNNING_P2P, ERROR),
    RUNNING: (RUNNING_P2P, RUNNING, PRE_COPY, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P,
              RUNNING_P2P, ERROR),
    PRE_COPY: (RUNNING, RUNNING, PRE_COPY, PRE_COPY_P2P, PRE_COPY_P2P, RUNNING, RUNNING, ERROR),
    PRE_COPY_P2P: (RUNNING_P2P, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P, STOP_COPY, RUNNING_P2P,
                   RUNNING_P2P, ERROR),
    STOP_COPY: (STOP, STOP, ERROR, ERROR, STOP_COPY, STOP, STOP, ERROR),
    RESUMING: (STOP, STOP, STOP, STOP, STOP, RESUMING, STOP, ERROR),
    RUNNING_P2P: (STOP, RUNNING, RUNNING, PRE_COPY_P2P, STOP, STOP, RUNNING_P2P, ERROR),
    ERROR: (ERROR,) * 8,
}
FROM = {cur: dict(zip(_ORDER, row, strict=True)) for cur, row in _ROWS.items()}
STATE_FLAGS = {STOP: SC, RUNNING: SC, PRE_COPY: SC | PRE, PRE_COPY_P2P: SC | P2P | PRE,
               STOP_COPY: SC, RESUMING: SC, RUNNING_P2P: SC | P2P, ERROR: 0xFFFFFFFF}


def _supported(state: int, flags: int) -> bool:
    need: int = STATE_FLAGS[state]
    return need & flags == need


def next_state(flags: int, cur: int, new: int) -> int:
    """vfio_mig_get_next_state: the next arc from ``cur`` towards ``new`` for a device with
    migration ``flags``, skipping states it does not support. Raises EINVAL (no way, or an
    unknown or unsupported ``new``)."""
    if new >= NUM_STATES or not _supported(new, flags) or not _supported(cur, flags):
        raise kerr(errno.EINVAL)
    nxt: int = FROM[cur][new]
    while nxt != ERROR and not _supported(nxt, flags):
        nxt = FROM[nxt][new]
    if nxt == ERROR:
        raise kerr(errno.EINVAL)
    return nxt


class MigrationDriver(abc.ABC):
    """What a device's migration driver provides (struct vfio_migration_ops + vfio_log_ops).

    A driver implements :meth:`step` (migration_set_state, one arc) and :meth:`data_size`
    (migration_get_data_size); :meth:`resume_check` is optional (accepts everything)."""

    flags = SC

    def __init__(self) -> None:
        self.state = RUNNING
        self.precopy_info_v2 = False
        self.logging = False
        self.install_fd: Any = None  # the kernel's fd table: DataFile -> fd

    @abc.abstractmethod
    def step(self, new: int) -> DataFile | None:
        """Take one arc from :attr:`state` to ``new``; return a new data file or None.
        Raises OSError (the state then stays where it was)."""

    @abc.abstractmethod
    def data_size(self) -> int:
        """migration_get_data_size: the STOP_COPY payload's size."""

    def resume_check(self, f: DataFile, before: int) -> None:
        """Look at a resuming stream after a write that began at ``before``; raise to fail it.
        By default every stream is accepted: a driver without a format check (the core has
        none, vfio_main.c leaves the resuming fops to the driver) loads what it is given."""
        return None

    def set_state(self, new: int) -> DataFile | None:
        """migration_set_state: arc by arc, stopping at the first failure (no rollback)."""
        ret: DataFile | None = None
        while self.state != new:
            nxt = next_state(self.flags, self.state, new)
            ret = self.step(nxt)
            self.state = nxt
        return ret

    def reset(self) -> None:
        """A device reset: back to RUNNING, data files disabled (mtty_reset)."""
        self.state = RUNNING


class DataFile(FakeFile):
    """A migration data fd: a saving file is read, a resuming one written (stream, no seek)."""

    kind = "vfio-migration"
    positional = False  # anon_inode_getfile: no FMODE_PREAD/PWRITE (pread is ESPIPE)

    def __init__(self, driver: MigrationDriver, *, saving: bool, data: bytes = b"",
                 limit: int = 0) -> None:
        self.driver, self.saving = driver, saving
        self.data = bytearray(data)
        self.pos = 0
        self.limit = limit  # resuming: the largest stream the device accepts
        self.disabled = False

    def read(self, size: int) -> bytes:
        """Saving files: the next bytes (b"" at the end). ENODEV once disabled; EINVAL when
        resuming (the fd is write-only: the kernel's vfs answers EBADF)."""
        if not self.saving:
            raise kerr(errno.EBADF)
        if self.disabled:
            raise kerr(errno.ENODEV)
        out = bytes(self.data[self.pos:self.pos + size])
        self.pos += len(out)
        return out

    def write(self, data: bytes) -> int:
        """Resuming files: append. ENOMEM past the device's size, ENODEV once disabled."""
        if self.saving:
            raise kerr(errno.EBADF)
        if self.pos + len(data) > self.limit:
            raise kerr(errno.ENOMEM)
        if self.disabled:
            raise kerr(errno.ENODEV)
        before = self.pos
        self.data[self.pos:self.pos + len(data)] = data
        self.pos += len(data)
        self.driver.resume_check(self, before)
        return len(data)

    def space(self) -> str:
        """A saving file answers VFIO_MIG_GET_PRECOPY_INFO; the resuming fops have no ioctl."""
        return "vfio-migration" if self.saving else "vfio-migration-resume"

    def VFIO_MIG_GET_PRECOPY_INFO(self, arg: IoctlArg) -> int:  # noqa: N802 - kernel name
        """vfio_check_precopy_ioctl + the driver: EINVAL outside PRE_COPY(_P2P), ENODEV when
        disabled; initial_bytes = what is left to read, dirty_bytes 0."""
        info = arg.cmd
        if self.driver.precopy_info_v2:
            info.flags = 0
        if self.driver.state not in (PRE_COPY, PRE_COPY_P2P):
            raise kerr(errno.EINVAL)
        if self.disabled:
            raise kerr(errno.ENODEV)
        info.initial_bytes = len(self.data) - self.pos
        info.dirty_bytes = 0
        arg.copy_out(info, 24)
        return 0


def check_feature(flags: int, argsz: int, supported: int, minsz: int) -> bool:
    """vfio_check_feature: True to go on, False for a successful PROBE. Raises EINVAL."""
    ops = flags & (C.VFIO_DEVICE_FEATURE_GET | C.VFIO_DEVICE_FEATURE_SET)
    if ops & ~supported:
        raise kerr(errno.EINVAL)
    if flags & C.VFIO_DEVICE_FEATURE_PROBE:
        return False
    if not ops or argsz < minsz:
        raise kerr(errno.EINVAL)
    return True


MIGRATION_FEATURES = (C.VFIO_DEVICE_FEATURE_MIGRATION, C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                      C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
                      C.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
                      C.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
                      C.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
                      C.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2)


def feature(driver: MigrationDriver | None, flags: int, arg: IoctlArg,
            install_fd: Any) -> int:
    """The migration and logging cases of vfio_ioctl_device_feature; ``arg`` holds the
    vfio_device_feature header (argsz already read), the payload follows at offset 8."""
    which, size = flags & C.VFIO_DEVICE_FEATURE_MASK, arg.size - 8
    if which == C.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2:
        # absent in 6.12 (the device's own feature op: ENOTTY), in 7.3 (first release
        # unchecked) vfio_main.c:vfio_ioctl_device_feature_migration_precopy_info_v2 asks
        # migration_flags for PRE_COPY before anything, mig_ops or not: EINVAL without it
        if not arg.linux.at_least("7.3"):
            raise kerr(errno.ENOTTY)
        if driver is None or not driver.flags & PRE:
            raise kerr(errno.EINVAL)
        if check_feature(flags, size, SET, 0):
            driver.precopy_info_v2 = True
        return 0
    if driver is None:
        raise kerr(errno.ENOTTY)  # no mig_ops / log_ops
    if which in _LOGGING:
        _LOGGING[which](driver, flags, size, arg)
    elif which == C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
        if check_feature(flags, size, GET | SET, 8):
            _mig_state(driver, flags, arg, install_fd)
    elif check_feature(flags, size, GET, 8):  # MIGRATION, MIG_DATA_SIZE: GET a u64
        value = driver.flags if which == C.VFIO_DEVICE_FEATURE_MIGRATION else driver.data_size()
        arg.write(8, struct.pack("<Q", value))
    return 0


def _mig_state(driver: MigrationDriver, flags: int, arg: IoctlArg, install_fd: Any) -> None:
    (state,) = struct.unpack("<I", arg.read(8, 4))
    if flags & GET:
        arg.write(8, struct.pack("<Ii", driver.state, -1))
        return
    try:
        f = driver.set_state(state)
    except OSError:
        arg.write(8, struct.pack("<Ii", state, -1))  # copied back with data_fd -1
        raise
    arg.write(8, struct.pack("<Ii", state, install_fd(f) if f is not None else -1))


def _log_stop(driver: MigrationDriver, flags: int, size: int, arg: IoctlArg) -> None:
    if check_feature(flags, size, SET, 0):
        driver.logging = False


def _log_start(driver: MigrationDriver, flags: int, size: int, arg: IoctlArg) -> None:
    """vfio_ioctl_device_feature_logging_start: 1..1024 aligned, disjoint ranges."""
    if not check_feature(flags, size, SET, 24):
        return
    page_size, num, _, ranges = struct.unpack("<QIIQ", arg.read(8, 24))
    if not num:
        raise kerr(errno.EINVAL)
    if num > LOG_MAX_RANGES:
        raise kerr(errno.E2BIG)
    seen: list[tuple[int, int]] = []
    for i in range(num):
        iova, length = struct.unpack("<QQ", arg.mem.read(ranges + 16 * i, 16))
        if not page_size or iova % page_size or length % page_size:
            raise kerr(errno.EINVAL)  # IS_ALIGNED (a page_size of 0 is a fake guard)
        if iova + length > (1 << 64) - 1:
            raise kerr(errno.EOVERFLOW)
        last = iova + length - 1
        if any(s <= last and iova <= e for s, e in seen):
            raise kerr(errno.EINVAL)
        seen.append((iova, last))
    driver.logging = True


def _log_report(driver: MigrationDriver, flags: int, size: int, arg: IoctlArg) -> None:
    """vfio_ioctl_device_feature_logging_report with a driver that saw no DMA (mtty): the
    user's bitmap stays as it is."""
    if not check_feature(flags, size, GET, 32):
        return
    iova, length, page_size, _ = struct.unpack("<QQQQ", arg.read(8, 32))
    if page_size < 4096 or page_size & (page_size - 1):
        raise kerr(errno.EINVAL)
    if iova + length > (1 << 64) - 1:
        raise kerr(errno.EOVERFLOW)


_LOGGING = {C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START: _log_start,
            C.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: _log_stop,
            C.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: _log_report}


OPS = (Op(uapi.VFIO_MIG_GET_PRECOPY_INFO, "migration", DataFile.VFIO_MIG_GET_PRECOPY_INFO,
          Conv.ARGSZ, "struct vfio_precopy_info", "dirty_bytes", since="6.2"),)
"""The migration data fd's ioctl (vfio_check_precopy_ioctl)."""

__all__ = ["MIGRATION_FEATURES", "OPS", "DataFile", "MigrationDriver", "check_feature", "feature",
           "next_state"]
