"""Run a generated op sequence on a Kernel and encode what the kernel answered.

An op is a plain tuple (see ``gen.py``), symbolic wherever runs legitimately differ: fds are the
index of the op that produced them, user addresses are arena offsets, paths name a device of the
environment.  :meth:`Runner.run` resolves them, calls the Kernel seam, and encodes per op the
return value, the errno and every byte the kernel changed (the argument struct with its trailing
capabilities and copied-back fields, and the buffers it points to), with fds and addresses put
back into their symbolic form, so that two kernels answering alike produce equal bytes.

Op kinds::

    ("open", path)                      path: "container", "iommu", "group:K", "cdev:K", other
    ("close", fdref)
    ("eventfd",)                        a real eventfd (both kernels)
    ("foreign",)                        /dev/null opened behind the kernel's back
    ("memfd", size)                     a real memfd of ``size`` bytes (IOAS_MAP_FILE maps it)
    ("ioctl", fdref, request, arg, ret) arg: int (by value) or Arg; ret: None, FD_RET (returns an
                                        fd), FD_OR_ZERO (an fd when > 0, e.g. a FEATURE that
                                        may be a PROBE) or the offset of an out fd field
    ("pread", fdref, offset, size)      ("pwrite", fdref, offset, data)
    ("read", fdref, size)               ("write", fdref, data)
    ("mmap", fdref, length, offset)     ("mread", mapref, offset, width)
    ("mwrite", mapref, offset, width, value)   ("munmap", mapref)

fdref: the index of the op that produced the fd (-1 for the literal -1, STALE for a closed fd
number); a closed or failed fd resolves to STALE_FD / -1, never to a number the kernel may reuse.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from tests.differential import arena

FD_RET = -1
STALE = -2
FD_OR_ZERO = -3
STALE_FD = 999_999  # never open: above any fd this process has (RLIMIT_NOFILE default 1024)
FD_TOKEN = 0x7FD  # an fd the kernel returned, in a record
ADDR_TAG = 0xA5A5 << 48  # a patched address in an argument reads back as ADDR_TAG | offset
EXC_BASE = 1000  # recorded "errno" of a Python exception (not a kernel answer)


class Arg:
    """A struct argument: bytes with symbolic holes, placed at ARGS (or at ``at``).

    Args:
        data: the argument bytes; holes hold their placeholder.
        patches: (offset, width, ref) holes; ref ("fd", op) | ("addr", arena offset) |
            ("u32", op, offset) a u32 taken from op's argument after it ran.
        watch: (arena offset, initial bytes, size) buffers the kernel reads or writes through a
            pointer: set to the initial bytes (zero-padded to size) before the call, recorded
            after it when changed.
        at: where the argument lives: "args", "null" (address 0), "none" (a PROT_NONE page).
    """

    __slots__ = ("data", "patches", "watch", "at")

    def __init__(self, data: bytes, patches: tuple[Any, ...] = (),
                 watch: tuple[tuple[int, bytes, int], ...] = (), at: str = "args") -> None:
        self.data = data
        self.patches = patches
        self.watch = watch
        self.at = at

    def __repr__(self) -> str:
        return f"Arg({self.data.hex()}, {self.patches!r}, {self.watch!r}, {self.at!r})"


def _varint(out: bytearray, n: int) -> None:
    n = (n << 1) ^ (n >> 63)  # zigzag: small negatives stay short
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), i


def encode(out: bytearray, rc: int, err: int, data: bytes | None) -> None:
    """Append one op's result: rc, errno, then the changed bytes (absent: length -1)."""
    _varint(out, rc)
    _varint(out, err)
    if data is None:
        _varint(out, -1)
    else:
        _varint(out, len(data))
        out += data


def decode(blob: bytes) -> list[tuple[int, int, bytes | None]]:
    """Split a sequence's results into (rc, errno, changed bytes) per op."""
    out: list[tuple[int, int, bytes | None]] = []
    i = 0
    while i < len(blob):
        rc, i = read_varint(blob, i)
        err, i = read_varint(blob, i)
        n, i = read_varint(blob, i)
        data = None if n < 0 else bytes(blob[i : i + n])
        i += max(n, 0)
        out.append((rc, err, data))
    return out


