"""Sweep results from MLflow as a pandas table; the Pareto front published on the parent run.

Reading results imports MLflow and pandas, never TensorFlow or Ray.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from . import faults
from .pareto import ParetoResult, budget_report, pareto_front
from .tracking import (
    PARENT_ID,
    TAG_BUDGETS,
    TAG_KNEE,
    TAG_PARETO,
    TAG_REASON,
    TAG_ROLE,
    TAG_SEED_COSTS,
    TAG_STOPPED,
    TAG_STOPPED_REASON,
    TAG_TRIAL,
    SweepTracker,
)

COLUMNS = [
    "trial_id",
    "algorithm",
    "target",
    "seed",
    "multiplier",
    "strength",
    "width",
    "status",
    "cost",
    "accuracy",
    "seed_cost",
    "cost_fraction",
    "failure_reason",
    "stopped",
    "run_id",
    "run_url",
]


class SweepNotFound(LookupError):
    """No sweep of that name in the tracking store."""


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def results_table(tracking_uri: str, sweep: str) -> pd.DataFrame:
    """One row per trial of the sweep: its settings, status, rebuilt cost and retrained accuracy."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        known = [e.name for e in client.search_experiments()]
        raise SweepNotFound(f"no sweep named {sweep!r} in {tracking_uri}; known sweeps: {known}")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'trial'", max_results=5000
    )
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'parent'"
    )
    parent_id = parents[0].info.run_id if parents else None
    base = tracking_uri if tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    rows = []
    for run in runs:
        if parent_id and run.data.tags.get(PARENT_ID) != parent_id:
            continue
        params, metrics = run.data.params, run.data.metrics
        rows.append(
            {
                "trial_id": run.data.tags.get(TAG_TRIAL, run.info.run_name),
                "algorithm": params.get("algorithm", ""),
                "target": params.get("target", ""),
                "seed": int(_number(params.get("seed", 0)) or 0),
                "multiplier": _number(params.get("multiplier")),
                "strength": _number(params.get("strength")),
                "width": _number(params.get("width")),
                "status": run.info.status,
                "cost": metrics.get("rebuilt_cost", float("nan")),
                "accuracy": metrics.get("retrained_val_accuracy", float("nan")),
                "seed_cost": metrics.get("seed_cost", float("nan")),
                "cost_fraction": metrics.get("cost_fraction", float("nan")),
                "failure_reason": run.data.tags.get(
                    TAG_REASON, run.data.tags.get(TAG_STOPPED_REASON, "")
                ),
                "stopped": run.data.tags.get(TAG_STOPPED, ""),
                "run_id": run.info.run_id,
                "run_url": f"{base.rstrip('/')}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}",
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    # failed or unfinished trials stay in the table but never enter the front
    table.loc[table["status"] != "FINISHED", ["cost", "accuracy"]] = float("nan")
    # the trial id breaks ties: every later choice (front, knee, pick) reads rows in this order,
    # which then does not depend on the order MLflow returns runs in
    order = ["target", "algorithm", "cost", "trial_id"]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def sweep_budgets(tracking_uri: str, sweep: str) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The budgets and seed costs a sweep ran with (tags of its parent run)."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        raise SweepNotFound(f"no sweep named {sweep!r} in {tracking_uri}")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'parent'"
    )
    tags = parents[0].data.tags if parents else {}
    return json.loads(tags.get(TAG_BUDGETS, "{}")), json.loads(tags.get(TAG_SEED_COSTS, "{}"))


def budget_table(
    tracking_uri: str, sweep: str, budgets: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """The best trial within each budget (the sweep's own, or ``budgets``) and its distance."""
    saved, costs = sweep_budgets(tracking_uri, sweep)
    table = results_table(tracking_uri, sweep)
    for target in budgets or saved:
        if target not in costs:
            rows = table[(table["target"] == target) & (table["seed_cost"].notna())]
            if rows.empty:
                known = sorted(set(table["target"]))
                raise ValueError(
                    f"sweep {sweep!r} has no finished trial for target {target!r}; its targets: {known}"
                )
            costs[target] = float(rows["seed_cost"].median())
    return budget_report(table, budgets or saved, costs)


def front(tracking_uri: str, sweep: str) -> ParetoResult:
    return pareto_front(
        results_table(tracking_uri, sweep), cost="cost", accuracy="accuracy", group="target"
    )


def publish_pareto(tracker: SweepTracker, config: Any) -> dict[str, Any]:
    """Compute the front per target, log table and plots to the parent run, tag the children."""
    from dashboards.pareto import pareto_figure, pareto_png

    table = results_table(tracker.uri, tracker.sweep)
    if table.empty:
        return {"results": 0}
    result = pareto_front(table, cost="cost", accuracy="accuracy", group="target")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result.table.to_csv(out / "pareto.csv", index=False)
        tracker.log_artifact(None, out / "pareto.csv", "pareto")
        faults.point("publish")  # the reliability tests kill the driver here
        for target, rows in result.table.groupby("target"):
            if rows[["cost", "accuracy"]].dropna().empty:
                continue
            sub = pareto_front(rows, cost="cost", accuracy="accuracy")
            label = _cost_label(str(target), config)
            title = f"{tracker.sweep}: {label} vs retrained accuracy"
            # the MLflow UI shows both in the parent run's artifact view
            png = pareto_png(sub, None, series="algorithm", title=title, cost_label=label)
            tracker.log_figure(None, png, f"pareto/pareto_{target}.png")
            figure = pareto_figure(
                sub,
                series="algorithm",
                title=title,
                cost_label=label,
                link_column="run_url",
                hover_columns=("trial_id", "strength", "width", "cost", "accuracy"),
            )
            tracker.log_figure(None, figure, f"pareto/pareto_{target}.html")
        if getattr(config, "budgets", None):
            report = budget_table(tracker.uri, tracker.sweep)
            report.to_csv(out / "budgets.csv", index=False)
            tracker.log_artifact(None, out / "budgets.csv", "pareto")
            _log_budgets(tracker, report)
    for _, row in result.table.iterrows():
        if row["status"] == "FINISHED":
            trial = str(row["trial_id"])
            tracker.set_tags(
                trial,
                {
                    TAG_PARETO: str(bool(row["pareto"])).lower(),
                    TAG_KNEE: str(bool(row["knee"])).lower(),
                },
            )
            if bool(row["pareto"]):
                # on the front's trials only: MLflow's chart view plots it as its own scatter
                accuracy = {f"pareto_accuracy/{row['target']}": row["accuracy"]}
                tracker.log_metrics(trial, accuracy, step=0)
    return {"results": int(len(table)), "pareto": int(result.table["pareto"].sum())}


def _log_budgets(tracker: SweepTracker, report: pd.DataFrame) -> None:
    """Per budget on the parent run: the best trial (tag), its accuracy and distance (metrics)."""
    metrics = {}
    for _, row in report.iterrows():
        key = f"budget/{row['target']}/{row['budget']:.4g}"
        if isinstance(row["best_trial"], str):
            tracker.set_tags(None, {f"{key}/best_trial": row["best_trial"]})
            metrics[f"{key}/best_accuracy"] = float(row["best_accuracy"])
            metrics[f"{key}/best_distance"] = float(row["best_distance"])
        if isinstance(row["closest_trial"], str):
            metrics[f"{key}/closest_distance"] = float(row["closest_distance"])
    tracker.log_parent_metrics(metrics)


def format_budgets(report: pd.DataFrame) -> str:
    """Per budget: the most accurate trial within it and how far under the budget it is."""
    lines = []
    for _, row in report.iterrows():
        budget = f"{row['budget']:.0%} of seed" if row["budget"] <= 1 else f"{row['budget']:.4g}"
        head = f"{row['target']} <= {budget} ({row['budget_cost']:.4g})"
        if isinstance(row["best_trial"], str):
            text = (
                f"best {row['best_trial']}: cost {row['best_cost']:.4g} "
                f"({row['best_distance']:+.1%} from the budget), accuracy {row['best_accuracy']:.4f}"
            )
        else:
            text = "no trial within the budget"
        if isinstance(row["closest_trial"], str):
            text += f"; closest {row['closest_trial']} ({row['closest_distance']:+.1%})"
        lines.append(f"{head}: {text}")
    return "\n".join(lines)


def _cost_label(target: str, config: Any) -> str:
    if target == "latency":
        return f"{config.trial.get('hardware', 'P100')} latency (ns)"
    return {
        "flops": "FLOPs",
        "model_size": "model size (weights)",
        "activations": "activations",
    }.get(target, target)


def format_front(result: ParetoResult) -> str:
    """The front as a plain-text table (what `morphsweep pareto` prints)."""
    rows = result.table[result.table["pareto"]].sort_values(["target", "cost"])
    columns = [
        "target",
        "trial_id",
        "algorithm",
        "strength",
        "width",
        "cost",
        "cost_fraction",
        "accuracy",
        "knee",
    ]
    if rows.empty:
        return "no finished trials yet"
    return rows[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
