"""One NVMe queue pair on the driver kit: rings in DMA memory, doorbells, a PRP list page per
command id, and commands built as ``struct nvme_command`` overlays."""

from __future__ import annotations

from typing import Any

from pyvfio.dmaalloc import DMAAllocation, DMAAllocator
from pyvfio.memview import DMAView
from pyvfio.nvme import spec
from pyvfio.registers import BoundRegister
from pyvfio.ring import CompletionQueue, QueuePair, SubmissionQueue, Waiter

_CDW = ("cdw10", "cdw11", "cdw12", "cdw13", "cdw14", "cdw15")


class NvmeQueue:
    """Queue pair ``qid`` (0: admin) of ``depth`` entries; ``irq`` is its vector's eventfd or
    None (polling)."""

    def __init__(self, alloc: DMAAllocator, qid: int, depth: int, sq_db: BoundRegister,
                 cq_db: BoundRegister, irq: Waiter | None) -> None:
        self.qid, self.depth, self.alloc = qid, depth, alloc
        self._owned: list[DMAAllocation] = []
        self.sq_mem = self._page_aligned(64 * depth)
        self.cq_mem = self._page_aligned(16 * depth)
        self.prp_lists = self._page_aligned(spec.PAGE * (depth - 1))
        self._sqe = self.sq_mem.mem.array(spec.SQE, 0, depth)
        self._cqe = self.cq_mem.mem.array(spec.CQE, 0, depth)
        sq = SubmissionQueue(self.sq_mem.mem, 64, depth, sq_db)
        cq = CompletionQueue(self.cq_mem.mem, 16, depth, cq_db, phase_offset=spec.STATUS_OFFSET)
        # a closure over the CQE array, not a bound method: the queue pair must not hold the
        # queue (a cycle keeps the DMA views' buffer exports alive until a GC pass, which then
        # may clear a memoryview before the cdata exporting it: "BufferError ... ignored")
        cqe = self._cqe

        def decode(mem: DMAView, offset: int) -> tuple[int, int, tuple[int, int]]:
            c = cqe[offset >> 4]
            return c.cid, c.sq_head, (c.status >> 1, c.result)

        self.pair = QueuePair(sq, cq, decode, irq=irq)

    def _page_aligned(self, size: int) -> DMAAllocation:
        a = self.alloc.alloc(size, align=spec.PAGE)
        self._owned.append(a)
        return a

    def submit(self, opcode: int, *, nsid: int = 0, data: tuple[int, int] | None = None,
               cdw: tuple[int, ...] = (), tag: Any = None, ring: bool = True) -> int:
        """Queue one command; ``data`` is ``(iova, length)`` of a contiguous buffer (PRPs are
        built here), ``cdw`` its dwords 10 onwards. Returns the command id.

        Raises:
            BufferError: the queue is full.
        """
        sqe = self._sqe

        def fill(mem: DMAView, offset: int, cid: int) -> None:
            cmd = sqe[offset >> 6]
            cmd.opcode, cmd.cid, cmd.nsid = opcode, cid, nsid
            if data is not None:
                page = cid * spec.PAGE
                cmd.prp1, cmd.prp2 = spec.prp(data[0], data[1], self.prp_lists.iova + page,
                                              self.prp_lists.mem.sub(page, spec.PAGE)
                                              if data[1] > 2 * spec.PAGE else None)
            for name, value in zip(_CDW, cdw):  # noqa: B905 - at most six dwords
                setattr(cmd, name, value)

        return self.pair.submit(fill, tag, ring=ring)

    def io(self, opcode: int, nsid: int, lba: int, nblocks: int, iova: int, length: int, *,
           tag: Any = None, ring: bool = True) -> int:
        """Queue a READ or WRITE of ``nblocks`` from ``lba`` to/from ``length`` bytes at ``iova``
        (contiguous); return the command id (wait with ``pair.wait``/``pair.reap``).

        Raises:
            BufferError: the queue is full.
        """
        return self.submit(opcode, nsid=nsid, data=(iova, length), tag=tag, ring=ring,
                           cdw=(lba & 0xFFFFFFFF, lba >> 32, nblocks - 1))

    def result(self, step: str, outcome: tuple[int, int]) -> int:
        """Return dword 0 of a completion, or raise :class:`spec.NvmeError` for its status."""
        status, dw0 = outcome
        if status:
            raise spec.NvmeError(step, status)
        return dw0

    def run(self, step: str, opcode: int, *, timeout: float = 5.0, poll: bool | None = None,
            **kw: Any) -> int:
        """Submit one command, wait for it, return its dword 0.

        Raises:
            NvmeError: it completed with an error status.  DriverError: timeout.
        """
        cid = self.submit(opcode, **kw)
        return self.result(step, self.pair.wait(cid, timeout, poll=poll))

    async def run_async(self, step: str, opcode: int, *, timeout: float = 5.0, **kw: Any) -> int:
        """:meth:`run` under asyncio."""
        cid = self.submit(opcode, **kw)
        return self.result(step, await self.pair.wait_async(cid, timeout))

    def close(self) -> None:
        """Free the rings and PRP list pages (the controller must have deleted the queue)."""
        for a in self._owned:
            self.alloc.free(a)
        self._owned.clear()
