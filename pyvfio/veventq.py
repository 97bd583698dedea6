"""vEVENTQs: a vIOMMU's event queue, read through its own fd (Linux 6.15+, iommufd/eventq.c).

Each read returns whole events: a ``struct iommufd_vevent_header`` (flags, sequence) followed by
the queue type's record (``struct iommu_vevent_arm_smmuv3``: 32 bytes, the mock's
``struct iommu_viommu_event_selftest``: 4).  When the queue was full the kernel drops events and
queues one header flagged ``IOMMU_VEVENTQ_FLAG_LOST_EVENTS`` without data; sequence numbers run
0..INT_MAX and wrap, so a jump also counts losses (:attr:`VEvent.lost`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyvfio import uapi
from pyvfio._ffi import C, new
from pyvfio._resource import FdOwner
from pyvfio.dma import check_int
from pyvfio.iommufd import U32_MAX
from pyvfio.viommu import VIOMMU

HEADER = struct.Struct("<II")
INT_MAX = (1 << 31) - 1
VEVENTQ_MAX_DEPTH = 1 << 19  # eventq.c: the kernel's bound on veventq_depth
EVENT_SIZES = {
    C.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: 32,  # struct iommu_vevent_arm_smmuv3
    C.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV: 16,  # struct iommu_vevent_tegra241_cmdqv
    C.IOMMU_VEVENTQ_TYPE_SELFTEST: 4,  # struct iommu_viommu_event_selftest (IOMMUFD_TEST)
}


@dataclass(frozen=True)
class VEvent:
    """One event read from a vEVENTQ.

    Attributes:
        flags: ``IOMMU_VEVENTQ_FLAG_*`` of its header.
        sequence: its index in the queue (0..INT_MAX, wrapping).
        data: the type's record (empty for a LOST_EVENTS header).
        lost: events lost just before this one (LOST_EVENTS header or a sequence gap).
    """

    flags: int
    sequence: int
    data: bytes
    lost: int = 0


class VEventQ(FdOwner):
    """An IOMMUFD_OBJ_VEVENTQ: an object id and a read-only fd."""

    def __init__(self, viommu: VIOMMU, queue_type: int, depth: int) -> None:
        """``IOMMU_VEVENTQ_ALLOC``: one queue of ``queue_type`` holding up to ``depth`` events.

        Raises:
            TypeError, ValueError: bad arguments (``queue_type`` with no known record size).
            OSError: ENOTTY (before 6.15), EOPNOTSUPP (type 0), EINVAL (depth 0 or above 2^19),
                ENOENT (no such vIOMMU), EEXIST (the vIOMMU has a queue of this type).
        """
        check_int("queue_type", queue_type, 0, U32_MAX)
        check_int("depth", depth, 0, U32_MAX)
        self.viommu, self.type, self.depth = viommu, queue_type, depth
        self.event_size = EVENT_SIZES.get(queue_type, 0)
        self._prev_seq: int | None = None
        arg = new("struct iommu_veventq_alloc *", viommu_id=viommu.id, type=queue_type,
                  veventq_depth=depth)
        viommu.iommufd.call(uapi.IOMMU_VEVENTQ_ALLOC, arg)
        self.id = int(arg.out_veventq_id)
        self._own(viommu.iommufd.kernel, int(arg.out_veventq_fd))
        viommu.iommufd._adopt(self)

    def __repr__(self) -> str:
        return f"<VEventQ {self.id} type={self.type:#x} fd={self._fd}>"

    def read(self, max_events: int = 16) -> list[VEvent]:
        """Read up to ``max_events`` queued events (empty if none: the kernel does not block).

        Raises:
            ValueError: the queue type's record size is unknown (read raw with the kernel).
            OSError: EINVAL (the buffer holds less than one event: never from this method).
        """
        check_int("max_events", max_events, 1, 1 << 16)
        if not self.event_size:
            raise ValueError(f"unknown record size of vEVENTQ type {self.type:#x}")
        self._check_open()
        raw = self._kernel.read(self._fd, max_events * (HEADER.size + self.event_size))
        return self._parse(raw)

    def _parse(self, raw: bytes) -> list[VEvent]:
        out, off = [], 0
        while off + HEADER.size <= len(raw):
            flags, seq = HEADER.unpack_from(raw, off)
            off += HEADER.size
            is_lost = bool(flags & C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS)
            data = b"" if is_lost else raw[off:off + self.event_size]
            off += len(data)
            prev = self._prev_seq
            gap = 0 if prev is None else (seq - prev - 1) & INT_MAX
            out.append(VEvent(flags, seq, data, gap or int(is_lost)))
            self._prev_seq = seq
        return out

    def destroy(self) -> None:
        """Close the fd, then ``IOMMU_DESTROY`` the queue (the fd holds it: EBUSY before)."""
        self.close()
        if not self.viommu.iommufd.closed:
            self.viommu.iommufd.destroy(self.id)
