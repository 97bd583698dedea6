"""Sequences generated ahead on the host, for the guest to run: the guest's Python is ~10-80x
slower than the host's (TCG), and generating a sequence there cost a third of its recording time
(``tools/diff-record --timing``).

``tools/diff-record`` writes one file per mode before it boots the guest; the recorder runs the
sequences from it when its header matches the guest (mode, kernel version, edu BDFs) and
generates them itself otherwise.  The ops are those :func:`tests.differential.gen.sequence`
returns, with their fingerprints, so a recording made from a file is the one a live generator
makes.  File: a JSON header line, then chunks (u32 length + zlib of a pickled list of
``(seed, fingerprint, ops)``); the file is the host's own (pickle is not for foreign data).
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

from tests.differential.gen import GENERATOR_VERSION, sequence
from tests.differential.recording import fingerprint

CHUNK = 250  # sequences per compressed chunk


def _header(mode: str, linux: str, bdfs: list[str]) -> dict[str, Any]:
    return {"mode": mode, "linux": linux, "bdfs": list(bdfs), "generator": GENERATOR_VERSION}


def path_for(directory: str | Path, mode: str) -> Path:
    return Path(directory) / f"ops-{mode}.bin"


def write(directory: str | Path, mode: str, linux: str, bdfs: list[str], count: int) -> Path:
    """Generate sequences 0..count-1 of ``mode`` for Linux ``linux`` into ``directory``."""
    path = path_for(directory, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(json.dumps(_header(mode, linux, bdfs)).encode() + b"\n")
        for first in range(0, count, CHUNK):
            chunk = []
            for seed in range(first, min(first + CHUNK, count)):
                ops = sequence(mode, seed, bdfs, linux)
                chunk.append((seed, fingerprint(ops), ops))
            blob = zlib.compress(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL), 6)
            f.write(struct.pack("<I", len(blob)) + blob)
    tmp.replace(path)
    return path


def read(directory: str | Path, mode: str, linux: str,
         bdfs: list[str]) -> Generator[tuple[int, int, list[tuple[Any, ...]]]] | None:
    """The sequences of ``directory``'s file for ``mode``, or None when there is none or it was
    made for another kernel version, other devices or another generator."""
    path = path_for(directory, mode)
    try:
        f = open(path, "rb")  # noqa: SIM115 - the generator below owns it
    except FileNotFoundError:
        return None
    if json.loads(f.readline()) != _header(mode, linux, bdfs):
        f.close()
        return None
    return _chunks(f)


def _chunks(f: Any) -> Generator[tuple[int, int, list[tuple[Any, ...]]]]:
    with f:
        while head := f.read(4):
            (n,) = struct.unpack("<I", head)
            yield from pickle.loads(zlib.decompress(f.read(n)))
