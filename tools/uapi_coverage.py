#!/usr/bin/env python3
"""The uAPI coverage table (docs/uapi-coverage.md): every ioctl and VFIO device feature of the
Linux 7.3 uAPI, marked wrapped / faked / tested on real.  Nothing in the table is typed by hand:

- the uAPI: :data:`pyvfio.uapi.IOCTLS` (vfio.h + iommufd.h, from cdefs/) and
  :class:`pyvfio.uapi_vfio.DeviceFeature` (VFIO_DEVICE_FEATURE_*);
- wrapped: a static scan of pyvfio/ (not fake/, vm/, bench/, testing/) for the public functions
  and methods that issue a request (``uapi.NAME``) or a feature (``C.VFIO_DEVICE_FEATURE_X`` /
  ``DeviceFeature.X``); a private helper counts through the public functions of its module that
  call it;
- faked: the fake kernel's dispatch table for Linux 7.3 (pyvfio.fake.ioctls.table) has a handler
  for the request — anything else is ENOTTY there; a feature is faked when the fake's code
  handles its constant (a static scan of pyvfio/fake/);
- tested on real: the ``ioctls.jsonl`` files tests/ioctl_recorder.py leaves in a lane run's results
  (``-p tests.ioctl_recorder --record-ioctls .``): the requests and features each *passing*
  conformance test issued through LinuxKernel on a real kernel, kept in docs/uapi-coverage.json.

    python3 tools/uapi_coverage.py --lane results/vm-iommufd-7.3 --lane results/vm-mock-7.3
    python3 tools/uapi_coverage.py            # re-render from docs/uapi-coverage.json

``--lane`` replaces the recorded real-kernel data with those runs' (and records the commit and
date); without it the table is re-rendered from the JSON, so a new wrapper or fake handler shows
at once.  ``--check`` exits 1 when docs/uapi-coverage.md is not what the tool would write.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

from pyvfio import uapi  # noqa: E402
from pyvfio.fake import ioctls  # noqa: E402
from pyvfio.fake.linux import resolve  # noqa: E402
from pyvfio.uapi_vfio import DeviceFeature  # noqa: E402

DATA = TOP / "docs" / "uapi-coverage.json"
PAGE = TOP / "docs" / "uapi-coverage.md"
SKIP_DIRS = ("fake", "vm", "bench", "testing")
FEATURE_PREFIX = "VFIO_DEVICE_FEATURE_"

NOTES = {  # why a row may stay empty on the x86-64 lane; facts about the kernel, not results
    "VFIO_IOMMU_SPAPR_TCE_GET_INFO": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_SPAPR_REGISTER_MEMORY": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_SPAPR_TCE_CREATE": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_SPAPR_TCE_REMOVE": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_ENABLE": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_IOMMU_DISABLE": "ppc64 (sPAPR TCE IOMMU) only",
    "VFIO_EEH_PE_OP": "ppc64 (EEH) only",
    "VFIO_DEVICE_FEATURE_ZPCI_ERROR": "s390 (zPCI) only",
    "VFIO_DEVICE_FEATURE_BUS_MASTER": "vfio-cdx only (AMD CDX bus, drivers/vfio/cdx/main.c)",
    "VFIO_DEVICE_QUERY_GFX_PLANE": "mdev display devices (mdpy, mbochs, GVT-g)",
    "VFIO_DEVICE_GET_GFX_DMABUF": "mdev display devices (mbochs, GVT-g)",
    "VFIO_IOMMU_DIRTY_PAGES": "type1 dirty tracking needs a device that pins pages (an mdev)",
    "VFIO_DEVICE_FEATURE_PCI_VF_TOKEN": "needs an SR-IOV PF on vfio-pci",
    "VFIO_MIG_GET_PRECOPY_INFO": "on the migration data fd of a driver with PRE_COPY",
    "IOMMU_IOAS_NOIOMMU_GET_PA": "7.3 no-IOMMU mode (noiommu-7.3); EOPNOTSUPP behind an IOMMU",
}


def ioctl_names() -> list[str]:
    return list(uapi.IOCTLS)


def feature_names() -> list[str]:
    return [FEATURE_PREFIX + f.name for f in DeviceFeature]


# -- wrapped: a static scan of pyvfio/ ---------------------------------------------------------


def _modules(root: Path, skip: tuple[str, ...]) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        if rel.parts[1] in skip or path.name in ("_vfio_cffi.py", "_ffi_build.py"):
            continue
        yield ".".join(rel.with_suffix("").parts), ast.parse(path.read_text(), str(path))


def _uses(node: ast.AST) -> set[str]:
    """The uAPI names a piece of code refers to: uapi.X, C.VFIO_DEVICE_FEATURE_X,
    DeviceFeature.X (as VFIO_DEVICE_FEATURE_X)."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
            owner, attr = sub.value.id, sub.attr
            if (owner == "uapi" and attr in uapi.IOCTLS) or (
                    owner == "C" and attr.startswith(FEATURE_PREFIX)):
                found.add(attr)
            elif owner == "DeviceFeature":
                found.add(FEATURE_PREFIX + attr)
    return found


