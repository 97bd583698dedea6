"""One loop for both sides: generate a mode's sequences, run them on a kernel, collect results.

The recorder runs it on Linux in the VM lane, the replay test on a FakeKernel laid out like that
guest; both call :func:`run_sequences` so the two kernels see exactly the same calls in the same
order (state that outlives a sequence, such as a device register, then carries over alike).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from tests.differential.gen import sequence
from tests.differential.recording import fingerprint
from tests.differential.runner import Runner

EDU_IDS = ("0x1234", "0x11e8")


def edu_devices(kernel: Any) -> list[str]:
    """The edu devices bound to vfio-pci, sorted (the generator's device indexes)."""
    driver = "bus/pci/drivers/vfio-pci"
    if not kernel.sysfs_exists(driver):
        return []
    out = []
    for bdf in kernel.sysfs_listdir(driver):
        base = f"bus/pci/devices/{bdf}"
        if ":" in bdf and (kernel.sysfs_read(f"{base}/vendor"),
                           kernel.sysfs_read(f"{base}/device")) == EDU_IDS:
            out.append(bdf)
    return sorted(out)


def run_sequences(runner: Runner, mode: str, seeds: Any,
                  bdfs: list[str]) -> Iterator[tuple[int, int, bytes, list[tuple[Any, ...]]]]:
    """Yield (seed, fingerprint, results, ops) for each seed, in order.

    Device registers outlive a sequence (QEMU's edu keeps them across close and bus reset);
    each sequence writes back what it wrote while it can, and whatever stays carries over to
    the next sequence alike on both kernels, because both run the same sequences in order.
    """
    for seed in seeds:
        ops = sequence(mode, seed, bdfs)
        yield seed, fingerprint(ops), runner.run(ops), ops


def kernel_release() -> str:
    return os.uname().release
