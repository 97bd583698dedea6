"""Build the guest's busybox initramfs: a gzip'ed ``newc`` cpio archive, written in pure Python.

Contents: ``/bin/busybox`` (the host's static busybox), ``/init`` (``init.sh`` of this folder),
``/dev/console`` and, for a kernel with modules (the Debian one), the decompressed modules the
guest needs before it can mount its 9p root (virtio, 9p) plus vfio, in load order
(``/modules/order``).  No root privileges are needed and the result is deterministic.
"""

from __future__ import annotations

import gzip
import io
import lzma
import stat
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
INIT = HERE / "init.sh"
BUSYBOX = Path("/bin/busybox")

# loaded in this order (dependencies first) when the kernel has them as modules
GUEST_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "vfio_iommu_type1", "vfio_pci"]


class _Cpio:
    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        namez = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + namez)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def finish(self) -> bytes:
        self.ino = 0
        self.add("TRAILER!!!", 0)
        return self.buf.getvalue()


def module_files(modroot: Path, release: str) -> list[Path]:
    """Return the module files for GUEST_MODULES in load order (builtin ones are skipped)."""
    files: list[Path] = []
    for mod in GUEST_MODULES:
        out = subprocess.run(
            ["modprobe", "-d", str(modroot), "-S", release, "--show-depends", mod],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"modprobe --show-depends {mod} failed: {out.stderr.strip()}")
        for line in out.stdout.splitlines():
            words = line.split()
            if words and words[0] == "insmod" and Path(words[1]) not in files:
                files.append(Path(words[1]))
    return files


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith((".zst", ".gz")):
        tool = "zstd" if path.name.endswith(".zst") else "gzip"
        return subprocess.run([tool, "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def build(dest: Path, modroot: Path | None = None, release: str = "") -> Path:
    """Write the initramfs to ``dest`` and return it."""
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        cpio.add(d, stat.S_IFDIR | 0o755)
    cpio.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    cpio.add("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes())
    cpio.add("init", stat.S_IFREG | 0o755, INIT.read_bytes())
    order: list[str] = []
    if modroot is not None:
        for path in module_files(modroot, release):
            name = path.name.split(".ko")[0] + ".ko"
            cpio.add(f"modules/{name}", stat.S_IFREG | 0o644, _module_bytes(path))
            order.append(name)
    cpio.add("modules/order", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in order).encode())
    dest.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    return dest
