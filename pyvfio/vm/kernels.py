"""The guest kernels of the VM lane, cached under ``$XDG_CACHE_HOME/pyvfio/vm``.

* ``debian``: Debian trixie's stock 6.12 image, downloaded and unpacked (never installed); its
  modules are taken from the unpacked tree (``usr/lib/modules/<ver>``, depmod'ed here).
* ``iommufd``: 6.12 built from trixie's ``linux-source-6.12`` with ``kernel-config.fragment``;
  cached as ``iommufd-<source version>-<sha256(fragment)[:16]>/{bzImage,config}``.
* ``iommufd73``: 7.3 built from trixie-backports' ``linux-source-7.3`` with the common fragment
  plus ``kernel-config-7.3.fragment``; cached as
  ``iommufd73-<source version>-<sha256(both fragments)[:16]>/{bzImage,config,modroot/}`` (its
  ``=m`` options, e.g. the mtty sample, are installed into ``modroot/lib/modules/<release>``).

Only the bzImage, its .config and the installed modules are kept; the source and build trees are
deleted after the build.  Builds take a lock (one at a time; a second caller waits for it).

As a command (e.g. to build in the background): ``python3 -m pyvfio.vm.kernels`` or
``python3 tools/vm/kernels.py build [iommufd|iommufd73|all] | debian | path [NAME]``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyvfio.vm import debpkg, hostdeps

HERE = Path(__file__).resolve().parent

SUITES = ["trixie"]
SOURCE_PKG = "linux-source-6.12"
IMAGE_META = "linux-image-amd64"  # depends on the current linux-image-6.12.*-amd64
FRAGMENT = HERE / "kernel-config.fragment"
FRAGMENT_73 = HERE / "kernel-config-7.3.fragment"


@dataclass(frozen=True)
class BuildSpec:
    """A kernel the lane builds from a Debian ``linux-source-*`` package."""

    name: str  # cache prefix and the name profiles use
    suites: tuple[str, ...]  # where the source package comes from (a private apt state)
    source_pkg: str
    fragments: tuple[Path, ...]  # merged in this order
    modules: bool  # build and install the =m options

    def fragment_hash(self) -> str:
        data = b"".join(f.read_bytes() for f in self.fragments)
        return hashlib.sha256(data).hexdigest()[:16]


BUILDS = {
    b.name: b
    for b in [
        BuildSpec("iommufd", ("trixie",), SOURCE_PKG, (FRAGMENT,), modules=False),
        BuildSpec(
            "iommufd73",
            ("trixie", "trixie-backports"),
            "linux-source-7.3",
            (FRAGMENT, FRAGMENT_73),
            modules=True,
        ),
    ]
}


class KernelError(RuntimeError):
    """A kernel could not be fetched or built."""


@dataclass
class Kernel:
    name: str  # "debian" or a BUILDS name
    image: Path  # bzImage / vmlinuz
    modroot: Path | None = None  # root of the module tree (``modprobe -d``), None: no modules
    release: str = ""  # uname -r of the modules


def vm_cache() -> Path:
    path = Path(debpkg.cache_root()) / "vm"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- Debian stock kernel


def debian_kernel() -> Kernel:
    """Download and unpack trixie's stock kernel image; depmod its modules once."""
    try:
        image_pkg = next(
            (d for d in debpkg.depends(SUITES, IMAGE_META) if d.startswith("linux-image-6.12")),
            None,
        )
        if image_pkg is None:
            raise debpkg.DebpkgError(
                f"{IMAGE_META} in {SUITES[0]} no longer depends on a 6.12 image"
            )
        deb = debpkg.download(SUITES, image_pkg)
    except debpkg.DebpkgError as exc:
        cached = sorted(vm_cache().glob("debian-*/.ready"))
        if not cached:
            raise KernelError(f"cannot fetch the Debian kernel: {exc}") from exc
        root = cached[-1].parent
        print(f"pyvfio vm: {exc}; using cached {root.name}", file=sys.stderr)
        return _debian_from(root)
    root = vm_cache() / f"debian-{deb.stem}"
    if not (root / ".ready").exists():
        debpkg.extract(deb, root)
        for release in _releases(root):
            subprocess.run(["depmod", "-b", str(root / "usr"), release], check=True)
        (root / ".ready").touch()
    return _debian_from(root)


