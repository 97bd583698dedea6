"""pytest plugin (entry point ``pytest11: pyvfio_vm``): ``--pyvfio-kernel=vm:PROFILE``.

``pytest --pyvfio-kernel=vm:iommufd-7.3 tests/`` runs the same pytest command inside the VM lane's
guest (a real Linux kernel in QEMU; :func:`pyvfio.vm.cli.run` with the current directory as the
work directory) instead of on this host, and exits with the guest's status.  Several profiles:
``vm:iommufd,iommufd-7.3``; all of CI's: ``vm:all``.  Lane options (drives, devices, modules,
environment) go through ``--pyvfio-vm=OPTION``, once per option:
``--pyvfio-vm=--drive=d0:64M --pyvfio-vm=--qemu-device=nvme,serial=x,drive=d0``.
``--pyvfio-kernel=host`` (the default) runs here.  Inside the guest (``PYVFIO_KERNEL=real``)
the option is a no-op, so the run never recurses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OPTION = "--pyvfio-kernel"
VM_OPTION = "--pyvfio-vm"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyvfio", "pyvfio")
    group.addoption(OPTION, metavar="WHERE", default="host",
                    help="host (default): run here; vm:PROFILE[,PROFILE...] or vm:all: run this "
                         "pytest command in the VM lane's real-kernel guest (pyvfio vm run)")
    group.addoption(VM_OPTION, metavar="OPTION", action="append", default=[],
                    help="a pyvfio vm run option for --pyvfio-kernel=vm:..., e.g. "
                         "--pyvfio-vm=--drive=d0:64M (repeatable)")


def strip_options(args: list[str]) -> list[str]:
    """``args`` without this plugin's options (both ``--opt=value`` and ``--opt value``)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in (OPTION, VM_OPTION):
            skip = True
            continue
        if arg.startswith((OPTION + "=", VM_OPTION + "=")):
            continue
        out.append(arg)
    return out


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    where = str(config.getoption("pyvfio_kernel"))
    if where == "host" or os.environ.get("PYVFIO_KERNEL") == "real":
        return None
    if not where.startswith("vm:") or not where[3:]:
        raise pytest.UsageError(f"{OPTION} must be host or vm:PROFILE[,PROFILE...], not {where!r}")
    from pyvfio.vm import cli  # noqa: PLC0415 - only when asked: the lane is host tooling

    params = config.invocation_params
    pytest_args = strip_options([str(a) for a in params.args])
    lane_args = ["--profile", where[3:], *config.getoption("pyvfio_vm"), "--", *pytest_args]
    return cli.guarded(lambda: cli.run(lane_args, prog=f"pytest {OPTION}={where}",
                                       workdir=Path(params.dir)))
