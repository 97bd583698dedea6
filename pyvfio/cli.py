"""The ``pyvfio`` command: the only module that prints or exits.

argparse, not click: it is in the standard library (no new dependency for a tool that must run on
bare hosts and in initramfs-like environments), and subcommands with a shared ``--json`` parent
parser are all this command needs.

Exit codes:
    0  success (``doctor``: the host is ready)
    1  the operation failed: the kernel refused, a bind failed and was rolled back, no such device
       or group, ``doctor`` found a problem
    2  usage error: bad syntax, or a malformed BDF, driver, group number or UUID
    3  refused for safety: the device is in use by the host (``--force`` overrides)
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from pyvfio import __version__, commands, demo
from pyvfio.bench import command as bench
from pyvfio.commands import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Context, Output
from pyvfio.errors import BindError, InUseError, PyvfioError
from pyvfio.host import bind, hostos, validate
from pyvfio.kernel import Kernel, LinuxKernel

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "build_parser", "main"]

Handler = Callable[[Context, argparse.Namespace], Output]
EPILOG = ("exit codes: 0 success, 1 operation failed, 2 usage error, "
          "3 refused because the device is in use (--force)")


def _size(text: str) -> int:
    units = {"k": 10, "m": 20, "g": 30, "t": 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    shift = units.get(t[-1:], 0)
    digits = t[:-1] if shift else t
    if not (digits.isascii() and digits.isdigit()):  # no "-5", no "١٢", no "1_0"
        raise argparse.ArgumentTypeError(f"not a size like 64M: {validate.shown(text)}")
    return int(digits) << shift


def _seconds(text: str) -> float:
    try:
        return validate.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, with long arguments cut in its messages (a 5,000-character typo is not echoed)."""

    def error(self, message: str) -> NoReturn:
        cut = re.sub(r"\S{61,}", lambda m: f"{m.group()[:60]}... ({len(m.group())} chars)",
                     message)
        super().error(cut)


