"""tools/pyvfio, the README's first command: exec at once when installed, reinstall when stale.

The venv is a stub (PYVFIO_VENV) whose ``python`` and ``pyvfio`` only log their arguments, so
these tests see what the script runs without creating a real venv or reaching a package index.
The real first run from a fresh clone is shown in issue 13's note.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
SCRIPT = TOP / "tools" / "pyvfio"


def _inputs_hash() -> str:
    files = [TOP / "pyproject.toml", TOP / "setup.py", TOP / "pyvfio" / "_ffi_build.py",
             *sorted((TOP / "cdefs").glob("*.h"))]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def _stub_venv(tmp_path: Path, stamp: str | None) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "log"
    for name, code in (("python", 0), ("pyvfio", 7)):
        stub = venv / "bin" / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit {code}\n')
        stub.chmod(0o755)
    if stamp is not None:
        (venv / ".pyvfio-install").write_text(stamp + "\n")
    return venv


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYVFIO_VENV": str(venv)}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


def test_installed_venv_runs_the_command_with_its_arguments_and_status(tmp_path: Path) -> None:
    venv = _stub_venv(tmp_path, _inputs_hash())
    res = _run(venv, "demo", "--json", "a b")
    assert res.returncode == 7
    assert (tmp_path / "log").read_text() == "pyvfio demo --json a b\n"  # no pip, no cffi build
    assert res.stderr == ""


def test_stale_stamp_reinstalls_then_runs(tmp_path: Path) -> None:
    venv = _stub_venv(tmp_path, "0" * 64)  # pyproject.toml or cdefs/ changed since the install
    res = _run(venv, "ls")
    assert res.returncode == 7
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0].startswith("python -m pip install") and log[0].endswith(f"-e {TOP}")
    assert log[1:] == ["python pyvfio/_ffi_build.py", "pyvfio ls"]
    assert (venv / ".pyvfio-install").read_text().strip() == _inputs_hash()
    assert "installing pyvfio" in res.stderr and res.stdout == ""


def test_missing_venv_is_created(tmp_path: Path) -> None:
    venv = tmp_path / "new"
    env = {**os.environ, "PYVFIO_VENV": str(venv), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    # a python3 that makes a stub venv: the script must call `python3 -m venv DIR`
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\nif [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; '
                    'for n in python pyvfio; do printf \'#!/bin/sh\\necho "%s $*" >> '
                    f'{tmp_path}/log\\n\' $n > "$3/bin/$n"; chmod +x "$3/bin/$n"; done; fi\n')
    fake.chmod(0o755)
    res = subprocess.run([str(SCRIPT), "demo"], env=env, capture_output=True, text=True,
                         check=False, timeout=60)
    assert res.returncode == 0, res.stderr
    assert f"creating {venv}" in res.stderr
    assert (tmp_path / "log").read_text().splitlines()[-1] == "pyvfio demo"
