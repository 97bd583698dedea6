"""An ioctl's argument as the kernel sees it: a user pointer (or a value) to copy in and out.

Handlers never touch the caller's cdata directly: like ``copy_from_user`` they read ``argsz`` bytes
at the argument's address (EFAULT for a bad pointer), check the minimum size, work on a private
copy, and write back exactly the bytes the kernel writes back.  Each struct read is also noted in
the call log, so tests can assert which arguments a driver passed.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from pyvfio import uapi
from pyvfio._ffi import CData, ffi
from pyvfio.fake.memory import UserMemory, address, kerr

PAGE_SIZE = 4096


class IoctlArg:
    """The argument of one ioctl call."""

    def __init__(self, mem: UserMemory, arg: CData | int, record: dict[str, Any]) -> None:
        self.mem = mem
        self.value = address(arg)
        self.record = record
        self.argsz = 0

    def struct(self, ctype: str, minsz: int) -> CData:
        """copy_from_user of a VFIO argsz struct: EINVAL if ``argsz < minsz``, EFAULT if unreadable.

        Returns a private copy holding ``min(argsz, sizeof)`` bytes of the caller's struct.
        """
        (argsz,) = struct.unpack("<I", self.mem.read(self.value, 4))
        if argsz < minsz:
            raise kerr(errno.EINVAL)
        self.argsz = argsz
        s = ffi.new(ctype)
        n = min(argsz, ffi.sizeof(s[0]))
        ffi.memmove(s, self.mem.read(self.value, n), n)
        self.record.update(
            (name, getattr(s, name))
            for name, f in ffi.typeof(s[0]).fields
            if f.type.kind == "primitive"
        )
        return s

    def copy_out(self, s: CData, size: int | None = None) -> None:
        """copy_to_user of the first ``size`` bytes of ``s`` (default ``min(argsz, sizeof)``)."""
        n = min(self.argsz, ffi.sizeof(s[0])) if size is None else size
        self.mem.write(self.value, bytes(ffi.buffer(s, n)))

    def read(self, offset: int, size: int) -> bytes:
        """Read ``size`` bytes of the argument at ``offset`` (a flexible-array tail)."""
        return self.mem.read(self.value + offset, size)

    def write(self, offset: int, data: bytes) -> None:
        """Write bytes into the argument at ``offset``."""
        self.mem.write(self.value + offset, data)

    def int32(self) -> int:
        """get_user of an ``int32_t *`` argument."""
        (value,) = struct.unpack("<i", self.mem.read(self.value, 4))
        self.record["fd"] = value
        return int(value)

    def string(self) -> str:
        """strndup_user(arg, PAGE_SIZE): a NUL-terminated string (EINVAL if none in a page)."""
        data = b""
        while b"\0" not in data:
            if len(data) >= PAGE_SIZE:
                raise kerr(errno.EINVAL)
            chunk = PAGE_SIZE - (self.value + len(data)) % PAGE_SIZE
            data += self.mem.read(self.value + len(data), chunk)
        text = data[: min(data.index(b"\0"), PAGE_SIZE)].decode("utf-8", "replace")
        self.record["name"] = text
        return text

    def reply_caps(self, s: CData, caps: list[tuple[int, int, bytes]], flag: int) -> None:
        """Answer an INFO ioctl with a capability chain (vfio_main.c:``vfio_info_cap_shift``).

        ``caps`` are (id, version, body) in chain order.  When the caller's buffer is too small
        the reply is still success: CAPS flag set, ``argsz`` = the size needed, ``cap_offset`` 0.
        """
        base = ffi.sizeof(s[0])
        if not caps:
            self.copy_out(s)
            return
        chain = cap_chain(base, caps)
        s.flags |= flag
        if self.argsz < base + len(chain):
            s.argsz = base + len(chain)
            s.cap_offset = 0
            self.copy_out(s)
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
    """An open file of the fake kernel; subclasses name their ioctls and add handlers.

    A handler is a method named after the ioctl, taking the :class:`IoctlArg` and returning the
    ioctl's result; numbers repeat across fd kinds, so each kind has its own table.
    """

    kind = "file"
    IOCTLS: tuple[str, ...] = ()
    UNKNOWN_ERRNO = errno.ENOTTY

    def handlers(self) -> dict[int, str]:
        """Return the request numbers this file answers right now, mapped to handler names."""
        return {int(uapi.IOCTLS[name]): name for name in self.IOCTLS}

    def unknown_errno(self) -> int:
        """Return the errno of an ioctl this file does not know."""
        return self.UNKNOWN_ERRNO

    def release(self) -> None:
        """The last close of the file (``fops->release``)."""
