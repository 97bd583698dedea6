"""4 KiB random reads at a queue depth: pyvfio's NVMe driver against the kernel's nvme driver.

The pyvfio side keeps ``qd`` reads in flight on one I/O queue (polled, or MSI-X), one doorbell
write per batch, and times each read from submission to its completion being reaped.  The kernel
side runs fio (``--direct=1 --ioengine=libaio --rw=randread --bs=4k``) on the block device when
fio is installed, else a Python reader (``O_DIRECT`` ``preadv``; ``qd`` threads for ``qd`` > 1)
-- the result says which.  Used by ``tools/bench/test_nvme_vm.py`` in the VM lane.
"""

from __future__ import annotations

import json
import mmap
import os
import random
import re
import shutil
import subprocess
import threading
import time
from typing import Any

from pyvfio.nvme import NvmeController, spec

BLOCK = 4096


def _summary(lat_ns: list[int], seconds: float, engine: str) -> dict[str, Any]:
    lat_ns.sort()
    n = len(lat_ns)
    return {"engine": engine, "ios": n, "seconds": round(seconds, 3),
            "iops": round(n / seconds) if seconds else 0,
            "lat_mean_us": round(sum(lat_ns) / n / 1e3, 1) if n else None,
            "lat_p99_us": round(lat_ns[min(n - 1, n * 99 // 100)] / 1e3, 1) if n else None}


def pyvfio_randread(ctrl: NvmeController, qd: int, seconds: float, *, nsid: int = 1,
                    seed: int = 1) -> dict[str, Any]:
    """Random 4 KiB reads with ``qd`` in flight for ``seconds`` on ``ctrl``'s first I/O queue.

    Raises:
        NvmeError: a read failed.  DriverError: a read never completed.
    """
    q, ns = ctrl.queues[0], ctrl.namespace(nsid)
    per, span = BLOCK // ns.block_size, ns.blocks * ns.block_size // BLOCK
    bufs = [ctrl.alloc.alloc(BLOCK, align=BLOCK, zero=False) for _ in range(qd)]
    rng = random.Random(seed)
    inflight: dict[int, tuple[int, int]] = {}
    lat: list[int] = []
    pair, irq = q.pair, q.pair.irq
    clock = time.perf_counter_ns

    def submit(i: int, ring: bool) -> None:
        cid = q.io(spec.NVM_READ, nsid, rng.randrange(span) * per, per, bufs[i].iova, BLOCK,
                   ring=ring)
        inflight[cid] = (i, clock())

    try:
        start = clock()
        end = start + int(seconds * 1e9)
        for i in range(qd):
            submit(i, ring=i == qd - 1)
        while inflight:
            if not pair.reap() and irq is not None:
                irq.wait(0.05)
            now = clock()
            resubmit = False
            for cid in [c for c in pair.done if c in inflight]:
                status, _ = pair.take(cid)
                if status:
                    raise spec.NvmeError("read", status)
                i, t0 = inflight.pop(cid)
                lat.append(now - t0)
                if now < end:
                    submit(i, ring=False)
                    resubmit = True
            if resubmit:
                q.pair.sq.ring()  # one doorbell write for the whole batch
        elapsed = (clock() - start) / 1e9
    finally:
        for b in bufs:
            ctrl.alloc.free(b)
    return _summary(lat, elapsed, f"pyvfio {ctrl.mode} {ctrl.irq_mode}")


def kernel_randread(dev: str, qd: int, seconds: float) -> dict[str, Any]:
    """Random 4 KiB ``O_DIRECT`` reads on block device ``dev`` through the kernel's driver."""
    fio = shutil.which("fio")
    if fio:
        return _fio(fio, dev, qd, seconds)
    return _python_reader(dev, qd, seconds)


def _fio(fio: str, dev: str, qd: int, seconds: float) -> dict[str, Any]:
    cmd = [fio, "--name=randread", f"--filename={dev}", "--direct=1", "--rw=randread",
           f"--bs={BLOCK}", "--ioengine=libaio", f"--iodepth={qd}", f"--runtime={seconds}",
           "--time_based", "--norandommap", "--randrepeat=0", "--output-format=json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    read = json.loads(out[out.index("{"):])["jobs"][0]["read"]
    ios, runtime = int(read["total_ios"]), read["runtime"] / 1e3
    p99 = read["clat_ns"].get("percentile", {}).get("99.000000", 0)
    # lat_ns: submission to completion, what pyvfio's numbers measure (clat_ns omits submission)
    return {"engine": f"fio libaio iodepth={qd}", "ios": ios, "seconds": runtime,
            "iops": round(read["iops"]), "lat_mean_us": round(read["lat_ns"]["mean"] / 1e3, 1),
            "lat_p99_us": round(p99 / 1e3, 1)}


def _python_reader(dev: str, qd: int, seconds: float) -> dict[str, Any]:
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        span = os.lseek(fd, 0, os.SEEK_END) // BLOCK
        lat: list[int] = []
        end = time.perf_counter_ns() + int(seconds * 1e9)

        def worker(seed: int) -> None:
            buf = mmap.mmap(-1, BLOCK)  # page aligned, as O_DIRECT needs
            rng = random.Random(seed)
            mine = []
            while (t0 := time.perf_counter_ns()) < end:
                os.preadv(fd, [buf], rng.randrange(span) * BLOCK)
                mine.append(time.perf_counter_ns() - t0)
            lat.extend(mine)

        start = time.perf_counter_ns()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(qd)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = (time.perf_counter_ns() - start) / 1e9
    finally:
        os.close(fd)
    return _summary(lat, elapsed, f"python O_DIRECT preadv, {qd} thread(s)")


def block_device_of(bdf: str) -> str:
    """The ``/dev/nvmeXnY`` of the first namespace of the controller at ``bdf``.

    Raises:
        FileNotFoundError: no nvme driver bound there, or no namespace.
    """
    base = f"/sys/bus/pci/devices/{bdf}/nvme"
    for ctrl in sorted(os.listdir(base)):
        for entry in sorted(os.listdir(f"{base}/{ctrl}")):
            if re.fullmatch(rf"{ctrl}n\d+", entry):
                return f"/dev/{entry}"
    raise FileNotFoundError(f"{bdf}: no namespace block device under {base}")
