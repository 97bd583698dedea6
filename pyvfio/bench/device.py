"""The benchmarks of a real device bound to vfio-pci (``pyvfio bench --device BDF``).

Parts (each returns ``(table text, JSON data)``; every function takes the kernel, so the tests run
them on the fake kernel and the VM lane on a real one):
  ioctl_cost      VFIO_GET_API_VERSION, VFIO_DEVICE_GET_INFO, IOMMU_IOAS_IOVA_RANGES (when
                  /dev/iommu exists) and FIONREAD: C vs ``fcntl.ioctl`` vs pyvfio's layers
  map_unmap_vs_c  map+unmap 4 KiB / 2 MiB, pyvfio vs C, legacy and (when available) iommufd
  registers_bar   register access on BAR0 -- QEMU's edu only: it reads and WRITES register 0x80,
                  which on an unknown device could do anything
  fake_vs_real    the same calls on the fake kernel and on this kernel -- edu only, likewise
Map+unmap maps a 2 MiB anonymous buffer at IOVA 0x200000: the device must accept that IOVA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import ffi, new
from pyvfio.bench import cases, cloop, ioctls
from pyvfio.bench.timing import ratio, render
from pyvfio.cdev import cdev_path, open_device
from pyvfio.container import Container
from pyvfio.edu import REGISTERS
from pyvfio.fake import standard_host
from pyvfio.iommufd import IOMMUFD
from pyvfio.kernel import Kernel, LinuxKernel

Result = tuple[str, dict[str, Any]]
EDU_IDS = ("0x1234", "0x11e8")


def is_edu(kernel: Kernel, bdf: str) -> bool:
    """Whether ``bdf`` is QEMU's edu device (the only one the register parts may write to)."""
    path = f"bus/pci/devices/{bdf}"
    return (kernel.sysfs_read(f"{path}/vendor").strip(),
            kernel.sysfs_read(f"{path}/device").strip()) == EDU_IDS


def has_iommufd(kernel: Kernel, bdf: str) -> bool:
    """Whether ``bdf`` can be opened in iommufd mode (/dev/iommu and its VFIO cdev exist)."""
    cdev = cdev_path(bdf, kernel=kernel)
    return cdev is not None and kernel.exists("/dev/iommu") and kernel.exists(cdev)


def _group(kernel: Kernel, bdf: str) -> str:
    return kernel.sysfs_readlink(f"bus/pci/devices/{bdf}/iommu_group").rsplit("/", 1)[1]


def ioctl_cost(kernel: Kernel, bdf: str, number: int, binary: Path | None) -> Result:
    """ns per ioctl through each layer for three VFIO/iommufd requests and FIONREAD.

    Real kernel only: ``fcntl.ioctl`` and the C loop need real file descriptors.
    """
    rows, data = [], {}
    with Container(kernel) as c:
        ns = ioctls.measure(c.fileno(), uapi.VFIO_GET_API_VERSION, lambda: 0, 0, number=number,
                            obj=c.api_version)
    rows.append(ioctls.row("VFIO_GET_API_VERSION", ns, cloop.run_c(binary, "api", number)))
    data["VFIO_GET_API_VERSION"] = ns
    with open_device(bdf, "legacy", kernel=kernel) as opened:
        arg = new("struct vfio_device_info *")
        ns = ioctls.measure(opened.device.fileno(), uapi.VFIO_DEVICE_GET_INFO, lambda: arg,
                            bytearray(ffi.buffer(arg)), number=number, obj=opened.device.info)
    c_ns = cloop.run_c(binary, "devinfo", number, _group(kernel, bdf), bdf)
    rows.append(ioctls.row("VFIO_DEVICE_GET_INFO", ns, c_ns))
    data["VFIO_DEVICE_GET_INFO"] = ns
    if kernel.exists("/dev/iommu"):
        with IOMMUFD(kernel) as fd:
            ioas = fd.ioas()
            ranges = ffi.new("struct iommu_iova_range[8]")
            arg = new("struct iommu_ioas_iova_ranges *", ioas_id=ioas.id, num_iovas=8,
                      allowed_iovas=int(ffi.cast("uintptr_t", ranges)))
            ns = ioctls.measure(fd.fileno(), uapi.IOMMU_IOAS_IOVA_RANGES, lambda: arg,
                                bytearray(ffi.buffer(arg)), number=number, obj=ioas.iova_ranges)
        rows.append(ioctls.row("IOMMU_IOAS_IOVA_RANGES", ns,
                               cloop.run_c(binary, "ranges", number)))
        data["IOMMU_IOAS_IOVA_RANGES"] = ns
    fion = ioctls.fionread(number)
    rows.append(ioctls.row("FIONREAD (pipe)", fion, cloop.run_c(binary, "fionread", number)))
    data["FIONREAD"] = fion
    return render(f"1. one ioctl (ns/call), {bdf}", ioctls.HEADERS, rows), {**data, "rows": rows}


