"""docs/hooks.py: the generated parts of the site (API pages, CLI help, fidelity tables)."""

from __future__ import annotations

import importlib.util
import json
import lzma
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("mkdocs", reason="the docs tools: pip install -e .[docs] (tools/test does)")
TOP = Path(__file__).resolve().parents[2]


@pytest.fixture
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", TOP / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_module_has_a_page_and_private_ones_none(hooks: ModuleType) -> None:
    sections = hooks.public_modules()
    names = [m for modules in sections.values() for m in modules]
    assert {"pyvfio", "pyvfio.opener", "pyvfio.fake.kernel", "pyvfio.host.bind"} <= set(names)
    assert not [n for n in names if "._" in n or n in hooks.INTERNAL]
    assert all(m.startswith(section) for section, ms in sections.items() for m in ms)


def test_cli_reference_shows_every_subcommand(hooks: ModuleType) -> None:
    text = hooks._cli_reference()
    for command in ("ls", "bind", "demo", "bench", "doctor"):
        assert f"## `pyvfio {command}`" in text


def test_fidelity_renders_the_recorded_file(hooks: ModuleType) -> None:
    doc = json.loads((TOP / "docs" / "fidelity.json").read_text())
    text = hooks._fidelity()
    assert f"commit `{doc['commit']}`" in text
    assert f"| the fake kernel | {doc['conformance']['fake']} |" in text


def test_differential_without_and_with_recordings(hooks: ModuleType, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "TOP", tmp_path)
    assert "No recordings yet" in hooks._differential()
    rec = tmp_path / "tests" / "differential" / "recordings"
    rec.mkdir(parents=True)
    header = {"profile": "iommufd", "kernel": "6.12.117", "modes": {"type1v2": 40, "iommufd": 60}}
    (rec / "iommufd-6.12.117.rec.xz").write_bytes(
        lzma.compress(json.dumps(header).encode() + b"\n\x01\x02"))
    text = hooks._differential()
    assert "| `iommufd-6.12.117.rec.xz` | iommufd | 6.12.117 | type1v2 40, iommufd 60 | 100 |" \
        in text


def test_known_divergences_are_listed(hooks: ModuleType, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "TOP", tmp_path)
    known = tmp_path / "tests" / "differential" / "known.py"
    known.parent.mkdir(parents=True)
    known.write_text('KNOWN: dict[str, str] = {\n'
                     '    "pread @0x4: bytes differ": "edu COMMAND",\n}\n')
    assert hooks._known_divergences() == {"pread @0x4: bytes differ": "edu COMMAND"}
    known.write_text("KNOWN: dict[str, str] = {}\n")
    assert hooks._known_divergences() == {}
