"""pyvfio.ring: a generic submission/completion ring pair, driven by a toy device in the test.

Pure userspace logic (no kernel call), so fake-only; the NVMe driver runs the same rings against
the fake NVMe model (test_nvme_driver.py) and QEMU's nvme in the VM lane.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

from pyvfio.errors import DriverError
from pyvfio.memview import DMAView
from pyvfio.ring import CompletionQueue, QueuePair, SubmissionQueue


class Bell:
    def __init__(self) -> None:
        self.values: list[int] = []

    def write(self, value: int) -> None:
        self.values.append(value)


class ToyDevice:
    """Consumes 16-byte entries (cid at 0, value at 4) and completes each with value * 2."""

    def __init__(self, sq: SubmissionQueue, cq: CompletionQueue) -> None:
        self.sq, self.cq, self.head, self.tail, self.phase = sq, cq, 0, 0, 1

    def run(self, count: int | None = None) -> None:
        while self.head != self.sq.tail and count != 0:
            cid, value = struct.unpack("<HxxI", self.sq.mem.read(16 * self.head, 8))
            self.head = (self.head + 1) % self.sq.depth
            self.cq.mem.write(8 * self.tail, struct.pack("<IHH", value * 2, cid, self.phase))
            self.tail += 1
            if self.tail == self.cq.depth:
                self.tail, self.phase = 0, self.phase ^ 1
            count = None if count is None else count - 1


def make(depth: int = 4) -> tuple[QueuePair, ToyDevice, Bell, Bell]:
    sqb, cqb = Bell(), Bell()
    sq = SubmissionQueue(DMAView(bytearray(16 * depth)), 16, depth, sqb)
    cq = CompletionQueue(DMAView(bytearray(8 * depth)), 8, depth, cqb, phase_offset=6)
    dev = ToyDevice(sq, cq)

    def decode(mem: DMAView, offset: int) -> tuple[int, int, int]:
        return mem.load16(offset + 4), dev.head, mem.load32(offset)

    return QueuePair(sq, cq, decode), dev, sqb, cqb


def fill(value: int):  # type: ignore[no-untyped-def]
    def f(mem: DMAView, offset: int, cid: int) -> None:
        mem.store16(offset, cid)
        mem.store32(offset + 4, value)
    return f


def test_submit_rings_tail_and_wait_returns_result() -> None:
    qp, dev, sqb, cqb = make()
    cid = qp.submit(fill(21))
    assert sqb.values == [1]
    dev.run()
    assert qp.wait(cid, 1.0, poll=True) == 42
    assert cqb.values == [1]  # head doorbell after consuming


def test_phase_flips_on_wrap_and_ids_are_reused() -> None:
    qp, dev, _, cqb = make(depth=4)
    for i in range(10):
        cid = qp.submit(fill(i))
        dev.run()
        assert qp.wait(cid, 1.0) == 2 * i
    assert qp.cq.phase == 1 and len(qp.inflight) == 0  # 10 entries on 4: wrapped twice
    assert cqb.values[-1] == 10 % 4


def test_full_queue_buffererror_and_batched_doorbell() -> None:
    qp, dev, sqb, _ = make(depth=4)
    cids = [qp.submit(fill(i), ring=False) for i in range(3)]
    with pytest.raises(BufferError, match="full"):
        qp.submit(fill(9))
    qp.sq.ring()
    assert sqb.values == [3]
    dev.run()
    assert [qp.wait(c, 1.0) for c in cids] == [0, 2, 4]


def test_nothing_completes_driver_error_with_state() -> None:
    qp, _, _, _ = make()
    cid = qp.submit(fill(1))
    with pytest.raises(DriverError, match="did not complete") as info:
        qp.wait(cid, 0.01, poll=True)
    assert "1 in flight" in str(info.value)


def test_wait_async_many_in_flight() -> None:
    qp, dev, _, _ = make(depth=8)

    async def main() -> list[int]:
        cids = [qp.submit(fill(i)) for i in range(5)]
        asyncio.get_running_loop().call_later(0.01, dev.run)
        return list(await asyncio.gather(*(qp.wait_async(c, 1.0) for c in cids)))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
