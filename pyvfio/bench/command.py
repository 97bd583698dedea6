"""``pyvfio bench``: run the benchmark parts, print their tables, write the JSON document.

JSON (``--json`` on stdout, ``--output FILE`` to a file; schema ``pyvfio.bench/1``): where
(host|device), machine: {cpu, cpus, kernel, python, time}, device (BDF or null), parts: [key],
seconds: {key: s}, and one object per part under its key (``ioctl``, ``map_unmap_fake``,
``registers``, ``fake_scaling``, ``fake_dma``, ``dma_space``; with ``--device``: ``device_ioctl``,
``device_map_unmap``, and on QEMU's edu ``device_registers``, ``fake_vs_real``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pyvfio.commands import EXIT_OK, Context, Output

HOST_PARTS = ("ioctl", "map_unmap_fake", "registers", "fake_scaling", "fake_dma", "dma_space")
DEVICE_PARTS = ("device_ioctl", "device_map_unmap", "device_registers", "fake_vs_real")
SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench options to its subparser."""
    parser.add_argument("--quick", action="store_true",
                        help="10x fewer iterations, at most 10^4 mappings (a smoke run)")
    parser.add_argument("--only", action="append", metavar="PART", choices=HOST_PARTS
                        + DEVICE_PARTS, help="run only this part (repeatable): "
                        + ", ".join(HOST_PARTS + DEVICE_PARTS))
    parser.add_argument("--device", metavar="BDF",
                        help="also benchmark this device, bound to vfio-pci (root)")
    parser.add_argument("--number", type=int, metavar="N",
                        help="calls per timed loop (default 200000, --quick 20000)")
    parser.add_argument("--max-mappings", type=int, default=1_000_000, metavar="N",
                        help="largest fake IOVA population (default 1000000)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the JSON document to FILE")


def run(*, only: Sequence[str] | None = None, quick: bool = False, number: int | None = None,
        max_mappings: int = 1_000_000, device: str | None = None, kernel: Any = None,
        progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Run the benchmark parts; return the JSON data and the tables.

    Args:
        only: part keys to run (default: every part that applies).
        quick: fewer iterations and at most 10^4 mappings.
        number: calls per timed loop (default 200000, 20000 with ``quick``); at least 100.
        max_mappings: the largest population of the fake IOVA structures; at least 1000.
        device: a BDF bound to vfio-pci: adds the device parts.
        kernel: the kernel the device parts use (default the real one; tests pass a fake).
        progress: called with a line before each part.

    Raises:
        ValueError: a bad ``number``, ``max_mappings`` or part (named in the message).
        OSError: the kernel refused a device part's ioctl (errno and ioctl name), or the
            device cannot be opened (ENOENT: no such device; EBUSY: in use).
    """
    from pyvfio.bench import device as device_parts  # noqa: PLC0415 - keep `pyvfio` start fast
    from pyvfio.bench import host, timing  # noqa: PLC0415

    number = number if number is not None else (20_000 if quick else 200_000)
    if number < 100:
        raise ValueError(f"number must be at least 100, not {number}")
    if max_mappings < 1000:
        raise ValueError(f"max_mappings must be at least 1000, not {max_mappings}")
    top = min(max_mappings, 10_000) if quick else max_mappings
    parts = host.parts(number, [s for s in SCALING_SIZES if s <= top])
    if device is not None:
        parts.update(device_parts.parts(kernel, device, number // 10))
    chosen = list(only) if only else list(parts)
    for key in chosen:
        if key not in parts:
            why = "needs --device" if key in DEVICE_PARTS[:2] else "does not apply here"
            raise ValueError(f"part {key!r} {why} (parts here: {', '.join(parts)})")
    data: dict[str, Any] = {"where": "device" if device else "host", "machine": timing.machine(),
                            "device": device, "parts": chosen, "seconds": {}}
    tables = []
    for i, key in enumerate(chosen, 1):
        if progress:
            progress(f"pyvfio bench: [{i}/{len(chosen)}] {key}")
        t0 = time.monotonic()
        text, data[key] = parts[key]()
        data["seconds"][key] = round(time.monotonic() - t0, 2)
        tables.append(text)
    if "registers" in data:  # the driver kit's target, checkable by a script (issue 12)
        data["register_vs_cffi_pointer"] = data["registers"]["bound vs pointer"]["ratio read32"]
    return data, tables


def cmd_bench(ctx: Context, args: argparse.Namespace) -> Output:
    """The ``pyvfio bench`` handler: progress on stderr, tables (or JSON) on stdout."""
    from pyvfio.bench import timing  # noqa: PLC0415
    from pyvfio.kernel import LinuxKernel  # noqa: PLC0415

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    data, tables = run(only=args.only, quick=args.quick, number=args.number,
                       max_mappings=args.max_mappings, device=args.device,
                       kernel=None if isinstance(ctx.kernel, LinuxKernel) else ctx.kernel,
                       progress=progress)
    timing.write_json(args.output, {"schema": timing.SCHEMA, "ok": True, **data})
    m = data["machine"]
    head = (f"pyvfio benchmarks on {m['cpu']} ({m['cpus']} cpus), Linux {m['kernel']}, "
            f"Python {m['python']}")
    lines = [head, ""]
    for text in tables:
        lines += [text, ""]
    if args.output:
        lines.append(f"JSON: {args.output}")
    return Output(data, lines, EXIT_OK)
