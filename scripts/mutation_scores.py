"""Per-module mutation scores from mutmut 3's results in mutants/ (run `make mutation` first).

score = killed (incl. timeouts) / (killed + survived) over the mutants that were run; mutants
not run yet ("not checked") and those no test executes ("no tests") are counted apart, so a
partial run (`make mutation MUTANTS='explorer.metrics.sigreg*'`) reports only what it ran."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255}          # test failure / pytest error / timeout
SURVIVED = {0}
NO_TESTS = {5, 33}


def main(root: str = "mutants") -> int:
    rows = []
    for meta in sorted(Path(root).glob("explorer/**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        c = Counter()
        for code in codes.values():
            c["killed" if code in KILLED else "survived" if code in SURVIVED
              else "no tests" if code in NO_TESTS else "not run" if code is None else "other"] += 1
        tested = c["killed"] + c["survived"]
        if not tested:
            continue
        module = str(meta.relative_to(root))[:-len(".meta")]
        rows.append((module, c["killed"], c["survived"], c["no tests"], c["not run"], 100.0 * c["killed"] / tested))
    print(f"{'module':40s} {'killed':>7s} {'survived':>8s} {'no tests':>8s} {'not run':>7s} {'score':>6s}")
    for m, k, s, nt, nr, sc in rows:
        print(f"{m:40s} {k:7d} {s:8d} {nt:8d} {nr:7d} {sc:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
