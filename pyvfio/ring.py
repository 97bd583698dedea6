"""Rings: submission and completion queues in DMA memory, with doorbells, phase tags and ids.

The shape NVMe, virtio-style and most descriptor-ring devices share: the driver writes entries at
the submission queue's tail and rings its doorbell; the device writes completion entries whose
phase tag flips each time the queue wraps, and the driver rings the completion doorbell with its
new head.  :class:`QueuePair` adds command ids (each in flight at most once), completion by
polling, by an interrupt's eventfd, or under asyncio, and the ordering rules (``wmb`` before a
doorbell, ``dma_rmb`` between the phase tag and the rest of an entry: :mod:`pyvfio.barrier`).

Device-specific parts stay with the driver: it fills a submission entry (``fill(mem, offset,
cid)``) and decodes a completion (``decode(mem, offset) -> (cid, sq_head, result)``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from pyvfio import barrier
from pyvfio.dma import check_int
from pyvfio.errors import DriverError
from pyvfio.memview import DMAView

__all__ = ["CompletionQueue", "QueuePair", "SubmissionQueue"]


class Doorbell(Protocol):
    """A register the ring writes its index to (a :class:`pyvfio.registers.BoundRegister`)."""

    def write(self, value: int) -> None: ...


class Waiter(Protocol):
    """An interrupt's eventfd (:class:`pyvfio.irq.EventFD`)."""

    def wait(self, timeout: float | None = None) -> int | None: ...

    async def wait_async(self, timeout: float | None = None) -> int | None: ...


class SubmissionQueue:
    """``depth`` entries of ``entry_size`` bytes; the driver owns the tail, the device the head."""

    def __init__(self, mem: DMAView, entry_size: int, depth: int, doorbell: Doorbell) -> None:
        """Raises ValueError: ``mem`` is smaller than the ring, or depth < 2."""
        check_int("depth", depth, 2)
        if entry_size * depth > len(mem):
            raise ValueError(f"{depth} entries of {entry_size} bytes do not fit {len(mem):#x}")
        self.mem, self.entry_size, self.depth, self.doorbell = mem, entry_size, depth, doorbell
        self.tail = self.head = 0

    @property
    def free(self) -> int:
        """Entries that can be written before the ring is full (one slot always stays empty)."""
        return self.depth - 1 - (self.tail - self.head) % self.depth

    def push(self) -> int:
        """Claim the entry at the tail and return its byte offset (zeroed), tail advanced.

        Raises:
            BufferError: the ring is full.
        """
        if not self.free:
            raise BufferError(f"submission queue full ({self.depth - 1} entries in flight)")
        offset = self.tail * self.entry_size
        self.mem.zero(offset, self.entry_size)
        self.tail = (self.tail + 1) % self.depth
        return offset

    def ring(self) -> None:
        """Publish every pushed entry: ``wmb()``, then one doorbell store of the tail."""
        barrier.wmb()  # the entries reach memory before the device can see the new tail
        self.doorbell.write(self.tail)


class CompletionQueue:
    """``depth`` entries; an entry is new when its phase bit (bit ``phase_bit`` of the 16-bit word
    at ``phase_offset``) equals the queue's phase, which starts at 1 and flips on each wrap."""

    def __init__(self, mem: DMAView, entry_size: int, depth: int, doorbell: Doorbell, *,
                 phase_offset: int, phase_bit: int = 0) -> None:
        """Raises ValueError: ``mem`` is smaller than the ring, or the phase word is outside."""
        check_int("depth", depth, 2)
        if entry_size * depth > len(mem) or not 0 <= phase_offset <= entry_size - 2:
            raise ValueError("completion ring or its phase word does not fit")
        self.mem, self.entry_size, self.depth, self.doorbell = mem, entry_size, depth, doorbell
        self.phase_offset, self.phase_mask = phase_offset, 1 << phase_bit
        self.head, self.phase = 0, 1

    def peek(self) -> int | None:
        """Return the byte offset of the entry at the head if the device has written it."""
        offset = self.head * self.entry_size
        word = self.mem.load16(offset + self.phase_offset)  # one 16-bit load: tag and status
        if bool(word & self.phase_mask) != bool(self.phase):
            return None
        barrier.dma_rmb()  # the rest of the entry is read after its phase tag
        return offset

    def pop(self) -> None:
        """Consume the head entry (flip the phase on wrap); the doorbell is :meth:`ring`'s job."""
        self.head += 1
        if self.head == self.depth:
            self.head, self.phase = 0, self.phase ^ 1

    def ring(self) -> None:
        """Tell the device the entries up to the head are consumed (one doorbell store)."""
        self.doorbell.write(self.head)


