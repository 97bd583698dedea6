"""vEVENTQs of the fake iommufd: a vIOMMU's event queue and its fd (Linux 7.3 eventq.c, driver.c).

``IOMMU_VEVENTQ_ALLOC`` gives a vIOMMU one queue per type; the IOMMU driver reports events into it
(:func:`report`, the fake's iommufd_viommu_report_event) and user space reads them from the fd:
each event a ``struct iommufd_vevent_header`` (flags, sequence) and the type's data.  A full queue
drops the event and leaves one LOST_EVENTS header (no data) at the tail; sequences run 0..INT_MAX
and wrap, so a gap tells how many were lost.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from pyvfio import uapi
from pyvfio._ffi import C
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg
from pyvfio.fake.viommu import VIOMMUObj, get_viommu

VEVENTQ_MAX_DEPTH = 1 << 19
INT_MAX = (1 << 31) - 1
HEADER = struct.Struct("<II")  # struct iommufd_vevent_header


@dataclass
class VEvent:
    """One queued event (``lost`` marks the LOST_EVENTS header, which carries no data)."""

    sequence: int
    data: bytes
    lost: bool = False


class VEventQObj(Obj):
    """IOMMUFD_OBJ_VEVENTQ."""

    kind = "VEVENTQ"

    def __init__(self, viommu: VIOMMUObj, qtype: int, depth: int) -> None:
        super().__init__()
        self.viommu, self.type, self.depth = viommu, qtype, depth
        self.deliver: list[VEvent] = []
        self.num_events = 0
        self.sequence = 0
        viommu.users += 1
        viommu.veventqs[qtype] = self

    def destroy(self, ctx: IommufdCtx) -> None:
        """iommufd_veventq_abort."""
        self.viommu.veventqs.pop(self.type, None)
        self.viommu.users -= 1

    def _add(self, event: VEvent) -> None:
        """iommufd_vevent_handler: a trailing LOST_EVENTS header makes way for the new node."""
        if self.deliver and self.deliver[-1].lost:
            self.deliver.pop()
        event.sequence = self.sequence
        self.sequence = (self.sequence + 1) & INT_MAX
        self.deliver.append(event)


def report(viommu: VIOMMUObj, qtype: int, data: bytes) -> None:
    """iommufd_viommu_report_event. Raises EOPNOTSUPP when the vIOMMU has no queue of ``qtype``."""
    queue = viommu.veventqs.get(qtype)
    if queue is None:
        raise kerr(errno.EOPNOTSUPP)
    if queue.num_events == queue.depth:
        queue._add(VEvent(0, b"", lost=True))
        return
    queue.num_events += 1
    queue._add(VEvent(0, bytes(data)))


class VEventQFile(FakeFile):
    """The fd of a vEVENTQ: read-only (eventq.c:iommufd_veventq_fops_read); no ioctl (ENOTTY)."""

    kind = "iommufd-veventq"
    positional = False  # anon_inode_getfile: no FMODE_PREAD/PWRITE (pread is ESPIPE)

    def __init__(self, ctx: IommufdCtx, queue: VEventQObj) -> None:
        self.ctx, self.queue = ctx, queue

    def read(self, size: int) -> bytes:
        """Whole events that fit in ``size``; EINVAL if less than a header, or if the first event
        does not fit; b"" when the queue is empty (the kernel does not block)."""
        if size < HEADER.size:
            raise kerr(errno.EINVAL)
        out = b""
        q = self.queue
        while q.deliver:
            ev = q.deliver[0]
            need = HEADER.size + (0 if ev.lost else len(ev.data))
            if len(out) + need > size:
                if not out and not ev.lost:
                    raise kerr(errno.EINVAL)
                break
            q.deliver.pop(0)
            flags = C.IOMMU_VEVENTQ_FLAG_LOST_EVENTS if ev.lost else 0
            out += HEADER.pack(flags, ev.sequence) + (b"" if ev.lost else ev.data)
            if not ev.lost:
                q.num_events -= 1
        return out

    def release(self) -> None:
        """Close: the object stays until IOMMU_DESTROY; the references go."""
        self.queue.users -= 1
        self.ctx.put()


def IOMMU_VEVENTQ_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802 - kernel name
    cmd = io.cmd
    if cmd.flags or cmd.__reserved or cmd.type == C.IOMMU_VEVENTQ_TYPE_DEFAULT:
        raise kerr(errno.EOPNOTSUPP)
    if not cmd.veventq_depth or cmd.veventq_depth > VEVENTQ_MAX_DEPTH:
        raise kerr(errno.EINVAL)
    viommu = get_viommu(ctx, cmd.viommu_id)
    if cmd.type in viommu.veventqs:
        raise kerr(errno.EEXIST)
    queue = VEventQObj(viommu, int(cmd.type), int(cmd.veventq_depth))
    ctx.table.add(queue)
    queue.users += 1  # the fd holds the object (iommufd_eventq_init)
    ctx.users += 1  # ... and the iommufd
    cmd.out_veventq_fd = ctx.install_fd(VEventQFile(ctx, queue))
    cmd.out_veventq_id = queue.id


OPS = (Op(uapi.IOMMU_VEVENTQ_ALLOC, "iommufd", IOMMU_VEVENTQ_ALLOC, Conv.SIZE,
          "struct iommu_veventq_alloc", "out_veventq_fd", since="6.15"),)
"""IOMMU_VEVENTQ_ALLOC (eventq.c)."""
