"""Fault queues of the fake iommufd (Linux 7.3 eventq.c, 6.12 fault.c): the FAULT object, its fd
and IOMMU_FAULT_QUEUE_ALLOC.  A HWPT allocated with IOMMU_HWPT_FAULT_ID_VALID holds one
(:func:`pyvfio.fake.hwpt.attach_fault`)."""

from __future__ import annotations

import errno
from collections import deque

from pyvfio import uapi
from pyvfio._ffi import C, ffi
from pyvfio.fake.dispatch import Conv, Op
from pyvfio.fake.iommufd import IommufdCtx, Obj
from pyvfio.fake.memory import kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg

PGFAULT_SIZE = ffi.sizeof("struct iommu_hwpt_pgfault")
RESPONSE_SIZE = ffi.sizeof("struct iommu_hwpt_page_response")


class FaultObj(Obj):
    """IOMMUFD_OBJ_FAULT: the queue behind a fault fd (Linux 7.3 eventq.c)."""

    kind = "FAULT"

    def __init__(self) -> None:
        super().__init__()
        self.events: deque[bytes] = deque()  # fault groups (of one fault) waiting to be read
        self.pending: dict[int, bytes] = {}  # cookie -> group read, awaiting a response
        self.responses: list[tuple[int, int]] = []  # (cookie, code) written by user space
        self.fd_open = True

    def report(self, dev_id: int, addr: int, perm: int, flags: int = 2, *, pasid: int = 0,
               grpid: int = 0) -> None:
        """Queue one page request (iommufd_fault_iopf_handler); the cookie comes at read time."""
        fields = {"flags": flags, "dev_id": dev_id, "pasid": pasid, "grpid": grpid,
                  "perm": perm, "addr": addr, "length": 0}  # compose_fault_message: length 0
        rec = ffi.new("struct iommu_hwpt_pgfault *", fields)
        self.events.append(bytes(ffi.buffer(rec)))


class FaultFile(FakeFile):
    """The fd of a fault queue: read() returns records, write() takes page responses (eventq.c);
    it answers no ioctl (ENOTTY).

    The fd holds the FAULT object (IOMMU_DESTROY is EBUSY until it is closed) and the iommufd.
    """

    kind = "iommufd-fault"
    positional = False  # anon_inode_getfile: no FMODE_PREAD/PWRITE (pread is ESPIPE)

    def __init__(self, ctx: IommufdCtx, fault: FaultObj) -> None:
        self.ctx, self.fault = ctx, fault
        fault.users += 1

    def read(self, size: int) -> bytes:
        """Whole fault groups that fit in ``size``, each given the lowest free cookie (xa_alloc
        from 1). Raises ESPIPE if ``size`` is no multiple of the record, EINVAL if a group is
        waiting and does not fit; b"" when nothing is queued (the kernel does not block)."""
        if size % PGFAULT_SIZE:
            raise kerr(errno.ESPIPE)
        out = b""
        while self.fault.events:
            if len(out) + PGFAULT_SIZE > size:
                if not out:
                    raise kerr(errno.EINVAL)
                break
            cookie = 1
            while cookie in self.fault.pending:
                cookie += 1
            rec = bytearray(self.fault.events.popleft())
            rec[36:40] = cookie.to_bytes(4, "little")
            self.fault.pending[cookie] = bytes(rec)
            out += bytes(rec)
        return out

    def write(self, data: bytes) -> int:
        """Take page responses; return the bytes of those taken before the first bad one.
        Raises ESPIPE for a partial record, EINVAL for a bad code or an unknown cookie."""
        if len(data) % RESPONSE_SIZE:
            raise kerr(errno.ESPIPE)
        done = 0
        for off in range(0, len(data), RESPONSE_SIZE):
            cookie = int.from_bytes(data[off : off + 4], "little")
            code = int.from_bytes(data[off + 4 : off + 8], "little")
            if code not in (C.IOMMUFD_PAGE_RESP_SUCCESS, C.IOMMUFD_PAGE_RESP_INVALID) \
                    or cookie not in self.fault.pending:
                if not done:
                    raise kerr(errno.EINVAL)
                break
            del self.fault.pending[cookie]
            self.fault.responses.append((cookie, code))
            done += RESPONSE_SIZE
        return done

    def release(self) -> None:
        """Close the fd: the object stays until destroyed, the references go."""
        self.fault.fd_open = False
        self.fault.users -= 1
        self.ctx.put()


def IOMMU_FAULT_QUEUE_ALLOC(ctx: IommufdCtx, io: IoctlArg) -> None:  # noqa: N802
    cmd = io.cmd
    if cmd.flags:
        raise kerr(errno.EOPNOTSUPP)
    fault = FaultObj()
    ctx.table.add(fault)
    ctx.users += 1
    cmd.out_fault_fd = ctx.install_fd(FaultFile(ctx, fault))
    cmd.out_fault_id = fault.id


OPS = (Op(uapi.IOMMU_FAULT_QUEUE_ALLOC, "iommufd", IOMMU_FAULT_QUEUE_ALLOC, Conv.SIZE,
          "struct iommu_fault_alloc", "out_fault_fd", "6.11"),)
"""IOMMU_FAULT_QUEUE_ALLOC (fault.c)."""
