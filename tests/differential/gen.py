"""The seeded generator of op sequences: ``sequence(mode, seed, env)`` is a pure function.

A sequence sets up one IOMMU mode (each setup step may be skipped, repeated or malformed) and then
issues random ops on whatever it opened, valid and malformed: argsz/size below, at and above the
minimum, every flag bit, unaligned, overlapping and wrapping ranges, ids of the wrong type, fds of
the wrong kind (other VFIO objects, eventfds, /dev/null, -1, closed ones), and orderings such as
destroy while attached or close while mapped.  Handles are symbolic (the index of the op that
made them; ids are read from that op's output when the sequence runs), so the generator never
looks at results: the same (mode, seed, devices) gives the same ops on the host and in a guest.

Modes: ``type1v2``, ``type1`` and ``noiommu`` (legacy container), ``iommufd`` (/dev/iommu and
device cdevs), ``compat`` (/dev/iommu as the container of a group).  The op families live in
``gen_vfio`` (container, group, device) and ``gen_iommufd`` (iommufd objects); ``gen_newer``
has those of the uAPI newer than 6.12, drawn only when the kernel the sequence is for has them
(``linux``, the guest's version): a 6.12 sequence is the same as before they existed.
"""

from __future__ import annotations

import random
import struct
from collections import defaultdict
from typing import Any

from tests.differential import arena
from tests.differential.runner import ADDR_TAG, STALE, Arg

MODES = ("type1v2", "type1", "iommufd", "compat", "noiommu")
GENERATOR_VERSION = 1
U64 = (1 << 64) - 1


class Gen:
    """The state of one sequence being generated: ops so far and the handles they made."""

    def __init__(self, mode: str, seed: int, bdfs: list[str], linux: str = "6.12") -> None:
        self.r = random.Random(f"{mode}/{seed}")
        self.mode = mode
        self.bdfs = bdfs
        self.linux = _version(linux)
        self.ops: list[tuple[Any, ...]] = []
        self.h: dict[str, list[int]] = defaultdict(list)  # fd kind -> producing ops
        self.ids: dict[str, list[tuple[int, int]]] = defaultdict(list)  # id kind -> (op, off)
        self.iovas: list[tuple[int, int]] = []
        self.risky = False  # something may have turned the BARs off: no mmap loads/stores
        self.bar_writes: set[int] = set()  # edu registers written (put back at the end)

    def since(self, version: str) -> bool:
        """Whether the kernel the sequence is for has what ``version`` ("6.15") added."""
        return self.linux >= _version(version)

    # -- building blocks ---------------------------------------------------------------------

    def add(self, op: tuple[Any, ...], kind: str | None = None) -> int:
        self.ops.append(op)
        i = len(self.ops) - 1
        if kind:
            self.h[kind].append(i)
        return i

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq: Any) -> Any:
        return seq[self.r.randrange(len(seq))]

    def fd(self, *kinds: str, p_right: float = 0.85) -> int:
        """An fd of one of ``kinds`` (usually), else of another kind, -1 or a closed one."""
        right = [i for k in kinds for i in self.h.get(k, ())]
        if right and self.chance(p_right):
            return int(self.pick(right))
        anyfd = [i for v in self.h.values() for i in v]
        roll = self.r.random()
        if anyfd and roll < 0.6:
            return int(self.pick(anyfd))
        return -1 if roll < 0.8 else STALE

    def fd_patch(self, data: bytearray, off: int, ref: int, patches: list[Any]) -> None:
        """Put fd ``ref`` into an s32 field: literal -1 / closed, or a hole the runner fills."""
        if ref == -1:
            struct.pack_into("<i", data, off, -1)
        elif ref == STALE:
            struct.pack_into("<i", data, off, 999_999)
        else:
            struct.pack_into("<I", data, off, 0xFD000000 | ref)
            patches.append((off, 4, ("fd", ref)))

    def addr_patch(self, data: bytearray, off: int, aoff: int, patches: list[Any]) -> None:
        struct.pack_into("<Q", data, off, ADDR_TAG | aoff)
        patches.append((off, 8, ("addr", aoff)))

    def id_patch(self, data: bytearray, off: int, kinds: tuple[str, ...],
                 patches: list[Any]) -> None:
        """An object id: one a previous op returned (of ``kinds`` or another), or a literal."""
        right = [x for k in kinds for x in self.ids.get(k, ())]
        every = [x for v in self.ids.values() for x in v]
        roll = self.r.random()
        if right and roll < 0.75:
            src = self.pick(right)
        elif every and roll < 0.88:
            src = self.pick(every)
        else:
            struct.pack_into("<I", data, off, self.pick((0, 1, 2, 3, 4, 5, 7, 100, 0xFFFFFFFF)))
            return
        struct.pack_into("<I", data, off, 0xE0000000 | src[0] << 8 | src[1])
        patches.append((off, 4, ("u32", src[0], src[1])))

    def vfio_argsz(self, minsz: int, sizeof: int, big: int = 0) -> int:
        """argsz below, at or above the minimum (big: enough room for capabilities)."""
        roll = self.r.random()
        if roll < 0.55:
            return sizeof if not big or self.chance(0.5) else big
        return int(self.pick((0, 4, minsz - 1, minsz, sizeof + 8, 4096, big or sizeof + 64,
                              0xFFFFFFFF, sizeof + 1)))

    def iommufd_size(self, minsz: int, sizeof: int) -> tuple[int, bytes]:
        """(size, tail): below/at min, sizeof, larger with a zero or non-zero tail, huge."""
        roll = self.r.random()
        if roll < 0.7:
            return sizeof, b""
        choice = self.pick(("0", "4", "min-1", "min", "zero", "nonzero", "huge", "page"))
        if choice == "zero":
            return sizeof + 8, bytes(8)
        if choice == "nonzero":
            tail = bytearray(8)
            tail[self.r.randrange(8)] = 1
            return sizeof + 8, bytes(tail)
        return {"0": 0, "4": 4, "min-1": minsz - 1, "min": minsz, "huge": 0x10000,
                "page": 4096}[choice], b""

    def ioctl(self, fd: int, request: int, data: bytes | bytearray, patches: list[Any] = (),
              watch: tuple[Any, ...] = (), ret: Any = None, kind: str | None = None) -> int:
        at = "args"
        if self.chance(0.01):
            at = self.pick(("null", "none"))
        return self.add(("ioctl", fd, request, Arg(bytes(data), tuple(patches), watch, at), ret),
                        kind)

    # -- values ------------------------------------------------------------------------------

    def iova(self) -> int:
        if self.iovas and self.chance(0.4):
            iova, size = self.pick(self.iovas)
            return int(iova + self.pick((0, 0, 0x1000, size, -0x1000, 0x800)) & U64)
        return int(self.pick((0, 0x1000, 0x100000, 0x200000, 0x400000, 0x10000000, 0x1234,
                              0xFEE00000, 0xFEF00000, 1 << 39, (1 << 39) - 0x1000, 1 << 48,
                              U64 - 0xFFF, U64 - 0x1FFF, 0x7FFFFFFFF000)))

    def length(self) -> int:
        return int(self.pick((0x1000, 0x1000, 0x2000, 0x10000, 0x200000, 0, 0x800, 0x1001,
                              0x400000, 1 << 63, U64 - 0xFFF, 0x3000)))

    def vaddr(self) -> int:
        """An arena offset (RW mostly, sometimes read-only, unmapped, unaligned)."""
        return int(self.pick((arena.RW, arena.RW, 0x1000, 0x200000, 0x201000, 0x300000, 0x800,
                              arena.RO, arena.NONE, arena.AUX)))


