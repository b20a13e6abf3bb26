"""Sweep results from MLflow as a pandas table; the Pareto front published on the parent run.

Reading results imports MLflow and pandas, never TensorFlow or Ray.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .pareto import ParetoResult, pareto_front
from .tracking import PARENT_ID, TAG_KNEE, TAG_PARETO, TAG_REASON, TAG_ROLE, TAG_TRIAL, SweepTracker

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
                "failure_reason": run.data.tags.get(TAG_REASON, ""),
                "run_id": run.info.run_id,
                "run_url": f"{base.rstrip('/')}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}",
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    # failed or unfinished trials stay in the table but never enter the front
    table.loc[table["status"] != "FINISHED", ["cost", "accuracy"]] = float("nan")
    return table.sort_values(["target", "algorithm", "cost"], kind="stable").reset_index(drop=True)


def front(tracking_uri: str, sweep: str) -> ParetoResult:
    return pareto_front(
        results_table(tracking_uri, sweep), cost="cost", accuracy="accuracy", group="target"
    )


def publish_pareto(tracker: SweepTracker, config: Any) -> dict[str, Any]:
    """Compute the front per target, log table and plots to the parent run, tag the children."""
    from dashboards.pareto import pareto_html, pareto_png

    table = results_table(tracker.uri, tracker.sweep)
    if table.empty:
        return {"results": 0}
    result = pareto_front(table, cost="cost", accuracy="accuracy", group="target")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result.table.to_csv(out / "pareto.csv", index=False)
        tracker.log_artifact(None, out / "pareto.csv", "pareto")
        for target, rows in result.table.groupby("target"):
            if rows[["cost", "accuracy"]].dropna().empty:
                continue
            sub = pareto_front(rows, cost="cost", accuracy="accuracy")
            label = _cost_label(str(target), config)
            title = f"{tracker.sweep}: {label} vs retrained accuracy"
            png = pareto_png(
                sub, out / f"pareto_{target}.png", series="algorithm", title=title, cost_label=label
            )
            html = pareto_html(
                sub,
                out / f"pareto_{target}.html",
                series="algorithm",
                title=title,
                link_column="run_url",
                hover_columns=("trial_id", "strength", "width", "cost", "accuracy"),
            )
            tracker.log_artifact(None, png, "pareto")
            tracker.log_artifact(None, html, "pareto")
    for _, row in result.table.iterrows():
        if row["status"] == "FINISHED":
            tracker.set_tags(
                str(row["trial_id"]),
                {
                    TAG_PARETO: str(bool(row["pareto"])).lower(),
                    TAG_KNEE: str(bool(row["knee"])).lower(),
                },
            )
    return {"results": int(len(table)), "pareto": int(result.table["pareto"].sum())}


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