def _calls(node: ast.AST) -> set[str]:
    """Names a function calls: f(...), self.f(...), mod.f(...)."""
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            out.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return out


def _functions(root: Path) -> list[tuple[str, bool, ast.AST]]:
    """(module.qualname, public, node) of every function and method under ``root``."""
    funcs = []
    for module, tree in _modules(root, SKIP_DIRS):
        hidden = any(part.startswith("_") for part in module.split(".")[1:])
        for top in tree.body:
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((f"{module}.{top.name}", not hidden and top.name[0] != "_", top))
            elif isinstance(top, ast.ClassDef):
                for item in top.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        public = not hidden and top.name[0] != "_" and (
                            item.name[0] != "_" or item.name == "__init__")
                        funcs.append((f"{module}.{top.name}.{item.name}", public, item))
    return funcs


def wrappers(root: Path = TOP / "pyvfio") -> dict[str, set[str]]:
    """uAPI name -> the public functions/methods of pyvfio that issue it (module.qualname).

    A private function (or any function of a private module) that issues a request counts for
    every public function that reaches it through calls by name (``self._raw_map(...)``)."""
    funcs = _functions(root)
    private_calls: dict[str, set[str]] = {}
    for qual, public, node in funcs:
        if not public:
            private_calls.setdefault(qual.rsplit(".", 1)[-1], set()).update(_calls(node))
    out: dict[str, set[str]] = {}
    issued: dict[str, set[str]] = {}
    for qual, public, node in funcs:
        if not public:
            issued.setdefault(qual.rsplit(".", 1)[-1], set()).update(_uses(node))
    for qual, public, node in funcs:
        if not public:
            continue
        names, seen, todo = set(_uses(node)), set(), list(_calls(node))
        while todo:  # the private functions this public one reaches
            short = todo.pop()
            if short in seen or short not in private_calls:
                continue
            seen.add(short)
            names |= issued.get(short, set())
            todo.extend(private_calls[short])
        for name in names:
            out.setdefault(name, set()).add(qual)
    return out


# -- faked: the fake kernel's dispatch table ---------------------------------------------------


def faked_ioctls() -> dict[str, str]:
    """Request name -> the fake's handler owners, for Linux 7.3."""
    table = ioctls.table(resolve("7.3"))
    found: dict[str, set[str]] = {}
    for space in table.spaces.values():
        for request, op in space.ops.items():
            name = getattr(op.request, "name", None) or f"{request:#x}"
            found.setdefault(name, set()).add(op.owner)
    return {k: ", ".join(sorted(v)) for k, v in found.items()}


def faked_features(root: Path = TOP / "pyvfio" / "fake") -> set[str]:
    """Features whose constant the fake's code handles (outside docstrings)."""
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found |= {n for n in _uses(tree) if n.startswith(FEATURE_PREFIX)}
    return found


# -- tested on real: the recorder's files ------------------------------------------------------


def read_lane(dirs: list[Path]) -> dict[str, Any]:
    """Fold the ioctls.jsonl of lane result dirs into the JSON document's "real" part."""
    real: dict[str, dict[str, Any]] = {}
    runs = []
    for d in dirs:
        path = d / "ioctls.jsonl" if d.is_dir() else d
        if not path.is_file():
            raise SystemExit(f"tools/uapi_coverage.py: {path} missing (run the lane with "
                             "-p tests.ioctl_recorder --record-ioctls .)")
        tests = 0
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            tests += 1
            profile = f"{rec['profile']} ({rec['linux']})"
            for name in rec["ok"] + rec["failed"]:
                entry = real.setdefault(name, {"profiles": [], "tests": 0, "ok": False})
                if profile not in entry["profiles"]:
                    entry["profiles"].append(profile)
                entry["tests"] += 1
                entry["ok"] = entry["ok"] or name in rec["ok"]
        runs.append({"results": str(path.relative_to(TOP) if path.is_relative_to(TOP) else path),
                     "passing_tests": tests})
    known = {*uapi.IOCTLS, *uapi.TEST_IOCTLS, *feature_names()}
    real = {name: entry for name, entry in real.items() if name in known}  # not bogus numbers
    for entry in real.values():
        entry["profiles"].sort()
    commit = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": commit, "date": datetime.date.today().isoformat(), "runs": runs,
            "real": dict(sorted(real.items()))}


