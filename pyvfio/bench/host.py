"""The benchmarks every Linux host can run: the ioctl wrapper against fcntl and C, and the fake.

Parts (fastest of 5 loops, per operation; each returns ``(table text, JSON data)``):
  ioctl           one ioctl: C loop vs raw ``fcntl.ioctl`` vs pyvfio's wrapper, FIONREAD on a pipe
                  (any host has one), plus the fake kernel's VFIO_GET_API_VERSION
  map_unmap_fake  map+unmap 4 KiB / 2 MiB on the fake kernel, legacy and iommufd
  registers       register read/write per width: the fake edu's BAR, and a real shared mapping;
                  a bound register (pyvfio.registers) against a bare cffi typed pointer there:
                  the JSON's top-level ``register_vs_cffi_pointer`` is the read32 ratio (<= 1.5)
  fake_scaling    the fake's IOVA structures at 10^3 .. 10^6 mappings: per-op cost, bytes/mapping
  fake_dma        the fake edu's DMA throughput through the edu driver
  dma_space       the DMA space's Python over the bare ioctls, and its cost at 10^5 mappings
                  against 10^2, both IOMMU modes (issue 11's targets; pyvfio.bench.space)
The same calls on a real device are :mod:`pyvfio.bench.device`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pyvfio.bench import cases, cloop, ioctls, scaling, space
from pyvfio.bench.timing import best_ns, ratio, render
from pyvfio.cdev import open_device
from pyvfio.container import Container
from pyvfio.edu import DMA_MAX, REGISTERS, EduDriver
from pyvfio.fake import standard_host
from pyvfio.kernel import LinuxKernel

Result = tuple[str, dict[str, Any]]


def ioctl(number: int) -> Result:
    """One ioctl through each layer; ``number`` calls per timed loop."""
    binary = cloop.compile_c()
    c_ns = cloop.run_c(binary, "fionread", number * 2)
    ns = ioctls.fionread(number)
    fake = standard_host()
    with Container(fake) as c:
        fake_ns = best_ns(c.api_version, max(number // 10, 1))
    fake.assert_clean()
    table = render("1. one ioctl (ns/call)", ioctls.HEADERS,
                   [ioctls.row("FIONREAD (pipe)", ns, c_ns)])
    table += ("\n   CPU time per call (thread_time_ns; the C loop: CLOCK_THREAD_CPUTIME_ID), the "
              "fastest of 15 interleaved rounds; target: wrapper/fcntl <= 1.5"
              f"\n   fake kernel, Container.api_version(): {fake_ns:,.0f} ns (wall time)")
    return table, {"FIONREAD": {**ns, "C": c_ns}, "fake VFIO_GET_API_VERSION": fake_ns,
                   "wrapper/fcntl": ratio(ns["_ioctl.call"], ns["raw fcntl"])}


def map_unmap_fake(number: int) -> Result:
    """Map+unmap pairs on the fake kernel in both IOMMU modes and both sizes."""
    k = standard_host(iommufd=True)
    rows, data = [], {}
    for mode in ("legacy", "iommufd"):
        for label, size in cases.SIZES.items():
            ns = cases.map_unmap(k, str(k.labels["edu"]), mode, size, number)
            data[f"{mode} {label}"] = ns
            rows.append([f"{mode} {label}", ns["object API"], ns["_ioctl.call"],
                         round(1e9 / ns["object API"]), None])
    k.assert_clean()
    return render("2. map+unmap on the fake kernel (ns per pair; C: pyvfio bench --device)",
                  ["mode size", "object API", "_ioctl.call", "pairs/s", "C"], rows), data


def registers(number: int) -> Result:
    """Register access per width on the fake edu's BAR0 and on a real memfd mapping."""
    k = standard_host(iommufd=True)
    with open_device(str(k.labels["edu"]), "legacy", kernel=k) as opened:
        bar = opened.device.mmap(0)
        fake = cases.register_costs(bar, REGISTERS.bind(bar), number)
        bar.close()
    k.assert_clean()
    fd = os.memfd_create("pyvfio-bench")
    try:
        os.ftruncate(fd, 1 << 20)
        mmio = LinuxKernel().mmap(fd, 1 << 20, 0)
        real = cases.register_costs(mmio, REGISTERS.bind(mmio), number)
        fast = cases.register_vs_pointer(mmio, 10_000, rounds=200)  # short turns, many: noise
        mmio.close()
    finally:
        os.close(fd)
    heads = ["BAR", *fake]
    rows = [["fake edu BAR0", *fake.values()], ["memfd (LinuxMMIO)", *real.values()]]
    text = render("3. register access (ns/access)", heads, rows)
    text += ("\n   bound register vs cffi typed pointer, memfd, 32-bit: read "
             f"{fast['bound register read32']:.0f} vs {fast['cffi pointer read32']:.0f} ns = "
             f"{fast['ratio read32']}x ({fast['ratio read32 net']}x without the loop's "
             f"{fast['empty loop']:.0f} ns); write {fast['ratio write32']}x "
             f"({fast['ratio write32 net']}x net); target <= 1.5x")
    return text, {"fake edu": fake, "LinuxMMIO memfd": real, "bound vs pointer": fast}


def fake_scaling(sizes: list[int]) -> Result:
    """The fake's IOVA structures at each population in ``sizes``."""
    results = scaling.run(sizes)
    growth = scaling.growth(results)
    text = render("4. fake IOVA structures (ns/op at n mappings)", scaling.HEADERS,
                  scaling.rows(results))
    for name, g in sorted(growth.items()):
        text += f"\n   {name}: cost at {sizes[-1]:,} / at {sizes[0]:,}: " + ", ".join(
            f"{op.split()[0]} {v}x" for op, v in g.items() if op.endswith("ns"))
        text += f"; {g['bytes/mapping at max n']} bytes/mapping"
    return text, {"results": results, "growth": growth}


def fake_dma(count: int) -> Result:
    """``count`` round trips of a full edu DMA through the driver on the fake kernel."""
    k = standard_host(iommufd=True)
    data = bytes(DMA_MAX)
    with EduDriver.open(str(k.labels["edu"]), kernel=k) as edu:
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


def parts(number: int, sizes: list[int]) -> dict[str, Any]:
    """The host parts by JSON key, as zero-argument callables; ``number`` calls per timed loop
    (the slower parts take a fraction of it), ``sizes`` the populations of ``fake_scaling``."""
    return {"ioctl": lambda: ioctl(number),
            "map_unmap_fake": lambda: map_unmap_fake(max(number // 400, 1)),
            "registers": lambda: registers(max(number // 2, 1)),
            "fake_scaling": lambda: fake_scaling(sizes),
            "fake_dma": lambda: fake_dma(max(number // 400, 1)),
            "dma_space": lambda: space.run(max(number // 100, 100),
                                           100_000 if max(sizes) >= 100_000 else max(sizes))}
