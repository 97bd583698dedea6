#!/usr/bin/env python3
"""pyvfio's benchmarks on this host: one command, a table, and JSON.

    python3 tools/bench/run.py [--json FILE] [--quick] [--max-mappings N]

Parts (reference/peers.md Appendix B method: fastest of 5 loops, per operation):
  1  per-ioctl cost: C loop (gcc at bench time) vs raw fcntl.ioctl vs pyvfio's wrapper, FIONREAD
     on a pipe (this host has no VFIO device); plus the fake kernel's VFIO_GET_API_VERSION
  2  map+unmap 4 KiB / 2 MiB on the fake kernel, legacy and iommufd (the C comparison needs the
     real kernel: tools/bench/test_bench_vm.py in the VM lane)
  3  register read/write per width: the fake edu's BAR, and a real shared mapping (a memfd)
  4  fake IOVA structures, 10^3 .. 10^6 mappings: per-op cost and bytes per mapping
  +  the fake edu's DMA copy throughput through the edu driver
The real-kernel parts (1 with VFIO ioctls, 2 against C, 3 on a real BAR, 5 fake vs real) run in
the guest: tools/vm/run --profile iommufd -- tools/bench/test_bench_vm.py -s
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import cases
import common  # sets sys.path to the checkout
import fake_scaling
import ioctls

from pyvfio.cdev import open_device
from pyvfio.container import Container
from pyvfio.edu import DMA_MAX, REGISTERS, EduDriver
from pyvfio.fake import standard_host
from pyvfio.kernel import LinuxKernel


def part1(number: int) -> tuple[str, dict[str, Any]]:
    binary = common.compile_c()
    c_ns = common.run_c(binary, "fionread", number * 2)
    ns = ioctls.fionread(number)
    fake = standard_host()
    with Container(fake) as c:
        fake_ns = common.best_ns(c.api_version, number // 10)
    fake.assert_clean()
    table = common.render("1. one ioctl (ns/call)", ioctls.HEADERS,
                          [ioctls.row("FIONREAD (pipe)", ns, c_ns)])
    table += f"\n   fake kernel, Container.api_version(): {fake_ns:,.0f} ns"
    return table, {"FIONREAD": {**ns, "C": c_ns}, "fake VFIO_GET_API_VERSION": fake_ns,
                   "wrapper/fcntl": common.ratio(ns["_ioctl.call"], ns["raw fcntl"])}


def part2(number: int) -> tuple[str, dict[str, Any]]:
    k = standard_host(iommufd=True)
    rows, data = [], {}
    for mode in ("legacy", "iommufd"):
        for label, size in cases.SIZES.items():
            ns = cases.map_unmap(k, "0000:00:01.0", mode, size, number)
            data[f"{mode} {label}"] = ns
            rows.append([f"{mode} {label}", ns["object API"], ns["_ioctl.call"],
                         round(1e9 / ns["object API"]), None])
    k.assert_clean()
    return common.render("2. map+unmap on the fake kernel (ns per pair; C: VM lane)",
                         ["mode size", "object API", "_ioctl.call", "pairs/s", "C"], rows), data


def part3(number: int) -> tuple[str, dict[str, Any]]:
    k = standard_host(iommufd=True)
    with open_device("0000:00:01.0", "legacy", kernel=k) as opened:
        bar = opened.device.mmap(0)
        fake = cases.register_costs(bar, REGISTERS.bind(bar), number)
        bar.close()
    k.assert_clean()
    fd = os.memfd_create("bench")
    os.ftruncate(fd, 1 << 20)
    mmio = LinuxKernel().mmap(fd, 1 << 20, 0)
    real = cases.register_costs(mmio, REGISTERS.bind(mmio), number)
    mmio.close()
    os.close(fd)
    heads = ["BAR", *fake]
    rows = [["fake edu BAR0", *fake.values()], ["memfd (LinuxMMIO)", *real.values()]]
    return (common.render("3. register access (ns/access)", heads, rows),
            {"fake edu": fake, "LinuxMMIO memfd": real})


def part4(sizes: list[int]) -> tuple[str, dict[str, Any]]:
    results = fake_scaling.run(sizes)
    growth = fake_scaling.growth(results)
    text = common.render("4. fake IOVA structures (ns/op at n mappings)", fake_scaling.HEADERS,
                         fake_scaling.rows(results))
    for name, g in sorted(growth.items()):
        text += f"\n   {name}: cost at {sizes[-1]:,} / at {sizes[0]:,}: " + ", ".join(
            f"{op.split()[0]} {v}x" for op, v in g.items() if op.endswith("ns"))
        text += f"; {g['bytes/mapping at max n']} bytes/mapping"
    return text, {"results": results, "growth": growth}


def dma_throughput(count: int) -> tuple[str, dict[str, Any]]:
    k = standard_host(iommufd=True)
    data = bytes(DMA_MAX)
    with EduDriver.open("0000:00:01.0", kernel=k) as edu:
        t0 = time.perf_counter()
        for _ in range(count):
            edu.dma_to_device(data)
            edu.dma_from_device(DMA_MAX)
        dt = time.perf_counter() - t0
    k.assert_clean()
    mbs = 2 * count * DMA_MAX / dt / 1e6
    return (f"fake edu DMA through the driver: {mbs:.1f} MB/s "
            f"({dt / count / 2 * 1e6:.0f} us per {DMA_MAX}-byte DMA incl. MSI wait)",
            {"MB/s": mbs, "us per DMA": dt / count / 2 * 1e6})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer iterations, up to 10^4 mappings")
    p.add_argument("--max-mappings", type=int, default=1_000_000)
    args = p.parse_args(argv)
    n = 20_000 if args.quick else 200_000
    top = 10_000 if args.quick else args.max_mappings
    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000) if s <= top]
    doc: dict[str, Any] = {"schema": "pyvfio.bench/1", "where": "host", "machine": common.machine()}
    print(f"pyvfio benchmarks on {doc['machine']['cpu']} ({doc['machine']['cpus']} cpus), "
          f"Linux {doc['machine']['kernel']}, Python {doc['machine']['python']}\n")
    for key, (text, data) in (("ioctl", part1(n)), ("map_unmap_fake", part2(n // 400)),
                              ("registers", part3(n // 2)), ("fake_scaling", part4(sizes)),
                              ("fake_dma", dma_throughput(n // 400))):
        print(text, end="\n\n", flush=True)
        doc[key] = data
    common.write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
