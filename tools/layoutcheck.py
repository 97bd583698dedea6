"""Check cdefs/ and pyvfio.uapi against the real kernel uAPI headers of Debian's linux-libc-dev.

cffi's ABI mode trusts the declarations in cdefs/ blindly, so this compares them with the
compiler's view of the real headers: it downloads linux-libc-dev (through tools/debpkg.py) for
trixie (Linux 6.12) and for trixie + trixie-backports (the newest), generates a C probe from what
cffi knows (every struct and union with every field, nested members included; every integer
constant; every ioctl number of ``pyvfio.uapi.IOCTLS``; every uAPI string of ``pyvfio.uapi``),
compiles it with gcc against ``<extracted>/usr/include`` and compares sizeof, alignof, field
offsets, sizes and signedness, and values.

cdefs/ describe the newest headers, so against them anything missing is a difference.  Against an
older release, items the header lacks (found by compiling: gcc names the failing probe lines) are
skipped and counted; a struct that gained fields since is accepted only if the missing fields lie
past its old end or alias an existing field (a union member added), and its sizeof may only grow.

Usage::

    python3 tools/layoutcheck.py            # both releases; exit 1 on any difference
    python3 tools/layoutcheck.py newest     # or: 6.12
    python3 tools/layoutcheck.py -v 6.12    # also list every skipped item
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the pyvfio of this source tree, next to its cdefs/
sys.path.insert(1, str(REPO / "tools"))

import cffi  # noqa: E402
import debpkg  # noqa: E402

from pyvfio import _ffi_build, uapi  # noqa: E402

RELEASES = {"6.12": ["trixie"], "newest": ["trixie", "trixie-backports"]}
HEADERS = ("linux/vfio.h", "linux/vfio_zdev.h", "linux/iommufd.h")
# constants whose value legitimately differs in an older release (cdefs follow the newest)
CHANGED_SINCE_OLDER = {"VFIO_AP_NUM_IRQS": "grew with VFIO_AP_CFG_CHG_IRQ_INDEX after 6.12"}


class UnavailableError(RuntimeError):
    """The check cannot run here: no C compiler, or the Debian package store is unreachable."""


@dataclass(frozen=True)
class Item:
    """One probe: ``key`` names it, ``expr`` is the C printf arguments, ``want`` what cffi says."""

    kind: str  # struct, field, sign, const, ioctl, string
    key: str
    expr: str
    want: tuple[Any, ...]
    owner: str = ""  # for field/sign: the struct's key


_PLURAL = {"struct": "structs", "field": "fields", "const": "constants", "ioctl": "ioctls",
           "string": "strings"}


@dataclass
class Report:
    """The outcome of comparing the probe items with one header release."""

    package: str
    newest: bool
    checked: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # CHANGED_SINCE_OLDER found changed
    notes: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return the one-line verdict, e.g. ``linux-libc-dev 7.3.4-1~bpo13+1: 94 structs, ...``."""
        c = self.checked
        counts = ", ".join(f"{c.get(kind, 0)} {_PLURAL[kind]}"
                           for kind in ("struct", "field", "const", "ioctl", "string"))
        verdict = "all equal" if not self.differences else f"{len(self.differences)} differences"
        return f"linux-libc-dev {self.package}: {counts}: {verdict}"

    def lines(self, verbose: bool = False) -> list[str]:
        """Return the summary, the skip counts (and names if ``verbose``), notes and differences."""
        out = [self.summary()]
        skipped = {kind: names for kind, names in self.skipped.items() if names}
        if skipped:
            what = ", ".join(f"{len(names)} {_PLURAL[kind]}" for kind, names in skipped.items())
            out.append(f"  skipped, absent from these older headers (newer uAPI, checked against "
                       f"the newest only): {what}")
        if verbose:
            out += [f"  skipped {'' if kind == 'struct' else kind + ' '}{name}"
                    for kind, names in skipped.items() for name in names]
        out += [f"  note: {note}" for note in self.notes]
        out += [f"  DIFFERENCE {diff}" for diff in self.differences]
        return out


# ---- what cffi knows -> probe items -------------------------------------------------------------

