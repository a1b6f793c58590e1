"""Mutation-test one module against the test files that cover it, in a scratch copy of the tree.

`make mutation` mutates every module of `[tool.mutmut]` and first traces the whole test selection,
which takes hours on a small machine. This script copies the working tree (tracked and untracked,
not ignored files) into a scratch folder, narrows `only_mutate` to the given module(s) and
`pytest_add_cli_args_test_selection` to the given test files, runs mutmut there and prints the
per-module scores (scripts/mutation_scores.py). The mutant names are the same as in a full run.

    python scripts/mutation_module.py explorer/metrics/sigreg.py \
        --tests tests/metrics/test_collapse.py tests/finetune/test_sigreg_objectives.py
    python scripts/mutation_module.py explorer/metrics/sigreg.py --tests ... -- 'explorer.metrics.sigreg.x_epps*'

The scratch folder (default /tmp/mutation/<module>) keeps mutmut's results between runs: a rerun
copies the tree again and mutmut reruns only what changed plus the mutant names given after `--`
(to recheck survivors once a test is added)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def prepare(work: Path, modules: list[str] | None = None, tests: list[str] | None = None) -> dict:
    """Copy the working tree into ``work``, narrow ``only_mutate`` / the test selection to
    ``modules`` / ``tests`` when given, and return the environment mutmut runs under there."""
    work.mkdir(parents=True, exist_ok=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            dst = work / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    py = (work / "pyproject.toml").read_text()
    if modules:
        py = re.sub(r"(?ms)^only_mutate = \[.*?\]\n", f"only_mutate = {toml_list(modules)}\n", py)
    if tests:
        py = re.sub(r"(?ms)^pytest_add_cli_args_test_selection = \[.*?\]\n",
                    f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n", py)
    (work / "pyproject.toml").write_text(py)
    cache = work / "mutants" / ".numba-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", NUMBA_CACHE_DIR=str(cache))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+", help="files to mutate, e.g. explorer/metrics/sigreg.py")
    ap.add_argument("--tests", nargs="+", required=True, help="test files or folders to run")
    ap.add_argument("--dir", help="scratch folder (default /tmp/mutation/<first module>)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("names", nargs="*", default=[], help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args(argv)
    names = [r for r in rest if r != "--"] + args.names
    slug = args.modules[0].replace("/", ".").removesuffix(".py")
    work = Path(args.dir or f"/tmp/mutation/{slug}")
    env = prepare(work, args.modules, args.tests)
    mutmut = Path(sys.executable).with_name("mutmut")
    rc = subprocess.run([str(mutmut), "run", "--max-children", str(args.jobs), *names], cwd=work, env=env).returncode
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation_scores.py"), str(work / "mutants")])
    return rc


if __name__ == "__main__":
    sys.exit(main())
