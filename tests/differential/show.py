"""Show one generated sequence, and what a recording and the fake answered to each op.

usage: python -m tests.differential.show MODE SEED [RECORDING]

Without a recording the ops are run on a standard fake host.  With one, the fake is laid out like
the recording's guest and every sequence before SEED is replayed first (the guest ran them all in
one boot), then each op of SEED is printed with the real and the fake result.
"""

from __future__ import annotations

import sys

from tests.differential.fakehost import fake_for
from tests.differential.gen import sequence
from tests.differential.harness import linux_version, run_sequences
from tests.differential.recording import Recording
from tests.differential.runner import Runner, decode
from tests.differential.test_replay import op_label, result_text

STANDARD = {"profile": "fake", "kernel": "6.12", "iommufd": True, "noiommu": False, "thp": True,
            "devices": [{"bdf": "0000:00:01.0", "group": 1, "cdev": "vfio0"},
                        {"bdf": "0000:02:01.0", "group": 6, "cdev": "vfio1"},
                        {"bdf": "0000:02:02.0", "group": 6, "cdev": "vfio2"}]}


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    mode, seed = argv[0], int(argv[1])
    rec = Recording.load(argv[2]) if len(argv) == 3 else None
    header = rec.header if rec else STANDARD
    kernel, env = fake_for(header)
    bdfs = [d["bdf"] for d in header["devices"]]
    runner = Runner(kernel, env)
    linux = linux_version(header["kernel"])
    real: list[tuple[int, int, bytes | None]] = []
    if rec:
        for m in rec.header["order"]:
            seqs = rec.sequences[m]
            upto = [s for s, _, _ in seqs if m != mode or s < seed]
            for _ in run_sequences(runner, m, upto, bdfs, linux):
                pass
            if m == mode:
                real = next((decode(b) for s, _, b in seqs if s == seed), [])
                break
    ops = sequence(mode, seed, bdfs, linux)
    fake = decode(runner.run(ops))
    runner.close()
    for i, res in enumerate(fake):
        label = op_label(ops[i]) if i < len(ops) else "teardown close"
        differs = bool(real) and (i >= len(real) or real[i] != res)
        print(f"{'>>' if differs else '  '} {i:3d} {label}")
        if real and i < len(real):
            print(f"       real: {result_text(real[i])}")
        print(f"       fake: {result_text(res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
