"""QEMU 7.2's NVMe controller (hw/nvme/ctrl.c, ``-device nvme``), as a fake PCI device model.

BAR0 (64-bit memory) holds the controller registers (CAP, VS, INTMS, INTMC, CC, CSTS, AQA, ASQ,
ACQ), the doorbells from 0x1000 spaced ``4 << CAP.DSTRD`` bytes (SQ y tail at ``2y``, CQ y head at
``2y + 1``), then -- as QEMU's ``nvme_bar_size`` lays it out for the default 64 I/O queue pairs and
65 vectors -- the MSI-X table at 0x2000 and its PBA at 0x3000, in 16 KiB.  Commands run when their
submission doorbell is written (QEMU runs them from a timer; the order of effects is the same):
each submission entry is read by DMA through the fake IOMMU, executed (:mod:`pyvfio.fake.nvme_cmd`),
and its completion written by DMA with the queue's phase tag, then the completion queue's vector
is signalled by MSI-X, or the INTx line raised while any queue with interrupts enabled has entries
the host has not consumed (QEMU's ``nvme_irq_check``; INTMS masks it).

What is not modelled: the MSI-X table's per-vector mask bits, asynchronous events, namespace
management, SGLs, CMB/PMR, SR-IOV, reservations, and anything beyond the commands listed in
:mod:`pyvfio.fake.nvme_cmd`.  A submission entry the IOMMU refuses to read sets CSTS.CFS, as QEMU.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

from pyvfio.fake import nvme_cmd
from pyvfio.fake.bus import VFIO_PCI
from pyvfio.fake.kernel import FakeKernel
from pyvfio.fake.nvme_cmd import Command, DmaError, Namespace
from pyvfio.fake.pci import PCI_CAP_ID_MSIX, PCI_MSIX_FLAGS_ENABLE, DeviceConfig, PCIDevice

CAP, VS, INTMS, INTMC, CC, CSTS, NSSR, AQA, ASQ, ACQ = (0x00, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20,
                                                       0x24, 0x28, 0x30)
DOORBELLS, MSIX_TABLE, MSIX_PBA, BAR0_SIZE = 0x1000, 0x2000, 0x3000, 0x4000
CSTS_RDY, CSTS_CFS, CSTS_SHST_DONE = 0x1, 0x2, 0x2 << 2
VERSION = 0x00010400  # NVMe 1.4, QEMU 7.2's NVME_SPEC_VER


@dataclass
class Queue:
    """A submission (``cqid`` set) or completion queue of the controller."""

    base: int
    size: int
    cqid: int = 0
    iv: int = 0
    ien: bool = False
    head: int = 0
    tail: int = 0
    phase: int = 1


def nvme_config(*, msix_vectors: int = 65) -> DeviceConfig:
    """QEMU's nvme: 1b36:0010 (Red Hat), class 0x010802 (NVMe), BAR0 16 KiB, MSI-X in BAR0."""
    return DeviceConfig(vendor=0x1B36, device=0x0010, subsystem_vendor=0x1AF4,
                        subsystem_device=0x1100, class_code=0x010802, revision=0x02,
                        bars=(BAR0_SIZE,), mem64=True, msi_vectors=0, msix_vectors=msix_vectors,
                        msix_bar=0, msix_offset=MSIX_TABLE, msix_pba_offset=MSIX_PBA, pcie=True)