def _sub(subs: argparse._SubParsersAction[_Parser], name: str, handler: Handler,
         help_: str, common: _Parser) -> _Parser:
    p = subs.add_parser(name, help=help_, description=help_, parents=[common], epilog=EPILOG)
    p.set_defaults(handler=handler)
    return p


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``pyvfio`` command."""
    parser = _Parser(
        prog="pyvfio", description="Drive PCI devices from Python over Linux VFIO and iommufd.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"pyvfio {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    _sub(subs, "ls", commands.cmd_ls, "list PCI devices, drivers, groups, viability", common)
    p = _sub(subs, "group", commands.cmd_group, "diagnose an IOMMU group's viability", common)
    p.add_argument("group", help="IOMMU group number")
    p = _sub(subs, "info", commands.cmd_info, "show a device (regions and irqs when bound)", common)
    p.add_argument("bdf", help="PCI address, e.g. 0000:01:00.0")
    for name, fn, help_ in (("bind", commands.cmd_bind, "bind a device to vfio-pci safely"),
                            ("unbind", commands.cmd_unbind, "give a device back to its driver")):
        p = _sub(subs, name, fn, help_, common)
        p.add_argument("bdf", help="PCI address, e.g. 0000:01:00.0")
        p.add_argument("--driver", default="vfio-pci" if name == "bind" else None,
                       help="driver to bind to (unbind: default the previous driver)")
        p.add_argument("--group", action="store_true", help="the whole IOMMU group")
        p.add_argument("--persist", action="store_true",
                       help="survive reboot and hot-plug (unbind: remove the persistent binding)")
        p.add_argument("--dry-run", action="store_true", help="print every sysfs write, do none")
        p.add_argument("--force", action="store_true",
                       help="even if the host (bind) or a VFIO user (unbind) is using it")
        if name == "bind":
            p.add_argument("--user", help="give this user the group node and cdev (mode 0660)")
            p.add_argument("--timeout", type=_seconds, default=5.0,
                           help="seconds to wait for /dev/vfio nodes (default 5; at most a week)")
            p.add_argument("--vf-token", nargs="?", const="auto", metavar="UUID",
                           help="SR-IOV PF on vfio-pci: set the VF token its VF users must "
                                "present (default: a new random UUID, printed)")
    p = _sub(subs, "doctor", commands.cmd_doctor, "check the host is ready for VFIO", common)
    p.add_argument("--memlock", type=_size, default=64 << 20, metavar="SIZE",
                   help="how much you plan to map: bytes, or with K, M, G, T (default 64M)")
    p = _sub(subs, "persist", commands.cmd_persist, "list or remove persistent bindings", common)
    p.add_argument("action", choices=["list", "remove"])
    p.add_argument("bdf", nargs="?", help="PCI address (remove)")
    p.add_argument("--dry-run", action="store_true",
                   help="remove: print the files that would be removed, remove none")
    p = _sub(subs, "mdev", commands.cmd_mdev, "mediated devices: types, list, create, remove",
             common)
    p.add_argument("action", choices=["types", "list", "create", "remove"])
    p.add_argument("parent", nargs="?", help="parent device (types, create)")
    p.add_argument("type", nargs="?", help="mdev type (create)")
    p.add_argument("--uuid", help="UUID (create: default random; remove: required)")
    p = _sub(subs, "sriov", commands.cmd_sriov, "SR-IOV: show, set or clear VFs", common)
    p.add_argument("action", choices=["show", "set", "clear"])
    p.add_argument("bdf", help="PCI address of the physical function")
    p.add_argument("count", nargs="?", type=int, help="number of VFs (set)")
    p.add_argument("--force", action="store_true",
                   help="remove VFs even if a VFIO user or the host is using them")
    p = _sub(subs, "demo", demo.cmd_demo,
             "run the edu driver step by step (fake kernel unless --device)", common)
    demo.add_arguments(p)
    p = _sub(subs, "bench", bench.cmd_bench, "benchmarks on this host (--device BDF: a device)",
             common)
    bench.add_arguments(p)
    subs.add_parser("vm", help="run your tests on real Linux kernels in QEMU (pyvfio vm run "
                    "[--profile P] [--qemu-device ARG] [--drive ID[:SIZE]] -- PYTEST ARGS)",
                    add_help=False)
    return parser


def _missing(args: argparse.Namespace) -> str | None:
    need: dict[tuple[str, str | None], list[str]] = {
        ("persist", "remove"): ["bdf"], ("mdev", "create"): ["parent", "type"],
        ("mdev", "remove"): ["uuid"], ("sriov", "set"): ["count"]}
    for arg in need.get((args.command, getattr(args, "action", None)), []):
        if getattr(args, arg) is None:
            return f"{args.command} {args.action} needs {arg.upper()}"
    return None


_HINTS: list[tuple[Callable[[BaseException], bool], str]] = [
    (lambda e: isinstance(e, InUseError),
     "stop using it first (close the VFIO user, umount, swapoff, ip link set down), "
     "or pass --force"),
    (lambda e: isinstance(e, BindError) and e.rolled_back,
     "the device is back on its previous driver"),
    (lambda e: isinstance(e, BindError),
     "ROLLBACK INCOMPLETE: check the device with 'pyvfio info'"),
    (lambda e: _sriov_errno(e, errno.ENOENT),
     "the PF has no driver, or its driver cannot create VFs (for vfio-pci: "
     "modprobe vfio-pci enable_sriov=1, or echo 1 > /sys/module/vfio_pci/parameters/enable_sriov)"),
    (lambda e: _sriov_errno(e, errno.EBUSY),
     "VFs are already enabled and the count changes only through 0: 'pyvfio sriov clear' first"),
    (lambda e: _sriov_errno(e, errno.EPERM), "VFs are assigned to guests; detach them first"),
    (lambda e: isinstance(e, PermissionError), "run as root (sysfs writes and /dev/vfio need it)"),
    (lambda e: isinstance(e, FileNotFoundError),
     "see 'pyvfio ls' for the devices and groups of this host"),
    (lambda e: isinstance(e, OSError) and e.errno == errno.EBUSY,
     "another process holds the device or group; close it first"),
]


def _sriov_errno(exc: BaseException, err: int) -> bool:
    return (isinstance(exc, OSError) and exc.errno == err
            and str(exc.filename or "").endswith("sriov_numvfs"))


def _hint(exc: BaseException) -> str | None:
    return next((hint for test, hint in _HINTS if test(exc)), None)


def _emit(text: str, stream: TextIO, code: int) -> int:
    """Write ``text`` and a newline to ``stream``; return ``code``, or EXIT_FAILED when the
    output could not be written (ENOSPC, EIO).  A reader that left (``| head``) is not an error.
    Either way the stream is pointed at /dev/null after, so the exit's flush cannot fail again."""
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        _to_devnull(stream)
    except OSError as exc:
        _to_devnull(stream)
        if stream is not sys.stderr:
            _emit(f"pyvfio: error: cannot write the output: {exc.strerror or exc}", sys.stderr, 0)
        return EXIT_FAILED
    return code


