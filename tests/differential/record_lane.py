"""The recorder: run generated sequences on the real kernel of a VM-lane guest and save them.

Not collected by the host suite (no ``test_`` prefix); the lane runs it by path::

    tools/vm/run --profile iommufd --timeout 3600 -- tests/differential/record_lane.py \
        --diff-count 10000 --diff-seconds 600

``tools/diff-record`` does that for every profile and copies the recordings into
``tests/differential/recordings/``.  Per mode, sequences 0, 1, 2, ... are recorded until
``--diff-count`` or the mode's share of ``--diff-seconds`` is reached, whichever comes first.
``--diff-ops DIR``: run the sequences the host generated ahead into DIR (opsfile.py; the guest
generates them itself when there is no matching file).  The recording is written uncompressed
(``<profile>-<uname -r>.rec``): xz at its strongest preset is the host's job (tools/diff-record),
it took the TCG guest ~25 s for 1.8 MB.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

import pytest

from pyvfio.kernel import LinuxKernel
from tests.differential import opsfile
from tests.differential.harness import (
    edu_devices,
    kernel_release,
    linux_version,
    profile_modes,
    run_sequences,
    stuck_groups,
)
from tests.differential.recording import Recording
from tests.differential.runner import Env, Runner
from tests.differential.timing import TimedKernel


def _thp(kernel: LinuxKernel) -> bool:
    return kernel.sysfs_exists("kernel/mm/transparent_hugepage/enabled")


def _bar0(kernel: LinuxKernel, bdfs: list[str]) -> dict[str, int]:
    """BAR0's address per device (config space shows it; the fake host is given the same)."""
    return {bdf: int(kernel.sysfs_read(f"bus/pci/devices/{bdf}/resource").split()[0], 16)
            for bdf in bdfs}


def _config_header(bdf: str) -> str:
    """The first 64 bytes of config space as the firmware left them (interrupt line, BARs)."""
    with open(f"/sys/bus/pci/devices/{bdf}/config", "rb") as f:
        return f.read(64).hex()


def _record_mode(runner: Runner, rec: Recording, mode: str, opts: dict[str, Any],
                 prof: cProfile.Profile | None) -> str:
    """Record ``mode``'s sequences until the count or the time budget is reached."""
    header = rec.header
    bdfs = [d["bdf"] for d in header["devices"]]
    linux = linux_version(header["kernel"])
    source = opsfile.read(opts["ahead"], mode, linux, bdfs) if opts["ahead"] else None
    if opts["ahead"] and source is None:
        print(f"diff-record: {mode}: no sequences generated ahead for Linux {linux} and {bdfs} "
              f"in {opts['ahead']}; generating them here", flush=True)
    start = time.monotonic()
    clock: dict[str, float] = {}
    seqs = rec.sequences.setdefault(mode, [])
    if prof:
        prof.enable()
    for seed, fp, blob, _ in run_sequences(runner, mode, range(opts["count"]), bdfs, linux,
                                           clock, source):
        if seed >= opts["count"]:
            break
        seqs.append((seed, fp, blob))
        if time.monotonic() - start > opts["budget"]:
            break
    if prof:
        prof.disable()
    if source is not None:
        source.close()  # a budget that ran out leaves the file open otherwise
    took = time.monotonic() - start
    header["seconds"][mode] = round(took, 1)
    stuck = stuck_groups(runner.kernel, runner.env)
    if stuck:  # the replay refuses such a recording (test_replay.py)
        header.setdefault("stuck", {})[mode] = stuck
        print(f"diff-record: {mode}: the kernel's state broke, groups stay busy: {stuck}",
              flush=True)
    line = (f"diff-record: {header['profile']} {mode}: {len(seqs)} sequences in {took:.0f} s "
            f"({60 * len(seqs) / took:.0f}/min; {'reading' if source else 'generating'} "
            f"{clock['generate']:.0f} s, running {clock['run']:.0f} s)")
    print(line, flush=True)
    return line


def _header(kernel: LinuxKernel, profile: str, env: Env, noiommu: bool) -> dict[str, Any]:
    bdfs = [d["bdf"] for d in env.devices]
    return {"profile": profile, "kernel": kernel_release(), "devices": env.devices,
            "iommufd": os.path.exists("/dev/iommu"), "bar0": _bar0(kernel, bdfs),
            "config": {bdf: _config_header(bdf) for bdf in bdfs},
            "noiommu": noiommu, "thp": _thp(kernel), "seconds": {}}


@pytest.mark.skipif(os.environ.get("PYVFIO_KERNEL") != "real", reason="records in the VM lane")
def test_record(request: pytest.FixtureRequest) -> None:
    profile = os.environ.get("PYVFIO_VM_PROFILE", "unknown")
    modes = profile_modes(profile, os.path.exists("/dev/iommu"))
    only = request.config.getoption("--diff-modes")
    if only:
        modes = tuple(m for m in modes if m in only.split(","))
    opts = {"count": request.config.getoption("--diff-count"),
            "budget": request.config.getoption("--diff-seconds") / max(len(modes), 1),
            "ahead": request.config.getoption("--diff-ops")}
    kernel = LinuxKernel()
    bdfs = edu_devices(kernel)
    if not bdfs:
        pytest.skip(f"{profile}: no edu bound to vfio-pci")
    noiommu = modes == ("noiommu",)
    env = Env.discover(kernel, bdfs, noiommu=noiommu)
    rec = Recording(_header(kernel, profile, env, noiommu))
    timed = TimedKernel(kernel) if request.config.getoption("--diff-profile") else None
    prof = cProfile.Profile() if timed else None
    runner = Runner(timed or kernel, env)
    results = os.environ.get("PYVFIO_VM_RESULTS", ".")
    try:
        report = [_record_mode(runner, rec, mode, opts, prof) for mode in modes]
    finally:
        runner.close()
    if timed is not None and prof is not None:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(40)
        total = sum(rec.header["seconds"].values())
        text = "\n".join(report) + "\n\n" + timed.report(total) + "\n\n" + out.getvalue()
        Path(results, f"diff-profile-{profile}.txt").write_text(text)
        print(text, flush=True)
    path = rec.save(results, compress=False)
    print(f"diff-record: wrote {path} ({path.stat().st_size} bytes)", flush=True)
