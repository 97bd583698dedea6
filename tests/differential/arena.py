"""The user memory of one differential run: every ioctl argument and DMA buffer lives here.

Both kernels read and write the caller's real memory (the fake through process_vm_readv), so
arguments are passed as addresses into one anonymous mapping whose base is 2 MiB aligned: the
kernel's view of an address (its alignment, whether it is mapped, writable) is then the same on
every run, and only ``base`` differs, which is never recorded (addresses are symbolic: an arena
offset).  Layout (offsets from ``base``)::

    [0, 4 MiB)            read-write DMA buffers
    [ARGS, ARGS + 60 KiB) the ioctl argument (zeroed before each op), then a PROT_NONE page
    [AUX, AUX + 64 KiB)   buffers the kernel writes through pointers in an argument
    [RO, RO + 1 MiB)      read-only (pinning it for write fails)
    [NONE, NONE + 1 MiB)  PROT_NONE (any access faults)
"""

from __future__ import annotations

import ctypes
import mmap

MiB = 1 << 20
ALIGN = 2 * MiB
RW = 0
ARGS = 4 * MiB
ARGS_SIZE = 60 * 1024
AUX = ARGS + 64 * 1024
AUX_SIZE = 64 * 1024
RO = 5 * MiB
NONE = 6 * MiB
SIZE = 7 * MiB

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class Arena:
    """One 2 MiB-aligned mapping laid out as in the module docstring."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, SIZE + ALIGN, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        probe = ctypes.c_char.from_buffer(self._map)
        raw = ctypes.addressof(probe)
        del probe  # an exported buffer would keep the mapping from closing
        self._skew = -raw % ALIGN
        self.base = raw + self._skew
        self.view = memoryview(self._map)[self._skew : self._skew + SIZE]
        for start, size, prot in ((ARGS + ARGS_SIZE, 4096, 0), (RO, MiB, mmap.PROT_READ),
                                  (NONE, MiB, 0)):
            if _libc.mprotect(self.base + start, size, prot):
                raise OSError(ctypes.get_errno(), "mprotect")

    def zero(self, offset: int, size: int) -> None:
        """Zero ``size`` bytes at ``offset`` (a writable part of the arena)."""
        self.view[offset : offset + size] = bytes(size)

    def put(self, offset: int, data: bytes) -> None:
        self.view[offset : offset + len(data)] = data

    def get(self, offset: int, size: int) -> bytes:
        return bytes(self.view[offset : offset + size])

    def close(self) -> None:
        self.view.release()
        _libc.mprotect(self.base, SIZE, mmap.PROT_READ | mmap.PROT_WRITE)
        self._map.close()
