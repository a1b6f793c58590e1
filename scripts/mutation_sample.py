"""Estimate the mutation score of every module in ``[tool.mutmut]`` from a random sample of mutants.

A full `make mutation` runs 13,640 mutants: days on a 2-core machine. A simple random sample
of n mutants, stratified by module (each module gets its share of the n in proportion to its
mutant count), gives the score over all of them with a known error: the estimate is the
mutant-count-weighted mean of the modules' sample scores, with a 95% interval from the stratified
variance (finite-population corrected). Per module the sample is small, so the per-module lines
are indications; the overall line is the figure.

    python scripts/mutation_sample.py --n 300 --seed 0            # generate, sample, run, report
    python scripts/mutation_sample.py --n 300 --seed 0 --report   # report again (after triage)
    python scripts/mutation_sample.py --n 300 --seed 0 --rerun-survivors   # after writing tests
    python scripts/mutation_sample.py --n 300 --seed 0 --no-tests-with tests/test_out_of_core.py ...

Steps: copy the tree into a scratch folder (scripts/mutation_module.py), let mutmut generate
every mutant there (the names are those of a full run), draw the sample with numpy's generator
from ``--seed``, run only those names (``mutmut run NAMES``), and count them from mutmut's results.
Survivors are printed for triage; those triaged as equivalent are listed, one name per line with
the reason after a ``#``, in ``benchmarks/mutation_equivalent.txt`` and reported apart.
Mutants that no test in the selection executes ("no tests") count as survivors: nothing caught them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_module import ROOT, prepare  # noqa: E402
from mutation_scores import KILLED, NO_TESTS, SURVIVED  # noqa: E402

GENERATE = """
from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants, setup_source_paths
from mutmut.mutation.trampoline import set_mutant_under_test
set_mutant_under_test("mutant_generation")
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants({jobs})
"""


def all_mutants(work: Path) -> dict[str, list[str]]:
    """Module file -> the names of its mutants, from mutmut's .meta files (sorted)."""
    out = {}
    for meta in sorted((work / "mutants").glob("explorer/**/*.py.meta")):
        names = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        if names:
            out[str(meta.relative_to(work / "mutants"))[:-len(".meta")]] = names
    return out


def allocate(sizes: list[int], n: int) -> list[int]:
    """Proportional allocation of n draws over strata of these sizes (largest remainders), each
    stratum at least 1 draw and at most its size."""
    sizes = np.asarray(sizes, dtype=float)
    share = n * sizes / sizes.sum()
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take))[: n - take.sum()]:
        take[i] += 1
    return [int(min(max(t, 1), s)) for t, s in zip(take, sizes.astype(int))]


