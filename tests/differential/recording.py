"""Recordings: what a real kernel answered to generated sequences, compact and compressed.

File (xz): one JSON header line, then per mode (in header order) per sequence the varints
``seed``, ``fingerprint`` (crc32 of the generated ops: a changed generator is detected, not
misreported as a kernel difference), ``len(results)`` and the results blob of
:meth:`tests.differential.runner.Runner.run`.
"""

from __future__ import annotations

import json
import lzma
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.differential.runner import _varint, read_varint

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"
SUFFIX = ".rec.xz"
RAW_SUFFIX = ".rec"
XZ_MAGIC = b"\xfd7zXZ\x00"


def fingerprint(ops: list[tuple[Any, ...]]) -> int:
    return zlib.crc32(repr(ops).encode())


@dataclass
class Recording:
    """A header (profile, kernel, devices, modes) and per mode the recorded sequences."""

    header: dict[str, Any]
    sequences: dict[str, list[tuple[int, int, bytes]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.header['profile']}-{self.header['kernel']}"

    def save(self, directory: str | os.PathLike[str], compress: bool = True) -> Path:
        """Write ``<name>.rec.xz`` (or, with ``compress=False``, ``<name>.rec`` uncompressed:
        what a slow guest writes for the host to compress)."""
        self.header["modes"] = {m: len(s) for m, s in self.sequences.items()}
        self.header["order"] = list(self.sequences)  # the JSON header's keys come out sorted
        out = bytearray(json.dumps(self.header, sort_keys=True).encode() + b"\n")
        for mode in self.header["order"]:
            for seed, fp, blob in self.sequences[mode]:
                _varint(out, seed)
                _varint(out, fp)
                _varint(out, len(blob))
                out += blob
        path = Path(directory) / f"{self.name}{SUFFIX if compress else RAW_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(lzma.compress(bytes(out), preset=9 | lzma.PRESET_EXTREME) if compress
                        else bytes(out))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        raw = Path(path).read_bytes()
        if raw.startswith(XZ_MAGIC):
            raw = lzma.decompress(raw)
        nl = raw.index(b"\n")
        header = json.loads(raw[:nl])
        rec = cls(header)
        i = nl + 1
        for mode in header["order"]:
            count = header["modes"][mode]
            seqs = []
            for _ in range(count):
                seed, i = read_varint(raw, i)
                fp, i = read_varint(raw, i)
                n, i = read_varint(raw, i)
                seqs.append((seed, fp, raw[i : i + n]))
                i += n
            rec.sequences[mode] = seqs
        return rec


def all_recordings() -> list[Path]:
    return sorted(RECORDINGS.glob(f"*{SUFFIX}"))
