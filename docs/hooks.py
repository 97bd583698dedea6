"""mkdocs hooks: the pages that are generated from the code, so they cannot drift from it.

- API reference: one page per public module of pyvfio (``::: module``, rendered by
  mkdocstrings from the docstrings, with their Raises sections and errnos), listed in the nav
  under "API reference" and on ``reference/index.md`` (marker ``<!-- api-modules -->``).
- Command line: ``<!-- cli-reference -->`` becomes the ``--help`` of ``pyvfio`` and of every
  subcommand, from the same argparse parser the command uses.
- Fidelity: ``<!-- fidelity -->`` becomes the tables of ``docs/fidelity.json`` (written from a
  run's junit files by ``tools/fidelity.py``), ``<!-- differential -->`` a table of the
  differential harness's recordings (``tests/differential/recordings/*.rec.xz``) when they exist.
"""

from __future__ import annotations

import ast
import json
import logging
import lzma
import os
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

TOP = Path(__file__).resolve().parents[1]
PACKAGE = TOP / "pyvfio"
# The command's internals are documented as the command (cli.md), not as an API.
INTERNAL = {"pyvfio.cli", "pyvfio.commands"}
SUBPACKAGES = {"pyvfio.host": "Host tooling", "pyvfio.fake": "The fake kernel",
               "pyvfio.nvme": "The NVMe driver", "pyvfio.vm": "The VM lane",
               "pyvfio.bench": "Benchmarks"}


def public_modules() -> dict[str, list[str]]:
    """Module names by section: ``pyvfio`` and each subpackage, private modules left out."""
    out: dict[str, list[str]] = {"pyvfio": ["pyvfio"]}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(TOP).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if any(p.startswith("_") for p in parts) or name in INTERNAL or name == "pyvfio":
            continue
        in_subpackage = (PACKAGE / parts[1]).is_dir()
        out.setdefault(".".join(parts[:2]) if in_subpackage else "pyvfio", []).append(name)
    return out


def _page(module: str) -> str:
    return f"reference/{module}.md"


class _DocstringLint(logging.Filter):
    """Show griffe's docstring-format warnings as INFO: visible in the build log, not fatal.

    They are lint on the code's docstrings (a Raises line that is not ``Error: why``), which eight
    people edit daily; the strict build is about these pages: links, anchors, the navigation and
    every ``:::`` target.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def on_startup(**kwargs: Any) -> None:
    for name in ("griffe", "mkdocs.plugins.griffe"):
        logging.getLogger(name).addFilter(_DocstringLint())


def on_config(config: Any) -> Any:
    for entry in config["nav"]:
        if isinstance(entry, dict) and "API reference" in entry:
            index = entry["API reference"]
            nav: list[Any] = [index] if isinstance(index, str) else list(index)
            for section, modules in public_modules().items():
                title = "Library" if section == "pyvfio" else SUBPACKAGES.get(section, section)
                nav.append({title: [{m: _page(m)} for m in modules]})
            entry["API reference"] = nav
    return config


def on_files(files: Files, config: Any) -> Files:
    for modules in public_modules().values():
        for m in modules:
            files.append(File.generated(config, _page(m), content=f"::: {m}\n"))
    return files


def _api_modules() -> str:
    lines = []
    for section, modules in public_modules().items():
        lines.append(f"\n## {SUBPACKAGES.get(section, 'The library: ' + section)}\n")
        lines += [f"- [`{m}`]({m}.md)" for m in modules]
    return "\n".join(lines) + "\n"


def _cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: make it fixed
    from pyvfio.cli import build_parser  # noqa: PLC0415 - only when the page is built

    parser = build_parser()
    blocks = [("pyvfio", parser.format_help())]
    subs = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    blocks += [(f"pyvfio {name}", p.format_help()) for name, p in subs.choices.items()]
    return "\n".join(f"## `{title}`\n\n```text\n{text.rstrip()}\n```\n" for title, text in blocks)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fidelity() -> str:
    doc = json.loads((TOP / "docs" / "fidelity.json").read_text(encoding="utf-8"))
    rows = [[f"`{r['run']}`", r["passed"], r["failed"], r["skipped"]] for r in doc["runs"]]
    c = doc["conformance"]
    conf = [["the fake kernel", c["fake"], ""]]
    conf += [[f"real Linux, `{run}`", r["passed"], r["also_on_fake"]]
             for run, r in c["real"].items()]
    text = [f"Recorded {doc['recorded']} at commit `{doc['commit']}`: {doc['command']}.\n",
            "Every test run:\n", _table(["run", "passed", "failed", "skipped"], rows),
            "\nThe conformance suite, test by test (the fake/real parameter aside):\n",
            _table(["passed on", "tests", "of them also on the fake"], conf)]
    if c["fake_and_every_profile"] is not None:
        text.append(f"\n{c['fake_and_every_profile']} conformance tests passed on the fake "
                    "kernel and on every real profile recorded.")
    else:
        text.append("\nNo real-kernel run is recorded in this file yet.")
    return "\n".join(text) + "\n"


def _differential() -> str:
    """The recordings of the differential harness: the header line of each ``*.rec.xz``."""
    recordings = sorted((TOP / "tests" / "differential" / "recordings").glob("*.rec.xz"))
    if not recordings:
        return ("!!! note \"No recordings yet\"\n    The differential harness's recordings "
                "(`tests/differential/recordings/*.rec.xz`) appear here once they are in the "
                "repository.\n")
    rows = []
    for path in recordings:
        with lzma.open(path) as f:
            header = json.loads(f.readline())
        modes = header.get("modes", {})
        rows.append([f"`{path.name}`", header.get("profile", "?"), header.get("kernel", "?"),
                     ", ".join(f"{m} {n}" for m, n in modes.items()), sum(modes.values())])
    text = _table(["recording", "profile", "kernel", "sequences per IOMMU mode", "sequences"],
                  rows) + "\n"
    known = _known_divergences()
    if known:
        text += ("\nKnown divergences, the only ones the replay tolerates "
                 "(`tests/differential/known.py`; the list only shrinks):\n\n")
        text += "\n".join(f"- `{kind}`: {why}" for kind, why in known.items()) + "\n"
    else:
        text += "\nNo known divergences: every recorded sequence replays identically.\n"
    return text


def _known_divergences() -> dict[str, str]:
    """``KNOWN`` of tests/differential/known.py, read without importing the test package."""
    path = TOP / "tests" / "differential" / "known.py"
    if not path.exists():
        return {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(x, ast.Name) and x.id == "KNOWN" for x in targets):
                return dict(ast.literal_eval(node.value))
    return {}


MARKERS = {"<!-- api-modules -->": _api_modules, "<!-- cli-reference -->": _cli_reference,
           "<!-- fidelity -->": _fidelity, "<!-- differential -->": _differential}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, render in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown
