"""Memory barriers for drivers: ``mb``/``rmb``/``wmb`` and their DMA forms, as Linux names them.

A driver that hands a device work writes the work into DMA memory, then rings a doorbell register;
the device must see the work before the doorbell.  A driver that polls a completion entry reads its
phase bit, then the rest of the entry; it must not read the rest before the phase bit.  These
functions say so in the code, with the meaning of Linux's (``Documentation/memory-barriers.txt``,
``arch/*/include/asm/barrier.h``):

``dma_wmb()``
    stores to DMA memory before it are seen by a device before stores to DMA memory after it.
``dma_rmb()``
    loads from DMA memory before it complete before loads from DMA memory after it.
``dma_mb()``
    both, and stores before it are ordered before loads after it.
``wmb()`` / ``rmb()`` / ``mb()``
    the same for every kind of memory, device registers (MMIO) included.  Order DMA memory
    before a doorbell write with ``wmb()``; a status register read before reading DMA memory the
    device wrote with ``rmb()``.

What Python adds to the hardware's rules: every load and store pyvfio makes on DMA memory or a BAR
(:mod:`pyvfio.memview`, :mod:`pyvfio.registers`, :class:`pyvfio.kernel.LinuxMMIO`) is one C access
``*(uintN_t *)p`` inside ``_cffi_backend`` (``read_raw_unsigned_data``/``write_raw_unsigned_data``),
reached from the interpreter through an indirect call into a shared library.  A C compiler may not
move a memory access across a call to code it cannot see (that code may read or write any memory),
so the accesses leave the CPU in the order the Python statements run: Python code needs no
compiler barrier, only the hardware ordering below.

x86-64 (Intel SDM vol. 3A §9.2.2, "memory ordering in P6 and more recent processors"; TSO): loads
are not reordered with other loads, stores are not reordered with other stores, and stores are not
reordered with older loads; only a later load may pass an earlier store to another address.  BAR
mappings of vfio-pci are uncached (``pgprot_noncached``), DMA memory is write-back and coherent,
and Python issues no non-temporal stores (glibc's ``memmove`` fences its own).  Hence, as in Linux
(``arch/x86/include/asm/barrier.h``), ``dma_rmb``/``dma_wmb`` need no instruction and are no-ops;
``mb``/``rmb``/``wmb`` are ``mfence``/``lfence``/``sfence`` (as Linux: they also order
write-combining and non-temporal accesses a caller may make through other means), and ``dma_mb``
is ``mfence`` (a store followed by a load is the one reordering TSO allows).

arm64 (weakly ordered): every barrier is an instruction, as Linux's ``arch/arm64/include/asm/
barrier.h``: ``mb``/``rmb``/``wmb`` = ``dsb sy``/``dsb ld``/``dsb st``, ``dma_mb``/``dma_rmb``/
``dma_wmb`` = ``dmb osh``/``dmb oshld``/``dmb oshst``.  No library a Python process can call
exports them: libatomic's ``atomic_thread_fence`` is only ``dmb ish`` (inner shareable, which does
not cover a device) and ``__sync_synchronize`` is a compiler builtin, not a symbol.  So pyvfio
writes each barrier as two instructions (the barrier, ``ret``) into a page it maps
read+write, turns it read+execute with ``mprotect`` (never writable and executable at once; the
kernel makes the instruction cache coherent when the page becomes executable,
``arch/arm64/mm/flush.c:__sync_icache_dcache``) and calls it through cffi: a real barrier, no
compiler at install time.  The x86-64 fences are made the same way.  If the system forbids
executable anonymous memory (SELinux ``execmem``), or on any other architecture, every barrier
raises :class:`UnsupportedPlatformError` naming the reason instead of silently ordering nothing
(x86-64's ``dma_rmb``/``dma_wmb`` still work: they need no instruction).

Cost: a no-op is a Python call (~30 ns); an instruction barrier is a cffi call (~100-200 ns).
"""

from __future__ import annotations

import mmap
import os
import platform
import struct
from collections.abc import Callable
from typing import Any

import cffi

from pyvfio.errors import PyvfioError

__all__ = ["ARCH", "UnsupportedPlatformError", "dma_mb", "dma_rmb", "dma_wmb", "mb", "rmb",
           "wmb"]


class UnsupportedPlatformError(PyvfioError, RuntimeError):
    """pyvfio cannot order memory on this machine (unknown architecture, or no executable page)."""


