"""Benchmark 1: the cost of one ioctl through pyvfio vs raw ``fcntl.ioctl`` vs C, same fd.

Python variants, all issuing the identical request on the identical fd:
  raw fcntl      ``fcntl.ioctl(fd, req, mutable_buffer)`` (the standard library's C call)
  kernel.ioctl   ``LinuxKernel.ioctl(fd, req, cdata)``: cffi ABI-mode call of variadic ioctl(2)
  _ioctl.call    what every pyvfio object method goes through (kernel.ioctl + DEBUG log check)
  object API     the public method (``Container.api_version()``, ``Device.info()``, ...)
  cffi fixed     diagnosis only: the same call through a non-variadic cffi declaration
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from typing import Any

from pyvfio import _ioctl
from pyvfio._ffi import ffi
from pyvfio.bench.timing import cpu_ns_many, ratio
from pyvfio.kernel import LinuxKernel

_FIXED = None


def _fixed_ioctl() -> Any:
    """A second FFI declaring ioctl(2) with a fixed argument list (no libffi varargs setup)."""
    global _FIXED  # noqa: PLW0603 - built once per process
    if _FIXED is None:
        import cffi  # noqa: PLC0415

        f = cffi.FFI()
        f.cdef("int ioctl(int fd, unsigned long request, void *arg);")
        _FIXED = (f, f.dlopen(None))
    return _FIXED


def measure(fd: int, request: int, make_arg: Callable[[], Any], raw_arg: Any, *,
            number: int, obj: Callable[[], object] | None = None) -> dict[str, float | None]:
    """Return ns of CPU time per call of each variant for ``request`` on ``fd`` (the fastest
    of 15 interleaved rounds of ``number // 4`` calls: :func:`~pyvfio.bench.timing.cpu_ns_many`).

    Args:
        make_arg: returns the cdata argument (a struct pointer) or an int.
        raw_arg: the same argument for ``fcntl.ioctl`` (a mutable bytearray, or an int).
        obj: the public pyvfio method doing this ioctl, if there is one.
    """
    kernel = LinuxKernel()
    arg = make_arg()
    f2, lib2 = _fixed_ioctl()
    arg2 = f2.cast("void *", int(ffi.cast("uintptr_t", arg)) if not isinstance(arg, int) else arg)
    fns = {
        "raw fcntl": lambda: fcntl.ioctl(fd, request, raw_arg),
        "kernel.ioctl": lambda: kernel.ioctl(fd, request, arg),
        "_ioctl.call": lambda: _ioctl.call(kernel, fd, request, arg),
        "cffi fixed": lambda: lib2.ioctl(fd, int(request), arg2),
    }
    if obj is not None:
        fns["object API"] = obj
    out: dict[str, float | None] = {"object API": None, **cpu_ns_many(fns, max(number // 4, 1))}
    return out


def fionread(number: int) -> dict[str, float | None]:
    """FIONREAD on a pipe: an ioctl every Linux host has (no VFIO needed)."""
    r, w = os.pipe()
    try:
        cell = ffi.new("int *")
        return measure(r, 0x541B, lambda: cell, bytearray(4), number=number)
    finally:
        os.close(r)
        os.close(w)


def row(name: str, ns: dict[str, float | None], c_ns: float | None) -> list[Any]:
    """A table row: the variants, C, and the ratios the targets are about."""
    return [name, c_ns, ns["raw fcntl"], ns["kernel.ioctl"], ns["_ioctl.call"], ns["object API"],
            ns["cffi fixed"], ratio(ns["_ioctl.call"], ns["raw fcntl"]),
            ratio(ns["raw fcntl"], c_ns)]


HEADERS = ["ioctl", "C ns", "fcntl ns", "kernel.ioctl", "_ioctl.call", "object API",
           "cffi fixed", "wrapper/fcntl", "fcntl/C"]