def map_unmap_vs_c(kernel: Kernel, bdf: str, number: int, binary: Path | None) -> Result:
    """ns per map+unmap pair of pyvfio (object API and bare ioctls) and of C."""
    rows, data = [], {}
    modes = ("legacy", "iommufd") if has_iommufd(kernel, bdf) else ("legacy",)
    for mode in modes:
        for label, size in cases.SIZES.items():
            n = max(number // 20, 200) if size == 4096 else max(number // 200, 50)
            ns = cases.map_unmap(kernel, bdf, mode, size, n)
            c_ns = cases.map_unmap_c(binary, kernel, bdf, mode, size, n)
            rows.append([f"{mode} {label}", c_ns, ns["_ioctl.call"], ns["object API"],
                         ratio(c_ns, ns["_ioctl.call"]), ratio(c_ns, ns["object API"])])
            data[f"{mode} {label}"] = {**ns, "C": c_ns}
    return render(f"2. map+unmap (ns per pair), {bdf}; throughput ratio = C ns / py ns",
                  ["mode size", "C", "_ioctl.call", "object API", "wrapper vs C", "object vs C"],
                  rows), data


def registers_bar(kernel: Kernel, bdf: str, number: int) -> Result:
    """Register access per width on the edu's BAR0 (reads and writes register 0x80)."""
    with open_device(bdf, "legacy", kernel=kernel) as opened:
        bar = opened.device.mmap(0)
        try:
            real = cases.register_costs(bar, REGISTERS.bind(bar), max(number // 4, 1000))
        finally:
            bar.close()
    return (render(f"3. register access on BAR0 of {bdf} (ns/access)", list(real),
                   [list(real.values())]), real)


def fake_vs_real(kernel: Kernel, bdf: str, number: int) -> Result:
    """The same public calls on this kernel's edu and on the fake kernel's."""
    n = max(number // 10, 500)
    real = cases.same_calls(kernel, bdf, n)
    fk = standard_host(iommufd=True)
    fake = cases.same_calls(fk, str(fk.labels["edu"]), n)
    fk.assert_clean()
    rows = [[name, real[name], fake.get(name), ratio(fake.get(name), real[name])]
            for name in real]
    return (render("5. same calls, fake vs this kernel (ns/call)",
                   ["call", "real", "fake", "fake/real"], rows), {"real": real, "fake": fake})


def parts(kernel: Kernel | None, bdf: str, number: int) -> dict[str, Any]:
    """The parts that apply to ``bdf``, by JSON key, as zero-argument callables.

    ``device_ioctl`` needs the real kernel; ``device_registers`` and ``fake_vs_real`` an edu.
    Compiles the C loop (when there is a compiler) for the real kernel.
    """
    k = kernel or LinuxKernel()
    real = isinstance(k, LinuxKernel)
    binary = cloop.compile_c() if real else None
    out: dict[str, Any] = {}
    if real:  # fcntl and C need real fds
        out["device_ioctl"] = lambda: ioctl_cost(k, bdf, number, binary)
    out["device_map_unmap"] = lambda: map_unmap_vs_c(k, bdf, number, binary)
    if is_edu(k, bdf):
        out["device_registers"] = lambda: registers_bar(k, bdf, number)
        out["fake_vs_real"] = lambda: fake_vs_real(k, bdf, number)
    return out
