"""One ioctl dispatch path for every fd kind of the fake kernel.

An :class:`Op` describes one ioctl as the kernel declares it: the request, the kind of object that
answers it (``owner``), the argument convention (:class:`Conv`), the struct and the last field the
kernel needs (its minimum size), and the first Linux version that has it.  An :class:`IoctlTable`
is built once per FakeKernel from the op lists of the handler modules (:mod:`pyvfio.fake.ioctls`)
for one Linux version; it groups ops into *spaces* (what an fd answers in its current state) and
runs a call: resolve the request (the space's errno for an unknown one), copy the argument in as
the kernel does, run the handler, copy back.

Argument conventions (reference/uapi.md §1.2 and §1.4):

- ``ARGSZ`` (VFIO): ``copy_from_user`` of ``minsz`` bytes (EFAULT), then ``argsz < minsz`` is
  EINVAL; a larger ``argsz`` is accepted.  The handler writes back what it writes back.
  From ``Op.struct_since`` on (VFIO_DEVICE_BIND_IOMMUFD since 6.17): ``get_user`` of ``argsz``
  (EFAULT), ``argsz < minsz`` EINVAL, then ``copy_struct_from_user`` of the whole struct as for
  ``SIZE`` (a non-zero tail E2BIG, an unreadable one EFAULT, a short ``argsz`` zero-extended).
- ``SIZE`` (iommufd, main.c:iommufd_fops_ioctl): ``get_user`` of the size (EFAULT) for every
  request number in the table's range, ENOTTY for a request not in the table, ``size < min``
  EINVAL, non-zero bytes past the kernel's struct E2BIG (read lazily, never allocated), then
  ``min(size, sizeof)`` bytes copied back on success (or before the errno of :class:`RespondThen`).
- ``VALUE`` (an int in the argument), ``INT32`` (a pointer to an int), ``STRING`` (a pointer to a
  NUL-terminated string, ``strndup_user(arg, PAGE_SIZE)``), ``NONE``.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pyvfio._ffi import ffi
from pyvfio.fake.linux import Linux
from pyvfio.fake.memory import PAGE_SIZE, UserMemory, kerr
from pyvfio.fake.uaccess import FakeFile, IoctlArg
from pyvfio.uapi import IOMMUFD_CMD_BASE, Ioctl


class Conv(Enum):
    """How an ioctl passes its argument."""

    NONE = "none"
    VALUE = "value"
    INT32 = "int32"
    STRING = "string"
    ARGSZ = "argsz"
    SIZE = "size"


Handler = Callable[[Any, IoctlArg], "int | None"]


class RespondThen(Exception):  # noqa: N818 - not an error class: a control-flow signal
    """Raised by a SIZE handler that wants its struct copied back and then an errno returned."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


@dataclass(frozen=True)
class Op:
    """One ioctl: who answers it, how its argument travels, since which Linux.

    Attributes:
        request: the request number (its ``name`` is the kernel's).
        owner: the kind of object whose handler runs (``"device"``, ``"type1"``, ``"iommufd"``..);
            the fd's :meth:`~pyvfio.fake.uaccess.FakeFile.target` maps it to that object.
        handler: ``handler(target, io) -> result`` (None means 0).
        conv: the argument convention.
        ctype: the struct, e.g. ``"struct vfio_device_info"`` (ARGSZ and SIZE only).
        last: the last field the kernel needs: ``minsz = offsetofend(ctype, last)``.
        since: the first Linux version with this ioctl (older versions answer ENOTTY).
        before_copy: a check the kernel makes before copying the argument in (e.g. type1's
            EACCES for DIRTY_PAGES on a v1 container).
        struct_since: ARGSZ only: the first Linux version that copies the struct in with
            ``get_user(argsz)`` + ``copy_struct_from_user`` instead of ``copy_from_user(minsz)``.
    """

    request: Ioctl
    owner: str
    handler: Handler
    conv: Conv = Conv.NONE
    ctype: str | None = None
    last: str | None = None
    since: str = "3.6"
    before_copy: Callable[[Any, IoctlArg], None] | None = None
    struct_since: str | None = None
    minsz: int = field(default=0, init=False)
    sizeof: int = field(default=0, init=False)
    ptype: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.ctype is None) != (self.conv not in (Conv.ARGSZ, Conv.SIZE)):
            raise ValueError(f"{self.name}: a struct goes with ARGSZ/SIZE only")
        if self.ctype is not None:
            t = ffi.typeof(self.ctype)
            last = self.last or t.fields[-1][0]
            f = dict(t.fields)[last]
            object.__setattr__(self, "minsz", f.offset + ffi.sizeof(f.type))
            object.__setattr__(self, "sizeof", ffi.sizeof(t))
            object.__setattr__(self, "ptype", ffi.typeof(self.ctype + " *"))

    @property
    def name(self) -> str:
        return self.request.name


@dataclass(frozen=True)
class Space:
    """What an fd answers in one state: its ops and the errno of any other request."""

    unknown: int
    ops: dict[int, Op]
    size_nrs: range = range(0)  # iommufd: request numbers whose size is read before the lookup


