"""The seam: the few system calls pyvfio makes, and their real Linux implementation.

Everything above this module talks to a :class:`Kernel`.  :class:`LinuxKernel` makes the real
system calls; :class:`pyvfio.fake.FakeKernel` answers the same calls from a pure-Python model of the
kernel.  A kernel refusal is always the builtin ``OSError(errno, strerror, name)`` where ``name`` is
the ioctl's kernel name or the path, exactly as ``fcntl.ioctl`` or ``open`` would raise it.
"""

from __future__ import annotations

import errno
import fcntl
import mmap as _mmap
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pyvfio._ffi import C, CData, ffi

PROT_RW = _mmap.PROT_READ | _mmap.PROT_WRITE
WIDTHS = (1, 2, 4, 8)
_PTR_TYPES = {1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *", 8: "uint64_t *"}


@runtime_checkable
class MMIO(Protocol):
    """A mapped region of a device: register access of an exact width, one load or store each."""

    def __len__(self) -> int: ...

    def read(self, offset: int, width: int) -> int:
        """Load ``width`` bytes (1, 2, 4 or 8) at ``offset`` in one access, little-endian."""

    def write(self, offset: int, width: int, value: int) -> None:
        """Store ``value`` as ``width`` bytes at ``offset`` in one access."""

    def read_bytes(self, offset: int, size: int) -> bytes:
        """Copy ``size`` bytes out of the mapping (accesses of unspecified width)."""

    def write_bytes(self, offset: int, data: bytes) -> None:
        """Copy ``data`` into the mapping (accesses of unspecified width)."""

    def close(self) -> None:
        """Unmap; idempotent."""


class Kernel(Protocol):
    """The system calls of pyvfio.  Paths under /sys are given relative to :attr:`sysfs_root`."""

    sysfs_root: str

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        """Open ``path`` (a /dev node) and return the fd. Raises OSError with the path."""

    def close(self, fd: int) -> None:
        """Close ``fd``. Raises OSError(EBADF) for an fd that is not open."""

    def ioctl(self, fd: int, request: int, arg: CData | int = 0) -> int:
        """Issue ioctl ``request`` with a cdata pointer or an integer; return its result (>= 0).

        Raises:
            OSError: the kernel's errno, with the ioctl's kernel name as filename.
        """

    def mmap(self, fd: int, length: int, offset: int, prot: int = PROT_RW) -> MMIO:
        """Map ``length`` bytes of ``fd`` at ``offset`` shared. Raises OSError."""

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``. Raises OSError."""

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """Write ``data`` at ``offset``; return the count written. Raises OSError."""

    def read(self, fd: int, size: int) -> bytes:
        """Read up to ``size`` bytes (eventfds, fault queues). Raises OSError."""

    def write(self, fd: int, data: bytes) -> int:
        """Write ``data`` (eventfds). Raises OSError."""

    def eventfd(self, initval: int = 0, flags: int = 0) -> int:
        """Create an eventfd (always a real one: interrupts must work with select/poll)."""

    def exists(self, path: str) -> bool:
        """Tell whether a /dev path exists."""

    def listdir(self, path: str) -> list[str]:
        """List a /dev directory. Raises OSError."""

    def sysfs_read(self, relpath: str) -> str:
        """Read a sysfs attribute, trailing newline stripped. Raises OSError."""

    def sysfs_write(self, relpath: str, value: str) -> None:
        """Write a sysfs attribute in one write. Raises OSError with the kernel's errno."""

    def sysfs_readlink(self, relpath: str) -> str:
        """Return the target of a sysfs symlink. Raises OSError."""

    def sysfs_listdir(self, relpath: str) -> list[str]:
        """List a sysfs directory, sorted. Raises OSError."""

    def sysfs_exists(self, relpath: str) -> bool:
        """Tell whether a sysfs path exists."""


def check_access(length: int, offset: int, width: int) -> None:
    """Check a register access against a mapping of ``length`` bytes.

    Raises:
        TypeError: offset or width is not an int.
        ValueError: width is not 1, 2, 4 or 8, offset is unaligned or out of the mapping.
    """
    for name, value in (("offset", offset), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if width not in WIDTHS:
        raise ValueError(f"width must be 1, 2, 4 or 8, not {width}")
    if offset % width:
        raise ValueError(f"offset {offset:#x} is not aligned to width {width}")
    if not 0 <= offset <= length - width:
        raise ValueError(f"offset {offset:#x} is outside the mapping of {length:#x} bytes")


class LinuxMMIO:
    """A real shared mapping; :meth:`read`/:meth:`write` are single loads/stores through cffi."""

    def __init__(self, fd: int, length: int, offset: int, prot: int) -> None:
        self._map: _mmap.mmap | None = _mmap.mmap(fd, length, _mmap.MAP_SHARED, prot, offset=offset)
        self._len = length
        base = ffi.from_buffer(self._map)
        # one typed pointer per width: p[i] is exactly one load or store of that width
        self._ptrs = {w: ffi.cast(t, base) for w, t in _PTR_TYPES.items()}
        self._base = base
        self._on_close: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return self._len

    @property
    def closed(self) -> bool:
        return self._map is None

    def read(self, offset: int, width: int) -> int:
        self._check(offset, width)
        return int(self._ptrs[width][offset // width])

    def write(self, offset: int, width: int, value: int) -> None:
        self._check(offset, width)
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
            raise ValueError(f"value must be an int in [0, 2**{8 * width}), not {value!r}")
        self._ptrs[width][offset // width] = value

    def read_bytes(self, offset: int, size: int) -> bytes:
        self._check_range(offset, size)
        return bytes(ffi.buffer(self._base + offset, size))

    def write_bytes(self, offset: int, data: bytes) -> None:
        self._check_range(offset, len(data))
        ffi.memmove(self._base + offset, data, len(data))

    def pointer(self, width: int) -> CData:
        """The cffi typed pointer of ``width`` bytes at the mapping's start, for the driver kit's
        bound registers (:mod:`pyvfio.registers`); it dangles once closed: see :meth:`on_close`.

        Raises:
            ValueError: closed, or ``width`` not 1, 2, 4 or 8.
        """
        if self._map is None or width not in self._ptrs:
            raise ValueError(f"no typed pointer of width {width!r} on {self!r}")
        return self._ptrs[width]

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the mapping closes, before it is unmapped."""
        self._on_close.append(callback)

    def close(self) -> None:
        if self._map is not None:
            for callback in self._on_close:
                callback()
            self._on_close.clear()
            self._ptrs.clear()
            self._base = None
            m, self._map = self._map, None
            m.close()

    def _check(self, offset: int, width: int) -> None:
        # the common case in three comparisons (register access is a driver's hot path);
        # anything else gets check_access's precise error
        if (type(offset) is int and width in _PTR_TYPES and not offset % width
                and 0 <= offset <= self._len - width and self._map is not None):
            return
        if self._map is None:
            raise ValueError("I/O operation on a closed mapping")
        check_access(self._len, offset, width)

    def _check_range(self, offset: int, size: int) -> None:
        if self._map is None:
            raise ValueError("I/O operation on a closed mapping")
        if not 0 <= offset <= offset + size <= self._len:
            raise ValueError(
                f"[{offset:#x}, +{size:#x}) is outside the mapping of {self._len:#x} bytes"
            )


_OWNING = type(ffi.new("char[]", 1))  # ffi.new: ffi.buffer spans the whole allocation
_fcntl_ioctl, _ffi_buffer = fcntl.ioctl, ffi.buffer  # bound once: the hot path skips lookups
# The buffers of the last two ffi.new structs issued: an ffi.buffer costs half a raw ioctl
# (tools/bench part 1), and the hot callers reuse their structs (a DMA space's map and unmap
# args, a polling loop).  Two slots of (struct, buffer), each replaced whole (thread safe: a
# race only costs a miss).  A slot keeps its struct alive until replaced: memory, nothing else.
_recent: list[tuple[Any, Any]] = [(None, None), (None, None)]


def owning_buffer(arg: CData) -> Any:
    """The ``ffi.buffer`` of an ``ffi.new`` struct, reused while the struct is reissued."""
    slot = _recent[0]
    if slot[0] is arg:
        return slot[1]
    slot = _recent[1]
    if slot[0] is arg:
        return slot[1]
    buf = _ffi_buffer(arg)
    _recent[1], _recent[0] = _recent[0], (arg, buf)
    return buf
_SIZE_FIELDS: dict[object, str | None] = {}


def _size_field(ctype: object) -> str | None:
    """The leading ``argsz`` (VFIO) or ``size`` (iommufd) field of a struct pointer type."""
    if ctype not in _SIZE_FIELDS:
        item = getattr(ctype, "item", None)
        fields = getattr(item, "fields", None) if getattr(ctype, "kind", "") == "pointer" else None
        first = fields[0][0] if fields else None
        _SIZE_FIELDS[ctype] = first if first in ("argsz", "size") else None
    return _SIZE_FIELDS[ctype]


def _arg_buffer(arg: CData) -> Any:
    """Return the bytes an ioctl argument spans: an ``ffi.new`` allocation is all of it; a
    struct viewed over a buffer (``from_buffer``, ``cast``) spans ``argsz``/``size`` bytes
    when that is larger (an info query whose capabilities follow the struct)."""
    buf = ffi.buffer(arg)
    if type(arg) is not _OWNING:
        field = _size_field(ffi.typeof(arg))
        size = getattr(arg, field) if field else 0
        if size > len(buf):
            buf = ffi.buffer(arg, size)
    return buf


class LinuxKernel:
    """The real kernel: system calls through ``os``, ``mmap`` and libc's ``ioctl`` via cffi."""

    def __init__(self, sysfs_root: str = "/sys") -> None:
        self.sysfs_root = sysfs_root

    @property
    def is_host_sysfs(self) -> bool:
        """True when :attr:`sysfs_root` is this host's /sys (so libudev sees the same tree)."""
        return os.path.normpath(self.sysfs_root) == "/sys"

    def __repr__(self) -> str:
        return f"LinuxKernel(sysfs_root={self.sysfs_root!r})"

    def open(self, path: str, flags: int = os.O_RDWR) -> int:
        return os.open(path, flags | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def ioctl(self, fd: int, request: int, arg: CData | int = 0) -> int:
        # fcntl.ioctl is a plain C call; cffi's ABI-mode call of the variadic ioctl(2) costs
        # 2-3x more per call (libffi prepares a varargs call every time; tools/bench part 1).
        # fcntl copies buffers <= 1024 bytes in and out around the call, so the buffer must
        # cover every byte the kernel touches: see _arg_buffer.
        try:
            if fd < 0:  # fcntl refuses a negative fd with ValueError; ioctl(2) says EBADF
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            if type(arg) is _OWNING:  # the hot path: an ffi.new struct, all of it is the arg
                rc: int = _fcntl_ioctl(fd, request, owning_buffer(arg))
                return rc
            if isinstance(arg, int):
                if not 0 <= arg <= 0x7FFFFFFF:  # fcntl takes a C int; larger ones go via cffi
                    return self._ioctl_cffi(fd, request, ffi.cast("unsigned long", arg))
                return fcntl.ioctl(fd, request, arg)
            return int(fcntl.ioctl(fd, request, _arg_buffer(arg)))
        except OSError as exc:
            name = getattr(request, "name", None) or f"ioctl {int(request):#x}"
            raise OSError(exc.errno, exc.strerror, name) from None

    def _ioctl_cffi(self, fd: int, request: int, arg: CData) -> int:
        rc = C.ioctl(fd, ffi.cast("unsigned long", request), arg)
        if rc < 0:
            err = ffi.errno  # read at once: nothing may run between the call and this line
            raise OSError(err, os.strerror(err))
        return int(rc)

    def mmap(self, fd: int, length: int, offset: int, prot: int = PROT_RW) -> LinuxMMIO:
        if fd < 0:  # Python's mmap takes fd -1 for an anonymous mapping; mmap(2) says EBADF
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return LinuxMMIO(fd, length, offset, prot)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def eventfd(self, initval: int = 0, flags: int = 0) -> int:
        return os.eventfd(initval, flags | os.EFD_CLOEXEC)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def _sys(self, relpath: str) -> str:
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"relpath must be relative to the sysfs root, no '..': {relpath!r}")
        return os.path.join(self.sysfs_root, relpath)

    def sysfs_read(self, relpath: str) -> str:
        with open(self._sys(relpath), encoding="ascii", errors="replace") as f:
            return f.read().rstrip("\n")

    def sysfs_write(self, relpath: str, value: str) -> None:
        fd = os.open(self._sys(relpath), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())  # one write(2): sysfs stores take the whole buffer
        finally:
            os.close(fd)

    def sysfs_readlink(self, relpath: str) -> str:
        return os.readlink(self._sys(relpath))

    def sysfs_listdir(self, relpath: str) -> list[str]:
        return sorted(os.listdir(self._sys(relpath)))

    def sysfs_exists(self, relpath: str) -> bool:
        return os.path.lexists(self._sys(relpath))


def default() -> Kernel:
    """Return the kernel pyvfio uses when none is given: the real one."""
    return LinuxKernel()
