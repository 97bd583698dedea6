"""``pyvfio demo --driver nvme``: the NVMe driver step by step, on the fake kernel's model of
QEMU's nvme (default) or a real controller bound to vfio-pci (``--device BDF``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pyvfio.errors import DriverError
from pyvfio.kernel import Kernel
from pyvfio.nvme.controller import NvmeController

if TYPE_CHECKING:
    from pyvfio.demo import Run

PATTERN = bytes(i * 13 % 251 for i in range(64 << 10))


def run_demo(kernel: Kernel, bdf: str, mode: str, timeout: float) -> tuple[bool, dict[str, Any]]:
    """Run the NVMe demo on ``bdf``; return (ok, JSON data) as :func:`pyvfio.demo.run_demo`."""
    from pyvfio import demo  # noqa: PLC0415 - demo imports this module lazily, and us it

    run = demo.Run()
    data: dict[str, Any] = {"driver": "nvme", "device": bdf, "mode": None, "mode_reason": None,
                            "steps": run.steps}
    ok = run.drive(data, f"open {bdf} ({mode}), reset, enable, admin + 1 I/O queue (MSI-X)",
                   lambda: NvmeController.open(bdf, mode, kernel=kernel, timeout=timeout),
                   lambda nvme: (f"{nvme.mode} mode, CAP.MQES {nvme.mqes}, doorbell stride "
                                 f"{nvme.stride} B, timeout {nvme.timeout} s"),
                   _exercise, "shutdown and close")
    return ok, data


def _exercise(run: Run, nvme: NvmeController) -> None:
    info = nvme.info
    run.step("identify controller", lambda: f"{info.model} {info.serial} fw {info.firmware}, "
             f"MDTS {info.mdts}")
    nsids = run.step("active namespaces", nvme.namespace_ids)
    if not nsids:
        raise DriverError("namespaces", "the controller has no active namespace")
    ns = nvme.namespace(nsids[0])
    run.step(f"identify namespace {ns.nsid}", lambda: f"{ns.blocks} blocks of {ns.block_size} B")
    n = len(PATTERN) // ns.block_size
    if ns.blocks < n:
        raise DriverError("namespaces", f"namespace {ns.nsid} is smaller than {len(PATTERN)} B")
    run.step(f"write {len(PATTERN) >> 10} KiB (PRP list)", lambda: nvme.write(ns.nsid, 0, PATTERN))
    got: list[bytes] = []

    def read() -> str:
        got.append(nvme.read(ns.nsid, 0, n))
        return f"{len(got[0])} bytes"

    run.step(f"read {len(PATTERN) >> 10} KiB back", read)
    run.verify(got[0], PATTERN)
    per = 4096 // ns.block_size

    async def qd32() -> int:
        reads = [nvme.read_async(ns.nsid, (i * per) % n, per) for i in range(32)]
        return len(await asyncio.gather(*reads))

    run.step("32 reads of 4 KiB in flight (asyncio)", lambda: f"{asyncio.run(qd32())} done")