_ARM_RET = 0xD65F03C0
_ARM64 = {name: struct.pack("<II", insn, _ARM_RET) for name, insn in {
    "mb": 0xD5033F9F,  # dsb sy
    "rmb": 0xD5033D9F,  # dsb ld
    "wmb": 0xD5033E9F,  # dsb st
    "dma_mb": 0xD50333BF,  # dmb osh
    "dma_rmb": 0xD50331BF,  # dmb oshld
    "dma_wmb": 0xD50332BF,  # dmb oshst
}.items()}
_X86_64 = {
    "mb": b"\x0f\xae\xf0\xc3",  # mfence; ret
    "rmb": b"\x0f\xae\xe8\xc3",  # lfence; ret
    "wmb": b"\x0f\xae\xf8\xc3",  # sfence; ret
    "dma_mb": b"\x0f\xae\xf0\xc3",  # mfence; ret
}
_ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _ARM64, "arm64": _ARM64}
_NAMES = ("mb", "rmb", "wmb", "dma_mb", "dma_rmb", "dma_wmb")

ARCH = platform.machine().lower()
"""The machine pyvfio runs on (``platform.machine()``, lower case)."""

_ffi = cffi.FFI()
_ffi.cdef("int mprotect(void *addr, size_t len, int prot);")
_libc: Any = _ffi.dlopen(None)


def _noop() -> None:
    """No instruction needed on this architecture (see the module docstring)."""


def _refuse(name: str, why: str) -> Callable[[], None]:
    def refused() -> None:
        raise UnsupportedPlatformError(f"{name}(): pyvfio cannot order memory here: {why}")

    refused.__name__ = name
    return refused


def _build() -> tuple[dict[str, Callable[[], None]], Any]:
    """Return the six barriers for this machine, and the code page that must stay mapped."""
    code = _ARCHES.get(ARCH)
    if code is None:
        why = (f"architecture {ARCH!r} is not supported (pyvfio knows x86-64 and arm64); "
               "a driver without barriers would be wrong on a weakly ordered CPU")
        return {n: _refuse(n, why) for n in _NAMES}, None
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    offsets = {}
    for i, (name, insns) in enumerate(code.items()):
        page[16 * i : 16 * i + len(insns)] = insns
        offsets[name] = 16 * i
    base = _ffi.from_buffer(page)
    if _libc.mprotect(base, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        err = _ffi.errno
        why = (f"mprotect(PROT_EXEC) of the barrier page failed: {os.strerror(err)} "
               "(executable anonymous memory is forbidden, e.g. SELinux deny_execmem)")
        out = {n: _refuse(n, why) for n in _NAMES}
        if code is _X86_64:
            out["dma_rmb"] = out["dma_wmb"] = _noop
        return out, (page, base)
    funcs: dict[str, Callable[[], None]] = {}
    for name in _NAMES:
        if name in offsets:
            funcs[name] = _ffi.cast("void (*)(void)", base + offsets[name])
        else:
            funcs[name] = _noop
    return funcs, (page, base)


_FUNCS, _PAGE = _build()  # the page stays mapped (and executable) for the life of the process

mb: Callable[[], None] = _FUNCS["mb"]
"""Full barrier: every load and store before it, device registers included, is ordered before
every load and store after it (x86-64 ``mfence``, arm64 ``dsb sy``)."""
rmb: Callable[[], None] = _FUNCS["rmb"]
"""Read barrier for all memory (x86-64 ``lfence``, arm64 ``dsb ld``)."""
wmb: Callable[[], None] = _FUNCS["wmb"]
"""Write barrier for all memory, e.g. DMA memory before a doorbell (x86-64 ``sfence``, arm64
``dsb st``)."""
dma_mb: Callable[[], None] = _FUNCS["dma_mb"]
"""Full barrier for coherent DMA memory (x86-64 ``mfence``, arm64 ``dmb osh``)."""
dma_rmb: Callable[[], None] = _FUNCS["dma_rmb"]
"""Loads from DMA memory before it complete before those after it (x86-64: no instruction, TSO
keeps loads in order; arm64 ``dmb oshld``)."""
dma_wmb: Callable[[], None] = _FUNCS["dma_wmb"]
"""Stores to DMA memory before it are seen first by a device (x86-64: no instruction, TSO keeps
stores in order; arm64 ``dmb oshst``)."""


def kind(name: str) -> str:
    """Tell how barrier ``name`` is done here: ``instruction``, ``none needed`` or ``refused``.

    Raises:
        KeyError: ``name`` is not one of the six barriers.
    """
    func = _FUNCS[name]
    if func is _noop:
        return "none needed"
    return "refused" if getattr(func, "__name__", "") == name else "instruction"
