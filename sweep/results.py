"""The Pareto front of a finished sweep, published on its parent run; the front and budgets as
text for the command line.

Reads go through ``sweep.store``; figures are drawn by the publishers the command line wires in
(``sweep.plugins``), never here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from trainers.records import COST_FRACTION, PARETO_ACCURACY_OF, SEED_ACCURACY, SEED_COST

from . import faults
from .pareto import ParetoResult, budget_report, pareto_front
from .store import TAG_KNEE, TAG_PARETO, SweepStore
from .tracking import SweepTracker


def front(store: SweepStore) -> ParetoResult:
    """The front of every target, within its own rows (``pareto_front`` grouped by target)."""
    return pareto_front(store.results(), cost="cost", accuracy="accuracy", group="target")


def budget_table(store: SweepStore, budgets: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """The best trial within each budget (the sweep's own, or ``budgets``) and its distance."""
    saved, costs = store.budgets()
    table = store.results()
    for target in budgets or saved:
        if target not in costs:
            rows = table[(table["target"] == target) & (table[SEED_COST].notna())]
            if rows.empty:
                known = sorted(set(table["target"]))
                raise ValueError(
                    f"sweep {store.sweep!r} has no finished trial for target {target!r}; its "
                    f"targets: {known}"
                )
            costs[target] = float(rows[SEED_COST].median())
    return budget_report(table, budgets or saved, costs)


def publish_pareto(tracker: SweepTracker, store: SweepStore, config: Any) -> ParetoResult | None:
    """Computes the front per target and logs it to the parent run: the front as a table
    (``pareto/pareto.csv``), the budgets' best trials, and on each trial whether it is on the
    front or the knee (tags) and, on the front's, ``pareto_accuracy/<target>`` (the metric of
    MLflow's Pareto scatter). Returns the front, or None when the sweep has no trial."""
    table = store.results()
    if table.empty:
        return None
    result = pareto_front(table, cost="cost", accuracy="accuracy", group="target")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result.table.to_csv(out / "pareto.csv", index=False)
        tracker.log_artifact(None, out / "pareto.csv", "pareto")
        faults.point("publish")  # the reliability tests kill the driver here
        if getattr(config, "budgets", None):
            report = budget_table(store)
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
                key = PARETO_ACCURACY_OF.format(target=row["target"])
                tracker.log_metrics(trial, {key: row["accuracy"]}, step=0)
    return result


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
        COST_FRACTION,
        "accuracy",
        "knee",
    ]
    if rows.empty:
        return "no finished trials yet"
    text = rows[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return "\n".join([text, *_seed_lines(result.table)])


def _seed_lines(table: pd.DataFrame) -> list[str]:
    """Per target, the trained seed network the front is measured against (when the trials
    started from one): its cost and its accuracy before any learning."""
    lines = []
    for target, rows in table.groupby("target"):
        known = rows[SEED_ACCURACY].dropna()
        if len(known):
            cost = float(rows[SEED_COST].dropna().median())
            lines.append(
                f"seed network ({target}): cost {cost:.4g} (1), accuracy {known.median():.4g} "
                f"before learning"
            )
    return lines