def _version(text: str) -> tuple[int, int]:
    """ "6.12" / "7.3.4-amd64" -> (6, 12) / (7, 3)."""
    major, minor = text.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def sequence(mode: str, seed: int, bdfs: list[str], linux: str = "6.12") -> list[tuple[Any, ...]]:
    """Return the op sequence ``seed`` of ``mode`` for the devices ``bdfs`` (sysfs order) on
    Linux ``linux`` ("6.12", "7.3": the op families it has)."""
    from tests.differential import gen_iommufd, gen_newer, gen_vfio

    g = Gen(mode, seed, bdfs, linux)
    if mode in ("type1v2", "type1", "noiommu"):
        gen_vfio.preamble_legacy(g)
        families = gen_vfio.LEGACY
    elif mode == "compat":
        gen_iommufd.preamble_compat(g)
        families = gen_vfio.COMPAT + gen_iommufd.COMPAT
    elif mode == "iommufd":
        gen_iommufd.preamble_iommufd(g)
        families = gen_iommufd.IOMMUFD + gen_vfio.CDEV
    else:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    families = families + gen_newer.families(g)  # none on 6.12: its sequences stay as they were
    weights = [w for w, _ in families]
    for _ in range(g.r.randrange(5, 13)):
        (_, family), = g.r.choices(families, weights)
        family(g)
    for fd in g.h.get("device", []) + g.h.get("cdev", []) if g.bar_writes else ():
        for reg in sorted(g.bar_writes):  # put back what the sequence wrote (see harness)
            g.add(("pwrite", fd, reg, bytes(8 if reg >= 0x80 else 4)))
    return g.ops
