"""Benchmarks 2, 3 and 5: DMA map+unmap, register access, and the same calls on fake and real.

Every function takes a kernel (fake or real) so one body measures both: the fake in
:mod:`pyvfio.bench.host`, a real device in :mod:`pyvfio.bench.device` (``pyvfio bench --device``,
and the VM lane's tools/bench/test_bench_vm.py).
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import time
from typing import Any

from pyvfio import _ioctl, uapi
from pyvfio._ffi import new
from pyvfio.bench.cloop import run_c
from pyvfio.bench.timing import best_ns, best_ns_many
from pyvfio.cdev import OpenedDevice, cdev_path, open_device
from pyvfio.container import Container
from pyvfio.kernel import MMIO, Kernel
from pyvfio.memory import DMABuffer
from pyvfio.registers import Register, Registers, bind_register

IOVA = 0x200000
SIZES = {"4 KiB": 4096, "2 MiB": 2 << 20}


def _raw_map_unmap(opened: OpenedDevice, buf: DMABuffer) -> Any:
    """The two ioctls alone through pyvfio's wrapper (prebuilt structs), no object bookkeeping."""
    kernel = opened.device._kernel
    if opened.mode == "legacy":
        assert isinstance(opened.dma, Container)
        fd = opened.dma.fileno()
        m = new("struct vfio_iommu_type1_dma_map *", flags=3, vaddr=buf.vaddr, iova=IOVA,
                size=len(buf))
        u = new("struct vfio_iommu_type1_dma_unmap *", iova=IOVA, size=len(buf))
        reqs = (uapi.VFIO_IOMMU_MAP_DMA, uapi.VFIO_IOMMU_UNMAP_DMA)
    else:
        ioas = opened.dma
        fd = ioas.iommufd.fileno()  # type: ignore[attr-defined]
        m = new("struct iommu_ioas_map *", flags=7, ioas_id=ioas.id,  # type: ignore[attr-defined]
                user_va=buf.vaddr, length=len(buf), iova=IOVA)
        u = new("struct iommu_ioas_unmap *", ioas_id=ioas.id, iova=IOVA,  # type: ignore[attr-defined]
                length=len(buf))
        reqs = (uapi.IOMMU_IOAS_MAP, uapi.IOMMU_IOAS_UNMAP)

    def once() -> None:
        _ioctl.call(kernel, fd, reqs[0], m)
        _ioctl.call(kernel, fd, reqs[1], u)
    return once


