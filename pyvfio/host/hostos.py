"""What the host tooling needs beyond sysfs and /dev: a few /proc files, rlimits, chown, modprobe.

:class:`HostOS` is the second, small seam of the host tooling (the first is :class:`Kernel`): the
in-use checks read mounts, swaps, routes and addresses, ``doctor`` reads the kernel command line and
the memlock limit, ``bind --user`` changes ownership of nodes.  :class:`LinuxHostOS` does it on this
machine, under a root directory so tests can point it at a tree; ``pyvfio.fake.hostenv`` offers an
in-memory one.  Nothing here goes through a shell.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import resource
import socket
import struct
from typing import Protocol

# the /proc files pyvfio reads; anything else is refused
PROC_FILES = ("self/mountinfo", "self/status", "swaps", "net/route", "net/ipv6_route",
              "net/if_inet6", "cmdline")
_SIOCGIFADDR = 0x8915


class HostOS(Protocol):
    """Host state outside sysfs; every method raises OSError like the call it wraps."""

    def read_proc(self, name: str) -> str:
        """Read one of :data:`PROC_FILES` (``"swaps"``, ``"net/route"``, ...)."""

    def ipv4_addresses(self, ifname: str) -> list[str]:
        """Return the IPv4 addresses of interface ``ifname`` (empty when it has none)."""

    def read_block_head(self, devname: str, size: int) -> bytes:
        """Read the first ``size`` bytes of block device ``/dev/<devname>``."""

    def memlock(self) -> tuple[int, int]:
        """Return RLIMIT_MEMLOCK (soft, hard) in bytes; -1 means unlimited."""

    def chown(self, path: str, uid: int, gid: int, mode: int) -> None:
        """Give ``path`` (a /dev node) to ``uid:gid`` with ``mode``."""

    def user_ids(self, user: str) -> tuple[int, int]:
        """Return (uid, primary gid) of a user name or numeric uid. Raises KeyError."""

    def modprobe(self, module: str) -> None:
        """Load a kernel module. Raises OSError when it cannot be loaded."""

    def openers(self, path: str) -> list[str]:
        """Return ``"pid (comm)"`` of the processes that have ``path`` open (those it can see)."""


class LinuxHostOS:
    """The real host, with every path under ``root`` (``"/"`` on a real machine)."""

    def __init__(self, root: str = "/") -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LinuxHostOS(root={self.root!r})"

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def read_proc(self, name: str) -> str:
        if name not in PROC_FILES:
            raise ValueError(f"name must be one of {PROC_FILES}, not {name!r}")
        with open(self._path(f"/proc/{name}"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def ipv4_addresses(self, ifname: str) -> list[str]:
        # SIOCGIFADDR gives the primary address, enough to say "this interface is configured"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", ifname.encode()[:15])
            try:
                res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)
            except OSError:
                return []
        return [socket.inet_ntoa(res[20:24])]

    def read_block_head(self, devname: str, size: int) -> bytes:
        fd = os.open(self._path(f"/dev/{devname}"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def memlock(self) -> tuple[int, int]:
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        inf = resource.RLIM_INFINITY
        return (-1 if soft == inf else soft, -1 if hard == inf else hard)

    def chown(self, path: str, uid: int, gid: int, mode: int) -> None:
        os.chown(self._path(path), uid, gid)
        os.chmod(self._path(path), mode)

    def user_ids(self, user: str) -> tuple[int, int]:
        # ASCII digits only: int() also reads "١٢" as 12
        entry = pwd.getpwuid(int(user)) if user.isascii() and user.isdigit() else \
            pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid

    def modprobe(self, module: str) -> None:
        import subprocess  # noqa: PLC0415 - only bind needs it: keeps `pyvfio` start fast

        try:
            proc = subprocess.run(
                ["modprobe", module], capture_output=True, text=True, timeout=60, check=False
            )
        except FileNotFoundError as exc:
            raise OSError(exc.errno, "modprobe not found", "modprobe") from None
        if proc.returncode:
            msg = proc.stderr.strip() or f"modprobe exited with {proc.returncode}"
            raise OSError(0, msg, f"modprobe {module}")

    def openers(self, path: str) -> list[str]:
        out = []
        proc = self._path("/proc")
        for pid in (p for p in os.listdir(proc) if p.isdigit()):
            try:
                fds = os.listdir(f"{proc}/{pid}/fd")
                held = any(os.readlink(f"{proc}/{pid}/fd/{fd}") == path for fd in fds)
                if held:
                    with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as f:
                        out.append(f"{pid} ({f.read().strip()})")
            except OSError:
                continue  # gone, or not ours to look at
        return out


def default() -> HostOS:
    """The real host."""
    return LinuxHostOS()
