"""Replay what real kernels answered (tests/differential/recordings/) on the fake, byte for byte.

Each recording holds, per IOMMU mode, generated sequences and per op the return value, errno and
every byte the kernel changed.  Here the same sequences run on a FakeKernel laid out like the
recording's guest; the first op of a sequence whose result differs is reported with the ops
before it (the sequence is what reproduces it: ``python -m tests.differential.show MODE SEED``).
Regenerate the recordings with ``tools/diff-record`` (README: "Differential testing").
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from tests.differential.fakehost import fake_for
from tests.differential.harness import linux_version, run_sequences
from tests.differential.known import KNOWN
from tests.differential.recording import Recording, all_recordings
from tests.differential.runner import EXC_BASE, Runner, decode

REPORT = 5  # mismatching sequences printed in full per mode


def _cases() -> list[Any]:
    cases = []
    for path in all_recordings():
        rec = Recording.load(path)
        for mode in rec.header["order"]:
            cases.append(pytest.param(path, mode, id=f"{path.name.split('.rec')[0]}-{mode}"))
    return cases


def op_label(op: tuple[Any, ...]) -> str:
    if op[0] == "ioctl":
        req = op[2]
        name = getattr(req, "name", None) or f"ioctl {int(req):#x}"
        return f"{name}(fd@{op[1]}, {op[3]!r})"
    return f"{op[0]}{op[1:]!r}"


def result_text(res: tuple[int, int, bytes | None]) -> str:
    rc, err, data = res
    if err >= EXC_BASE:
        what = {0: "ValueError", 1: "TypeError"}.get(err - EXC_BASE, "CRASH")
        return f"{what} {data!r}"
    text = f"rc={rc}" if not err else f"-1 {errno.errorcode.get(err, err)}"
    return text + (f" out={data.hex()}" if data else "")


def explain(mode: str, seed: int, ops: list[tuple[Any, ...]], real: bytes, fake: bytes) -> str:
    """The first differing op of a sequence, with the ops that led to it (teardown closes
    follow the ops: index >= len(ops))."""
    r, f = decode(real), decode(fake)
    first = next(i for i in range(max(len(r), len(f)))
                 if i >= len(r) or i >= len(f) or r[i] != f[i])
    lines = [f"{mode} seed {seed}: op {first} differs"]
    for i in range(min(first + 1, len(ops) + 1)):
        label = op_label(ops[i]) if i < len(ops) else "teardown close"
        mark = ">>" if i == first else "  "
        lines.append(f"{mark} {i:3d} {label[:160]}")
        if i == first:
            lines.append(f"       real: {result_text(r[i]) if i < len(r) else '(none)'}")
            lines.append(f"       fake: {result_text(f[i]) if i < len(f) else '(none)'}")
        elif i < len(r):
            lines.append(f"       -> {result_text(r[i])[:160]}")
    return "\n".join(lines)


def signature(ops: list[tuple[Any, ...]], real: bytes, fake: bytes) -> str:
    """The kind of a divergence: the first differing op's name (region and offset for device
    I/O) and both errnos ("bytes" when only the output differs)."""
    r, f = decode(real), decode(fake)
    i = next(i for i in range(max(len(r), len(f)))
             if i >= len(r) or i >= len(f) or r[i] != f[i])
    op = ops[i] if i < len(ops) else ("teardown",)
    if op[0] == "ioctl":
        name = getattr(op[2], "name", None) or f"ioctl {int(op[2]):#x}"
    elif op[0] in ("pread", "pwrite"):
        name = f"{op[0]} region {op[2] >> 40} @{op[2] & ((1 << 40) - 1):#x}"
    else:
        name = op[0]
    rr = r[i] if i < len(r) else (0, 0, None)
    ff = f[i] if i < len(f) else (0, 0, None)
    if rr[1] == ff[1]:
        return f"{name}: bytes differ" if rr[0] == ff[0] else f"{name}: return value differs"
    return f"{name}: real {errno.errorcode.get(rr[1], rr[1])} / fake {errno.errorcode.get(ff[1], ff[1])}"


class Outcome:
    """One mode's replay: sequences replayed, mismatches by kind, the first few explained."""

    def __init__(self) -> None:
        self.count = 0
        self.signatures: dict[str, int] = {}
        self.reports: list[str] = []
        self.stale: str | None = None