def _releases(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "usr/lib/modules").iterdir() if p.is_dir())


def _debian_from(root: Path) -> Kernel:
    release = _releases(root)[-1]
    image = root / "boot" / f"vmlinuz-{release}"
    if not image.exists():
        raise KernelError(f"{image} missing in the unpacked Debian kernel")
    return Kernel("debian", image, root / "usr", release)


# ---------------------------------------------------------------- built kernels


def fragment_hash() -> str:
    """The cache key part of the 6.12 ``iommufd`` kernel (sha256 of its fragment)."""
    return BUILDS["iommufd"].fragment_hash()


def iommufd_kernel(build: bool = True) -> Kernel:
    """Return the cached 6.12 iommufd kernel, building it first if needed (and ``build``)."""
    return built_kernel("iommufd", build)


def _cached(spec: BuildSpec, out: Path) -> Kernel:
    modroot = out / "modroot"
    release = (out / "release").read_text().strip() if (out / "release").exists() else ""
    return Kernel(spec.name, out / "bzImage", modroot if modroot.is_dir() else None, release)


def built_kernel(name: str, build: bool = True) -> Kernel:
    """Return the cached kernel ``name`` (a BUILDS key), building it first if needed.

    Raises:
        KernelError: unknown name, the source package is unavailable, or the build failed.
    """
    spec = BUILDS.get(name)
    if spec is None:
        raise KernelError(f"unknown kernel {name!r} (known: {', '.join(BUILDS)})")
    suites = list(spec.suites)
    try:
        version = debpkg.candidate(suites, spec.source_pkg)
    except debpkg.DebpkgError as exc:
        # offline: any cached build of these fragments will do
        cached = sorted(vm_cache().glob(f"{spec.name}-*-{spec.fragment_hash()}/bzImage"))
        if cached:
            print(f"pyvfio vm: {exc}; using cached {cached[-1].parent.name}", file=sys.stderr)
            return _cached(spec, cached[-1].parent)
        raise KernelError(f"cannot determine the {spec.source_pkg} version: {exc}") from exc
    out = vm_cache() / f"{spec.name}-{version}-{spec.fragment_hash()}"
    if (out / "bzImage").exists():
        return _cached(spec, out)
    if not build:
        raise KernelError(
            f"{spec.name} kernel not built yet ({out}); run: pyvfio vm build {spec.name}"
        )
    with open(vm_cache() / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "pyvfio vm: another process is building a kernel; waiting ...",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "bzImage").exists():  # another process may have built it meanwhile
            _build(spec, version, out)
    return _cached(spec, out)


