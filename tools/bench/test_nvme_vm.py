"""NVMe in the VM lane: pyvfio's driver against the guest kernel's nvme driver, same run.

    tools/vm/run --profile nvme -- tools/bench/test_nvme_vm.py -s

Two identical QEMU nvme controllers: ``$PYVFIO_VM_NVME_VFIO`` on vfio-pci (pyvfio's driver) and
``$PYVFIO_VM_NVME_KERNEL`` on the kernel's nvme driver (fio, else a Python O_DIRECT reader: the
JSON names the engine).  4 KiB random reads at QD1 and QD32.  The two sides take turns,
``$PYVFIO_BENCH_ROUNDS`` (default 3) rounds of ``$PYVFIO_BENCH_SECONDS`` (default 3) each, and
each keeps its best round: on a shared, loaded machine under TCG a single long run measures the
neighbours as much as the driver.  pyvfio polls (its fastest mode); one extra MSI-X round is
reported too.  Every IOMMU mode the kernel offers.  Prints a table with the ratios and writes
bench-nvme.json next to the lane's junit.xml.  Nothing is asserted about the numbers.
The last runs' results: tools/bench/latest-nvme-vm.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyvfio.bench.nvme import block_device_of, kernel_randread, pyvfio_randread
from pyvfio.errors import DriverError, ModeUnavailableError
from pyvfio.nvme import NvmeController

VFIO, KERNEL = os.environ.get("PYVFIO_VM_NVME_VFIO"), os.environ.get("PYVFIO_VM_NVME_KERNEL")
pytestmark = pytest.mark.skipif(not VFIO, reason="needs the lane's nvme on vfio-pci")
SECONDS = float(os.environ.get("PYVFIO_BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("PYVFIO_BENCH_ROUNDS", "3"))
RESULTS: dict[str, Any] = {"schema": "pyvfio.bench-nvme/1", "seconds_each": SECONDS,
                           "rounds": ROUNDS, "best": {}, "all": []}


def _keep(side: str, qd: int, r: dict[str, Any]) -> None:
    RESULTS["all"].append({"side": side, "qd": qd, **r})
    best = RESULTS["best"].get(f"{side} QD{qd}")
    if best is None or r["iops"] > best["iops"]:
        RESULTS["best"][f"{side} QD{qd}"] = {"side": side, "qd": qd, **r}


def _open(mode: str, irq: str) -> NvmeController:
    assert VFIO is not None
    try:
        return NvmeController.open(VFIO, mode, irq=irq, depth=64)
    except DriverError as exc:
        if isinstance(exc.cause, ModeUnavailableError):
            pytest.skip(f"{mode}: {exc.cause}")
        raise


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
def test_pyvfio_vs_kernel(mode: str) -> None:
    dev = None
    if KERNEL:
        try:
            dev = block_device_of(KERNEL)
        except FileNotFoundError:
            print(f"\n{KERNEL}: no nvme block device (kernel without the nvme driver)")
    with _open(mode, "poll") as ctrl:
        for _ in range(ROUNDS):
            for qd in (1, 32):
                if dev is not None:
                    _keep("kernel", qd, kernel_randread(dev, qd, SECONDS))
                _keep(f"pyvfio {mode} poll", qd, pyvfio_randread(ctrl, qd, SECONDS))
    with _open(mode, "msix") as ctrl:
        for qd in (1, 32):
            _keep(f"pyvfio {mode} msix", qd, pyvfio_randread(ctrl, qd, SECONDS))


def test_zz_report() -> None:
    best = RESULTS["best"]
    print(f"\nbest of {ROUNDS} rounds x {SECONDS} s, 4 KiB random reads:")
    for key, r in sorted(best.items()):
        print(f"  {key:30} {r['iops']:>7} IOPS  mean {r['lat_mean_us']:>9} us  "
              f"p99 {r['lat_p99_us']:>9} us  ({r['engine']})")
    ratios = {}
    for key, r in sorted(best.items()):
        k = best.get(f"kernel QD{r['qd']}")
        if r["side"] != "kernel" and k and k["iops"]:
            ratios[key] = {"iops": round(r["iops"] / k["iops"], 2),
                           "latency": round(r["lat_mean_us"] / k["lat_mean_us"], 2)}
            print(f"  {key:30} IOPS x{ratios[key]['iops']}, mean latency "
                  f"x{ratios[key]['latency']} (pyvfio / kernel)")
    RESULTS["ratios_vs_kernel"] = ratios
    out = Path(os.environ.get("PYVFIO_VM_RESULTS", ".")) / "bench-nvme.json"
    out.write_text(json.dumps(RESULTS, indent=2) + "\n")
    print(f"JSON: {out}")
