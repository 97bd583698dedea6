"""tools/junit_summary.py: counts, and skip budgets that fail a run which skips more than it may."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import junit_summary

BUDGETS = {"runs": {"host*": [
    {"reason": "^real kernel: ", "ids": "[\\[-]real[\\]-]", "max": None, "why": "lane"},
    {"reason": "^no free hugepages", "max": 1, "why": "no pool"},
]}}


def junit(path: Path, cases: list[tuple[str, str]]) -> Path:
    """Write a junit file of (test name, skip reason or "" for a pass)."""
    body = "".join(
        f'<testcase classname="tests.conformance.test_x" name="{name}">'
        + (f'<skipped message="{why}"/>' if why else "") + "</testcase>" for name, why in cases)
    path.write_text(f"<testsuites><testsuite>{body}</testsuite></testsuites>")
    return path


def summary(tmp_path: Path, cases: list[tuple[str, str]], capsys: pytest.CaptureFixture[str],
            name: str = "host-junit.xml") -> tuple[int, str]:
    budgets = tmp_path / "budgets.json"
    budgets.write_text(json.dumps(BUDGETS))
    code = junit_summary.main(["--budgets", str(budgets), str(junit(tmp_path / name, cases))])
    return code, capsys.readouterr().out


def test_skips_within_budget_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [("test_a[fake]", ""), ("test_a[real]", "real kernel: lane"),
             ("test_b[real-type1]", "real kernel: lane"), ("test_h", "no free hugepages: 0")]
    code, out = summary(tmp_path, cases, capsys)
    assert code == 0, out
    assert out.splitlines()[-1] == "total: 1 passed, 0 failed, 3 skipped"


def test_one_skip_over_a_max_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [("test_h1", "no free hugepages: 0"), ("test_h2", "no free hugepages: 0")]
    code, out = summary(tmp_path, cases, capsys)
    assert code == 1
    assert "SKIP BUDGET: host: 2 skips over the budget of 1 for '^no free hugepages'" in out


def test_structural_reason_on_the_wrong_ids_fails(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The fake half skipping with the lane's reason is not the lane's skip."""
    code, out = summary(tmp_path, [("test_a[fake]", "real kernel: lane")], capsys)
    assert code == 1 and "1 skip(s) with no budget: real kernel: lane" in out


def test_unknown_reason_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = summary(tmp_path, [("test_a[fake]", "no edu device")], capsys)
    assert code == 1 and "with no budget: no edu device" in out


def test_run_without_budget_fails_only_if_it_skips(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert summary(tmp_path, [("test_a", "")], capsys, "other-junit.xml")[0] == 0
    code, out = summary(tmp_path, [("test_a", "why")], capsys, "other-junit.xml")
    assert code == 1 and "other: no skip budget" in out


def test_the_repository_budgets_parse_and_name_every_rule() -> None:
    budgets = json.loads(junit_summary.BUDGETS.read_text())
    assert {"host*", "vm-*"} <= set(budgets["runs"])
    for run, rules in budgets["runs"].items():
        for rule in rules:
            assert rule["why"] and "reason" in rule, (run, rule)
            assert rule["max"] is not None or rule.get("ids"), (run, rule)  # bounded somehow


def test_a_module_skipped_at_collection_counts_with_its_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "host-junit.xml"
    path.write_text('<testsuites><testsuite><testcase classname="" name="tests.docs.test_hooks">'
                    '<skipped message="collection skipped">(\'/x/test_hooks.py\', 13, '
                    '\'Skipped: no free hugepages: none\')</skipped></testcase></testsuite>'
                    '</testsuites>')
    assert junit_summary.outcomes(path) == [
        ("::tests.docs.test_hooks", "skipped", "no free hugepages: none")]
