"""An ioctl's argument as the kernel sees it: a user pointer (or a value) copied in and out.

Handlers never touch the caller's cdata: the dispatcher (:mod:`pyvfio.fake.dispatch`) copies the
struct in as the kernel does (``copy_from_user`` of the minimum size for VFIO,
``copy_struct_from_user`` for iommufd) and hands the handler an :class:`IoctlArg` holding the
private copy (``io.cmd``); the handler writes back exactly the bytes the kernel writes back.
"""

from __future__ import annotations

import struct
from typing import Any

from pyvfio._ffi import CData, ffi
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import UserMemory


class IoctlArg:
    """The argument of one ioctl call, after copy-in.

    Attributes:
        mem: the caller's memory (copy_from_user / copy_to_user).
        value: the raw argument: a user address, or the integer of a by-value ioctl.
        linux: the kernel version the fake answers as.
        cmd: the kernel's copy: a cdata struct (VFIO ``argsz`` and iommufd ``size`` structs),
            an int (by-value and ``int32_t *`` arguments), a str (a device name), or None.
        size: the caller's ``argsz`` / ``size`` (0 for arguments without one).
        extra: what the call log shows besides the struct's fields (trailing data, values).
    """

    __slots__ = ("cmd", "extra", "linux", "mem", "raw", "size", "value")

    def __init__(self, mem: UserMemory, value: int, linux: Linux) -> None:
        self.mem = mem
        self.value = value
        self.linux = linux
        self.cmd: Any = None
        self.size = 0
        self.extra: dict[str, Any] = {}
        self.raw = b""  # the struct bytes copied in (the call log decodes them)

    def copy_out(self, s: CData | None = None, size: int | None = None) -> None:
        """copy_to_user of the first ``size`` bytes of ``s`` (default: the kernel copy,
        ``min(argsz, sizeof)`` bytes)."""
        s = self.cmd if s is None else s
        n = min(self.size, ffi.sizeof(s[0])) if size is None else size
        self.mem.write(self.value, ffi.buffer(s, n)[:])

    def read(self, offset: int, size: int) -> bytes:
        """Read ``size`` bytes of the argument at ``offset`` (a flexible-array tail)."""
        return self.mem.read(self.value + offset, size)

    def write(self, offset: int, data: bytes) -> None:
        """Write bytes into the argument at ``offset``."""
        self.mem.write(self.value + offset, data)

    def reply_caps(self, caps: list[tuple[int, int, bytes]], flag: int) -> None:
        """Answer an INFO ioctl with a capability chain (vfio_main.c:``vfio_info_cap_shift``).

        ``caps`` are (id, version, body) in chain order.  When the caller's buffer is too small
        the reply is still success: CAPS flag set, ``argsz`` = the size needed, ``cap_offset`` 0.
        """
        s = self.cmd
        base = ffi.sizeof(s[0])
        if not caps:
            self.copy_out()
            return
        chain = cap_chain(base, caps)
        s.flags |= flag
        if self.size < base + len(chain):
            s.argsz = base + len(chain)
            s.cap_offset = 0
            self.copy_out()
            return
        s.cap_offset = base
        self.copy_out(s, base)
        self.write(base, chain)


def cap_chain(base: int, caps: list[tuple[int, int, bytes]]) -> bytes:
    """Lay out caps after a struct of ``base`` bytes: 8-byte aligned, absolute ``next``, last 0."""
    out = b""
    for i, (cap_id, version, body) in enumerate(caps):
        size = (8 + len(body) + 7) & ~7
        nxt = 0 if i == len(caps) - 1 else base + len(out) + size
        out += (struct.pack("<HHI", cap_id, version, nxt) + body).ljust(size, b"\0")
    return out


class FakeFile:
    """An open file of the fake kernel.

    :meth:`space` names the set of ioctls the file answers right now (a container before and
    after ``VFIO_SET_IOMMU``, a cdev before and after ``VFIO_DEVICE_BIND_IOMMUFD``), and
    :meth:`target` the object a handler of an op kind runs on.
    """

    kind = "file"
    positional = True
    """FMODE_PREAD | FMODE_PWRITE: pread/pwrite reach the file.  do_dentry_open sets them for
    every opened node, anon_inode_getfile does not (fault queues, vEVENTQs, migration data,
    dma-bufs: fs/read_write.c:ksys_pread64 answers ESPIPE); group.c:vfio_device_open_file
    sets them by hand on the device fd."""

    def space(self) -> str:
        """Return the ioctl space of the file now (a key of ``pyvfio.fake.ioctls.SPACES``)."""
        return self.kind

    def target(self, owner: str) -> Any:
        """Return the object the handlers of op kind ``owner`` receive (default: the file)."""
        return self

    def release(self) -> None:
        """The last close of the file (``fops->release``)."""
