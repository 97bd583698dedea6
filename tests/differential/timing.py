"""Where a recording's time goes: wall time per kernel call kind, and the Python around it.

``record_lane.py --diff-profile`` wraps the guest's LinuxKernel in :class:`TimedKernel` and runs
the recording loop under cProfile; the summary (kernel time per ioctl name, per opened node kind,
per closed fd kind, and the Python functions with the most own time) goes to the console and to
``diff-profile-<profile>.txt`` in the results directory.  Profiling slows the Python side
(cProfile's hooks), so rates measured with it are lower than a plain recording's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from pyvfio import uapi


def _path_kind(path: str) -> str:
    if path.startswith("/dev/vfio/devices/"):
        return "cdev"
    if path == "/dev/vfio/vfio":
        return "container"
    if path.startswith("/dev/vfio/"):
        return "group"
    return path


class TimedKernel:
    """A Kernel that adds up the wall time of each call by kind (``ioctl NAME``, ``open KIND``,
    ``close KIND`` with the kind of node the fd was opened from, ``pread``, ...)."""

    def __init__(self, kernel: Any) -> None:
        self._k = kernel
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._kind: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._k, name)

    def _add(self, key: str, start: float) -> None:
        self.seconds[key] += time.perf_counter() - start
        self.calls[key] += 1

    def open(self, path: str, *args: Any) -> int:
        t = time.perf_counter()
        try:
            fd: int = self._k.open(path, *args)
        finally:
            self._add(f"open {_path_kind(path)}", t)
        self._kind[fd] = _path_kind(path)
        return fd

    def close(self, fd: int) -> None:
        t = time.perf_counter()
        try:
            self._k.close(fd)
        finally:
            self._add(f"close {self._kind.pop(fd, 'other')}", t)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        t = time.perf_counter()
        name = getattr(request, "name", None) or f"{int(request):#x}"
        try:
            rc: int = self._k.ioctl(fd, request, arg)
        finally:
            self._add(f"ioctl {name}", t)
        if request == uapi.VFIO_GROUP_GET_DEVICE_FD and rc >= 0:
            self._kind[rc] = "device"
        return rc

    def _timed(self, key: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._add(key, t)

    def pread(self, *a: Any) -> Any:
        return self._timed("pread", self._k.pread, *a)

    def pwrite(self, *a: Any) -> Any:
        return self._timed("pwrite", self._k.pwrite, *a)

    def read(self, *a: Any) -> Any:
        return self._timed("read", self._k.read, *a)

    def write(self, *a: Any) -> Any:
        return self._timed("write", self._k.write, *a)

    def mmap(self, *a: Any) -> Any:
        return self._timed("mmap", self._k.mmap, *a)

    def eventfd(self, *a: Any) -> Any:
        return self._timed("eventfd", self._k.eventfd, *a)

    def report(self, total: float, top: int = 30) -> str:
        spent = sum(self.seconds.values())
        lines = [f"kernel calls: {spent:.1f} s of {total:.1f} s "
                 f"({100 * spent / max(total, 1e-9):.0f}%)",
                 f"{'seconds':>9} {'calls':>8} {'ms/call':>8}  call"]
        for key, sec in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:top]:
            n = self.calls[key]
            lines.append(f"{sec:9.2f} {n:8d} {1000 * sec / n:8.3f}  {key}")
        return "\n".join(lines)
