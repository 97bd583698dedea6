"""The recorder: run generated sequences on the real kernel of a VM-lane guest and save them.

Not collected by the host suite (no ``test_`` prefix); the lane runs it by path::

    tools/vm/run --profile iommufd --timeout 3600 -- tests/differential/record_lane.py \
        --diff-count 10000 --diff-seconds 600

``tools/diff-record`` does that for every profile and copies the recordings into
``tests/differential/recordings/``.  Per mode, sequences 0, 1, 2, ... are recorded until
``--diff-count`` or the mode's share of ``--diff-seconds`` is reached, whichever comes first.
"""

from __future__ import annotations

import os
import time

import pytest

from pyvfio.kernel import LinuxKernel
from tests.differential.harness import edu_devices, kernel_release, run_sequences
from tests.differential.recording import Recording
from tests.differential.runner import Env, Runner

PROFILE_MODES = {
    "iommufd": ("type1v2", "type1", "iommufd", "compat"),
    "debian": ("type1v2", "type1"),
    "noiommu": ("noiommu",),
}


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


@pytest.mark.skipif(os.environ.get("PYVFIO_KERNEL") != "real", reason="records in the VM lane")
def test_record(request: pytest.FixtureRequest) -> None:
    profile = os.environ.get("PYVFIO_VM_PROFILE", "unknown")
    modes = PROFILE_MODES.get(profile, ("type1v2", "type1"))
    if profile not in PROFILE_MODES and os.path.exists("/dev/iommu"):
        modes = PROFILE_MODES["iommufd"]
    only = request.config.getoption("--diff-modes")
    if only:
        modes = tuple(m for m in modes if m in only.split(","))
    count = request.config.getoption("--diff-count")
    budget = request.config.getoption("--diff-seconds") / max(len(modes), 1)
    kernel = LinuxKernel()
    bdfs = edu_devices(kernel)
    if not bdfs:
        pytest.skip(f"{profile}: no edu bound to vfio-pci")
    noiommu = profile == "noiommu"
    env = Env.discover(kernel, bdfs, noiommu=noiommu)
    header = {"profile": profile, "kernel": kernel_release(), "devices": env.devices,
              "iommufd": os.path.exists("/dev/iommu"), "bar0": _bar0(kernel, bdfs),
              "config": {bdf: _config_header(bdf) for bdf in bdfs},
              "noiommu": noiommu, "thp": _thp(kernel), "seconds": {}}
    rec = Recording(header)
    runner = Runner(kernel, env)
    try:
        for mode in modes:
            start = time.monotonic()
            seqs = rec.sequences.setdefault(mode, [])
            for seed, fp, blob, _ in run_sequences(runner, mode, range(count), bdfs):
                seqs.append((seed, fp, blob))
                if time.monotonic() - start > budget:
                    break
            took = time.monotonic() - start
            header["seconds"][mode] = round(took, 1)
            print(f"diff-record: {profile} {mode}: {len(seqs)} sequences in {took:.0f} s "
                  f"({60 * len(seqs) / took:.0f}/min)", flush=True)
    finally:
        runner.close()
    results = os.environ.get("PYVFIO_VM_RESULTS", ".")
    path = rec.save(results)
    print(f"diff-record: wrote {path} ({path.stat().st_size} bytes)", flush=True)
