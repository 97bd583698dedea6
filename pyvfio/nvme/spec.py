"""NVMe as the driver sees it (NVM Express Base Specification 1.4): registers with their fields,
command and completion layouts, opcodes, status codes, and PRP lists.
"""

from __future__ import annotations

import cffi

from pyvfio.errors import DriverError
from pyvfio.memview import DMAView
from pyvfio.registers import Field, Register, RegisterMap

ffi = cffi.FFI()
ffi.cdef("""
struct nvme_command {            /* a 64-byte submission queue entry */
    uint8_t opcode; uint8_t flags; uint16_t cid; uint32_t nsid;
    uint64_t rsvd; uint64_t mptr; uint64_t prp1; uint64_t prp2;
    uint32_t cdw10; uint32_t cdw11; uint32_t cdw12; uint32_t cdw13; uint32_t cdw14;
    uint32_t cdw15;
};
struct nvme_completion {         /* a 16-byte completion queue entry; status bit 0 = phase */
    uint32_t result; uint32_t rsvd; uint16_t sq_head; uint16_t sq_id; uint16_t cid;
    uint16_t status;
};
""")
SQE, CQE = ffi.typeof("struct nvme_command"), ffi.typeof("struct nvme_completion")
STATUS_OFFSET = 14  # of the phase tag and status word in a completion entry

REGISTERS = RegisterMap("nvme", [
    Register("cap", 0x00, 8, "r", fields=[
        Field("mqes", 0, 16), Field("cqr", 16), Field("to", 24, 8), Field("dstrd", 32, 4),
        Field("nssrs", 36), Field("css", 37, 8), Field("mpsmin", 48, 4), Field("mpsmax", 52, 4)]),
    Register("vs", 0x08, 4, "r", fields=[Field("ter", 0, 8), Field("mnr", 8, 8),
                                         Field("mjr", 16, 16)]),
    Register("intms", 0x0C, 4, "w"),
    Register("intmc", 0x10, 4, "w"),
    Register("cc", 0x14, 4, "rw", fields=[
        Field("en", 0), Field("css", 4, 3), Field("mps", 7, 4), Field("ams", 11, 3),
        Field("shn", 14, 2), Field("iosqes", 16, 4), Field("iocqes", 20, 4)]),
    Register("csts", 0x1C, 4, "r", fields=[Field("rdy", 0), Field("cfs", 1), Field("shst", 2, 2)]),
    Register("aqa", 0x24, 4, "rw", fields=[Field("asqs", 0, 12), Field("acqs", 16, 12)]),
    Register("asq", 0x28, 8, "rw"),
    Register("acq", 0x30, 8, "rw"),
])
DOORBELL_BASE = 0x1000

# opcodes
ADMIN_DELETE_SQ, ADMIN_CREATE_SQ, ADMIN_DELETE_CQ, ADMIN_CREATE_CQ = 0x00, 0x01, 0x04, 0x05
ADMIN_IDENTIFY, ADMIN_SET_FEATURES, ADMIN_GET_FEATURES = 0x06, 0x09, 0x0A
NVM_FLUSH, NVM_WRITE, NVM_READ = 0x00, 0x01, 0x02
CNS_NAMESPACE, CNS_CONTROLLER, CNS_ACTIVE_NS = 0x00, 0x01, 0x02
FEAT_NUM_QUEUES = 0x07
SHST_COMPLETE = 2
PAGE = 4096

_STATUS = {0x0: "success", 0x1: "invalid opcode", 0x2: "invalid field", 0x4: "data transfer error",
           0xB: "invalid namespace", 0x13: "invalid PRP offset", 0x80: "LBA out of range",
           0x100: "invalid completion queue", 0x101: "invalid queue id",
           0x102: "queue size exceeded", 0x108: "invalid interrupt vector",
           0x10C: "invalid queue deletion"}


class NvmeError(DriverError):
    """A command completed with a non-zero status: ``status`` is SCT << 8 | SC (DNR apart)."""

    def __init__(self, step: str, status: int) -> None:
        self.status, self.dnr = status & 0x7FF, bool(status & 0x4000)
        name = _STATUS.get(self.status, "status")
        super().__init__(step, f"NVMe {name} (SCT {self.status >> 8}, SC {self.status & 0xFF:#x}"
                         f"{', do not retry' if self.dnr else ''})")


def prp(iova: int, length: int, list_iova: int = 0,
        list_mem: DMAView | None = None) -> tuple[int, int]:
    """Return ``(prp1, prp2)`` for ``length`` bytes contiguous in IOVA from ``iova``; a transfer
    over two pages gets a PRP list written into ``list_mem`` (a :class:`~pyvfio.memview.DMAView`
    of one page at ``list_iova``; 511 entries = 2 MiB, more than any MDTS here).

    Raises:
        ValueError: the transfer needs more entries than one list page holds, or no list page.
    """
    first = PAGE - iova % PAGE
    if length <= first:
        return iova, 0
    if length <= first + PAGE:
        return iova, iova + first
    pages = range(iova + first, iova + length, PAGE)
    if list_mem is None or len(pages) > PAGE // 8:
        raise ValueError(f"a {length}-byte transfer needs a PRP list of {len(pages)} entries")
    for i, page in enumerate(pages):
        list_mem.store64(8 * i, page)
    return iova, list_iova
