"""NVMe in the VM lane: pyvfio's driver against the guest kernel's nvme driver, same run.

    tools/vm/run --profile nvme -- tools/bench/test_nvme_vm.py -s

Two identical QEMU nvme controllers: ``$PYVFIO_VM_NVME_VFIO`` on vfio-pci (pyvfio's driver) and
``$PYVFIO_VM_NVME_KERNEL`` on the kernel's nvme driver (fio, else a Python O_DIRECT reader: the
JSON names the engine).  4 KiB random reads at QD1 and QD32, ``$PYVFIO_BENCH_SECONDS`` (default
5) each, pyvfio polled and with MSI-X, in every IOMMU mode the kernel offers.  Prints a table
with the ratios and writes bench-nvme.json next to the lane's junit.xml.  Nothing is asserted
about the numbers (not a timed test).
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
pytestmark = pytest.mark.skipif(not (VFIO and KERNEL), reason="needs the lane's nvme pair")
SECONDS = float(os.environ.get("PYVFIO_BENCH_SECONDS", "5"))
RESULTS: dict[str, Any] = {"schema": "pyvfio.bench-nvme/1", "seconds_each": SECONDS, "runs": []}


def _row(side: str, qd: int, r: dict[str, Any]) -> None:
    RESULTS["runs"].append({"side": side, "qd": qd, **r})
    print(f"  {side:34} QD{qd:<3} {r['iops']:>7} IOPS  mean {r['lat_mean_us']:>8} us  "
          f"p99 {r['lat_p99_us']:>8} us  ({r['engine']})", flush=True)


def test_kernel_driver() -> None:
    assert KERNEL is not None
    dev = block_device_of(KERNEL)
    print(f"\nkernel nvme driver on {KERNEL} ({dev}):")
    for qd in (1, 32):
        _row("kernel", qd, kernel_randread(dev, qd, SECONDS))


@pytest.mark.parametrize("mode", ["legacy", "iommufd"])
def test_pyvfio_driver(mode: str) -> None:
    assert VFIO is not None
    print(f"\npyvfio nvme driver on {VFIO}, {mode}:")
    for irq in ("poll", "msix"):
        try:
            ctrl = NvmeController.open(VFIO, mode, irq=irq, depth=64)
        except DriverError as exc:
            if isinstance(exc.cause, ModeUnavailableError):
                pytest.skip(f"{mode}: {exc.cause}")
            raise
        with ctrl:
            for qd in (1, 32):
                _row(f"pyvfio {mode} {irq}", qd, pyvfio_randread(ctrl, qd, SECONDS))


def test_zz_ratios() -> None:
    kernel = {r["qd"]: r for r in RESULTS["runs"] if r["side"] == "kernel"}
    ratios = {}
    for r in RESULTS["runs"]:
        k = kernel.get(r["qd"])
        if r["side"] != "kernel" and k and k["iops"]:
            key = f"{r['side']} QD{r['qd']}"
            ratios[key] = {"iops": round(r["iops"] / k["iops"], 2),
                           "latency": round(r["lat_mean_us"] / k["lat_mean_us"], 2)}
            print(f"  {key:38} IOPS x{ratios[key]['iops']}  mean latency "
                  f"x{ratios[key]['latency']} (pyvfio / kernel)")
    RESULTS["ratios_vs_kernel"] = ratios
    out = Path(os.environ.get("PYVFIO_VM_RESULTS", ".")) / "bench-nvme.json"
    out.write_text(json.dumps(RESULTS, indent=2) + "\n")
    print(f"JSON: {out}")