class Env:
    """What symbolic paths and names mean on one host: device k's BDF, group and cdev nodes."""

    def __init__(self, devices: list[dict[str, Any]], noiommu: bool = False) -> None:
        self.devices = devices
        self.noiommu = noiommu

    @classmethod
    def discover(cls, kernel: Any, bdfs: list[str], noiommu: bool = False) -> Env:
        devices = []
        for bdf in bdfs:
            base = f"bus/pci/devices/{bdf}"
            group = int(os.path.basename(kernel.sysfs_readlink(f"{base}/iommu_group")))
            cdevs = (kernel.sysfs_listdir(f"{base}/vfio-dev")
                     if kernel.sysfs_exists(f"{base}/vfio-dev") else [])
            devices.append({"bdf": bdf, "group": group, "cdev": cdevs[0] if cdevs else None})
        return cls(devices, noiommu)

    def path(self, sym: str) -> str:
        if sym == "container":
            return "/dev/vfio/vfio"
        if sym == "iommu":
            return "/dev/iommu"
        kind, _, k = sym.partition(":")
        dev = self.devices[int(k) % len(self.devices)] if k.isdigit() else None
        if kind == "group" and dev:
            return f"/dev/vfio/{'noiommu-' if self.noiommu else ''}{dev['group']}"
        if kind == "cdev" and dev:
            return f"/dev/vfio/devices/{dev['cdev'] or 'vfio-none'}"
        return sym

    def name(self, k: int) -> str:
        return str(self.devices[k % len(self.devices)]["bdf"])


