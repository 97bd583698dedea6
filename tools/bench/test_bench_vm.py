"""pyvfio's real-kernel benchmarks, as a pytest file so the VM lane can run them in the guest.

    tools/vm/run --profile iommufd -- tools/bench/test_bench_vm.py -s

Prints the tables and writes bench-vm.json next to the lane's junit.xml ($PYVFIO_BENCH_JSON,
else $PYVFIO_VM_RESULTS).  Not a timed test: nothing is asserted about the numbers.
Parts: 1 per-ioctl cost (VFIO_GET_API_VERSION, VFIO_DEVICE_GET_INFO, IOMMU_IOAS_IOVA_RANGES: C
vs fcntl.ioctl vs pyvfio), 2 map+unmap 4 KiB / 2 MiB pyvfio vs C in both IOMMU modes, 3 register
cost on the edu's real BAR, 5 the fake kernel against the real one on the same calls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases
import common
import ioctls

from pyvfio import uapi
from pyvfio._ffi import ffi, new
from pyvfio.cdev import open_device
from pyvfio.container import Container
from pyvfio.edu import REGISTERS
from pyvfio.fake import standard_host
from pyvfio.iommufd import IOMMUFD
from pyvfio.kernel import LinuxKernel

REAL = os.environ.get("PYVFIO_KERNEL") == "real"
pytestmark = pytest.mark.skipif(not REAL, reason="benchmarks of the real kernel: VM lane only")
N = int(os.environ.get("PYVFIO_BENCH_N", "20000"))
EDU = "0000:00:01.0"
RESULTS: dict[str, Any] = {"schema": "pyvfio.bench/1", "where": "vm"}


def _group(bdf: str) -> str:
    return LinuxKernel().sysfs_readlink(f"bus/pci/devices/{bdf}/iommu_group").rsplit("/", 1)[1]


def _info_arg() -> tuple[Any, bytearray]:
    arg = new("struct vfio_device_info *")
    return arg, bytearray(ffi.buffer(arg))


def test_1_ioctl_cost() -> None:
    k, binary, rows = LinuxKernel(), common.compile_c(), []
    with Container(k) as c:
        ns = ioctls.measure(c.fileno(), uapi.VFIO_GET_API_VERSION, lambda: 0, 0, number=N,
                            obj=c.api_version)
    rows.append(ioctls.row("VFIO_GET_API_VERSION", ns, common.run_c(binary, "api", N)))
    RESULTS["ioctl VFIO_GET_API_VERSION"] = ns
    with open_device(EDU, "legacy", kernel=k) as opened:
        arg, raw = _info_arg()
        ns = ioctls.measure(opened.device.fileno(), uapi.VFIO_DEVICE_GET_INFO, lambda: arg, raw,
                            number=N, obj=opened.device.info)
    rows.append(ioctls.row("VFIO_DEVICE_GET_INFO", ns,
                           common.run_c(binary, "devinfo", N, _group(EDU), EDU)))
    RESULTS["ioctl VFIO_DEVICE_GET_INFO"] = ns
    with IOMMUFD(k) as fd:
        ioas = fd.ioas()
        ranges = ffi.new("struct iommu_iova_range[8]")
        arg = new("struct iommu_ioas_iova_ranges *", ioas_id=ioas.id, num_iovas=8,
                  allowed_iovas=int(ffi.cast("uintptr_t", ranges)))
        ns = ioctls.measure(fd.fileno(), uapi.IOMMU_IOAS_IOVA_RANGES, lambda: arg,
                            bytearray(ffi.buffer(arg)), number=N, obj=ioas.iova_ranges)
    rows.append(ioctls.row("IOMMU_IOAS_IOVA_RANGES", ns, common.run_c(binary, "ranges", N)))
    RESULTS["ioctl IOMMU_IOAS_IOVA_RANGES"] = ns
    fion = ioctls.fionread(N)
    rows.append(ioctls.row("FIONREAD (pipe)", fion, common.run_c(binary, "fionread", N)))
    print("\n" + common.render("1. one ioctl (ns/call), guest", ioctls.HEADERS, rows))
    RESULTS["ioctl table"] = rows


def test_2_map_unmap_vs_c() -> None:
    k, binary, rows = LinuxKernel(), common.compile_c(), []
    for mode in ("legacy", "iommufd"):
        for label, size in cases.SIZES.items():
            number = max(N // 20, 200) if size == 4096 else max(N // 200, 50)
            ns = cases.map_unmap(k, EDU, mode, size, number)
            c_ns = cases.map_unmap_c(binary, k, EDU, mode, size, number)
            rows.append([f"{mode} {label}", c_ns, ns["_ioctl.call"], ns["object API"],
                         common.ratio(c_ns, ns["_ioctl.call"]),
                         common.ratio(c_ns, ns["object API"])])
            RESULTS[f"map+unmap {mode} {label}"] = {**ns, "C": c_ns}
    print("\n" + common.render("2. map+unmap (ns per pair), guest; throughput ratio = C ns / py ns",
                               ["mode size", "C", "_ioctl.call", "object API", "wrapper vs C",
                                "object vs C"], rows))


def test_3_registers_real_bar() -> None:
    with open_device(EDU, "legacy", kernel=LinuxKernel()) as opened:
        bar = opened.device.mmap(0)
        real = cases.register_costs(bar, REGISTERS.bind(bar), max(N // 4, 1000))
        bar.close()
    print("\n" + common.render("3. register access on edu's BAR0 (ns/access), guest",
                               list(real), [list(real.values())]))
    RESULTS["registers real BAR"] = real


def test_5_fake_vs_real() -> None:
    number = max(N // 10, 500)
    real = cases.same_calls(LinuxKernel(), EDU, number)
    fk = standard_host(iommufd=True)
    fake = cases.same_calls(fk, EDU, number)
    fk.assert_clean()
    rows = [[name, real[name], fake.get(name), common.ratio(fake.get(name), real[name])]
            for name in real]
    print("\n" + common.render("5. same calls, fake vs real kernel, same guest (ns/call)",
                               ["call", "real", "fake", "fake/real"], rows))
    RESULTS["fake vs real"] = {"real": real, "fake": fake}


def test_z_write_json() -> None:
    RESULTS["machine"] = common.machine()
    results = os.environ.get("PYVFIO_VM_RESULTS", "/tmp")
    out = os.environ.get("PYVFIO_BENCH_JSON") or f"{results}/bench-vm.json"
    common.write_json(out, RESULTS)
    print(f"\nJSON: {out}")