def map_unmap(kernel: Kernel, bdf: str, mode: str, size: int, number: int) -> dict[str, float]:
    """ns per map+unmap of ``size`` bytes: the object API and the bare wrapped ioctls."""
    with open_device(bdf, mode, kernel=kernel) as opened, DMABuffer.anonymous(size) as buf:
        raw = buf._open()
        # 4 KiB pages, as the C loop: whether a 2 MiB buffer gets a transparent huge page
        # depends on its alignment, and pinning one huge page is far cheaper than 512 pages
        with contextlib.suppress(OSError):  # EINVAL: a kernel without THP, nothing to avoid
            raw.madvise(mmap.MADV_NOHUGEPAGE)
        buf[0 : len(buf) : 4096] = bytes(len(buf) // 4096)  # fault the pages in

        def obj() -> None:
            opened.dma.map(raw, IOVA).close()
        return best_ns_many({"object API": obj, "_ioctl.call": _raw_map_unmap(opened, buf)},
                            number)


def map_unmap_c(binary: Any, kernel: Kernel, bdf: str, mode: str, size: int,
                number: int) -> float | None:
    """The C loop's ns per map+unmap on the same device (opened after Python closed it)."""
    if mode == "legacy":
        group = kernel.sysfs_readlink(f"bus/pci/devices/{bdf}/iommu_group").rsplit("/", 1)[1]
        return run_c(binary, "map-legacy", number, size, group, bdf)
    return run_c(binary, "map-iommufd", number, size, cdev_path(bdf, kernel=kernel))


def register_costs(mmio: MMIO, regs: Registers | None, number: int) -> dict[str, float]:
    """ns per read and write at each width (offset 0x80: edu takes 4 and 8 there)."""
    out: dict[str, float] = {}
    for width in (1, 2, 4, 8):
        out[f"read{8 * width}"] = best_ns(functools.partial(mmio.read, 0x80, width), number)
        out[f"write{8 * width}"] = best_ns(functools.partial(mmio.write, 0x80, width, 1), number)
    if regs is not None:
        out["Registers.read"] = best_ns(lambda: regs.read("dma_src"), number)
        out["Registers.write"] = best_ns(lambda: regs.write("dma_src", 1), number)
    return out


def _ptr_read(reg: Any, ptr: Any, i: int, number: int) -> None:
    for _ in range(number):
        ptr[i]


def _reg_read(reg: Any, ptr: Any, i: int, number: int) -> None:
    for _ in range(number):
        reg.read()


def _ptr_write(reg: Any, ptr: Any, i: int, number: int) -> None:
    for _ in range(number):
        ptr[i] = 1


def _reg_write(reg: Any, ptr: Any, i: int, number: int) -> None:
    for _ in range(number):
        reg.write(1)


def _empty(reg: Any, ptr: Any, i: int, number: int) -> None:
    for _ in range(number):
        pass


_ACCESS_LOOPS = {"cffi pointer read32": _ptr_read, "bound register read32": _reg_read,
                 "cffi pointer write32": _ptr_write, "bound register write32": _reg_write,
                 "empty loop": _empty}


def register_vs_pointer(mmio: Any, number: int, rounds: int = 100) -> dict[str, float]:
    """ns per 32-bit read and write: a bound register (pyvfio.registers) against a bare cffi
    typed pointer on the same mapping, in identical loops of ``number`` accesses; the variants
    take turns for ``rounds`` rounds and each keeps its fastest (short turns: on a shared
    machine a long loop always catches some other process).  ``empty loop`` is the loop's own
    cost, subtracted in the ``net`` ratios."""
    args = (bind_register(Register("r", 0x80, 4, "rw"), mmio), mmio.pointer(4), 0x80 // 4, number)
    loops = _ACCESS_LOOPS
    out = dict.fromkeys(loops, float("inf"))
    for _ in range(rounds):
        for name, loop in loops.items():
            t0 = time.perf_counter_ns()
            loop(*args)
            out[name] = min(out[name], (time.perf_counter_ns() - t0) / number)
    e = out["empty loop"]
    for op in ("read32", "write32"):
        reg_ns, ptr_ns = out[f"bound register {op}"], out[f"cffi pointer {op}"]
        out[f"ratio {op}"] = round(reg_ns / ptr_ns, 2)
        out[f"ratio {op} net"] = round((reg_ns - e) / max(ptr_ns - e, 1e-9), 2)
    return out


def same_calls(kernel: Kernel, bdf: str, number: int) -> dict[str, float]:
    """The calls part 5 compares: each through pyvfio's public API on ``kernel``."""
    out: dict[str, float] = {}
    with Container(kernel) as c:
        out["VFIO_GET_API_VERSION"] = best_ns(c.api_version, number)
    with open_device(bdf, "legacy", kernel=kernel) as opened:
        out["VFIO_DEVICE_GET_INFO (Device.info)"] = best_ns(opened.device.info, number)
        bar = opened.device.mmap(0)
        out["BAR read32"] = best_ns(lambda: bar.read(0, 4), number)
        bar.close()
    if kernel.exists("/dev/iommu"):
        with open_device(bdf, "iommufd", kernel=kernel) as opened:
            ioas = opened.dma
            out["IOMMU_IOAS_IOVA_RANGES"] = best_ns(ioas.iova_ranges, number)
    for mode in ("legacy", "iommufd"):
        if mode == "legacy" or kernel.exists("/dev/iommu"):
            ns = map_unmap(kernel, bdf, mode, 4096, max(number // 10, 100))["object API"]
            out[f"map+unmap 4 KiB {mode}"] = ns
    return out
