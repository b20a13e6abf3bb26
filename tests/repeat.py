"""``make test-repeat``: the sweep-level tests three times in a row, each in a fresh process; fails
if any run fails or if any result differs between runs.

Each run writes what its sweeps decided and produced (``MORPHSWEEP_REPEAT_DIR``: the adaptive
sweep's per-trial metrics, structures and suggestions; the scripted search's suggestions; the grid
sweep's per-trial metrics and front) as JSON; the runs' files must be identical. This catches
nondeterminism (threaded reductions, unseeded draws, decisions that follow the order Ray
delivers results in) before it reaches CI.

    .venv/bin/python tests/repeat.py [--runs 3] [pytest paths ...]
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP_TESTS = [
    "tests/sweep/test_adaptive_tune.py",
    "tests/sweep/test_adaptive_e2e.py",
    "tests/sweep/test_adaptive_twice.py",
    "tests/sweep/test_sweep_e2e.py",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("paths", nargs="*", default=SWEEP_TESTS)
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error(f"--runs must be at least 2 to compare runs, got {args.runs}")
    out = Path(tempfile.mkdtemp(prefix="morphsweep-repeat-"))
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        env = {**os.environ, "MORPHSWEEP_REPEAT_DIR": str(out / f"run{run}")}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        # on both cores, one module per worker, as make test runs them
        command += ["-n", "2", "--dist", "loadscope", "--no-loadscope-reorder", *args.paths]
        print(f"repeat {run}/{args.runs}: {' '.join(command[2:])}", flush=True)
        done = subprocess.run(command, cwd=ROOT, env=env)
        print(
            f"repeat {run}/{args.runs}: exit {done.returncode} in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if done.returncode != 0:
            print(f"FAILED: run {run} of the sweep-level tests failed", file=sys.stderr)
            return 1
    first = out / "run1"
    names = sorted(p.name for p in first.glob("*.json"))
    if not names:
        print(f"FAILED: the runs recorded no results under {first}", file=sys.stderr)
        return 1
    differ = 0
    for run in range(2, args.runs + 1):
        for name in names:
            a, b = first / name, out / f"run{run}" / name
            if not b.is_file():
                print(f"FAILED: run {run} did not record {name}", file=sys.stderr)
                differ += 1
                continue
            if a.read_text() != b.read_text():
                differ += 1
                diff = difflib.unified_diff(
                    a.read_text().splitlines(),
                    b.read_text().splitlines(),
                    f"run1/{name}",
                    f"run{run}/{name}",
                    lineterm="",
                    n=2,
                )
                print("\n".join(list(diff)[:60]), file=sys.stderr)
    if differ:
        print(
            f"FAILED: {differ} result file(s) differ between runs (kept in {out})", file=sys.stderr
        )
        return 1
    print(f"{args.runs} runs passed with identical results: {', '.join(names)} ({out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