class QueuePair:
    """A submission queue and its completion queue with command ids and completion waiting.

    ``decode(mem, offset)`` returns ``(cid, sq_head, result)`` of a completion entry; ``result``
    is what :meth:`wait` returns for that id (e.g. status and dword 0).  Not thread-safe: one
    queue pair per thread, as NVMe drivers do.
    """

    def __init__(self, sq: SubmissionQueue, cq: CompletionQueue,
                 decode: Callable[[DMAView, int], tuple[int, int, Any]], *,
                 max_ids: int | None = None, irq: Waiter | None = None) -> None:
        self.sq, self.cq, self.decode, self.irq = sq, cq, decode, irq
        self._free_ids = deque(range(min(max_ids or 65535, sq.depth - 1)))
        self.inflight: dict[int, Any] = {}  # cid -> caller's tag until completed
        self.done: dict[int, Any] = {}
        self._round: Any = None  # the asyncio future of the eventfd wait in progress

    def submit(self, fill: Callable[[DMAView, int, int], None], tag: Any = None, *,
               ring: bool = True) -> int:
        """Write one entry with ``fill(mem, offset, cid)`` and (by default) ring; return the cid.

        Raises:
            BufferError: no free command id or queue slot.
        """
        if not self._free_ids or not self.sq.free:
            raise BufferError(f"queue full: {len(self.inflight)} commands in flight")
        cid = self._free_ids.popleft()
        fill(self.sq.mem, self.sq.push(), cid)
        self.inflight[cid] = tag
        if ring:
            self.sq.ring()
        return cid

    def reap(self, limit: int = 1 << 30) -> int:
        """Consume up to ``limit`` new completions, record their results; return how many."""
        n = 0
        while n < limit:
            offset = self.cq.peek()
            if offset is None:
                break
            cid, sq_head, result = self.decode(self.cq.mem, offset)
            self.cq.pop()
            self.sq.head = sq_head % self.sq.depth
            if cid in self.inflight:
                del self.inflight[cid]
                self.done[cid] = result
                self._free_ids.append(cid)
            n += 1
        if n:
            self.cq.ring()
        return n

    def take(self, cid: int) -> Any:
        """Return (and forget) the result of completed ``cid``. Raises KeyError if not done."""
        return self.done.pop(cid)

    def wait(self, cid: int, timeout: float = 5.0, *, poll: bool | None = None) -> Any:
        """Return ``cid``'s result once it completes: polling (busy, for the lowest latency) or
        sleeping on the interrupt's eventfd (default when the pair has one).

        Raises:
            DriverError: step ``wait for completion``: ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        use_irq = self.irq is not None if poll is None else not poll
        while cid not in self.done:
            if self.reap() == 0:
                left = self._left(deadline, cid, timeout)
                if use_irq and self.irq is not None:
                    self.irq.wait(min(left, 0.05))  # a short bound: never sleep past a race
        return self.take(cid)

    async def wait_async(self, cid: int, timeout: float = 5.0) -> Any:
        """Like :meth:`wait` on the running asyncio loop: one waiter awaits the eventfd and
        reaps for all (an fd has one reader per loop), the others await that round; without an
        interrupt it polls, yielding to the loop between polls.

        Raises:
            DriverError: ``timeout`` seconds passed first.
        """
        import asyncio  # noqa: PLC0415 - only async users pay for importing asyncio

        deadline = time.monotonic() + timeout
        while cid not in self.done:
            if self.reap() == 0:
                left = self._left(deadline, cid, timeout)
                if self.irq is None:
                    await asyncio.sleep(0)
                elif self._round is not None:
                    await self._round
                else:
                    self._round = asyncio.get_running_loop().create_future()
                    try:
                        await self.irq.wait_async(min(left, 0.05))
                    finally:
                        done, self._round = self._round, None
                        done.set_result(None)
        return self.take(cid)

    def _left(self, deadline: float, cid: int, timeout: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DriverError("wait for completion", f"command {cid} did not complete within "
                              f"{timeout} s", hint=self._hint())
        return left

    def _hint(self) -> str:
        return (f"{len(self.inflight)} in flight, sq tail {self.sq.tail} head {self.sq.head}, "
                f"cq head {self.cq.head} phase {self.cq.phase}")
