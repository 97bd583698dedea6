"""Add up pytest junit XML files: per-run counts, the fake/real conformance picture, one total line.

For each file: passed / failed / skipped, and its skip reasons grouped by count.  For the
conformance suite (tests/conformance): how many tests ran on the fake kernel, on each real VM
profile, and on both.  Last line: ``total: N passed, N failed, N skipped``.  Exits 1 when any test
failed or errored, when no file was found, or when a run skipped more than its budget.

Skip budgets (``tests/skip_budgets.json``): a skip hides whatever the test would have found, so
each run's expected skips are written down with their reasons.  A run's rules are tried in order;
a skip counts against the first rule whose ``reason`` pattern (and ``ids`` pattern, when given)
matches it.  A skip no rule matches, or more skips under a rule than its ``max``, fails the run.
``max: null`` is for structural skips bounded by ``ids`` instead (the real-kernel half of a
conformance test on the host: one per ``[real]`` test id, whatever their number).
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

BUDGETS = Path(__file__).resolve().parents[1] / "tests" / "skip_budgets.json"

def run_name(path: Path) -> str:
    """Name a run after its file: ``host`` or the VM profile directory (``vm-iommufd``)."""
    return path.parent.name if path.name == "junit.xml" else path.stem.replace("-junit", "")


def outcomes(path: Path) -> list[tuple[str, str, str]]:
    """Return ``(test id, outcome, skip reason)`` for every testcase of one junit file."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            cases.append((test_id, "failed", ""))
        elif (skip := case.find("skipped")) is not None:
            reason = skip.get("message", "")
            if reason == "collection skipped":  # a module skipped whole: its reason is the text
                found = re.search(r"Skipped: (.*)'\)\s*$", skip.text or "")
                reason = found.group(1) if found else reason
            cases.append((test_id, "skipped", reason))
        else:
            cases.append((test_id, "passed", ""))
    return cases


def kernel_of(test_id: str) -> tuple[str, str] | None:
    """Split a conformance test id into (test without the kernel param, 'fake' | 'real')."""
    if "conformance" not in test_id:
        return None
    m = re.search(r"\b(fake|real)\b(?=[^\[]*\]$)", test_id)
    if not m:
        return None
    base = test_id[: m.start()] + test_id[m.end() :]
    return base, m.group(1)


def conformance_picture(runs: dict[str, list[tuple[str, str, str]]]) -> list[str]:
    """Describe which conformance tests passed on the fake, on each real profile, and on both."""
    passed: dict[str, set[str]] = {}
    for run, cases in runs.items():
        for test_id, outcome, _ in cases:
            split = kernel_of(test_id)
            if split and outcome == "passed":
                passed.setdefault("fake" if split[1] == "fake" else run, set()).add(split[0])
    fake = passed.pop("fake", set())
    lines = [f"conformance: {len(fake)} passed on the fake kernel"]
    for run, tests in sorted(passed.items()):
        lines.append(f"conformance: {len(tests)} passed on the real kernel ({run}), "
                     f"{len(tests & fake)} of them also on the fake")
    if passed:
        every = set.intersection(fake, *passed.values())
        lines.append(f"conformance: {len(every)} passed on the fake and on every real profile")
    return lines


def rules_for(run: str, budgets: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Return the budget rules of ``run`` (keys may be fnmatch patterns such as ``vm-*``)."""
    for key, rules in budgets["runs"].items():
        if fnmatch.fnmatchcase(run, key):
            return list(rules)
    return None


def over_budget(run: str, cases: list[tuple[str, str, str]],
                budgets: dict[str, Any]) -> list[str]:
    """Return one line per broken budget of ``run``: unbudgeted skips, rules over their max."""
    skips = [(test_id, reason) for test_id, outcome, reason in cases if outcome == "skipped"]
    rules = rules_for(run, budgets)
    if rules is None:
        return [f"{run}: no skip budget in {BUDGETS.name} ({len(skips)} skips)"] if skips else []
    used: Counter[int] = Counter()
    problems: list[str] = []
    stray: Counter[str] = Counter()
    for test_id, reason in skips:
        for i, rule in enumerate(rules):
            if re.search(rule["reason"], reason) and re.search(rule.get("ids", ""), test_id):
                used[i] += 1
                break
        else:
            stray[reason] += 1
    for reason, n in stray.most_common():
        problems.append(f"{run}: {n} skip(s) with no budget: {reason[:160]}")
    for i, rule in enumerate(rules):
        if rule["max"] is not None and used[i] > rule["max"]:
            problems.append(f"{run}: {used[i]} skips over the budget of {rule['max']} for "
                            f"{rule['reason']!r} ({rule['why']})")
    return problems


def main(argv: list[str]) -> int:
    budget_file = BUDGETS
    if argv[:1] == ["--budgets"] and len(argv) > 1:
        budget_file, argv = Path(argv[1]), argv[2:]
    budgets = json.loads(budget_file.read_text())
    paths = sorted({Path(a) for a in argv if Path(a).is_file()})
    if not paths:
        print("no junit results found")
        return 1
    runs = {run_name(p): outcomes(p) for p in paths}
    total: Counter[str] = Counter()
    for run, cases in runs.items():
        counts = Counter(outcome for _, outcome, _ in cases)
        total.update(counts)
        print(f"{run}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped")
        reasons = Counter(reason for _, outcome, reason in cases if outcome == "skipped")
        for reason, n in reasons.most_common():
            print(f"    skipped x{n}: {reason[:160]}")
    for line in conformance_picture(runs):
        print(line)
    problems = [line for run, cases in runs.items() for line in over_budget(run, cases, budgets)]
    for line in problems:
        print(f"SKIP BUDGET: {line}")
    print(f"total: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
