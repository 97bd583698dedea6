"""The commands of the fake NVMe controller (QEMU 7.2 hw/nvme/ctrl.c): admin and I/O, PRP walking,
namespaces backed by a bytearray or a file.

Status codes are QEMU's (include/block/nvme.h ``NVME_*``), with Do Not Retry (``DNR``) where QEMU
sets it.  A DMA the IOMMU refuses -- the fake's EFAULT -- ends the command with
``DATA_TRAS_ERROR``, as QEMU's ``nvme_tx`` does when ``dma_buf_read``/``dma_buf_write`` fail.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvfio.fake.nvme import NvmeCtrl

SUCCESS, INVALID_OPCODE, INVALID_FIELD, DATA_TRAS_ERROR = 0x0, 0x1, 0x2, 0x4
INVALID_NSID, INVALID_PRP_OFFSET, LBA_RANGE = 0xB, 0x13, 0x80
INVALID_CQID, INVALID_QID, MAX_QSIZE_EXCEEDED = 0x100, 0x101, 0x102
INVALID_IRQ_VECTOR, INVALID_QUEUE_DEL, DNR = 0x108, 0x10C, 0x4000
ADM_DELETE_SQ, ADM_CREATE_SQ, ADM_DELETE_CQ, ADM_CREATE_CQ = 0x00, 0x01, 0x04, 0x05
ADM_IDENTIFY, ADM_SET_FEATURES, ADM_GET_FEATURES = 0x06, 0x09, 0x0A
CMD_FLUSH, CMD_WRITE, CMD_READ = 0x00, 0x01, 0x02
FID_NUM_QUEUES = 0x07
PAGE = 4096
MAX_NAMESPACES = 256  # NVME_MAX_NAMESPACES
MDTS = 7  # QEMU's default: 2**7 pages of CAP.MPSMIN (512 KiB) per command


class DmaError(Exception):
    """The IOMMU refused a transfer (QEMU: a failed dma_memory_rw)."""


class Namespace:
    """A namespace of ``size`` bytes in 512-byte blocks: a bytearray, or a file (``path``)."""

    def __init__(self, size: int = 1 << 20, *, path: str | None = None,
                 lba_size: int = 512) -> None:
        self.lba_size = lba_size
        self._fd = -1
        self._data: bytearray | None = None
        if path is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            size = os.fstat(self._fd).st_size
        else:
            self._data = bytearray(size)
        self.blocks = size // lba_size
        self._lock = threading.Lock()

    def read(self, offset: int, size: int) -> bytes:
        if self._data is not None:
            return bytes(self._data[offset : offset + size])
        return os.pread(self._fd, size, offset)

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            if self._data is not None:
                self._data[offset : offset + len(data)] = data
            else:
                os.pwrite(self._fd, data, offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class Command:
    """The 64-byte submission entry, decoded."""

    opcode: int
    cid: int
    nsid: int
    prp1: int
    prp2: int
    cdw10: int
    cdw11: int
    cdw12: int

    @classmethod
    def parse(cls, raw: bytes) -> Command:
        opc, _flags, cid, nsid = struct.unpack_from("<BBHI", raw, 0)
        prp1, prp2 = struct.unpack_from("<QQ", raw, 24)
        cdw10, cdw11, cdw12 = struct.unpack_from("<III", raw, 40)
        return cls(opc, cid, nsid, prp1, prp2, cdw10, cdw11, cdw12)


def prp_pages(ctrl: NvmeCtrl, prp1: int, prp2: int, length: int) -> list[tuple[int, int]]:
    """nvme_map_prp: the ``(iova, size)`` pieces of a transfer of ``length`` bytes.

    Raises:
        ValueError: a status code (INVALID_PRP_OFFSET, INVALID_FIELD).
        DmaError: a PRP list page could not be read.
    """
    first = min(length, PAGE - prp1 % PAGE)
    left = length - first
    if left == 0:
        return [(prp1, first)]
    if left <= PAGE:
        if prp2 % PAGE:
            raise ValueError(INVALID_PRP_OFFSET | DNR)
        return [(prp1, first), (prp2, left)]
    return [(prp1, first), *_prp_list(ctrl, prp2, left)]


def _prp_list(ctrl: NvmeCtrl, entry: int, left: int) -> list[tuple[int, int]]:
    """Walk a PRP list from ``entry``; the last slot of a list page chains to the next page."""
    if entry % 8:
        raise ValueError(INVALID_PRP_OFFSET | DNR)
    pieces: list[tuple[int, int]] = []
    for _ in range(left // PAGE + 2):  # a list chaining back to itself ends here
        per_page = (PAGE - entry % PAGE) // 8
        entries = struct.unpack(f"<{per_page}Q", ctrl.dma_in(entry, 8 * per_page))
        for i, addr in enumerate(entries):
            if i == per_page - 1 and left > PAGE:
                entry = addr
                break
            if addr % PAGE:
                raise ValueError(INVALID_PRP_OFFSET | DNR)
            pieces.append((addr, min(left, PAGE)))
            left -= pieces[-1][1]
            if not left:
                return pieces
        if entry % 8:
            raise ValueError(INVALID_PRP_OFFSET | DNR)
    raise ValueError(INVALID_FIELD | DNR)


def _io_span(ctrl: NvmeCtrl, cmd: Command) -> tuple[Namespace, int, int]:
    """Check an I/O command; return its namespace, byte offset and length. Raises ValueError."""
    ns = ctrl.namespaces.get(cmd.nsid)
    if ns is None:
        raise ValueError(INVALID_NSID | DNR)
    if cmd.opcode not in (CMD_READ, CMD_WRITE, CMD_FLUSH):
        raise ValueError(INVALID_OPCODE | DNR)
    slba = cmd.cdw11 << 32 | cmd.cdw10
    nlb = (cmd.cdw12 & 0xFFFF) + 1
    if cmd.opcode != CMD_FLUSH and slba + nlb > ns.blocks:
        raise ValueError(LBA_RANGE | DNR)
    if nlb * ns.lba_size > PAGE << MDTS:
        raise ValueError(INVALID_FIELD | DNR)
    return ns, slba * ns.lba_size, nlb * ns.lba_size


def io_command(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    """Execute an I/O command; return ``(status, dw0)``."""
    try:
        ns, offset, length = _io_span(ctrl, cmd)
        if cmd.opcode == CMD_FLUSH:
            return SUCCESS, 0
        for iova, size in prp_pages(ctrl, cmd.prp1, cmd.prp2, length):
            if cmd.opcode == CMD_READ:
                ctrl.dma_out(iova, ns.read(offset, size))
            else:
                ns.write(offset, ctrl.dma_in(iova, size))
            offset += size
    except ValueError as exc:
        return int(exc.args[0]), 0
    except DmaError:
        return DATA_TRAS_ERROR, 0
    return SUCCESS, 0


def admin_command(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    """Execute an admin command; return ``(status, dw0)``."""
    handler = {ADM_IDENTIFY: _identify, ADM_CREATE_CQ: _create_cq, ADM_CREATE_SQ: _create_sq,
               ADM_DELETE_CQ: _delete_cq, ADM_DELETE_SQ: _delete_sq,
               ADM_SET_FEATURES: _features, ADM_GET_FEATURES: _features}.get(cmd.opcode)
    if handler is None:
        return INVALID_OPCODE | DNR, 0
    try:
        return handler(ctrl, cmd)
    except ValueError as exc:
        return int(exc.args[0]), 0
    except DmaError:
        return DATA_TRAS_ERROR, 0


def _identify(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    cns = cmd.cdw10 & 0xFF
    if cns == 0x01:
        data = ctrl.identify_controller()
    elif cns == 0x00:
        if not 0 < cmd.nsid <= MAX_NAMESPACES:  # nvme_nsid_valid; broadcast refused here
            return INVALID_NSID | DNR, 0
        ns = ctrl.namespaces.get(cmd.nsid)
        data = _identify_ns(ns) if ns is not None else bytes(PAGE)  # inactive: all zero
    elif cns == 0x02:
        if cmd.nsid >= 0xFFFFFFFE:
            return INVALID_NSID | DNR, 0
        ids = sorted(n for n in ctrl.namespaces if n > cmd.nsid)[:1024]
        data = struct.pack(f"<{len(ids)}I", *ids)
    else:
        return INVALID_FIELD | DNR, 0
    _write_prp(ctrl, cmd, data.ljust(PAGE, b"\0"))
    return SUCCESS, 0


def _identify_ns(ns: Namespace) -> bytes:
    data = bytearray(PAGE)
    struct.pack_into("<QQQ", data, 0, ns.blocks, ns.blocks, ns.blocks)
    data[25] = 0  # NLBAF: one format
    data[26] = 0  # FLBAS: format 0
    struct.pack_into("<HBB", data, 128, 0, ns.lba_size.bit_length() - 1, 0)  # LBAF0: LBADS
    return bytes(data)


def _write_prp(ctrl: NvmeCtrl, cmd: Command, data: bytes) -> None:
    offset = 0
    for iova, size in prp_pages(ctrl, cmd.prp1, cmd.prp2, len(data)):
        ctrl.dma_out(iova, data[offset : offset + size])
        offset += size


def _queue_args(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    qid, qsize = cmd.cdw10 & 0xFFFF, (cmd.cdw10 >> 16) + 1
    if qsize < 2 or qsize > ctrl.mqes + 1:
        raise ValueError(MAX_QSIZE_EXCEEDED | DNR)
    if cmd.prp1 % PAGE or not cmd.prp1:
        raise ValueError(INVALID_PRP_OFFSET | DNR)
    if not cmd.cdw11 & 1:  # physically contiguous only, as QEMU
        raise ValueError(INVALID_FIELD | DNR)
    return qid, qsize


def _create_cq(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    qid = cmd.cdw10 & 0xFFFF
    if not 0 < qid <= ctrl.max_ioqpairs or qid in ctrl.cqs:
        return INVALID_QID | DNR, 0
    _, qsize = _queue_args(ctrl, cmd)
    iv = cmd.cdw11 >> 16
    if iv >= ctrl.msix_vectors or (iv and not ctrl.msix_on()):  # nvme_create_cq
        return INVALID_IRQ_VECTOR | DNR, 0
    ctrl.add_cq(qid, cmd.prp1, qsize, iv, bool(cmd.cdw11 & 2))
    return SUCCESS, 0


def _create_sq(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    qid, cqid = cmd.cdw10 & 0xFFFF, cmd.cdw11 >> 16
    if not cqid or cqid not in ctrl.cqs:
        return INVALID_CQID | DNR, 0
    if not 0 < qid <= ctrl.max_ioqpairs or qid in ctrl.sqs:
        return INVALID_QID | DNR, 0
    _, qsize = _queue_args(ctrl, cmd)
    ctrl.add_sq(qid, cmd.prp1, qsize, cqid)
    return SUCCESS, 0


def _delete_sq(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    qid = cmd.cdw10 & 0xFFFF
    if not qid or qid not in ctrl.sqs:
        return INVALID_QID | DNR, 0
    del ctrl.sqs[qid]
    return SUCCESS, 0


def _delete_cq(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    qid = cmd.cdw10 & 0xFFFF
    if not qid or qid not in ctrl.cqs:
        return INVALID_QID | DNR, 0
    if any(sq.cqid == qid for sq in ctrl.sqs.values()):
        return INVALID_QUEUE_DEL, 0
    del ctrl.cqs[qid]
    return SUCCESS, 0


def _features(ctrl: NvmeCtrl, cmd: Command) -> tuple[int, int]:
    fid = cmd.cdw10 & 0xFF
    if fid != FID_NUM_QUEUES:
        return INVALID_FIELD | DNR, 0
    if cmd.opcode == ADM_SET_FEATURES and (cmd.cdw11 & 0xFFFF == 0xFFFF
                                           or cmd.cdw11 >> 16 == 0xFFFF):
        return INVALID_FIELD | DNR, 0
    n = ctrl.max_ioqpairs - 1  # QEMU grants max_ioqpairs whatever is asked
    return SUCCESS, n | n << 16
