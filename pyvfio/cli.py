"""The ``pyvfio`` command: the only module that prints or exits.

Exit codes: 0 success, 1 the operation failed (the kernel or a precondition said no), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyvfio import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``pyvfio`` command."""
    parser = argparse.ArgumentParser(
        prog="pyvfio",
        description="Drive PCI devices from Python over Linux VFIO and iommufd.",
        epilog="exit codes: 0 success, 1 operation failed, 2 usage error",
    )
    parser.add_argument("--version", action="version", version=f"pyvfio {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    return EXIT_USAGE  # pragma: no cover - every subcommand returns through its handler


if __name__ == "__main__":
    sys.exit(main())