def uapi_ffi(cdef_text: str | None = None) -> Any:
    """Return a cffi FFI of cdefs/ (or of ``cdef_text``), parsed afresh from the source tree."""
    ffi = cffi.FFI()
    # kernel-internal headers (iommufd_test.h) are not in linux-libc-dev: not compared here
    ffi.cdef(cdef_text if cdef_text is not None else _ffi_build.cdef_source(_ffi_build.UAPI_FILES))
    return ffi


def _libc_names() -> set[str]:
    libc = cffi.FFI()
    libc.cdef((_ffi_build.cdefs_dir() / "libc.h").read_text())
    return set(dir(libc.dlopen(None))) | set(libc.list_types()[1]) | set(libc.list_types()[2])


def _ctype_items(ffi: Any, owner: str, ctype: Any, path: str = "", base: int = 0) -> list[Item]:
    """Return field and signedness probes for every member of ``ctype``, nested ones included.

    Members of anonymous unions and structs come flattened from cffi, as C names them.
    """
    items: list[Item] = []
    for name, fld in ctype.fields:
        member = f"{path}{name}"
        key = f"{owner}.{member}"
        t = fld.type
        flexible = t.kind == "array" and t.length is None
        elem = t.item if t.kind == "array" else t
        size = ffi.sizeof(elem) if flexible else ffi.sizeof(t)
        sub = f"{member}[0]" if t.kind == "array" else member
        size_expr = f"sizeof((({owner} *)0)->{sub if flexible else member})"
        items.append(Item("field", key, f"offsetof({owner}, {member}), {size_expr}",
                          (base + fld.offset, size), owner))
        if elem.kind in ("primitive", "enum"):
            signed = int(int(ffi.cast(elem, -1)) < 0)
            expr = f"(int)((__typeof__((({owner} *)0)->{sub}))-1 < 0)"
            items.append(Item("sign", key, expr, (signed,), owner))
        if t.kind in ("struct", "union"):
            items += _ctype_items(ffi, owner, t, f"{member}.", base + fld.offset)
    return items


def collect(ffi: Any, ioctls: dict[str, int], strings: dict[str, str]) -> list[Item]:
    """Return the probe items for every struct, union, constant, ioctl and string."""
    exclude = _libc_names()
    _, structs, unions = ffi.list_types()
    items: list[Item] = []
    for kind, names in (("struct", structs), ("union", unions)):
        for name in sorted(set(names) - exclude):
            owner = f"{kind} {name}"
            t = ffi.typeof(owner)
            items.append(Item("struct", owner, f"sizeof({owner}), _Alignof({owner})",
                              (ffi.sizeof(t), ffi.alignof(t))))
            items += _ctype_items(ffi, owner, t)
    lib = ffi.dlopen(None)
    for name in sorted(set(dir(lib)) - exclude):
        value = getattr(lib, name)
        if isinstance(value, int):
            items.append(Item("const", name, f"(long long)({name}), sizeof({name})", (value,)))
    for name, number in sorted(ioctls.items()):
        items.append(Item("ioctl", name, f"(long long)({name}), sizeof({name})", (int(number),)))
    for name, text in sorted(strings.items()):
        items.append(Item("string", name, f"({name})", (text,)))
    return items


def project_items(cdef_text: str | None = None) -> list[Item]:
    """Return the probe items of this source tree: cdefs/ (or ``cdef_text``) plus pyvfio.uapi."""
    strings = {n: v for n, v in vars(uapi).items() if n.startswith("VFIO_") and isinstance(v, str)}
    return collect(uapi_ffi(cdef_text), dict(uapi.IOCTLS), strings)


# ---- the C probe --------------------------------------------------------------------------------

_FORMATS = {"struct": "%zu %zu", "field": "%zu %zu", "sign": "%d", "const": "%lld %zu",
            "ioctl": "%lld %zu", "string": "%s"}


def generate(items: list[Item], headers: tuple[str, ...] = HEADERS) -> tuple[str, dict[int, Item]]:
    """Return the probe's C source and the item each printf line belongs to."""
    head = ["#include <stddef.h>", "#include <stdio.h>"] + [f"#include <{h}>" for h in headers]
    lines = [*head, "int main(void)", "{"]
    by_line: dict[int, Item] = {}
    for item in items:
        fmt = f"{item.kind}\\t{item.key}\\t{_FORMATS[item.kind]}\\n"
        lines.append(f'    printf("{fmt}", {item.expr});')
        by_line[len(lines)] = item
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines), by_line


