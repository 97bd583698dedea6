"""pyvfio's real-kernel benchmarks in the VM lane: ``pyvfio.bench.device`` on the guest's edu.

    tools/vm/run --profile iommufd -- tools/bench/test_bench_vm.py -s

Prints the tables and writes bench-vm.json next to the lane's junit.xml ($PYVFIO_BENCH_JSON,
else $PYVFIO_VM_RESULTS).  Not a timed test: nothing is asserted about the numbers.
Parts: 1 per-ioctl cost (VFIO_GET_API_VERSION, VFIO_DEVICE_GET_INFO, IOMMU_IOAS_IOVA_RANGES: C
vs fcntl.ioctl vs pyvfio), 2 map+unmap 4 KiB / 2 MiB pyvfio vs C in both IOMMU modes, 3 register
cost on the edu's real BAR, 5 the fake kernel against the real one on the same calls.
On a host with a device of your own: ``pyvfio bench --device BDF``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from pyvfio.bench import cloop, device, timing
from pyvfio.kernel import LinuxKernel

REAL = os.environ.get("PYVFIO_KERNEL") == "real"
pytestmark = pytest.mark.skipif(not REAL, reason="benchmarks of the real kernel: VM lane only")
N = int(os.environ.get("PYVFIO_BENCH_N", "20000"))
EDU = "0000:00:01.0"
RESULTS: dict[str, Any] = {"schema": timing.SCHEMA, "where": "vm"}


@pytest.fixture(scope="module")
def binary() -> Any:
    return cloop.compile_c()


def _show(key: str, result: tuple[str, dict[str, Any]]) -> None:
    text, RESULTS[key] = result
    print("\n" + text)


def test_1_ioctl_cost(binary: Any) -> None:
    _show("device_ioctl", device.ioctl_cost(LinuxKernel(), EDU, N, binary))


def test_2_map_unmap_vs_c(binary: Any) -> None:
    _show("device_map_unmap", device.map_unmap_vs_c(LinuxKernel(), EDU, N, binary))


def test_3_registers_real_bar() -> None:
    _show("device_registers", device.registers_bar(LinuxKernel(), EDU, N))


def test_5_fake_vs_real() -> None:
    _show("fake_vs_real", device.fake_vs_real(LinuxKernel(), EDU, N))


def test_z_write_json() -> None:
    RESULTS["machine"] = timing.machine()
    results = os.environ.get("PYVFIO_VM_RESULTS", "/tmp")
    out = os.environ.get("PYVFIO_BENCH_JSON") or f"{results}/bench-vm.json"
    timing.write_json(out, RESULTS)
    print(f"\nJSON: {out}")
