"""``make quality-finetune``: does structure learning from a trained seed beat learning from
fresh weights, at the same budgets?

Per benchmark of the quality study (its seed network and recipe): trains the seed network
(twice the recipe's epochs), saves it as a ``.keras`` file, then runs two sweeps through the
real sweep service that differ only in ``trial.init`` (``pretrained`` against ``scratch``), the
same strengths, algorithms and retrain recipe (``retrain_init: scratch``). Prints, for each, the
best retrained accuracy at or under 25%, 50% and 75% of the seed's FLOPs and the sweep's wall
time, and writes ``<out>/finetune.csv``.

    python tests/benchmarks/finetune_study.py [--benchmarks digits,mnist1d] [--seeds 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.quality_study import BENCHMARKS, LEVELS, best_at  # noqa: E402

ALGORITHMS = ("gamma", "group_lasso")
INITS = ("pretrained", "scratch")


def train_seed(name: str, recipe: dict[str, Any], out: Path) -> tuple[Path, float]:
    """The benchmark's seed network trained for twice its recipe's epochs; (path, accuracy)."""
    from trainers.data import load_dataset
    from trainers.models import build_model
    from trainers.morphnet.keras3.backend import keras
    from trainers.training import compile_for_training

    data = load_dataset(recipe["dataset"]).resized(recipe.get("image_size"))
    model = build_model(
        recipe["model"], data.input_shape, data.num_classes, recipe["model_width"], seed=0
    )
    steps = -(-len(data.x_train) // recipe["batch_size"]) * 2 * recipe["epochs"]
    rate = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=steps)
    compile_for_training(model, keras.optimizers.Adam(rate), jit_compile=False)
    model.fit(
        data.x_train,
        data.y_train,
        epochs=2 * recipe["epochs"],
        batch_size=recipe["batch_size"],
        verbose=0,
    )
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]
    path = out / f"{name}_seed.keras"
    model.save(str(path))
    return path, float(accuracy)


def sweep_config(
    name: str, recipe: dict[str, Any], seed_file: Path, init: str, out: Path, seeds: list[int]
) -> dict[str, Any]:
    trial = {k: v for k, v in recipe.items() if k not in ("model", "model_width")}
    return {
        "name": f"finetune-{name}-{init}",
        "trial": {**trial, "model": str(seed_file), "init": init, "export_every_steps": 1000},
        "algorithms": list(ALGORITHMS),
        "targets": ["flops"],
        "strengths": {"decades_below": 0, "decades_above": 1.5, "points_per_decade": 2},
        "seeds": seeds,
        "baseline": {"widths": [1.0]},
        "resources": {"cpus": 1},
        "max_concurrent": 2,
        "retries": 1,
        "early_stop": "degenerate",
        "workdir": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmarks", default="digits,mnist1d")
    parser.add_argument("--seeds", default="0", help="comma-separated trial seeds")
    parser.add_argument("--out", default=str(ROOT / "morphsweep_runs" / "finetune"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import pandas as pd

    from sweep.config import load_sweep_config
    from sweep.driver import run_sweep
    from sweep.store import results_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        seed_file, accuracy = train_seed(name, BENCHMARKS[name], out)
        print(f"{name}: seed trained to {accuracy:.3f} validation accuracy", flush=True)
        for init in INITS:
            config = load_sweep_config(
                sweep_config(name, BENCHMARKS[name], seed_file, init, out, seeds)
            )
            began = time.monotonic()
            run_sweep(config, verbose=0, publishers=[])
            seconds = time.monotonic() - began
            table = results_table(config.resolved_tracking_uri, config.name)
            table = table[(table["status"] == "FINISHED") & (table["algorithm"] != "baseline")]
            table = table.dropna(subset=["cost_fraction", "accuracy"])
            row = {"benchmark": name, "init": init, "seed accuracy": accuracy}
            row |= {f"acc@{int(lv * 100)}%": best_at(table, lv) for lv in LEVELS}
            row |= {"trials": len(table), "wall s": round(seconds)}
            rows.append(row)
            print(row, flush=True)
    result = pd.DataFrame(rows)
    result.to_csv(out / "finetune.csv", index=False)
    print("\n| " + " | ".join(result.columns) + " |\n|" + "---|" * len(result.columns))
    for values in result.itertuples(index=False):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in values]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