_REPLAYED: dict[Path, dict[str, Outcome]] = {}


def replay(path: Path) -> dict[str, Outcome]:
    """Replay every mode of a recording on one fake, in the recorded order (the guest ran them
    in one boot: what a mode leaves behind in a device, the next one sees)."""
    if path in _REPLAYED:
        return _REPLAYED[path]
    rec = Recording.load(path)
    kernel, env = fake_for(rec.header)
    bdfs = [d["bdf"] for d in rec.header["devices"]]
    runner = Runner(kernel, env)
    outcomes: dict[str, Outcome] = {}
    stuck = rec.header.get("stuck")
    try:
        for mode in rec.header["order"]:
            out = outcomes[mode] = Outcome()
            if stuck:  # record_lane.py: groups stayed busy after a mode, the kernel's state broke
                out.stale = (f"{path.name} was recorded on a kernel whose state broke ({stuck}); "
                             "its later sequences recorded that state: fix the generator, "
                             "re-record")
                continue
            recorded = rec.sequences[mode]
            fresh = run_sequences(runner, mode, [s for s, _, _ in recorded], bdfs,
                                  linux_version(rec.header["kernel"]))
            for (seed, fp, real), (_, fp2, fake, ops) in zip(recorded, fresh, strict=True):
                out.count += 1
                if fp != fp2:
                    out.stale = (f"{mode} seed {seed}: the generator no longer makes the "
                                 "recorded sequence; re-record with tools/diff-record")
                    break
                if real != fake:
                    sig = signature(ops, real, fake)
                    out.signatures[sig] = out.signatures.get(sig, 0) + 1
                    if out.signatures[sig] <= 2 and len(out.reports) < 20 * REPORT:
                        out.reports.append(f"{sig}\n" + explain(mode, seed, ops, real, fake))
    finally:
        runner.close()
    _REPLAYED.clear()
    _REPLAYED[path] = outcomes
    return outcomes


@pytest.mark.parametrize(("path", "mode"), _cases())
def test_replay(path: Path, mode: str) -> None:
    """The fake answers every recorded op as Linux did, except the divergences listed (with
    their reason) in known.py; a kind of divergence not listed fails, with examples."""
    out = replay(path)[mode]
    assert out.stale is None, out.stale
    unknown = {s: n for s, n in out.signatures.items() if s not in KNOWN}
    known = {s: n for s, n in out.signatures.items() if s in KNOWN}
    if known:
        print(f"{sum(known.values())} of {out.count} {mode} sequences hit known divergences: "
              + "; ".join(f"{s} ({n})" for s, n in known.items()))
    if unknown:
        total = sum(unknown.values())
        summary = "\n".join(f"  {n:6d}  {s}" for s, n in
                            sorted(unknown.items(), key=lambda x: -x[1]))
        reports = [r for r in out.reports if any(r.startswith(f"{s}\n") for s in unknown)]
        pytest.fail(f"{total} of {out.count} {mode} sequences diverge from {path.name} "
                    f"(first differing op of each, by kind):\n{summary}\n\n"
                    + "\n\n".join(reports or out.reports), pytrace=False)


def test_recordings_present() -> None:
    """The recordings ship with the repository (a missing one would make the replay vacuous)."""
    if os.environ.get("PYVFIO_KERNEL") == "real":
        pytest.skip("replays on the host")
    assert all_recordings(), "no recordings in tests/differential/recordings: run tools/diff-record"
