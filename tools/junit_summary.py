"""Add up pytest junit XML files into one closing line: 'total: N passed, N failed, N skipped'.

Prints one line per file first (so a reader sees which run skipped what), then the total.  Exits 1
when any test failed or errored, or when no file was found.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(path: Path) -> dict[str, int]:
    """Return passed/failed/skipped counts of one junit XML file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    failed = totals["failures"] + totals["errors"]
    return {
        "passed": totals["tests"] - failed - totals["skipped"],
        "failed": failed,
        "skipped": totals["skipped"],
    }


def main(argv: list[str]) -> int:
    paths = sorted({Path(a) for a in argv if Path(a).is_file()})
    if not paths:
        print("no junit results found")
        return 1
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for path in paths:
        c = count(path)
        print(f"  {path}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
        for key in total:
            total[key] += c[key]
    print(f"total: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
