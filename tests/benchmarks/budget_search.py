"""``make quality-budget``: how many trials the adaptive search needs to land a budget, on real
training, over 3 seeds.

One adaptive sweep through the real sweep service (local Ray, a local MLflow store) on digits,
the zoo ResNet at width 16 (4 learn epochs, 1 retrain epoch, batch 32), toward 25% of the seed's
FLOPs within 5%, ``max_trials: 8`` per algorithm and seed, Gamma and GroupLasso, seeds 0, 1 and 2
(each seed its own search: its own seed network weights, data split and shuffling). It prints,
per algorithm and seed, the trials it took to get within the tolerance (or "not met") and the
nearest trial's distance from the budget, then per algorithm the median and range over seeds,
and writes ``<out>/budget_search.csv``.

This is a quality figure, not a test: GroupLasso's strength -> cost map is steep, so whether 8
trials land within 5% varies with the seed; the README reports what this script measured.

    .venv/bin/python tests/benchmarks/budget_search.py [--seeds 0,1,2] [--max-trials 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ALGORITHMS = ("gamma", "group_lasso")
BUDGET = 0.25
TOLERANCE = 0.05
TRIAL = {
    "model": "zoo:resnet",
    "model_width": 16,
    "dataset": "digits",
    "epochs": 4,
    "retrain_epochs": 1,
    "batch_size": 32,
    "export_every_steps": 1000,
}


def measure(out: Path, seeds: list[int], max_trials: int) -> list[dict]:
    from sweep.config import load_sweep_config
    from sweep.driver import run_sweep
    from sweep.store import results_table

    shutil.rmtree(out / "sweep", ignore_errors=True)
    config = load_sweep_config(
        {
            "name": "budget-search",
            "trial": TRIAL,
            "algorithms": list(ALGORITHMS),
            "targets": ["flops"],
            "seeds": seeds,
            "search": "adaptive",
            "budgets": {"flops": [BUDGET]},
            "max_trials": max_trials,
            "budget_tolerance": TOLERANCE,
            "baseline": {"widths": []},
            "early_stop": "degenerate",
            "resources": {"cpus": 1},
            "max_concurrent": 2,
            "workdir": str(out / "sweep"),
        }
    )
    started = time.perf_counter()
    run_sweep(config, verbose=0)
    minutes = (time.perf_counter() - started) / 60
    state = json.loads(
        (Path(config.resolved_storage_path) / config.name / "adaptive_search.json").read_text()
    )
    table = results_table(config.resolved_tracking_uri, config.name)
    rows = []
    for group in state["groups"].values():
        budget = group["budgets"][0]
        mine = table[(table["algorithm"] == group["algorithm"]) & (table["seed"] == group["seed"])]
        # the nearest trial by its final cost: rebuilt when it finished, else the last predicted
        fractions = [p["cost_fraction"] for p in group["points"].values() if p["cost_fraction"]]
        nearest = min(fractions, key=lambda f: abs(f / BUDGET - 1)) if fractions else float("nan")
        rows.append(
            {
                "algorithm": group["algorithm"],
                "seed": group["seed"],
                "trials_to_meet": budget["trials_to_meet"],
                "trials": len(group["suggested"]),
                "nearest_fraction": nearest,
                "nearest_distance": nearest / BUDGET - 1,
                "finished_trials": int((mine["status"] == "FINISHED").sum()),
                "sweep_minutes": minutes,
            }
        )
    return rows


def report(rows: list[dict], max_trials: int) -> str:
    lines = [
        f"adaptive search toward {BUDGET:.0%} of the seed's FLOPs within {TOLERANCE:.0%}, "
        f"max_trials {max_trials} (digits, zoo ResNet width 16, 4 + 1 epochs)",
        f"{'algorithm':<12} {'seed':>4}  {'trials to meet':>14}  {'nearest':>8}  {'distance':>8}",
    ]
    for row in sorted(rows, key=lambda r: (r["algorithm"], r["seed"])):
        met = str(row["trials_to_meet"]) if row["trials_to_meet"] else f"not in {row['trials']}"
        lines.append(
            f"{row['algorithm']:<12} {row['seed']:>4}  {met:>14}  "
            f"{row['nearest_fraction']:>8.1%}  {row['nearest_distance']:>+8.1%}"
        )
    for algorithm in ALGORITHMS:
        mine = [r for r in rows if r["algorithm"] == algorithm]
        met = [r["trials_to_meet"] for r in mine if r["trials_to_meet"]]
        spread = (
            f"median {statistics.median(met):g}, {min(met)}-{max(met)} trials" if met else "never"
        )
        lines.append(f"{algorithm}: met in {len(met)} of {len(mine)} seeds ({spread})")
    lines.append(f"sweep wall time {rows[0]['sweep_minutes']:.1f} min")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--out", default="morphsweep_runs/bench", help="output directory")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds or args.max_trials < 4:
        parser.error("give at least one seed and --max-trials >= 4 (3 initial strengths + 1)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = measure(out, seeds, args.max_trials)
    print(report(rows, args.max_trials))
    with open(out / "budget_search.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written {out / 'budget_search.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
