"""User memory as the kernel sees it: copy_from_user / copy_to_user on the caller's real memory.

The fake kernel runs in the process it serves, so "user memory" is this process's memory.  It is
read and written with ``process_vm_readv``/``process_vm_writev`` on our own pid: an address the
process does not own makes those calls fail with EFAULT instead of crashing the interpreter, which
is exactly how ``copy_from_user`` behaves.  The small FFI below is private to this module.
"""

from __future__ import annotations

import bisect
import errno
import os
from typing import Any

import cffi

from pyvfio._ffi import ffi as uapi_ffi

PAGE_SIZE = 4096
_IOV_MAX = 1024

_ffi = cffi.FFI()
_ffi.cdef(
    """
    struct iovec { void *iov_base; size_t iov_len; };
    ssize_t process_vm_readv(int pid, const struct iovec *local_iov, unsigned long liovcnt,
                             const struct iovec *remote_iov, unsigned long riovcnt,
                             unsigned long flags);
    ssize_t process_vm_writev(int pid, const struct iovec *local_iov, unsigned long liovcnt,
                              const struct iovec *remote_iov, unsigned long riovcnt,
                              unsigned long flags);
    """
)
_libc: Any = _ffi.dlopen(None)


def kerr(err: int, name: str | None = None) -> OSError:
    """Return the ``OSError`` a kernel refusal with ``err`` becomes (``fcntl.ioctl`` style)."""
    return OSError(err, os.strerror(err), name) if name else OSError(err, os.strerror(err))


def address(arg: Any) -> int:
    """Return the user address of an ioctl argument: a cdata pointer or buffer, or an int."""
    if isinstance(arg, int):
        return arg
    return int(uapi_ffi.cast("uintptr_t", arg))


def buffer_address(buf: Any) -> int:
    """Return the address of a writable Python buffer (bytearray, mmap, memoryview)."""
    return int(uapi_ffi.cast("uintptr_t", uapi_ffi.from_buffer(buf)))


class UserMemory:
    """The calling process's address space, accessed without ever faulting."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._maps: list[tuple[int, int, bool]] = []  # (start, end, writable), sorted

    def read(self, addr: int, size: int) -> bytes:
        """copy_from_user: return ``size`` bytes at ``addr``. Raises OSError(EFAULT)."""
        if size == 0:
            return b""
        buf = _ffi.new("char[]", size)
        self._xfer(_libc.process_vm_readv, buf, addr, size)
        return bytes(_ffi.buffer(buf, size))

    def write(self, addr: int, data: bytes) -> None:
        """copy_to_user: store ``data`` at ``addr``. Raises OSError(EFAULT)."""
        if data:
            buf = _ffi.new("char[]", bytes(data))
            self._xfer(_libc.process_vm_writev, buf, addr, len(data))

    def _xfer(self, call: Any, buf: Any, addr: int, size: int) -> None:
        if addr < 0 or addr + size > 1 << 64:
            raise kerr(errno.EFAULT)
        local = _ffi.new("struct iovec *", {"iov_base": buf, "iov_len": size})
        target = {"iov_base": _ffi.cast("void *", addr), "iov_len": size}
        remote = _ffi.new("struct iovec *", target)
        if call(self._pid, local, 1, remote, 1, 0) != size:
            raise kerr(errno.EFAULT)

    def check_pinnable(self, addr: int, size: int, *, write: bool) -> None:
        """Check ``[addr, addr+size)`` the way pin_user_pages would (one byte of every page).

        Raises:
            OSError: EFAULT if a page is not mapped, or not writable when ``write``.
        """
        scratch = _ffi.new("char[]", _IOV_MAX)
        pages = list(range(addr - addr % PAGE_SIZE, addr + size, PAGE_SIZE))
        for i in range(0, len(pages), _IOV_MAX):
            chunk = pages[i : i + _IOV_MAX]
            local = _ffi.new("struct iovec *", {"iov_base": scratch, "iov_len": len(chunk)})
            remote = _ffi.new("struct iovec[]", [(_ffi.cast("void *", p), 1) for p in chunk])
            if _libc.process_vm_readv(self._pid, local, 1, remote, len(chunk), 0) != len(chunk):
                raise kerr(errno.EFAULT)
        if write and not self._writable(addr, size):
            self._refresh()  # the cache is stale or the memory really is read-only
            if not self._writable(addr, size):
                raise kerr(errno.EFAULT)

    def _writable(self, addr: int, size: int) -> bool:
        end = addr + size
        i = bisect.bisect_right(self._maps, (addr, 1 << 65, True)) - 1
        while addr < end:
            if i < 0 or i >= len(self._maps):
                return False
            start, stop, writable = self._maps[i]
            if not (start <= addr < stop and writable):
                return False
            addr, i = stop, i + 1
        return True

    def _refresh(self) -> None:
        maps = []
        with open(f"/proc/{self._pid}/maps", encoding="ascii") as f:
            for line in f:
                span, perms = line.split()[:2]
                lo, hi = (int(x, 16) for x in span.split("-"))
                maps.append((lo, hi, perms[1] == "w"))
        self._maps = sorted(maps)
