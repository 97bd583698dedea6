"""The record of one ioctl a FakeKernel answered (``FakeKernel.calls``), with its arguments decoded
from the struct the caller passed, on first use."""

from __future__ import annotations

from typing import Any

from pyvfio._ffi import ffi
from pyvfio.fake.dispatch import Op
from pyvfio.fake.uaccess import IoctlArg


class Call:
    """One ioctl as the fake saw it: name, fd, fd kind, the arguments passed, the outcome.

    ``args`` holds the struct's fields as the caller passed them (decoded on first use) plus the
    by-value argument (``arg``), the pointed-to fd (``fd``), the device name (``name``) or the
    trailing data (``data``) of the ioctls that take those.
    """

    __slots__ = ("_args", "_io", "_op", "errno", "fd", "kind", "name", "result")

    def __init__(self, name: str, fd: int, kind: str) -> None:
        self.name, self.fd, self.kind = name, fd, kind
        self.result: int | None = None
        self.errno: int | None = None
        self._op: Op | None = None
        self._io: IoctlArg | None = None
        self._args: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Call({self.name}, fd={self.fd}, result={self.result}, errno={self.errno})"

    @property
    def args(self) -> dict[str, Any]:
        if self._args is None:
            self._args = {}
            op, io = self._op, self._io
            if op is not None and io is not None and io.raw and op.ctype is not None:
                s = ffi.new(op.ctype + " *")
                ffi.memmove(s, io.raw, min(len(io.raw), op.sizeof))
                fields = ffi.typeof(op.ctype).fields
                self._args.update((name, getattr(s, name)) for name, f in fields
                                  if f.type.kind == "primitive")
            if io is not None:
                self._args.update(io.extra)
        return self._args