def draw(mutants: dict[str, list[str]], n: int, seed: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    mods = list(mutants)
    counts = allocate([len(mutants[m]) for m in mods], n)
    return {m: sorted(rng.choice(mutants[m], size=c, replace=False).tolist()) for m, c in zip(mods, counts)}


def stratified_estimate(strata: list[tuple[int, int, int]]) -> tuple[float, float]:
    """(estimate, half-width of its 95% interval) of the overall proportion from strata of
    (population size N_h, sample size n_h, successes k_h)."""
    N = sum(s[0] for s in strata)
    est = sum(Nh / N * kh / nh for Nh, nh, kh in strata if nh)
    var = sum((Nh / N) ** 2 * (kh / nh) * (1 - kh / nh) / max(nh - 1, 1) * (1 - nh / Nh)
              for Nh, nh, kh in strata if nh)
    return est, 1.96 * var ** 0.5


def equivalents(path: Path) -> dict[str, str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, why = line.partition("#")
            if name.strip():
                out[name.strip()] = why.strip()
    return out


def results(work: Path) -> dict:
    codes = {}
    for meta in (work / "mutants").glob("explorer/**/*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def report(work: Path, sample: dict[str, list[str]], totals: dict[str, int], equiv: dict[str, str],
           also: tuple = ()) -> int:
    codes = results(work)
    for extra in also:  # runs with a wider test selection, for the mutants no test here executed
        for name, code in results(Path(extra)).items():
            if code is not None and codes.get(name) in NO_TESTS | {None}:
                codes[name] = code
    raw, clean, survivors, pending = [], [], [], 0
    print(f"{'module':36s} {'mutants':>7s} {'sampled':>7s} {'killed':>6s} {'survived':>8s} {'no tests':>8s} {'equiv.':>6s}")
    for mod, names in sample.items():
        k = s = nt = eq = 0
        for name in names:
            c = codes.get(name)
            if c is None or not (c in KILLED or c in SURVIVED or c in NO_TESTS):
                pending += 1
                continue
            if c in KILLED:
                k += 1
                continue
            nt += c in NO_TESTS
            s += c in SURVIVED
            if name in equiv:
                eq += 1
            else:
                survivors.append(f"{name}  ({'no tests' if c in NO_TESTS else 'survived'})")
        n_run = k + s + nt
        raw.append((totals[mod], n_run, k))
        clean.append((totals[mod], n_run - eq, k))
        print(f"{mod:36s} {totals[mod]:7d} {len(names):7d} {k:6d} {s:8d} {nt:8d} {eq:6d}")
    est, hw = stratified_estimate(raw)
    est2, hw2 = stratified_estimate(clean)
    n_run = sum(r[1] for r in raw)
    print(f"\n{n_run} of {sum(len(v) for v in sample.values())} sampled mutants run "
          f"(of {sum(totals.values())} in all){f'; {pending} not run yet' if pending else ''}")
    print(f"estimated mutation score, every mutant counted:   {100 * est:5.1f}% +- {100 * hw:.1f} (95%)")
    print(f"estimated mutation score, equivalents set apart: {100 * est2:5.1f}% +- {100 * hw2:.1f} (95%)")
    if survivors:
        print("\nsurvivors not triaged as equivalent:")
        print("\n".join("  " + s for s in survivors))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="sample size over all modules")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default="/tmp/mutation/sample", help="scratch folder")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tests", nargs="+", help="test selection (default: pyproject's)")
    ap.add_argument("--report", action="store_true", help="only report the results already there")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="copy the tree again (new tests) and rerun the sample's untriaged survivors, "
                         "its untested mutants and those reset by a code change")
    ap.add_argument("--no-tests-with", nargs="+", metavar="TEST",
                    help="run the sampled mutants that no selected test executed in <dir>-no-tests, "
                         "with these test files (their results replace 'no tests')")
    ap.add_argument("--equivalent", default=str(ROOT / "benchmarks" / "mutation_equivalent.txt"))
    args = ap.parse_args(argv)
    work = Path(args.dir)
    side = work.with_name(work.name + "-no-tests")
    equiv = equivalents(Path(args.equivalent))
    mutmut = str(Path(sys.executable).with_name("mutmut"))

    def run(folder: Path, names: list[str], tests=None) -> None:
        env = prepare(folder, tests=tests)
        if not (folder / "mutants").is_dir() or not any((folder / "mutants").glob("explorer/**/*.meta")):
            subprocess.run([sys.executable, "-c", GENERATE.format(jobs=args.jobs)], cwd=folder, env=env,
                           check=True, stdout=subprocess.DEVNULL)
        if names:
            subprocess.run([mutmut, "run", "--max-children", str(args.jobs), *names], cwd=folder, env=env)

    # the sample is drawn once, from every mutant's name, and kept: later code changes add or
    # renumber mutants, and a redraw would be another sample
    fresh = not (work / "sample.json").exists()
    if fresh:
        if args.report:
            sys.exit(f"no sample in {work}: run without --report first")
        run(work, [])  # generate only
        mutants = all_mutants(work)
        kept = {"seed": args.seed, "n": args.n, "totals": {m: len(v) for m, v in mutants.items()},
                "sample": draw(mutants, args.n, args.seed)}
        (work / "sample.json").write_text(json.dumps(kept, indent=1))
    kept = json.loads((work / "sample.json").read_text())
    sample = kept["sample"]
    names = [n for v in sample.values() for n in v]
    if fresh:
        run(work, names, args.tests)
    elif args.rerun_survivors:
        # the untriaged survivors, the mutants no test ran, and any mutmut reset because its
        # function changed; mutmut keeps the tests it traced per function and does not retrace a
        # test whose body changed, so the trace is redone (a few minutes)
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        codes = results(work)
        run(work, [n for n in names if codes.get(n) is None
                   or (codes.get(n) in SURVIVED | NO_TESTS and n not in equiv)], args.tests)
    if args.no_tests_with and not args.report:
        codes = results(work)
        run(side, [n for n in names if codes.get(n) in NO_TESTS and n not in equiv], args.no_tests_with)
    also = (side,) if side.is_dir() else ()
    return report(work, sample, kept["totals"], equiv, also)


if __name__ == "__main__":
    sys.exit(main())