class IoctlTable:
    """The ioctls of one fake kernel (one Linux version, one configuration).

    Args:
        ops: every op the fake has (several owners; one op per owner and request).
        spaces: space name -> (errno for unknown requests, owners whose ops it answers).
        linux: the version; ops with a later ``since`` are left out.
    """

    def __init__(self, ops: Iterable[Op], spaces: dict[str, tuple[int, tuple[str, ...]]],
                 linux: Linux) -> None:
        self.linux = linux
        by_owner: dict[str, dict[int, Op]] = {}
        for op in ops:
            if not linux.at_least(op.since):
                continue
            owned = by_owner.setdefault(op.owner, {})
            if int(op.request) in owned:
                raise ValueError(f"two {op.owner} handlers for {op.name}")
            owned[int(op.request)] = op
        self.spaces: dict[str, Space] = {}
        for name, (unknown, owners) in spaces.items():
            merged: dict[int, Op] = {}
            for owner in owners:
                merged |= by_owner.get(owner, {})
            sized = [r & 0xFF for r, op in merged.items() if op.conv is Conv.SIZE]
            nrs = range(IOMMUFD_CMD_BASE, max(sized) + 1) if sized else range(0)
            self.spaces[name] = Space(unknown, merged, nrs)

    def __iter__(self) -> Iterator[Op]:
        seen: set[int] = set()
        for space in self.spaces.values():
            for op in space.ops.values():
                if id(op) not in seen:
                    seen.add(id(op))
                    yield op

    def resolve(self, f: FakeFile, request: int, io: IoctlArg) -> Op:
        """Return the op ``f`` answers for ``request``. Raises the fd's unknown-request errno
        (and EFAULT for an unreadable iommufd size, which the kernel reads first)."""
        space = self.spaces[f.space()]
        if request & 0xFF in space.size_nrs:  # _IOC_NR only: the type is compared after
            io.size = _get_u32(io.mem, io.value)
        op = space.ops.get(request)
        if op is None:
            raise kerr(space.unknown)
        return op

    def execute(self, op: Op, f: FakeFile, io: IoctlArg) -> int:
        """Copy in, run the handler, copy back (SIZE); return the ioctl's result."""
        target = f.target(op.owner)
        if op.before_copy is not None:
            op.before_copy(target, io)
        conv = op.conv
        if conv is Conv.ARGSZ and op.struct_since and io.linux.at_least(op.struct_since):
            io.size = _get_u32(io.mem, io.value)
            _copy_size(op, io)
        elif conv is Conv.ARGSZ:
            _copy_argsz(op, io)
        elif conv is Conv.SIZE:
            _copy_size(op, io)
            try:
                op.handler(target, io)
            except RespondThen as then:
                io.copy_out()
                raise kerr(then.err) from None
            io.copy_out()
            return 0
        elif conv is Conv.VALUE:
            io.cmd = io.extra["arg"] = io.value
        elif conv is Conv.INT32:
            (io.cmd,) = struct.unpack("<i", io.mem.read(io.value, 4))
            io.extra["fd"] = io.cmd
        elif conv is Conv.STRING:
            io.cmd = io.extra["name"] = _strndup(io.mem, io.value)
        result = op.handler(target, io)
        return 0 if result is None else int(result)


# -- copy-in ------------------------------------------------------------------------------------


def _get_u32(mem: UserMemory, addr: int) -> int:
    return int.from_bytes(mem.read(addr, 4), "little")


def _copy_argsz(op: Op, io: IoctlArg) -> None:
    """``copy_from_user(&s, arg, minsz)`` then ``argsz < minsz`` -> EINVAL."""
    raw = io.mem.read(io.value, op.minsz)
    argsz = int.from_bytes(raw[:4], "little")
    if argsz < op.minsz:
        raise kerr(errno.EINVAL)
    cmd = ffi.new(op.ptype)
    ffi.memmove(cmd, raw, op.minsz)
    io.cmd, io.size, io.raw = cmd, argsz, raw


def _copy_size(op: Op, io: IoctlArg) -> None:
    """``size < min_size`` -> EINVAL, then lib/usercopy.c:copy_struct_from_user: a tail past
    the kernel's struct must be zero (E2BIG), checked before the struct is copied (EFAULT)."""
    size = io.size
    if size < op.minsz:
        raise kerr(errno.EINVAL)
    if size > op.sizeof and not io.mem.check_zeroed(io.value + op.sizeof, size - op.sizeof):
        raise kerr(errno.E2BIG)
    n = min(size, op.sizeof)
    cmd = ffi.new(op.ptype)
    raw = io.mem.read(io.value, n)
    ffi.memmove(cmd, raw, n)
    io.cmd, io.raw = cmd, raw


def _strndup(mem: UserMemory, addr: int) -> str:
    """strndup_user(arg, PAGE_SIZE): a NUL-terminated string within a page, else EINVAL."""
    data = b""
    while b"\0" not in data:
        if len(data) >= PAGE_SIZE:
            raise kerr(errno.EINVAL)
        chunk = PAGE_SIZE - (addr + len(data)) % PAGE_SIZE
        data += mem.read(addr + len(data), min(chunk, PAGE_SIZE - len(data)))
    return data[: data.index(b"\0")].decode("utf-8", "replace")
