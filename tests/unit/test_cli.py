"""The pyvfio command's entry point: --version, --help, usage errors and exit codes."""

from __future__ import annotations

import pytest

import pyvfio
from pyvfio.cli import EXIT_OK, EXIT_USAGE, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"pyvfio {pyvfio.__version__}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("usage: pyvfio")
    assert "exit codes" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE  # a command is required (issue 13): help, then exit 2
    err = capsys.readouterr().err
    assert "usage: pyvfio" in err and "COMMAND" in err


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == EXIT_USAGE
    assert "unrecognized arguments" in capsys.readouterr().err
