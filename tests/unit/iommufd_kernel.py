"""A minimal Kernel for the iommufd unit tests: /dev/iommu and fault fds only, no PCI.

The full FakeKernel (pyvfio.fake) serves the conformance suite; this one lets the iommufd object
API be tested on its own, with the same fake iommufd files.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pyvfio.fake.iommufd import IommufdFile, IOMMUModel
from pyvfio.fake.memory import UserMemory, kerr


class IommuOnlyKernel:
    """Open /dev/iommu, ioctl, read/write fault fds, close; fds from 20000 up."""

    sysfs_root = "/nonexistent"

    def __init__(self, model: IOMMUModel | None = None) -> None:
        self.model = model or IOMMUModel()
        self.memory = UserMemory()
        self.files: dict[int, Any] = {}
        self._next = 20000

    def install(self, file: Any) -> int:
        fd, self._next = self._next, self._next + 1
        self.files[fd] = file
        return fd

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        if path != "/dev/iommu":
            raise kerr(errno.ENOENT, path)
        return self.install(IommufdFile(self.model, self.memory, self.install))

    def close(self, fd: int) -> None:
        file = self.files.pop(fd, None)
        if file is None:
            raise kerr(errno.EBADF)
        file.release()

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int:
        file = self.files.get(fd)
        if file is None:
            raise kerr(errno.EBADF, getattr(request, "name", None))
        return int(file.ioctl(request, arg))

    def read(self, fd: int, size: int) -> bytes:
        return bytes(self.files[fd].read(size))

    def write(self, fd: int, data: bytes) -> int:
        return int(self.files[fd].write(data))

    def exists(self, path: str) -> bool:
        return path == "/dev/iommu"

    def sysfs_exists(self, relpath: str) -> bool:
        return False

    def assert_clean(self) -> None:
        assert not self.files, f"fds left open: {self.files}"