# -- the page ----------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "yes" if ok else "—"


def render(data: dict[str, Any]) -> str:
    wrapped, faked, fake_feats = wrappers(), faked_ioctls(), faked_features()
    real = data.get("real", {})
    lines = [
        "# uAPI coverage",
        "",
        "Every ioctl of Linux 7.3's `vfio.h` and `iommufd.h` and every VFIO device feature, and",
        "whether pyvfio **wraps** it (a public method issues it), the **fake** kernel answers it",
        "(its dispatch table has a handler: anything else is ENOTTY there) and a conformance test",
        "that **passed on a real kernel** in the VM lane issued it.  Generated by",
        "`tools/uapi_coverage.py` (see its docstring) — do not edit by hand.",
        "",
        (f"Real-kernel data: commit {data['commit']}, {data['date']}; "
         + "; ".join(f"`{r['results']}`: {r['passing_tests']} passing tests"
                     for r in data["runs"]) + "."
         if data.get("runs") else "Real-kernel data: none recorded yet."),
        "\"errors only\": every passing test that issued it got an errno back (the rules are",
        "tested, the success path is not).",
        "",
    ]

    def rows(names: list[str], fake_of: Any) -> list[str]:
        out = ["| uAPI | wrapped by | fake | tested on real | note |", "|---|---|---|---|---|"]
        for name in names:
            by = sorted(wrapped.get(name, ()))
            shown = ", ".join(f"`{b.removeprefix('pyvfio.')}`" for b in by[:3])
            if len(by) > 3:
                shown += f" (+{len(by) - 3})"
            r = real.get(name)
            tested = "—" if r is None else (
                ", ".join(p.split(" ")[0] for p in r["profiles"])
                + f" ({r['tests']} tests{'' if r['ok'] else ', errors only'})")
            out.append(f"| `{name}` | {shown or '—'} | {fake_of(name)} | {tested} | "
                       f"{NOTES.get(name, '')} |")
        return out

    ioctls = ioctl_names()
    features = feature_names()
    lines += ["## Ioctls", ""]
    lines += rows(ioctls, lambda n: f"yes ({faked[n]})" if n in faked else "—")
    lines += ["", "## VFIO device features (`VFIO_DEVICE_FEATURE`)", "",
              "`Device.feature()` issues any feature by number; a feature counts as wrapped when",
              "a method issues that feature by name.", ""]
    lines += rows(features, lambda n: _mark(n in fake_feats))
    gaps = [n for n in ioctls + features
            if n not in wrapped and n not in faked and n not in fake_feats and n not in real]
    lines += ["", "## Neither wrapped, faked nor tested on real", ""]
    lines += [f"- `{n}`" + (f": {NOTES[n]}" if n in NOTES else "") for n in gaps] or ["- none"]
    counts = {
        "wrapped": sum(n in wrapped for n in ioctls), "faked": sum(n in faked for n in ioctls),
        "real": sum(n in real for n in ioctls)}
    fcounts = {
        "wrapped": sum(n in wrapped for n in features),
        "faked": sum(n in fake_feats for n in features),
        "real": sum(n in real for n in features)}
    lines += ["", "## Totals", "",
              f"- {len(ioctls)} ioctls: {counts['wrapped']} wrapped, {counts['faked']} faked, "
              f"{counts['real']} tested on a real kernel.",
              f"- {len(features)} device features: {fcounts['wrapped']} wrapped, "
              f"{fcounts['faked']} faked, {fcounts['real']} tested on a real kernel.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/uapi_coverage.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lane", action="append", type=Path, default=[],
                        help="a lane results dir (results/vm-PROFILE) with ioctls.jsonl")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/uapi-coverage.md is out of date")
    args = parser.parse_args(argv)
    if args.lane:
        DATA.write_text(json.dumps(read_lane(args.lane), indent=1) + "\n")
    data = json.loads(DATA.read_text()) if DATA.is_file() else {}
    page = render(data)
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != page:
            print("docs/uapi-coverage.md is out of date: run tools/uapi_coverage.py",
                  file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
