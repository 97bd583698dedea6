#!/usr/bin/env python3
"""pyvfio's benchmarks on this host, from the checkout: ``pyvfio bench`` (pyvfio/bench/).

    python3 tools/bench/run.py [--json FILE] [--quick] [--max-mappings N] [pyvfio bench options]

A thin wrapper kept for CI and scripts: ``--json FILE`` is ``pyvfio bench --output FILE``; every
other option is passed through (``pyvfio bench --help``).  The real-kernel parts run in the VM
lane: tools/vm/run --profile iommufd -- tools/bench/test_bench_vm.py -s
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from pyvfio import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run ``pyvfio bench`` with ``--json FILE`` meaning ``--output FILE``; return its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    return cli.main(["bench", *("--output" if a == "--json" else a for a in args)])


if __name__ == "__main__":
    sys.exit(main())
