#!/usr/bin/env python3
"""Mutation testing of the fake kernel's ioctl handlers: do the tests notice a broken rule?

    .venv/bin/python tools/mutate_fake.py [--limit N] [--module fake/container.py ...] [--list]

Each mutant changes one thing in a handler module of ``pyvfio/fake`` — a comparison turned
(``<`` / ``<=``, ``==`` / ``!=``, ``in`` / ``not in``), ``and`` / ``or`` swapped, a ``raise``
dropped, an integer constant in a comparison moved by one, or an ioctl's minimum size moved one
field back (the ``last`` field of its :class:`~pyvfio.fake.dispatch.Op`) — is written into a
scratch copy of the checkout, and the tests that speak for that module run there (fake side
only, ``-x``).  A mutant is *killed* when they fail.  Only functions that are ioctl handlers
(kernel names ``VFIO_*`` / ``IOMMU_*``) or the rules they call are mutated; the score is printed
per module, with every surviving mutant (file:line and the change) so a test can be added at that
rule's edge.
"""

from __future__ import annotations

import argparse
import ast
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the tests that speak for it (fake side); kept small: CPU is shared
TESTS = {
    "fake/container.py": ["tests/conformance/test_type1.py", "tests/conformance/test_container.py",
                          "tests/conformance/test_bad_input.py", "tests/conformance/test_minsz.py",
                          "tests/conformance/test_rule_edges.py"],
    "fake/type1.py": ["tests/conformance/test_type1.py", "tests/unit/test_container.py"],
    "fake/vfio_pci.py": ["tests/conformance/test_device.py", "tests/conformance/test_region.py",
                         "tests/conformance/test_irq.py", "tests/conformance/test_bad_input.py",
                         "tests/conformance/test_minsz.py"],
    "fake/group.py": ["tests/conformance/test_group.py", "tests/conformance/test_bad_input.py",
                      "tests/conformance/test_minsz.py"],
    "fake/vf_token.py": ["tests/conformance/test_bad_input.py", "tests/unit/test_vf_token.py"],
    "fake/iommufd.py": ["tests/conformance/test_ioas.py", "tests/conformance/test_iommufd_abi.py",
                        "tests/conformance/test_minsz.py", "tests/conformance/test_rule_edges.py"],
    "fake/dispatch.py": ["tests/conformance/test_iommufd_abi.py", "tests/conformance/test_ioas.py",
                         "tests/conformance/test_bad_input.py", "tests/unit/test_fake_dispatch.py",
                         "tests/conformance/test_type1.py"],
    "fake/cdev.py": ["tests/conformance/test_cdev.py", "tests/conformance/test_pasid.py",
                     "tests/conformance/test_minsz.py"],
    "fake/iommufd_device.py": ["tests/conformance/test_cdev.py",
                               "tests/conformance/test_group_iommufd.py"],
    "fake/iommu_nodes.py": ["tests/conformance/test_cdev.py"],
    "fake/hot_reset.py": ["tests/conformance/test_hot_reset.py"],
    "fake/option.py": ["tests/conformance/test_iommufd_abi.py", "tests/conformance/test_ioas.py"],
    "fake/vfio_compat.py": ["tests/conformance/test_iommufd_compat.py"],
}
HANDLER_HELPERS = {"check_map", "unmap_v2", "unmap_v1", "_unmap_range", "_check_bitmap",
                   "_pin", "_copy_argsz", "_copy_size", "resolve", "execute", "match",
                   "validate", "_device_from_name", "map_user", "_check_map_flags",
                   "_option_rlimit_mode", "set_huge_pages", "_check_vf_token", "_strndup"}
SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In}


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    what: str
    source: str


def _in_scope(name: str) -> bool:
    return name.startswith(("VFIO_", "IOMMU_")) or name in HANDLER_HELPERS


class _Finder(ast.NodeVisitor):
    """Collect mutation points (node ids in walk order) inside handler functions."""

    def __init__(self) -> None:
        self.points: list[tuple[int, str, int]] = []  # (index, kind, line)
        self.depth = 0
        self.index = 0

    def generic_visit(self, node: ast.AST) -> None:
        inside = self.depth > 0
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _in_scope(node.name):
            self.depth += 1
            super().generic_visit(node)
            self.depth -= 1
            return
        if inside:
            self._note(node)
        super().generic_visit(node)

    def _note(self, node: ast.AST) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAP:
            self.points.append((id(node), "cmp", line))
            consts = [c for c in node.comparators if isinstance(c, ast.Constant)
                      and type(c.value) is int]
            if consts:
                self.points.append((id(node), "const", line))
        elif isinstance(node, ast.BoolOp):
            self.points.append((id(node), "boolop", line))
        elif isinstance(node, ast.Raise):
            self.points.append((id(node), "raise", line))


