#!/usr/bin/env python3
"""Run pytest inside a real Linux guest (QEMU/TCG, emulated edu devices): pyvfio's VM lane.

``pyvfio vm run`` runs YOUR project's tests (the current directory, with the Python running
pyvfio) in the guest; ``tools/vm/run`` is the same for pyvfio's own checkout, defaulting to its
conformance suite.  ``pyvfio vm build [NAME|all]`` builds kernels in advance; ``pyvfio vm
profiles`` lists the profiles.

usage: pyvfio vm run [--profile NAME[,NAME...]|all] [--qemu-device ARG ...] [--drive ID[:SIZE]]
                    [--env NAME[=VALUE]] [--modules A,B] [--bind BDF] [--append WORDS]
                    [--results DIR] [--jobs N] [--keep] [--shell] [--timeout S] [-- PYTEST ARGS]

Profiles (default: all; with --shell: iommufd; pyvfio/vm/profiles.py has them all):
  debian       Debian trixie stock 6.12 + intel vIOMMU (caching-mode=on): legacy VFIO only
  iommufd      6.12 built with pyvfio/vm/kernel-config.fragment + intel vIOMMU: legacy + iommufd
  mock         the built 6.12 without vIOMMU: IOMMUFD_TEST mock domains (vfio-pci cannot bind)
  noiommu      the built 6.12 without vIOMMU, vfio.enable_unsafe_noiommu_mode=1
  iommufd-7.3  7.3 built with the common + kernel-config-7.3.fragment, intel vIOMMU, the mdev
               samples mtty, mdpy and mbochs loaded, an SR-IOV nvme PF at 00:12.0
               (PYVFIO_VM_SRIOV_PF), vfio_pci.enable_sriov=1
  mock-7.3     the built 7.3 without vIOMMU (7.3's IOMMUFD_TEST ops), mtty loaded
  noiommu-7.3  the built 7.3, no-IOMMU mode (group and iommufd noiommu)
  sm-7.3       the built 7.3, intel vIOMMU in scalable mode (x-scalable-mode, x-pasid-mode)
  nvme         the built 7.3, two QEMU nvme with 64 MiB drives: 00:10.0 on vfio-pci,
               00:11.0 on the guest's nvme driver (PYVFIO_VM_NVME_VFIO / _KERNEL)
  all          debian, iommufd, mock, noiommu, iommufd-7.3, mock-7.3 (what CI runs), --jobs at
               a time (default: one per host CPU, console lines prefixed with [profile]); exits
               non-zero if any failed

Guest additions: --qemu-device ARG (a QEMU -device), --drive ID[:SIZE] (a sparse raw image of
SIZE, default 64M, created in the run directory: -drive if=none,id=ID,... for a device's drive=ID)
or --drive ID=PATH (your image), --env NAME=VALUE or --env NAME (the host's value) exported to
the tests, --modules A,B (modprobe'd before the tests), --bind BDF (bound to vfio-pci like the
edu devices), --append WORDS (kernel command line, e.g. module parameters vfio_pci.x=1).

Every guest has one edu at 00:01.0 and two edu behind a PCIe-to-PCI bridge (02:01.0, 02:02.0,
one shared IOMMU group); edu devices are bound to vfio-pci before pytest starts.  PYTEST ARGS
default to `tests/conformance -m "not fake_only"`.  Results (junit.xml, console.log,
exit-status, guest-cmd.sh) go to DIR/vm-<profile>/ (DIR defaults to <checkout>/results).

Exit status: pytest's (0-5) for one profile; for `all` the first non-zero one; 2 when the lane
cannot start (missing host packages without root, kernel unavailable); 124 when the guest hit
--timeout (QEMU is killed); 125 when the guest wrote no exit status (boot/mount failure).
Kernels are cached under ${XDG_CACHE_HOME:-~/.cache}/pyvfio/vm/ (the first iommufd run builds
one: ~10-15 min on 2 cores).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyvfio.vm import debpkg, drives, hostdeps, kernels, lane, profiles, qemu


def _default_jobs() -> int:
    # each guest is one TCG vCPU plus 9p I/O; more guests than host CPUs measured slower
    return max(1, (os.cpu_count() or 1) // max(1, int(qemu.SMP)))


def parse(
    argv: list[str], prog: str, default_args: list[str], workdir: Path
) -> tuple[argparse.Namespace, list[str]]:
    pytest_args = default_args
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n")[0],
        epilog="Details: pyvfio/vm/cli.py's docstring and tools/vm/README.md.",
    )
    p.add_argument(
        "--profile",
        metavar="NAME[,NAME...]",
        help=f"{', '.join(profiles.PROFILES)} or all; default: all (iommufd with --shell)",
    )
    p.add_argument(
        "--qemu-device",
        action="append",
        default=[],
        metavar="ARG",
        help="extra QEMU -device ARG (repeatable), e.g. e1000e or nvme,serial=x,drive=d0",
    )
    p.add_argument(
        "--drive",
        action="append",
        default=[],
        metavar="ID[:SIZE]|ID=PATH",
        help="backing drive for a device's drive=ID: a sparse raw image (default 64M) made in "
        "the run directory, or your image file (repeatable)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="export NAME to the guest's tests (without =VALUE: the host's value; repeatable)",
    )
    p.add_argument(
        "--modules",
        action="append",
        default=[],
        metavar="A,B",
        help="kernel modules to load in the guest before the tests",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="BDF",
        help="bind this device to vfio-pci in the guest, like the edu devices (repeatable)",
    )
    p.add_argument(
        "--append", default="", metavar="WORDS", help="extra kernel command line words"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=workdir / "results",
        metavar="DIR",
        help="results go to DIR/vm-<profile>/ (default: ./results)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the run directory (initramfs, QEMU command line)"
    )
    p.add_argument(
        "--shell",
        action="store_true",
        help="interactive busybox shell in the guest instead of pytest",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=_default_jobs(),
        metavar="N",
        help="guests booted at once (default: host CPUs / guest vCPUs = %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600,
        metavar="S",
        help="kill QEMU after S seconds per profile (default 600; 0 = never)",
    )
    args = p.parse_args(argv)
    if args.profile is None:
        args.profile = "iommufd" if args.shell else "all"
    args.names = profiles.ALL if args.profile == "all" else args.profile.split(",")
    unknown = [n for n in args.names if n not in profiles.PROFILES]
    if unknown:
        known = ", ".join(profiles.PROFILES)
        p.error(f"unknown profile {', '.join(unknown)} (known: {known}, all)")
    if args.shell and len(args.names) > 1:
        p.error("--shell needs a single --profile")
    try:
        for spec in args.drive:
            drives.parse(spec)
        args.opts = lane.Options(
            devices=tuple(args.qemu_device),
            drives=tuple(args.drive),
            env=lane.parse_env(args.env),
            modules=tuple(m for item in args.modules for m in item.split(",") if m),
            bind=tuple(args.bind),
            append=args.append,
        )
        lane.bind_word(list(args.bind))
    except ValueError as exc:
        p.error(str(exc))
    return args, pytest_args


def run(
    argv: list[str],
    *,
    prog: str = "pyvfio vm run",
    workdir: Path | None = None,
    default_args: list[str] | None = None,
) -> int:
    """Boot the chosen profiles and run pytest in each; return the first non-zero status.

    ``workdir`` (default: the current directory) is where pytest runs in the guest;
    ``default_args`` are the pytest arguments when none follow ``--``.
    """
    workdir = (workdir or Path.cwd()).resolve()
    args, pytest_args = parse(argv, prog, list(default_args or []), workdir)
    names = args.names
    results_base = args.results.resolve()
    try:
        hostdeps.ensure(["vm"])
        # fetch / build the kernels first, so timings and timeouts cover only the guests
        lane.prepare_kernels([lane.PROFILES[n] for n in names])
    except hostdeps.MissingDeps:
        return 2
    except (kernels.KernelError, debpkg.DebpkgError) as exc:
        print(f"pyvfio vm: cannot prepare the guest kernel: {exc}", file=sys.stderr)
        return 2
    start = time.monotonic()
    lane.warm_pycache(pytest_args, workdir)
    jobs = 1 if args.shell else max(1, min(len(names), args.jobs))

    def one(name: str) -> lane.Result:
        prefix = f"[{name}] " if jobs > 1 else ""
        res = lane.run_profile(
            lane.PROFILES[name],
            results_base / f"vm-{name}",
            pytest_args,
            shell=args.shell,
            timeout=args.timeout,
            keep=args.keep,
            opts=args.opts,
            workdir=workdir,
            prefix=prefix,
        )
        qemu.say(f"pyvfio vm: profile {name}: {res.message}", prefix)
        return res

    if jobs == 1:
        done = [one(name) for name in names]
    else:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = [pool.submit(one, name) for name in names]
            try:
                done = [f.result() for f in futures]
            except KeyboardInterrupt:
                for f in futures:
                    f.cancel()
                qemu.kill_all()
                raise
    _summary(done, jobs, results_base, time.monotonic() - start)
    return next((r.status for r in done if r.status != 0), 0)


def _summary(done: list[lane.Result], jobs: int, results_base: Path, total: float) -> None:
    print("\npyvfio vm: summary" + (f" ({jobs} guests at a time)" if jobs > 1 else ""))
    for res in done:
        verdict = "ok" if res.status == 0 else f"FAILED ({res.status})"
        print(
            f"  {res.profile:11} {verdict:12} wall {res.seconds:6.1f} s  ({res.phases})"
            f"  {results_base / ('vm-' + res.profile)}"
        )
    print(f"  total wall {total:.1f} s", flush=True)


def guarded(fn: Callable[[], int]) -> int:
    """Run ``fn`` with SIGTERM treated like Ctrl-C: QEMU is stopped and run dirs cleaned."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return fn()
    except KeyboardInterrupt:
        print("\npyvfio vm: interrupted; QEMU stopped", file=sys.stderr)
        return 130


USAGE = """usage: pyvfio vm run [OPTIONS] [-- PYTEST ARGS]   run your tests in a real-kernel guest
       pyvfio vm build [NAME|all]                  build a lane kernel in advance
       pyvfio vm profiles                          list the profiles
(pyvfio vm run --help for the options)"""


def main(argv: list[str]) -> int:
    """``pyvfio vm ...``: run, build or profiles."""
    what, rest = (argv[0], argv[1:]) if argv else ("", [])
    if what == "run":
        return guarded(lambda: run(rest))
    if what == "build":
        return kernels.main(["build", *(rest or ["all"])])
    if what == "profiles":
        for p in profiles.PROFILES.values():
            mark = "*" if p.name in profiles.ALL else " "
            print(f"{mark} {p.name:12} Linux {p.linux:5} {p.about}")
        print("(* = in --profile all)")
        return 0
    print(USAGE, file=sys.stderr if what not in ("-h", "--help") else sys.stdout)
    return 0 if what in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
