"""Host packages the VM lane needs, and installing them (root only).

Two groups: ``vm`` (always needed to boot a guest) and ``build`` (only needed while the
iommufd kernel is being built).  Missing packages are installed with ``apt-get`` when running
as root (after one ``apt-get update``); otherwise the missing packages are listed and the lane
exits with status 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# package -> a file it provides (checked first, so non-Debian hosts that have the tools work too)
GROUPS: dict[str, dict[str, str]] = {
    "vm": {
        "qemu-system-x86": "qemu-system-x86_64",
        "busybox-static": "/bin/busybox",
        "kmod": "modprobe",
        "xz-utils": "xz",
    },
    "build": {
        "build-essential": "gcc",
        "make": "make",
        "bc": "bc",
        "bison": "bison",
        "flex": "flex",
        "libelf-dev": "/usr/include/libelf.h",
        "libssl-dev": "/usr/include/openssl/ssl.h",
        "cpio": "cpio",
        "kmod": "depmod",
        "xz-utils": "xz",
        "zstd": "zstd",
        "perl": "perl",
    },
}


class MissingDeps(SystemExit):
    """Raised (exit status 2) when packages are missing and cannot be installed."""


def _present(probe: str) -> bool:
    if probe.startswith("/"):
        return os.path.exists(probe)
    return shutil.which(probe, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is not None


def _busybox_is_static() -> bool:
    try:
        with open("/bin/busybox", "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    # a dynamically linked ELF names its interpreter (PT_INTERP) near the start
    return b"/lib64/ld-linux" not in head and b"/lib/ld-" not in head


def missing(groups: list[str]) -> list[str]:
    """Return the Debian package names of ``groups`` whose files are absent."""
    out: list[str] = []
    for group in groups:
        for package, probe in GROUPS[group].items():
            ok = _present(probe)
            if package == "busybox-static" and ok:
                ok = _busybox_is_static()
            if not ok and package not in out:
                out.append(package)
    return out


_apt_updated: list[bool] = []  # non-empty once `apt-get update` ran in this process


def ensure(groups: list[str]) -> None:
    """Make sure the packages of ``groups`` are present; install them as root, else exit 2."""
    need = missing(groups)
    if not need:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "pyvfio vm: missing host packages: " + " ".join(need) + "\n"
            "  install them with:  sudo apt-get install --no-install-recommends " + " ".join(need),
            file=sys.stderr,
        )
        raise MissingDeps(2)
    print(f"pyvfio vm: installing host packages: {' '.join(need)}", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        if not _apt_updated:
            subprocess.run(["apt-get", "update"], check=True, env=env)
            _apt_updated.append(True)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *need], check=True, env=env
        )
    except subprocess.CalledProcessError as exc:
        print(
            f"pyvfio vm: apt-get failed ({exc}); install by hand: {' '.join(need)}", file=sys.stderr
        )
        raise MissingDeps(2) from exc
    still = missing(groups)
    if still:
        print(f"pyvfio vm: still missing after apt-get install: {' '.join(still)}", file=sys.stderr)
        raise MissingDeps(2)