class Runner:
    """Runs sequences on one kernel, in one arena, keeping nothing between sequences."""

    def __init__(self, kernel: Any, env: Env) -> None:
        self.kernel = kernel
        self.env = env
        self.arena = arena.Arena()
        self._dirty = arena.ARGS_SIZE

    def close(self) -> None:
        self.arena.close()

    def run(self, ops: list[tuple[Any, ...]], restore: Any = None) -> bytes:
        """Run ``ops``, then tear down (unmap, close in reverse order); return the results blob.

        ``restore(kernel, device_fds)`` runs before the teardown, unrecorded: it puts device
        state that outlives an fd (registers) back, so sequences do not leak into each other.
        """
        self.fds: dict[int, int] = {}  # op index -> live fd
        self.foreign: set[int] = set()
        self.maps: dict[int, Any] = {}
        self.raw: dict[int, bytes] = {}
        self.devfds: list[int] = []
        out = bytearray()
        for i, op in enumerate(ops):
            self._one(i, op, out)
        if restore is not None:
            restore(self.kernel, [self.fds[i] for i in self.devfds if i in self.fds])
        for m in self.maps.values():
            m.close()
        for i in sorted(self.fds, reverse=True):
            fd = self.fds.pop(i)
            try:
                os.close(fd) if i in self.foreign else self.kernel.close(fd)
                encode(out, 0, 0, None)
            except OSError as exc:
                encode(out, -1, exc.errno or 0, None)
        return bytes(out)

    # -- one op ------------------------------------------------------------------------------

    def _fd(self, ref: int) -> int:
        if ref == -1:
            return -1
        if ref == STALE:
            return STALE_FD
        return self.fds.get(ref, STALE_FD)

    def _one(self, i: int, op: tuple[Any, ...], out: bytearray) -> None:
        kind = op[0]
        k = self.kernel
        data: bytes | None = None
        try:
            if kind == "ioctl":
                rc, data = self._ioctl(i, op)
            elif kind == "open":
                self.fds[i] = k.open(self.env.path(op[1]))
                rc = FD_TOKEN
                if op[1].startswith("cdev"):
                    self.devfds.append(i)
            elif kind == "close":
                fd = self._fd(op[1])
                if op[1] in self.foreign:
                    os.close(fd)
                else:
                    k.close(fd)
                self.fds.pop(op[1], None)
                rc = 0
            elif kind == "eventfd":
                self.fds[i] = k.eventfd(0, os.EFD_NONBLOCK)
                rc = FD_TOKEN
            elif kind == "foreign":
                self.fds[i] = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                self.foreign.add(i)
                rc = FD_TOKEN
            elif kind == "memfd":
                fd = os.memfd_create("pyvfio-diff", os.MFD_CLOEXEC)
                self.fds[i] = fd
                self.foreign.add(i)
                os.ftruncate(fd, op[1])
                rc = FD_TOKEN
            elif kind == "pread":
                data = k.pread(self._fd(op[1]), op[3], op[2])
                rc = len(data)
            elif kind == "pwrite":
                rc = k.pwrite(self._fd(op[1]), op[3], op[2])
            elif kind == "read":
                data = k.read(self._fd(op[1]), op[2])
                rc = len(data)
            elif kind == "write":
                rc = k.write(self._fd(op[1]), op[2])
            elif kind == "mmap":
                self.maps[i] = k.mmap(self._fd(op[1]), op[2], op[3])
                rc = 0
            elif kind == "mread":
                m = self.maps.get(op[1])
                rc = m.read(op[2], op[3]) if m is not None else -3
            elif kind == "mwrite":
                m = self.maps.get(op[1])
                rc = 0 if m is None else m.write(op[2], op[3], op[4]) or 0
            elif kind == "munmap":
                m = self.maps.pop(op[1], None)
                rc = 0 if m is None else m.close() or 0
            else:
                raise AssertionError(f"unknown op {op!r}")
            encode(out, rc, 0, data)
        except _WithData as exc:
            encode(out, -1, exc.errno or 0, exc.data)
        except OSError as exc:
            encode(out, -1, exc.errno or 0, None)
        except (ValueError, TypeError) as exc:
            encode(out, -1, EXC_BASE + (exc.__class__ is TypeError), None)
        except Exception as exc:  # a kernel model that crashed: a divergence to show, not hide
            encode(out, -1, EXC_BASE + 2, repr(exc).encode()[:200])

    def _ioctl(self, i: int, op: tuple[Any, ...]) -> tuple[int, bytes | None]:
        _, ref, request, arg, ret = op
        fd = self._fd(ref)
        if not isinstance(arg, Arg):
            rc = self.kernel.ioctl(fd, request, arg)
            return self._ret(i, rc, ret, ref), None
        ar = self.arena
        data = bytearray(arg.data)
        concrete: list[tuple[int, int, int, int]] = []
        for off, width, pref in arg.patches:
            value = self._resolve(pref)
            placeholder = int.from_bytes(data[off : off + width], "little")
            struct.pack_into("<I" if width == 4 else "<Q", data, off, value & ((1 << 8 * width) - 1))
            concrete.append((off, width, value & ((1 << 8 * width) - 1), placeholder))
        for woff, init, wsize in arg.watch:
            ar.zero(woff, wsize)
            ar.put(woff, init)
        size = len(data)
        # what the kernel may write: the struct and its caps (at most argsz/size bytes, the
        # first u32, when that is plausible); the rest of ARGS stays zero for what it reads
        claimed = struct.unpack_from("<I", data)[0] if size >= 4 else 0
        span = min(max(size, claimed if claimed <= 8192 else 0) + 512, arena.ARGS_SIZE)
        ar.zero(arena.ARGS, max(span, self._dirty))
        self._dirty = span
        ar.put(arena.ARGS, bytes(data))
        addr = {"args": ar.base + arena.ARGS, "null": 0, "none": ar.base + arena.NONE}[arg.at]
        err = None
        rc = -1
        try:
            rc = self.kernel.ioctl(fd, request, addr)
        except OSError as exc:
            err = exc
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            raise RuntimeError(f"{exc!r}") from None
        after = bytearray(ar.get(arena.ARGS, span))
        self.raw[i] = bytes(after)
        if isinstance(ret, int) and ret >= 0 and err is None:
            (newfd,) = struct.unpack_from("<i", after, ret)
            if newfd >= 0:
                self.fds[i] = newfd
                struct.pack_into("<i", after, ret, FD_TOKEN)
        for off, width, value, placeholder in concrete:
            if int.from_bytes(after[off : off + width], "little") == value:
                after[off : off + width] = placeholder.to_bytes(width, "little")
        changed = bytes(after).rstrip(b"\0")
        if changed == bytes(arg.data).rstrip(b"\0"):
            out = b""
        else:
            out = bytes(after[: max(len(changed), size)])
        for woff, init, wsize in arg.watch:
            got = ar.get(woff, wsize).rstrip(b"\0")
            if got != init.rstrip(b"\0"):
                out += b"|" + struct.pack("<I", woff - arena.AUX) + got
        if err is not None:
            raise _WithData(err.errno or 0, out or None)
        return self._ret(i, rc, ret, ref), out or None

    def _ret(self, i: int, rc: int, ret: Any, ref: int) -> int:
        if ret == FD_OR_ZERO:
            if rc <= 0:
                return rc
            self.fds[i] = rc
            return FD_TOKEN
        if ret == FD_RET:
            self.fds[i] = rc
            self.devfds.append(i)
            return FD_TOKEN
        return rc

    def _resolve(self, pref: tuple[Any, ...]) -> int:
        kind = pref[0]
        if kind == "fd":
            return self._fd(pref[1])
        if kind == "addr":
            return self.arena.base + pref[1]
        if kind == "u32":
            raw = self.raw.get(pref[1])
            return struct.unpack_from("<I", raw, pref[2])[0] if raw else 0
        raise AssertionError(pref)


class _WithData(OSError):
    """An ioctl failed but changed bytes anyway (e.g. IOVA_RANGES: EMSGSIZE with num_iovas)."""

    def __init__(self, err: int, data: bytes | None) -> None:
        super().__init__(err, os.strerror(err))
        self.data = data
