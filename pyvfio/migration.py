"""VFIO migration uAPI v2 and device DMA logging (linux/vfio.h, drivers/vfio/vfio_main.c).

A migratable device (a variant driver: mlx5, hisi_acc, virtio, or the mtty sample) moves through
the states of ``enum vfio_device_mig_state``; :meth:`Migration.set_state` asks for a target and
the kernel walks its arcs (vfio_mig_get_next_state), returning a :class:`DataFile` when the target
opens one: PRE_COPY / PRE_COPY_P2P and STOP_COPY give a file to read the device state from,
RESUMING one to write it to.  ``RUNNING -> PRE_COPY -> STOP_COPY -> STOP`` on the source,
``STOP -> RESUMING -> STOP -> RUNNING`` on the destination move a device.  DMA logging asks the
device (not the IOMMU) which IOVAs it wrote: :meth:`Migration.start_logging`, :meth:`report`.

Every method raises ``OSError(ENOTTY)`` on a device without migration (plain vfio-pci).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyvfio import _ioctl, uapi
from pyvfio._ffi import C, ffi, new
from pyvfio._resource import FdOwner
from pyvfio.device import Device
from pyvfio.dma import check_int
from pyvfio.uapi_vfio import DeviceMigState

GET, SET, PROBE = C.VFIO_DEVICE_FEATURE_GET, C.VFIO_DEVICE_FEATURE_SET, C.VFIO_DEVICE_FEATURE_PROBE
U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


@dataclass(frozen=True)
class PrecopyInfo:
    """``VFIO_MIG_GET_PRECOPY_INFO``: bytes left of the initial state, dirty bytes since, flags
    (``VFIO_PRECOPY_INFO_REINIT`` once :meth:`Migration.enable_precopy_info_v2` was called)."""

    initial_bytes: int
    dirty_bytes: int
    flags: int


class DataFile(FdOwner):
    """A migration data fd: read the state in PRE_COPY/STOP_COPY, write it in RESUMING."""

    def __init__(self, device: Device, fd: int, state: int) -> None:
        self.device, self.state = device, state
        self._own(device._kernel, fd)

    def __repr__(self) -> str:
        state = DeviceMigState(self.state).name
        return f"<DataFile of {self.device!r} state={state} fd={self._fd}>"

    def read(self, size: int = 1 << 16) -> bytes:
        """Read up to ``size`` bytes of device state (b"" at the end of what is there now).

        Raises:
            OSError: ENODEV (the file was disabled: its state was left), EINVAL.
        """
        check_int("size", size, 1, 1 << 30)
        self._check_open()
        return self._kernel.read(self._fd, size)

    def read_all(self, chunk: int = 1 << 16) -> bytes:
        """Read until the file reports its end."""
        out = bytearray()
        while part := self.read(chunk):
            out += part
        return bytes(out)

    def write(self, data: bytes) -> int:
        """Write device state (RESUMING); return the count taken.

        Raises:
            OSError: ENOMEM (more than the device takes), EFAULT (the driver refused the
                stream's header: mtty), ENODEV (disabled).
        """
        self._check_open()
        return self._kernel.write(self._fd, bytes(data))

    def precopy_info(self) -> PrecopyInfo:
        """``VFIO_MIG_GET_PRECOPY_INFO`` (PRE_COPY and PRE_COPY_P2P only).

        Raises:
            OSError: EINVAL (not in a PRE_COPY state), ENODEV (disabled), ENOTTY (a resuming
                file, or a driver without pre-copy).
        """
        self._check_open()
        arg = new("struct vfio_precopy_info *", argsz=ffi.sizeof("struct vfio_precopy_info"))
        _ioctl.call(self._kernel, self._fd, uapi.VFIO_MIG_GET_PRECOPY_INFO, arg)
        return PrecopyInfo(int(arg.initial_bytes), int(arg.dirty_bytes), int(arg.flags))


class Migration:
    """The migration and DMA-logging features of one open :class:`~pyvfio.device.Device`."""

    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    def flags(self) -> int:
        """``VFIO_DEVICE_FEATURE_MIGRATION``: ``VFIO_MIGRATION_STOP_COPY | P2P | PRE_COPY`` bits.

        Raises:
            OSError: ENOTTY (the device cannot migrate).
        """
        return int(struct.unpack("<Q", self.device.feature(C.VFIO_DEVICE_FEATURE_MIGRATION,
                                                           GET, 8))[0])

    @property
    def state(self) -> DeviceMigState:
        """``VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`` GET."""
        raw = self.device.feature(C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, GET, 8)
        return DeviceMigState(struct.unpack("<I", raw[:4])[0])

    def set_state(self, state: int) -> DataFile | None:
        """Move the device to ``state`` (arc by arc); return the data file the last arc opened.

        Raises:
            ValueError: ``state`` is no ``vfio_device_mig_state``.
            OSError: EINVAL (no path: an unsupported state, STOP_COPY -> PRE_COPY, ERROR; or a
                driver refusing an arc, e.g. RESUMING -> STOP with a short stream -- the device
                then stays in the state it reached), ENOTTY (no migration).
        """
        DeviceMigState(check_int("state", state, 0, U32_MAX))
        raw = self.device.feature(C.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, SET,
                                  struct.pack("<Ii", state, -1))
        data_fd = struct.unpack("<Ii", raw)[1]
        return DataFile(self.device, data_fd, state) if data_fd >= 0 else None

    def data_size(self) -> int:
        """``VFIO_DEVICE_FEATURE_MIG_DATA_SIZE``: the expected STOP_COPY length (an estimate)."""
        raw = self.device.feature(C.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, GET, 8)
        return int(struct.unpack("<Q", raw)[0])

    def enable_precopy_info_v2(self) -> None:
        """``VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2`` SET (7.x): PRECOPY_INFO's flags become an
        output (``VFIO_PRECOPY_INFO_REINIT``).

        Raises:
            OSError: EINVAL (no PRE_COPY support), ENOTTY (kernels before the feature).
        """
        self.device.feature(C.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, SET)

    def supports(self, feature: int, flags: int) -> bool:
        """PROBE ``feature`` for GET/SET ``flags``."""
        return self.device.probe_feature(feature, flags)

    def start_logging(self, ranges: list[tuple[int, int]], page_size: int = 4096) -> int:
        """``DMA_LOGGING_START`` over ``ranges`` ((iova, length), page aligned, disjoint); return
        the page size the device tracks at.

        Raises:
            ValueError: no ranges.
            OSError: EINVAL (unaligned or overlapping), E2BIG (over 1024 ranges), EOVERFLOW,
                ENOTTY (no logging ops).
        """
        if not ranges:
            raise ValueError("ranges must not be empty")
        check_int("page_size", page_size, 1, U64_MAX)
        table = ffi.new("struct vfio_device_feature_dma_logging_range[]", len(ranges))
        for i, (iova, length) in enumerate(ranges):
            table[i].iova = check_int("iova", iova, 0, U64_MAX)
            table[i].length = check_int("length", length, 0, U64_MAX)
        control = struct.pack("<QIIQ", page_size, len(ranges), 0,
                              int(ffi.cast("uintptr_t", table)))
        raw = self.device.feature(C.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, SET, control)
        return int(struct.unpack_from("<Q", raw)[0])

    def stop_logging(self) -> None:
        """``DMA_LOGGING_STOP``."""
        self.device.feature(C.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, SET)

    def report(self, iova: int, length: int, page_size: int = 4096) -> list[int]:
        """``DMA_LOGGING_REPORT``: the IOVAs of pages the device wrote in ``[iova, +length)``
        since the last report (reading clears them).

        Raises:
            OSError: EINVAL (page_size below 4 KiB or not a power of two), EOVERFLOW.
        """
        check_int("iova", iova, 0, U64_MAX)
        check_int("length", length, 1, U64_MAX)
        check_int("page_size", page_size, 1, U64_MAX)
        npages = -(-length // page_size)
        bitmap = ffi.new("uint64_t[]", -(-npages // 64))
        req = struct.pack("<QQQQ", iova, length, page_size, int(ffi.cast("uintptr_t", bitmap)))
        self.device.feature(C.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, GET, req)
        return [iova + i * page_size for i in range(npages) if bitmap[i // 64] >> (i % 64) & 1]