def _gcc(src: Path, exe: Path, include: Path,
         extra: Path | None = None) -> subprocess.CompletedProcess[str]:
    triplet = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True,
                             check=True).stdout.strip()
    cmd = ["gcc", "-std=gnu11", "-w", "-fmax-errors=0", "-fdiagnostics-plain-output",
           f"-I{include}/{triplet}", f"-I{include}", *([f"-I{extra}"] if extra else []),
           str(src), "-o", str(exe)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def probe(items: list[Item], include: Path, headers: tuple[str, ...] = HEADERS,
          extra: Path | None = None) -> tuple[dict[tuple[str, str], list[str]], set[Item]]:
    """Compile and run the probe against ``include`` (and ``extra``, searched after it) with
    ``headers``; return its answers and the absent items.

    An item is absent when its printf line does not compile (gcc reports that line): the header
    lacks the struct, the member or the name.  Lines are dropped and the probe recompiled until
    it builds.

    Raises:
        UnavailableError: there is no gcc.
        RuntimeError: the probe fails to build for a reason that is not a probe line.
    """
    if shutil.which("gcc") is None:
        raise UnavailableError("gcc is not installed (apt-get install gcc libc6-dev)")
    absent: set[Item] = set()
    with tempfile.TemporaryDirectory(prefix="pyvfio-layout-") as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        for _ in range(4):
            text, by_line = generate([i for i in items if i not in absent], headers)
            src.write_text(text)
            proc = _gcc(src, exe, include, extra)
            if proc.returncode == 0:
                run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
                answers = {}
                for row in run.stdout.splitlines():
                    kind, key, values = row.split("\t")
                    answers[(kind, key)] = values.split(" ")
                return answers, absent
            bad = {int(n) for n in re.findall(r"^\S*probe\.c:(\d+):\d+: error:", proc.stderr, re.M)}
            if not bad or not bad <= set(by_line):
                raise RuntimeError(f"the layout probe does not build:\n{proc.stderr[-3000:]}")
            absent |= {by_line[n] for n in bad}
    raise RuntimeError("the layout probe still fails after dropping the absent items")


# ---- comparison ---------------------------------------------------------------------------------

def _same_const(want: int, got: list[str]) -> tuple[bool, str]:
    value, size = int(got[0]), int(got[1])
    if value == want:
        return True, ""
    if size == 4 and (value - want) % 2**32 == 0:
        return True, f"{value} in C (a 4-byte int), {want:#x} in cdefs: equal as a 32-bit pattern"
    return False, ""


def _compare(item: Item, got: list[str], report: Report) -> None:
    if item.kind == "string":
        same, note = (" ".join(got) == item.want[0]), ""
    elif item.kind in ("const", "ioctl"):
        same, note = _same_const(item.want[0], got)
    else:
        same, note = [int(g) for g in got] == list(item.want), ""
    if note:
        report.notes.append(f"{item.key}: {note}")
    if same:
        report.checked[item.kind] = report.checked.get(item.kind, 0) + 1
    elif not report.newest and item.key in CHANGED_SINCE_OLDER:
        report.changed.append(item.key)
        report.notes.append(f"{item.key} is {got[0]} here, {item.want[0]} in cdefs: "
                            f"{CHANGED_SINCE_OLDER[item.key]}")
    else:
        report.differences.append(f"{item.kind} {item.key}: header {' '.join(got)}, "
                                  f"cdefs {' '.join(str(w) for w in item.want)}")


def _grown(struct: Item, items: list[Item], answers: dict[tuple[str, str], list[str]],
           absent: set[Item]) -> str | None:
    """Return why a struct with fields absent from an older header is not a clean extension."""
    fields = [i for i in items if i.kind == "field" and i.owner == struct.key]
    present = [answers[("field", i.key)] for i in fields if i not in absent]
    spans = {(int(off), int(size)) for off, size in present}
    end = max((off + size for off, size in spans), default=0)
    for item in fields:
        if item in absent and item.want[0] < end and item.want not in spans:
            return f"{item.key} is missing inside the old layout"
    old_size, old_align = (int(v) for v in answers[("struct", struct.key)])
    if old_size > struct.want[0] or old_align > struct.want[1]:
        return f"{struct.key} shrank: {old_size}/{old_align} here, {struct.want} in cdefs"
    return None


def _absent(item: Item, gone: set[tuple[str, str]], report: Report) -> None:
    """Record an item the header lacks: a difference for the newest release, else a skip."""
    struct_gone = ("struct", item.owner) in gone
    field_gone = ("field", item.key) in gone
    if item.kind == "sign" and not struct_gone and not field_gone:
        report.differences.append(f"field {item.key}: not an integer type in the header")
    elif item.kind == "sign" or (item.kind == "field" and struct_gone):
        pass  # consequence of the missing struct or field, reported or skipped with it
    elif report.newest:
        report.differences.append(f"{item.kind} {item.key}: not in the headers")
    else:
        report.skipped.setdefault(item.kind, []).append(item.key)


def compare(items: list[Item], answers: dict[tuple[str, str], list[str]], absent: set[Item],
            report: Report) -> Report:
    """Fill ``report`` with the comparison of ``items`` to the probe's ``answers``."""
    gone = {(i.kind, i.key) for i in absent}
    grown = {i.owner for i in absent if i.kind == "field"} - {k for _, k in gone}
    for kind in ("struct", "field", "const", "ioctl"):
        report.skipped.setdefault(kind, [])
    for item in items:
        if item in absent:
            _absent(item, gone, report)
        elif item.kind == "struct" and item.key in grown and not report.newest:
            why = _grown(item, items, answers, absent)
            if why:
                report.differences.append(f"struct {item.key}: {why}")
                continue
            report.checked["struct"] = report.checked.get("struct", 0) + 1
            old = answers[("struct", item.key)][0]
            new = ", ".join(i.key.split(".", 1)[1] for i in absent if i.owner == item.key
                            and i.kind == "field")
            report.notes.append(f"{item.key} gained {new} after this release (at its end or as a "
                                f"union alias); sizeof {old} here, {item.want[0]} in cdefs")
        else:
            _compare(item, answers[(item.kind, item.key)], report)
    return report


# ---- entry points -------------------------------------------------------------------------------

def headers(release: str) -> tuple[str, Path]:
    """Download and extract linux-libc-dev of ``release``; return its version and include dir.

    Raises:
        UnavailableError: the Debian package store cannot be reached (and nothing is cached).
    """
    try:
        deb = debpkg.download(RELEASES[release], "linux-libc-dev")
        root = debpkg.extract(deb, debpkg.cache_root() / "headers" / deb.stem)
    except debpkg.DebpkgError as exc:
        raise UnavailableError(f"linux-libc-dev for {release}: {exc}") from exc
    version = deb.name.split("_")[1].replace("%3a", ":")
    return version, root / "usr" / "include"


def check(release: str, items: list[Item] | None = None) -> Report:
    """Compare ``items`` (default: this source tree's) with the headers of ``release``.

    Raises:
        UnavailableError: no gcc, or the package store is unreachable.
    """
    if shutil.which("gcc") is None:
        raise UnavailableError("gcc is not installed (apt-get install gcc libc6-dev)")
    items = project_items() if items is None else items
    version, include = headers(release)
    answers, absent = probe(items, include)
    return compare(items, answers, absent, Report(version, newest=release == "newest"))


def main(argv: list[str]) -> int:
    """Check the releases named in ``argv`` (default: all); print the reports; 1 on a difference."""
    verbose = "-v" in argv
    releases = [arg for arg in argv if arg != "-v"] or list(RELEASES)
    if not set(releases) <= set(RELEASES):
        print(f"usage: layoutcheck.py [-v] [{' | '.join(RELEASES)}]...", file=sys.stderr)
        return 2
    status = 0
    for release in releases:
        try:
            report = check(release)
        except UnavailableError as exc:
            print(f"layoutcheck: cannot check {release}: {exc}", file=sys.stderr)
            return 2
        print("\n".join(report.lines(verbose)))
        status |= bool(report.differences)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
