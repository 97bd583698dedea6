"""Shared pieces of pyvfio's benchmarks: timing, the C loop, tables and JSON.

Timing follows reference/peers.md Appendix B: run a loop of ``number`` calls ``repeat`` times and
keep the fastest, per operation.  Ratios taken within one run on one machine are the result; the
absolute numbers depend on the machine (and are much higher under TCG emulation).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[2]
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from pyvfio import uapi  # noqa: E402

C_SOURCE = Path(__file__).with_name("ioctl_loop.c")
C_REQUESTS = ["VFIO_GET_API_VERSION", "VFIO_SET_IOMMU", "VFIO_GROUP_SET_CONTAINER",
              "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO", "VFIO_IOMMU_MAP_DMA",
              "VFIO_IOMMU_UNMAP_DMA", "VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
              "IOMMU_IOAS_ALLOC", "IOMMU_IOAS_IOVA_RANGES", "IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP"]


def best_ns(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Return the fastest per-call time of ``fn`` in ns over ``repeat`` loops of ``number``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / number)
    return best


def best_ns_many(fns: dict[str, Callable[[], object]], number: int,
                 repeat: int = 5) -> dict[str, float]:
    """Like :func:`best_ns` for several variants, warmed up and interleaved round by round, so
    a slow start (a cold cache; TCG translating new guest code) or drift favours none of them."""
    for fn in fns.values():
        for _ in range(max(number // 10, 1)):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], best_ns(fn, number, repeat=1))
    return best


def compile_c() -> Path | None:
    """Compile ioctl_loop.c with gcc (None if there is no compiler); numbers from pyvfio.uapi."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    out = Path(tempfile.mkdtemp(prefix="pyvfio-bench-")) / "ioctl_loop"
    defines = [f"-DREQ_{name}={int(getattr(uapi, name))}" for name in C_REQUESTS]
    cmd = [gcc, "-O2", "-o", str(out), f"-I{CHECKOUT / 'cdefs'}", *defines, str(C_SOURCE)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def run_c(binary: Path | None, *args: object, repeat: int = 5) -> float | None:
    """Run the C loop ``repeat`` times; return the fastest ns per iteration (None if no C)."""
    if binary is None:
        return None
    best = float("inf")
    for _ in range(repeat):
        res = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                             check=False)
        if res.returncode != 0:
            raise RuntimeError(f"C loop {args}: {res.stdout.strip()} {res.stderr.strip()}")
        best = min(best, float(res.stdout))
    return best


def machine() -> dict[str, Any]:
    """Describe where the numbers came from."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` rounded, or None if either is missing."""
    return None if a is None or b is None else round(a / b, 2)


def render(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """Return a text table."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:,.1f}" if isinstance(v, float) else str(v)
    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *text]) for i in range(len(headers))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str] | None, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` (if given) as indented JSON."""
    if path:
        Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
