"""Backing drives for guest devices (``--drive``): ``-drive if=none,id=ID,file=IMG,format=raw``.

A device names its drive with ``drive=ID`` (``--qemu-device nvme,serial=x,drive=ID``).  Two forms:

* ``ID`` or ``ID:SIZE`` (SIZE like ``64M``, ``1G``; default 64M): a sparse raw image created
  in the run's own directory, zero-filled, deleted with the run (kept by ``--keep``); parallel
  guests each get their own.
* ``ID=PATH``: an existing raw image of the user's, used read-write (QEMU locks it, so one guest
  at a time may use it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIZE = 64 << 20
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}


@dataclass(frozen=True)
class Drive:
    id: str
    size: int | None  # bytes of a created image; None for a user's file
    path: Path | None  # the user's image (ID=PATH)


def parse_size(text: str) -> int:
    """``64M`` / ``1g`` / ``4096`` -> bytes (powers of 1024)."""
    m = re.fullmatch(r"(\d+)([kmgt]?)(i?b)?", text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"drive size must be a positive size like 64M or 1G, not {text!r}")
    return int(m.group(1)) << _UNITS[m.group(2)]


def parse(spec: str) -> Drive:
    """Parse ``ID``, ``ID:SIZE`` or ``ID=PATH``.

    Raises:
        ValueError: a malformed id or size, or PATH is not an existing file.
    """
    if "=" in spec:
        ident, _, path = spec.partition("=")
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ValueError(f"--drive {spec}: {file} is not an existing image file")
        drive = Drive(ident, None, file)
    else:
        ident, _, size = spec.partition(":")
        drive = Drive(ident, parse_size(size) if size else DEFAULT_SIZE, None)
    if not _ID.match(ident):
        raise ValueError(
            f"--drive {spec}: the id must be a letter then up to 31 letters, digits, _ or -"
        )
    return drive


def qemu_args(drives: list[Drive], run_dir: Path) -> list[str]:
    """Create the images of ``drives`` in ``run_dir``; return their ``-drive`` arguments."""
    seen: set[str] = set()
    args: list[str] = []
    for d in drives:
        if d.id in seen:
            raise ValueError(f"--drive {d.id} given twice")
        seen.add(d.id)
        if d.path is None:
            image = run_dir / f"drive-{d.id}.img"
            with open(image, "wb") as f:  # sparse: costs no disk until the guest writes
                os.truncate(f.fileno(), d.size or DEFAULT_SIZE)
        else:
            image = d.path
        file = str(image).replace(",", ",,")
        args += ["-drive", f"if=none,id={d.id},file={file},format=raw"]
    return args
