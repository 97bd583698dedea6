#!/usr/bin/env python3
"""CI's proof that a user's own project runs its tests on a real kernel with one command.

Generates a tiny project outside this repository (a driver test for QEMU's edu device using
pyvfio's pytest plugin on the fake kernel, and the same device through VFIO on the real one),
makes its virtualenv, pip-installs pyvfio from this checkout (not editable: the installed
package must carry the lane), then runs, in the project directory::

    .venv/bin/pyvfio vm run --profile PROFILE -- -q       # the one command

and exits with its status.  usage: tools/vm/user_project.py [--profile P] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent.parent

TEST = '''
"""A user's driver test: the fake kernel on any host, the real one in `pyvfio vm run`."""
import os

import pytest

import pyvfio

EDU_ID = 0x010000ED  # QEMU edu: its identification register (BAR0 + 0)


def edu_id(bdf, kernel=None):
    with pyvfio.open_device(bdf, kernel=kernel) as dev:
        return dev.bar(0).read(0, 4)


def test_edu_on_the_fake_kernel(fake_kernel):
    assert edu_id(str(fake_kernel.labels["edu"]), kernel=fake_kernel) == EDU_ID


@pytest.mark.skipif(os.environ.get("PYVFIO_KERNEL") != "real", reason="pyvfio vm run only")
def test_edu_on_the_real_kernel():
    bdf = os.environ["PYVFIO_VM_DEVICES"].split()[0]
    assert edu_id(bdf) == EDU_ID
    assert os.uname().release.startswith(os.environ["PYVFIO_VM_LINUX"])
'''


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tools/vm/user_project.py", description=__doc__)
    p.add_argument("--profile", default="iommufd")
    p.add_argument("--keep", type=Path, help="make the project in DIR and keep it")
    args = p.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="pyvfio-user-", dir="/var/tmp"))
    try:
        proj = base / "my-driver"
        (proj / "tests").mkdir(parents=True, exist_ok=True)
        (proj / "tests/test_edu.py").write_text(textwrap.dedent(TEST).lstrip())
        (proj / "pyproject.toml").write_text('[project]\nname = "my-driver"\nversion = "0"\n')
        python = proj / ".venv/bin/python"
        subprocess.run([sys.executable, "-m", "venv", str(proj / ".venv")], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"{CHECKOUT}[test]"], check=True)
        cmd = [str(proj / ".venv/bin/pyvfio"), "vm", "run", "--profile", args.profile, "--",
               "-q", "-rs"]
        print(f"user project {proj}: {' '.join(cmd)}", flush=True)
        status = subprocess.run(cmd, cwd=proj, check=False).returncode
        junit = proj / "results" / f"vm-{args.profile}" / "junit.xml"
        if status == 0 and junit.exists():
            shutil.copy2(junit, CHECKOUT / "results" / "user-project-junit.xml")
        return status
    except subprocess.CalledProcessError as exc:
        print(f"tools/vm/user_project.py: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
