#!/usr/bin/env python3
"""Record the fidelity figures the docs show (docs/fidelity.json) from a run's junit XML files.

    tools/test && python3 tools/fidelity.py results/host-junit.xml results/vm-*/junit.xml
    python3 tools/fidelity.py --source "what ran, where" FILE...

Per run (host, vm-<profile>): passed, failed, skipped; for the conformance suite: how many tests
passed on the fake kernel, on each real profile, on both, and on the fake and every profile.
The docs build renders the file (docs/hooks.py) and never computes a number itself, so the page
says exactly what was measured, when, and at which commit.  Exits 1 if no file was found.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from junit_summary import kernel_of, outcomes, run_name

TOP = Path(__file__).resolve().parents[1]
OUT = TOP / "docs" / "fidelity.json"


def figures(paths: list[Path]) -> dict[str, Any]:
    """The fidelity document of the junit files ``paths``."""
    runs = {run_name(p): outcomes(p)
            for p in sorted(paths, key=lambda p: (run_name(p) != "host", run_name(p)))}
    table = []
    passed: dict[str, set[str]] = {}
    for run, cases in runs.items():
        counts = Counter(outcome for _, outcome, _ in cases)
        table.append({"run": run, "passed": counts["passed"], "failed": counts["failed"],
                      "skipped": counts["skipped"]})
        for test_id, outcome, _ in cases:
            split = kernel_of(test_id)
            if split and outcome == "passed":
                passed.setdefault("fake" if split[1] == "fake" else run, set()).add(split[0])
    fake = passed.pop("fake", set())
    real = {run: {"passed": len(t), "also_on_fake": len(t & fake)}
            for run, t in sorted(passed.items())}
    every = len(set.intersection(fake, *passed.values())) if passed else None
    return {"runs": table, "conformance": {"fake": len(fake), "real": real,
                                           "fake_and_every_profile": every}}


def main(argv: list[str]) -> int:
    source = None
    if argv[:1] == ["--source"] and len(argv) > 1:
        source, argv = argv[1], argv[2:]
    paths = [Path(a) for a in argv if Path(a).is_file()]
    if not paths:
        print("tools/fidelity.py: no junit files given (run tools/test first)", file=sys.stderr)
        return 1
    # the commit of the checkout the results came from (results/ lies inside it)
    commit = subprocess.run(["git", "-C", str(paths[0].resolve().parent), "rev-parse", "--short",
                             "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    doc = {"recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit or "unknown",
           "command": source or "python3 tools/fidelity.py " + " ".join(map(str, paths)),
           **figures(paths)}
    OUT.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(TOP)}: " + ", ".join(
        f"{r['run']} {r['passed']}/{r['failed']}/{r['skipped']}" for r in doc["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
