"""The code in docs/ runs: every Python block, page by page, against the fake kernel.

Each page's ```python blocks run in order in one namespace (a tutorial builds up), as a reader
would paste them.  A block whose first line is ``# not run: <why>`` (real hardware) is only
compiled.  A block that defines ``test_*`` functions is a test file a reader would write: it runs
under pytest, with the fixtures pyvfio's plugin gives every suite, and every test must pass.
Each ``pyvfio ...`` / ``tools/pyvfio ...`` line of a ```sh block must parse with the command's
own parser, so a renamed subcommand or option fails here, not in a reader's shell.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pyvfio.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)
PAGES = sorted(DOCS.rglob("*.md"))
TEST_FUNC = re.compile(r"^def (test_\w+)\(", re.M)


def blocks(page: Path, lang: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every ``lang`` block of ``page``."""
    text = page.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in FENCE.finditer(text)
            if m.group(1) == lang]


def _id(page: Path) -> str:
    return str(page.relative_to(DOCS))


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=_id)
def test_python_blocks_run(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for line, code in blocks(page, "python"):
        compiled = compile(code, f"{page}:{line}", "exec")
        if code.startswith("# not run:") or TEST_FUNC.search(code):
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compiled, namespace)  # running the docs is the point


def test_test_blocks_pass_under_pytest(tmp_path: Path) -> None:
    """All pages' test blocks in one pytest run (a run costs seconds of start-up); each block is
    a file named after its page and line, so a failure points at the block."""
    expected = []
    for page in PAGES:
        for line, code in blocks(page, "python"):
            if TEST_FUNC.search(code):
                name = f"test_{page.stem.replace('-', '_')}_line{line}.py"
                (tmp_path / name).write_text(code, encoding="utf-8")
                expected += TEST_FUNC.findall(code)
    assert expected, "no test blocks in docs/"
    res = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                          str(tmp_path)], cwd=DOCS.parent, capture_output=True, text=True,
                         check=False, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    for name in expected:  # each ran (once, or once per parameter) and none was skipped
        assert re.search(rf"::{name}(\[[^\]]*\])? PASSED", res.stdout), name
    assert " SKIPPED" not in res.stdout, res.stdout[-2000:]


def _commands(page: Path) -> list[tuple[int, list[str]]]:
    out = []
    for line, code in blocks(page, "sh"):
        for i, text in enumerate(code.splitlines()):
            words = shlex.split(text, comments=True)
            if words and words[0] in ("pyvfio", "tools/pyvfio", ".venv/bin/pyvfio"):
                out.append((line + 1 + i, words[1:]))
    return out


def _parse(argv: list[str]) -> None:
    if argv[:1] != ["vm"]:
        build_parser().parse_args(argv)
    elif argv[1:2] == ["run"]:  # the lane has its own parser (pytest arguments after --)
        from pyvfio.vm import cli as vm_cli  # noqa: PLC0415

        vm_cli.parse(argv[2:], "pyvfio vm run", [], DOCS.parent)
    elif argv[1:2] not in (["build"], ["profiles"]):
        raise SystemExit(f"unknown vm command {argv[1:2]}")


@pytest.mark.parametrize("page", [p for p in PAGES if _commands(p)], ids=_id)
def test_shell_commands_parse(page: Path) -> None:
    for line, argv in _commands(page):
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                _parse(argv)
        except SystemExit as exc:
            pytest.fail(f"{page}:{line}: pyvfio {shlex.join(argv)}: exit {exc.code}: "
                        f"{err.getvalue().strip()}")


def test_every_page_is_checked() -> None:
    assert PAGES and any(blocks(p, "python") for p in PAGES)
