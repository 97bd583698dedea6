"""One loop for both sides: generate a mode's sequences, run them on a kernel, collect results.

The recorder runs it on Linux in the VM lane, the replay test on a FakeKernel laid out like that
guest; both call :func:`run_sequences` so the two kernels see exactly the same calls in the same
order (state that outlives a sequence, such as a device register, then carries over alike).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from tests.differential.gen import sequence
from tests.differential.recording import fingerprint
from tests.differential.runner import Runner

EDU_IDS = ("0x1234", "0x11e8")
PROFILE_MODES = {
    "iommufd": ("type1v2", "type1", "iommufd", "compat"),
    "debian": ("type1v2", "type1"),
    "noiommu": ("noiommu",),
}


def profile_modes(profile: str, iommufd: bool) -> tuple[str, ...]:
    """The modes a lane profile records: iommufd-7.3 those of iommufd (on 7.3), a profile not
    listed those of iommufd when it has /dev/iommu, else the legacy ones."""
    base = profile.split("-")[0]
    if base in PROFILE_MODES:
        return PROFILE_MODES[base]
    return PROFILE_MODES["iommufd"] if iommufd else PROFILE_MODES["debian"]


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


def generated(mode: str, seeds: Any, bdfs: list[str],
              linux: str) -> Iterator[tuple[int, int, list[tuple[Any, ...]]]]:
    """(seed, fingerprint, ops) of each seed's sequence, generated here."""
    for seed in seeds:
        ops = sequence(mode, seed, bdfs, linux)
        yield seed, fingerprint(ops), ops


def run_sequences(runner: Runner, mode: str, seeds: Any, bdfs: list[str], linux: str,
                  clock: dict[str, float] | None = None, source: Any = None,
                  ) -> Iterator[tuple[int, int, bytes, list[tuple[Any, ...]]]]:
    """Yield (seed, fingerprint, results, ops) for each seed, in order.

    ``linux`` is the version of the kernel that runs them (the recording's: "6.12", "7.3"):
    which ops exist.  ``source`` (default: generate them here) yields (seed, fingerprint, ops),
    e.g. sequences the host generated ahead (opsfile.py).  ``clock`` (if given) adds up the
    seconds spent getting the sequences ("generate") and running them ("run").

    Device registers outlive a sequence (QEMU's edu keeps them across close and bus reset);
    each sequence writes back what it wrote while it can, and whatever stays carries over to
    the next sequence alike on both kernels, because both run the same sequences in order.
    """
    items = iter(source if source is not None else generated(mode, seeds, bdfs, linux))
    clock = {} if clock is None else clock
    clock.setdefault("generate", 0.0)
    clock.setdefault("run", 0.0)
    while True:
        t0 = time.perf_counter()
        item = next(items, None)
        if item is None:
            return
        seed, fp, ops = item
        t1 = time.perf_counter()
        blob = runner.run(ops)
        clock["generate"] += t1 - t0
        clock["run"] += time.perf_counter() - t1
        yield seed, fp, blob, ops


def kernel_release() -> str:
    return os.uname().release


def linux_version(release: str) -> str:
    """ "6.12.117+deb13-amd64" -> "6.12"."""
    return ".".join(release.split(".")[:2])


def stuck_groups(kernel: Any, env: Any) -> list[str]:
    """The group nodes that cannot be opened although every fd of the run is closed.

    After a mode's last sequence nothing of the recorder is open, so each edu's group opens;
    one that answers EBUSY holds a device some kernel object never let go (Linux 7.3: a VFIO
    cdev mapped into its own iommufd with IOAS_MAP_FILE, a reference cycle), and every later
    sequence would record that broken state.  Opening a group file alone opens no device.
    """
    stuck = []
    for k in range(len(env.devices)):
        path = env.path(f"group:{k}")
        try:
            kernel.close(kernel.open(path))
        except OSError as exc:
            stuck.append(f"{path}: {os.strerror(exc.errno or 0)}")
    return stuck