class NvmeCtrl(PCIDevice):
    """The controller; ``namespaces`` maps NSID -> :class:`Namespace` (default: one of 1 MiB)."""

    def __init__(self, bdf: str, namespaces: dict[int, Namespace] | None = None, *,
                 dstrd: int = 0, max_ioqpairs: int = 64, mqes: int = 0x7FF) -> None:
        super().__init__(bdf, nvme_config(msix_vectors=max_ioqpairs + 1))
        self.namespaces = {1: Namespace()} if namespaces is None else namespaces
        self.dstrd, self.max_ioqpairs, self.mqes = dstrd, max_ioqpairs, mqes
        self.msix_vectors = max_ioqpairs + 1
        self.regs = bytearray(DOORBELLS)
        self.lock = threading.RLock()
        self.errors: list[str] = []
        self.commands: list[tuple[int, int, int]] = []  # (sqid, opcode, status), for tests
        self._reset_ctrl()
        struct.pack_into("<Q", self.regs, CAP, self.cap)
        struct.pack_into("<I", self.regs, VS, VERSION)

    @property
    def cap(self) -> int:
        """CAP: MQES, CQR, TO = 7.5 s, DSTRD, CSS NVM, MPSMIN 4 KiB, MPSMAX 64 KiB."""
        return (self.mqes | 1 << 16 | 0xF << 24 | self.dstrd << 32 | 1 << 37 | 4 << 52)

    def _reset_ctrl(self) -> None:
        self.sqs: dict[int, Queue] = {}
        self.cqs: dict[int, Queue] = {}
        self.irq_status = 0
        self._reg32(CSTS, 0)

    def _reg32(self, offset: int, value: int | None = None) -> int:
        if value is not None:
            struct.pack_into("<I", self.regs, offset, value)
        return int(struct.unpack_from("<I", self.regs, offset)[0])

    # -- BAR0 --------------------------------------------------------------------------------

    def bar_read(self, index: int, offset: int, width: int) -> int:
        if index != 0 or offset >= DOORBELLS:
            return 0 if DOORBELLS <= offset < MSIX_TABLE else super().bar_read(index, offset, width)
        with self.lock:
            return int.from_bytes(self.regs[offset : offset + width], "little")

    def bar_write(self, index: int, offset: int, width: int, value: int) -> None:
        if index != 0 or offset >= MSIX_TABLE:
            super().bar_write(index, offset, width, value)
            return
        with self.lock:
            if offset >= DOORBELLS:
                self._doorbell(offset - DOORBELLS, value)
            elif offset == CC and width == 4:
                self._write_cc(value)
            elif offset in (INTMS, INTMC) and width == 4:
                mask = self._reg32(INTMS)
                self._reg32(INTMS, mask | value if offset == INTMS else mask & ~value)
                self._irq_update()
            elif AQA <= offset < ACQ + 8 and offset % width == 0:
                self.regs[offset : offset + width] = value.to_bytes(width, "little")

    def _write_cc(self, value: int) -> None:
        old = self._reg32(CC)
        self._reg32(CC, value)
        if value & 1 and not old & 1:
            self._start()
        elif old & 1 and not value & 1:
            self._reset_ctrl()
        if value >> 14 & 3:  # CC.SHN: shutdown is immediate
            self._reg32(CSTS, self._reg32(CSTS) | CSTS_SHST_DONE)

    def _start(self) -> None:
        """nvme_start_ctrl: check the admin queue setup; CSTS.RDY or CSTS.CFS."""
        aqa = self._reg32(AQA)
        asq, acq = struct.unpack_from("<QQ", self.regs, ASQ)
        cc = self._reg32(CC)
        sq_size, cq_size = (aqa & 0xFFF) + 1, (aqa >> 16 & 0xFFF) + 1
        problem = None
        if not asq or not acq or asq % 4096 or acq % 4096:
            problem = "ASQ/ACQ zero or not page aligned"
        elif sq_size < 2 or cq_size < 2:
            problem = "AQA: admin queues need at least 2 entries"
        elif cc >> 7 & 0xF or cc >> 4 & 7:
            problem = "CC.MPS or CC.CSS unsupported"
        elif cc >> 16 & 0xF != 6 or cc >> 20 & 0xF != 4:
            problem = "CC.IOSQES must be 6 and CC.IOCQES 4"
        if problem:
            self.errors.append(f"nvme_start_ctrl: {problem}")
            self._reg32(CSTS, CSTS_CFS)
            return
        self.cqs[0] = Queue(acq, cq_size, iv=0, ien=True)
        self.sqs[0] = Queue(asq, sq_size, cqid=0)
        self._reg32(CSTS, CSTS_RDY)

    def _doorbell(self, offset: int, value: int) -> None:
        stride = 4 << self.dstrd
        if offset % stride or not self._reg32(CSTS) & CSTS_RDY:
            return
        qid, is_cq = divmod(offset // stride, 2)
        queue = (self.cqs if is_cq else self.sqs).get(qid)
        if queue is None or value >= queue.size:
            self.errors.append(f"doorbell {'CQ' if is_cq else 'SQ'} {qid}: invalid {value}")
            return
        if is_cq:
            queue.head = value
            self._irq_update()
        else:
            queue.tail = value
            self._process(qid, queue)

    # -- commands ----------------------------------------------------------------------------

    def _process(self, sqid: int, sq: Queue) -> None:
        while sq.head != sq.tail and sqid in self.sqs:
            try:
                raw = self.dma_in(sq.base + 64 * sq.head, 64)
            except DmaError:
                self.errors.append(f"SQ {sqid}: entry {sq.head} unreadable: CSTS.CFS")
                self._reg32(CSTS, self._reg32(CSTS) | CSTS_CFS)
                return
            sq.head = (sq.head + 1) % sq.size
            cmd = Command.parse(raw)
            run = nvme_cmd.admin_command if sqid == 0 else nvme_cmd.io_command
            status, dw0 = run(self, cmd)
            self.commands.append((sqid, cmd.opcode, status))
            self._complete(sq, sqid, cmd.cid, status, dw0)

    def _complete(self, sq: Queue, sqid: int, cid: int, status: int, dw0: int) -> None:
        cq = self.cqs.get(sq.cqid)
        if cq is None:
            return
        entry = struct.pack("<IIHHHH", dw0, 0, sq.head, sqid, cid, status << 1 | cq.phase)
        try:
            self.dma_out(cq.base + 16 * cq.tail, entry)
        except DmaError:
            self.errors.append(f"CQ {sq.cqid}: entry {cq.tail} unwritable")
            return
        cq.tail += 1
        if cq.tail == cq.size:
            cq.tail, cq.phase = 0, cq.phase ^ 1
        if cq.ien:
            if self.msix_on():
                self.send_msi(cq.iv)
            else:
                self._irq_update()

    def _irq_update(self) -> None:
        """nvme_irq_check: INTx follows the pending queues while MSI-X is off."""
        if self.msix_on():
            return
        pending = any(q.ien and q.head != q.tail for q in self.cqs.values())
        self.set_intx(pending and not self._reg32(INTMS) & 1)

    def msix_on(self) -> bool:
        """Whether the MSI-X capability's Enable bit is set."""
        off = self.caps.get(PCI_CAP_ID_MSIX)
        return off is not None and bool(self.cfg_read(off + 2, 2) & PCI_MSIX_FLAGS_ENABLE)

    def add_cq(self, qid: int, base: int, size: int, iv: int, ien: bool) -> None:
        """Create I/O completion queue ``qid`` (CREATE IO CQ passed its checks)."""
        self.cqs[qid] = Queue(base, size, iv=iv, ien=ien)

    def add_sq(self, qid: int, base: int, size: int, cqid: int) -> None:
        """Create I/O submission queue ``qid`` bound to ``cqid``."""
        self.sqs[qid] = Queue(base, size, cqid=cqid)

    def dma_in(self, iova: int, size: int) -> bytes:
        """Read host memory; raises :class:`DmaError` when the IOMMU (or bus master) refuses."""
        data = self.dma_read(iova, size)
        if data is None:
            raise DmaError(iova)
        return data

    def dma_out(self, iova: int, data: bytes) -> None:
        """Write host memory; raises :class:`DmaError` when refused."""
        if not self.dma_write(iova, data):
            raise DmaError(iova)

    def identify_controller(self) -> bytes:
        """The 4 KiB IDENTIFY CONTROLLER page (the fields QEMU 7.2 fills that drivers read)."""
        data = bytearray(4096)
        struct.pack_into("<HH", data, 0, self.cfg.vendor, self.cfg.subsystem_vendor)
        data[4:24] = self.bdf.encode().ljust(20)  # SN
        data[24:64] = b"QEMU NVMe Ctrl".ljust(40)  # MN
        data[64:72] = b"7.2".ljust(8)  # FR
        data[77] = nvme_cmd.MDTS
        struct.pack_into("<I", data, 80, VERSION)
        data[512], data[513] = 0x66, 0x44  # SQES, CQES: 64- and 16-byte entries
        struct.pack_into("<I", data, 516, 256)  # NN: QEMU's NVME_MAX_NAMESPACES
        return bytes(data)

    def reset(self) -> None:
        """Function-level reset: the controller is disabled and its queues are gone."""
        super().reset()
        with self.lock:
            self._reg32(CC, 0)
            self._reset_ctrl()

    def close(self) -> None:
        """Close file-backed namespaces."""
        for ns in self.namespaces.values():
            ns.close()


NVME = "0000:00:04.0"


def add_nvme(kernel: FakeKernel, bdf: str = NVME, group: int = 4, *,
             namespaces: dict[int, Namespace] | None = None, dstrd: int = 0) -> NvmeCtrl:
    """Plug a controller into ``kernel`` in its own IOMMU group, bound to vfio-pci, and label it
    ``nvme`` (``kernel.labels["nvme"]``); the kernel is marked clean again."""
    ctrl = NvmeCtrl(bdf, namespaces, dstrd=dstrd)
    ctrl.bars[0].address = 0xFEB00000
    kernel.bus.override[bdf] = VFIO_PCI
    kernel.add_device(ctrl, group, VFIO_PCI)
    kernel.labels.update(nvme=bdf, nvme_group=group)
    kernel.mark_clean()
    return ctrl
