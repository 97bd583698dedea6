"""Timing, tables and JSON for pyvfio's benchmarks.

Timing follows reference/peers.md Appendix B: run a loop of ``number`` calls ``repeat`` times and
keep the fastest, per operation.  Ratios taken within one run on one machine are the result; the
absolute numbers depend on the machine (and are much higher under TCG emulation).  The ratios the
targets are about (:func:`cpu_ns_many`) use the thread's CPU time, not wall time: on a loaded
machine a loop is preempted, and wall time then measures the other processes as much as this one.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "pyvfio.bench/1"


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


def cpu_ns_many(fns: dict[str, Callable[[], object]], number: int,
                repeat: int = 15) -> dict[str, float]:
    """The fastest per-call CPU time (``time.thread_time_ns``: user + system time of this
    thread) of each variant over ``repeat`` loops of ``number`` calls, warmed up and interleaved
    round by round.  Many short rounds and the minimum: a round that shared its core with
    another process (cache, a hyperthread sibling) costs more CPU time too, and is discarded."""
    for fn in fns.values():
        for _ in range(max(number // 10, 1)):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    clock = time.thread_time_ns
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (clock() - t0) / number)
    return best


def machine() -> dict[str, Any]:
    """Describe where the numbers came from: CPU model and count, kernel, Python, time."""
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
    """``a / b`` rounded to 2 places, or None if either is missing."""
    return None if a is None or b is None else round(a / b, 2)


def render(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """Return ``rows`` as a text table under ``title`` (floats with one decimal, None as -)."""
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:,.1f}" if isinstance(v, float) else str(v)
    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [headers, *text]) for i in range(len(headers))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(line.rstrip() for line in lines)


def write_json(path: str | os.PathLike[str] | None, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` (if given) as indented JSON.

    Raises:
        OSError: the file cannot be written (ENOENT for a missing directory, EACCES, ...).
    """
    if path:
        Path(path).write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