def _to_devnull(stream: TextIO) -> None:
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())
        os.close(fd)
    except (OSError, ValueError):  # not a real file (pytest's capture): nothing to protect
        pass


def _fail(args: argparse.Namespace, code: int, exc: BaseException) -> int:
    message = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    hint = _hint(exc)
    if getattr(args, "json", False):
        err: dict[str, Any] = {"type": type(exc).__name__, "message": message, "hint": hint}
        if isinstance(exc, InUseError):
            err["uses"] = [str(u) for u in exc.uses]
        doc = {"schema": "pyvfio.error/1", "ok": False, "error": err}
        return _emit(json.dumps(doc, indent=2), sys.stdout, code)
    text = f"pyvfio: error: {message}" + (f"\nhint: {hint}" if hint else "")
    return _emit(text, sys.stderr, code)


def main(argv: Sequence[str] | None = None, *, kernel: Kernel | None = None,
         host: hostos.HostOS | None = None, root: str = "/",
         state_dir: str | None = None) -> int:
    """Run the command line; return the exit code.

    ``kernel``, ``host``, ``root`` and ``state_dir`` are where the command acts (the real host by
    default); tests pass a fake kernel and temporary directories.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["vm"]:  # the VM lane has its own parser (pytest args after --)
        from pyvfio.vm.cli import main as vm_main  # noqa: PLC0415 - host tooling, on demand

        return vm_main(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code or 0)
    if args.command is None:  # a command is required: help, and the usage-error exit code
        return _emit(parser.format_help().rstrip("\n"), sys.stderr, EXIT_USAGE)
    missing = _missing(args)
    if missing:
        return _emit(f"pyvfio {args.command}: error: {missing}", sys.stderr, EXIT_USAGE)
    ctx = Context(kernel or LinuxKernel(), host or hostos.LinuxHostOS(root), root,
                  state_dir or bind.STATE_DIR)
    return _run(ctx, args)


def _run(ctx: Context, args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    try:
        out = handler(ctx, args)
    except InUseError as exc:
        return _fail(args, EXIT_REFUSED, exc)
    except (ValueError, KeyError) as exc:
        return _fail(args, EXIT_USAGE, exc)
    except (OSError, PyvfioError) as exc:
        return _fail(args, EXIT_FAILED, exc)
    except Exception as exc:  # a bug of ours: still one line, no traceback
        return _fail(args, EXIT_FAILED, RuntimeError(f"internal error: {type(exc).__name__}: "
                                                     f"{exc} (please report it)"))
    doc = {"schema": f"pyvfio.{args.command}/1", "ok": out.code == EXIT_OK, **out.data}
    text = json.dumps(doc, indent=2, default=str) if args.json else "\n".join(out.lines)
    return _emit(text, sys.stdout, out.code)


if __name__ == "__main__":
    sys.exit(main())
