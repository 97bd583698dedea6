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
import threading
from typing import Any

import cffi

from pyvfio._ffi import ffi as uapi_ffi

PAGE_SIZE = 4096
_IOV_MAX = 1024
_CHUNK = 1 << 16
TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE  # x86_64, 4-level page tables

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


def foreign(fd: int) -> bool:
    """Tell whether ``fd`` is open in this process: a real file (the fake's fds are not)."""
    try:
        os.fstat(fd)
    except (OSError, ValueError, OverflowError):
        return False
    return True


_UINTPTR = uapi_ffi.typeof("uintptr_t")
_SCRATCH = 4096  # reads and writes up to this size reuse one buffer (no allocation per call)


def address(arg: Any) -> int:
    """Return the user address of an ioctl argument: a cdata pointer or buffer, or an int."""
    if isinstance(arg, int):
        return arg
    return int(uapi_ffi.cast(_UINTPTR, arg))


def buffer_address(buf: Any) -> int:
    """Return the address of a writable Python buffer (bytearray, mmap, memoryview)."""
    return int(uapi_ffi.cast("uintptr_t", uapi_ffi.from_buffer(buf)))


class UserMemory:
    """The calling process's address space, accessed without ever faulting."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._maps: list[tuple[int, int, bool]] = []  # (start, end, writable), sorted
        # small copies (every ioctl struct) reuse one buffer and one pair of iovecs; the lock
        # keeps two threads from sharing them (the fake kernel's lock usually covers it already)
        self._lock = threading.Lock()
        self._buf = _ffi.new("char[]", _SCRATCH)
        self._local = _ffi.new("struct iovec *", {"iov_base": self._buf})
        self._remote = _ffi.new("struct iovec *")

    def read(self, addr: int, size: int) -> bytes:
        """copy_from_user: return ``size`` bytes at ``addr``. Raises OSError(EFAULT)."""
        if size == 0:
            return b""
        if size <= _SCRATCH:
            with self._lock:
                self._small(_libc.process_vm_readv, addr, size)
                return bytes(_ffi.buffer(self._buf, size))
        buf = _ffi.new("char[]", size)
        self._xfer(_libc.process_vm_readv, buf, addr, size)
        return bytes(_ffi.buffer(buf, size))

    def write(self, addr: int, data: bytes) -> None:
        """copy_to_user: store ``data`` at ``addr``. Raises OSError(EFAULT)."""
        size = len(data)
        if not size:
            return
        if size <= _SCRATCH:
            with self._lock:
                _ffi.memmove(self._buf, data, size)
                self._small(_libc.process_vm_writev, addr, size)
            return
        buf = _ffi.new("char[]", bytes(data))
        self._xfer(_libc.process_vm_writev, buf, addr, size)

    def _small(self, call: Any, addr: int, size: int) -> None:
        if addr < 0 or addr + size > 1 << 64:
            raise kerr(errno.EFAULT)
        self._local.iov_len = size
        self._remote.iov_base = _ffi.cast("void *", addr)
        self._remote.iov_len = size
        if call(self._pid, self._local, 1, self._remote, 1, 0) != size:
            raise kerr(errno.EFAULT)

    def _xfer(self, call: Any, buf: Any, addr: int, size: int) -> None:
        if addr < 0 or addr + size > 1 << 64:
            raise kerr(errno.EFAULT)
        local = _ffi.new("struct iovec *", {"iov_base": buf, "iov_len": size})
        target = {"iov_base": _ffi.cast("void *", addr), "iov_len": size}
        remote = _ffi.new("struct iovec *", target)
        if call(self._pid, local, 1, remote, 1, 0) != size:
            raise kerr(errno.EFAULT)

    def check_zeroed(self, addr: int, size: int) -> bool:
        """lib/usercopy.c:check_zeroed_user: tell whether ``size`` bytes at ``addr`` are all zero.

        Reads at most 64 KiB at a time and stops at the first non-zero byte, so a caller's
        absurd size costs no memory.

        Raises:
            OSError: EFAULT if the range leaves user space or a page before the first non-zero
                byte is unreadable.
        """
        if addr < 0 or addr + size > TASK_SIZE_MAX:
            raise kerr(errno.EFAULT)  # access_ok
        while size:
            n = min(size, _CHUNK - addr % PAGE_SIZE)
            data = self.read_prefix(addr, n)
            if data.count(0) != len(data):
                return False
            if len(data) < n:
                raise kerr(errno.EFAULT)
            addr, size = addr + n, size - n
        return True

    def read_prefix(self, addr: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``addr``, stopping at the first unreadable page."""
        pages = []
        cur, end = addr, addr + size
        while cur < end:
            nxt = min(end, cur - cur % PAGE_SIZE + PAGE_SIZE)
            pages.append((_ffi.cast("void *", cur), nxt - cur))
            cur = nxt
        buf = _ffi.new("char[]", size)
        local = _ffi.new("struct iovec *", {"iov_base": buf, "iov_len": size})
        remote = _ffi.new("struct iovec[]", pages)
        got = _libc.process_vm_readv(self._pid, local, 1, remote, len(pages), 0)
        return bytes(_ffi.buffer(buf, max(got, 0)))

    def pinnable_pages(self, addr: int, npages: int, *, write: bool) -> int:
        """Count the pages from ``addr`` that pin_user_pages would pin before the first failure.

        Stops at the first unmapped page (or read-only one when ``write``), so the cost follows
        the memory that exists, not the size a caller asked for.
        """
        base = addr - addr % PAGE_SIZE
        scratch = _ffi.new("char[]", _IOV_MAX)
        good = 0
        while good < npages:
            n = min(_IOV_MAX, npages - good)
            first = base + good * PAGE_SIZE
            local = _ffi.new("struct iovec *", {"iov_base": scratch, "iov_len": n})
            remote = _ffi.new("struct iovec[]",
                              [(_ffi.cast("void *", first + i * PAGE_SIZE), 1) for i in range(n)])
            got = max(_libc.process_vm_readv(self._pid, local, 1, remote, n, 0), 0)
            good += got
            if got < n:
                break
        if write and good:
            good = min(good, self._writable_pages(base, good))
        return good

    def check_pinnable(self, addr: int, size: int, *, write: bool) -> None:
        """Check ``[addr, addr+size)`` the way pin_user_pages would (one byte of every page).

        Raises:
            OSError: EFAULT if a page is not mapped, or not writable when ``write``.
        """
        npages = (addr + size - 1) // PAGE_SIZE - addr // PAGE_SIZE + 1 if size else 0
        if self.pinnable_pages(addr, npages, write=write) < npages:
            raise kerr(errno.EFAULT)

    def _writable_pages(self, base: int, npages: int) -> int:
        """Count the writable pages from page-aligned ``base`` (at most ``npages``)."""
        end = base + npages * PAGE_SIZE
        for attempt in range(2):
            cur = base
            i = bisect.bisect_right(self._maps, (cur, 1 << 65, True)) - 1
            while cur < end and 0 <= i < len(self._maps):
                start, stop, writable = self._maps[i]
                if not (start <= cur < stop and writable):
                    break
                cur, i = stop, i + 1
            if cur >= end or attempt:
                return min(npages, (cur - base) // PAGE_SIZE)
            self._refresh()  # the cache is stale or the memory really is read-only
        return 0

    def _refresh(self) -> None:
        maps = []
        with open(f"/proc/{self._pid}/maps", encoding="ascii") as f:
            for line in f:
                span, perms = line.split()[:2]
                lo, hi = (int(x, 16) for x in span.split("-"))
                maps.append((lo, hi, perms[1] == "w"))
        self._maps = sorted(maps)