def _build(spec: BuildSpec, version: str, out: Path) -> None:
    hostdeps.ensure(["build"])
    deb = debpkg.download(list(spec.suites), spec.source_pkg, version)
    work = vm_cache() / f"build-{out.name}"
    log_path = vm_cache() / f"{out.name}.build.log"
    shutil.rmtree(work, ignore_errors=True)
    start = time.monotonic()
    print(
        f"pyvfio vm: building {out.name} (9-15 min on 2 cores); log: {log_path}",
        file=sys.stderr,
        flush=True,
    )
    try:
        with open(log_path, "w") as log:

            def run(*cmd: str, cwd: Path = work) -> None:
                log.write(f"$ {' '.join(cmd)}\n")
                log.flush()
                proc = subprocess.run(
                    cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False
                )
                if proc.returncode != 0:
                    raise KernelError(
                        f"`{' '.join(cmd)}` failed; see {log_path}:\n" + _tail(log_path)
                    )

            debpkg.extract(deb, work / "pkg")
            tarball = next((work / "pkg/usr/src").glob("linux-source-*.tar.*"))
            run("tar", "-xf", str(tarball))
            shutil.rmtree(work / "pkg")
            src = next(p for p in work.iterdir() if p.name.startswith("linux-source-"))
            obj = work / "obj"
            make = ["make", "-C", str(src), f"O={obj}"]
            run(*make, "x86_64_defconfig", "kvm_guest.config")
            run(
                str(src / "scripts/kconfig/merge_config.sh"),
                "-m",
                "-O",
                str(obj),
                str(obj / ".config"),
                *(str(f) for f in spec.fragments),
                cwd=src,
            )
            run(*make, "olddefconfig")
            _check_config(obj / ".config", spec.fragments, src)
            jobs = f"-j{os.cpu_count() or 2}"
            run(*make, jobs, "bzImage", *(["modules"] if spec.modules else []))
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            release = (obj / "include/config/kernel.release").read_text().strip()
            if spec.modules:
                run(*make, "modules_install", f"INSTALL_MOD_PATH={tmp / 'modroot'}",
                    "INSTALL_MOD_STRIP=1")
                for link in ("build", "source"):  # point into the deleted build tree
                    (tmp / "modroot/lib/modules" / release / link).unlink(missing_ok=True)
            shutil.copy2(obj / "arch/x86/boot/bzImage", tmp / "bzImage")
            shutil.copy2(obj / ".config", tmp / "config")
            (tmp / "release").write_text(release + "\n")
            info = {
                "kernel": spec.name,
                "source_package": spec.source_pkg,
                "source_version": version,
                "release": release,
                "fragments": [f.name for f in spec.fragments],
                "fragment_sha256": spec.fragment_hash(),
                "build_seconds": round(time.monotonic() - start),
                "jobs": os.cpu_count(),
            }
            (tmp / "build-info.json").write_text(json.dumps(info, indent=1) + "\n")
            tmp.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"pyvfio vm: built {out}/bzImage in {time.monotonic() - start:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _kconfig_symbols(src: Path) -> set[str]:
    """Every ``config``/``menuconfig`` symbol the source tree's Kconfig files define."""
    names: set[str] = set()
    for kconfig in src.rglob("Kconfig*"):
        for line in kconfig.read_text(errors="replace").splitlines():
            words = line.split()
            if len(words) == 2 and words[0] in ("config", "menuconfig"):
                names.add("CONFIG_" + words[1])
    return names


def _check_config(config: Path, fragments: tuple[Path, ...], src: Path) -> None:
    """Every ``=y``/``=m`` of the fragments must survive olddefconfig; unmet 'not set' warn.

    A symbol this kernel no longer defines (the common fragment serves 6.12 and 7.3: 7.3 dropped
    VFIO_PCI_MMAP, mmap is always there) is noted, not an error.
    """
    have = dict(
        line.partition("=")[::2] for line in config.read_text().splitlines()
        if line.startswith("CONFIG_")
    )
    bad = []
    lines = [line for f in fragments for line in f.read_text().splitlines()]
    for line in lines:
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            if have.get(key) != value:
                bad.append((key, f"{key}={value} (got {have.get(key, 'unset')})"))
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            key = line[2:-11]
            if have.get(key) in ("y", "m"):
                print(
                    f"pyvfio vm: note: {key} stays {have[key]} (selected by another option)",
                    file=sys.stderr,
                )
    known = _kconfig_symbols(src) if bad else set()
    for key in sorted({key for key, _ in bad} - known):
        print(f"pyvfio vm: note: {key} is not in this kernel's Kconfig", file=sys.stderr)
    wrong = [what for key, what in bad if key in known]
    if wrong:
        names = " + ".join(f.name for f in fragments)
        raise KernelError(f"{names} not honoured: " + ", ".join(wrong))


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "build"
    name = argv[1] if len(argv) > 1 else "iommufd"
    try:
        if what == "build":
            for n in BUILDS if name == "all" else [name]:
                print(built_kernel(n).image)
        elif what == "debian":
            k = debian_kernel()
            print(k.image, k.release)
        elif what == "path":
            print(built_kernel(name, build=False).image)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (KernelError, debpkg.DebpkgError) as exc:
        print(f"pyvfio vm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