def _op_last_fields(tree: ast.Module) -> list[tuple[ast.Call, int]]:
    """Op(...) / _op(...) calls whose 'last' argument is a string literal."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Op", "_op"):
            strs = [i for i, a in enumerate(node.args) if isinstance(a, ast.Constant)
                    and isinstance(a.value, str) and not a.value.startswith("struct ")]
            if strs:
                out.append((node, strs[-1]))
    return out


def _previous_field(ctype: str, last: str) -> str | None:
    sys.path.insert(0, str(ROOT))
    from pyvfio._ffi import ffi  # noqa: PLC0415 - only when mutating OPS tables

    names = [n for n, _ in ffi.typeof(ctype).fields]
    i = names.index(last) if last in names else 0
    return names[i - 1] if i > 0 else None


def mutants(module: str) -> list[Mutant]:
    """Every mutant of ``pyvfio/<module>``."""
    text = (ROOT / "pyvfio" / module).read_text()
    out: list[Mutant] = []
    finder = _Finder()
    finder.visit(ast.parse(text))
    for n in range(len(finder.points)):
        tree = ast.parse(text)  # a fresh tree per mutant; its points come in the same order
        fresh = _Finder()
        fresh.visit(tree)
        node_id, kind, line = fresh.points[n]
        node = next(x for x in ast.walk(tree) if id(x) == node_id)
        what = _mutate(node, kind)
        if what:
            out.append(Mutant(module, line, what, ast.unparse(tree)))
    for n, (call, idx) in enumerate(_op_last_fields(ast.parse(text))):
        ctype = next((a.value for a in call.args if isinstance(a, ast.Constant)
                      and isinstance(a.value, str) and a.value.startswith("struct ")), None)
        last = call.args[idx]
        prev = _previous_field(ctype, last.value) if ctype and isinstance(last, ast.Constant) \
            else None
        if prev is None:
            continue
        tree = ast.parse(text)
        c, i = _op_last_fields(tree)[n]
        c.args[i] = ast.Constant(prev)
        out.append(Mutant(module, call.lineno, f"minsz: last field -> {prev!r}", ast.unparse(tree)))
    return out


def _mutate(node: ast.AST, kind: str) -> str | None:
    if kind == "cmp" and isinstance(node, ast.Compare):
        old = type(node.ops[0])
        node.ops[0] = SWAP[old]()
        return f"{old.__name__} -> {SWAP[old].__name__}"
    if kind == "const" and isinstance(node, ast.Compare):
        c = next(c for c in node.comparators if isinstance(c, ast.Constant))
        c.value += 1
        return f"constant {c.value - 1} -> {c.value}"
    if kind == "boolop" and isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return f"{'and -> or' if isinstance(node.op, ast.Or) else 'or -> and'}"
    if kind == "raise" and isinstance(node, ast.Raise):
        node.__class__ = ast.Pass  # type: ignore[assignment]  # the statement becomes ``pass``
        return "raise dropped"
    return None


def run(mutant: Mutant, scratch: Path, python: str) -> bool:
    """Write the mutant into the scratch copy, run its tests; True when they fail (killed)."""
    path = scratch / "pyvfio" / mutant.module
    original = path.read_text()
    path.write_text(mutant.source)
    try:
        tests = [t for t in TESTS[mutant.module] if (scratch / t).exists()]
        cmd = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "not real",
               *tests]
        try:
            done = subprocess.run(cmd, cwd=scratch, capture_output=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return True  # a hang is noticed too
        return done.returncode != 0
    finally:
        path.write_text(original)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", action="append", choices=sorted(TESTS),
                   help="a handler module (default: all of them)")
    p.add_argument("--limit", type=int, default=0,
                   help="at most N mutants per module, a fixed sample (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    args = p.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="pyvfio-mutants-") as tmp:
        scratch = Path(tmp)
        for part in ("pyvfio", "tests", "pyproject.toml"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, scratch / part)
        total = killed = 0
        for module in args.module or sorted(TESTS):
            found = mutants(module)
            if args.limit and len(found) > args.limit:
                found = sorted(random.Random(module).sample(found, args.limit),
                               key=lambda m: m.line)
            survivors = []
            for m in found:
                if args.list:
                    print(f"{module}:{m.line}: {m.what}")
                    continue
                if run(m, scratch, python):
                    killed += 1
                else:
                    survivors.append(m)
                total += 1
            if not args.list:
                dead = len(found) - len(survivors)
                print(f"{module}: {dead}/{len(found)} killed", flush=True)
                for m in survivors:
                    print(f"  survived {module}:{m.line}: {m.what}", flush=True)
        if total:
            print(f"score: {killed}/{total} = {100 * killed / total:.0f}% killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
