"""A finished sweep as its dashboard shows it, read from the store once: its finished trials
(facts, curves, structure), per target the front and the trial whose widths are shown (the
chosen one, else the knee), and the rows of the table of all trials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .charts import CURVE_METRICS, FrontChart, TrialHistory, fmt, front_chart, safe_link
from .pareto import ParetoResult, pareto_front
from .store import SweepStore

FACTS = ("algorithm", "target", "strength", "width", "cost", "accuracy")
COLUMNS = ("trial_id", "algorithm", "target", "strength", "width", "status", "cost", "accuracy")
COST_LABELS = {"flops": "FLOPs", "model_size": "model size (weights)"}
HOVER = ("trial_id", "strength", "width", "cost", "accuracy")  # of a trial's point, when set


def cost_label(target: str, hardware: str | None) -> str:
    """The axis label of a target's cost."""
    return (
        f"{hardware or 'P100'} latency (ns)"
        if target == "latency"
        else COST_LABELS.get(target, target)
    )


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial: its facts (the numbers that are set), curves and structure (None when
    it has none, or none that reads)."""

    trial_id: str
    target: str
    algorithm: str
    link: str | None
    facts: tuple[tuple[str, str], ...]
    history: TrialHistory
    structure: dict[str, Any] | None

    @property
    def logged_metrics(self) -> tuple[tuple[str, str], ...]:
        """The curve panels the trial has data for (a baseline never learns)."""
        logged = tuple((k, t) for k, t in CURVE_METRICS if self.history.metrics.get(k))
        return logged or CURVE_METRICS


@dataclass(frozen=True)
class Target:
    """A target's part of the sweep: its finished trials, front (None: no trial has a cost and
    accuracy yet), the trial whose widths are shown, and the chart's title and cost label."""

    target: str
    label: str
    title: str
    trials: tuple[FinishedTrial, ...]
    front: ParetoResult | None
    shown: FinishedTrial | None
    knee: bool  # the trial shown is the knee of the front

    def chart(self) -> FrontChart | None:
        """The front's chart: a point's hover names its trial, its link is its MLflow run."""
        if self.front is None:
            return None
        options = {"title": self.title, "cost_label": self.label, "link_column": "run_url"}
        return front_chart(self.front, hover_columns=HOVER, **options)


@dataclass(frozen=True)
class Overview:
    sweep: str
    store: str  # the tracking URI without its password
    table: pd.DataFrame
    trials: tuple[FinishedTrial, ...]
    targets: tuple[Target, ...]

    def rows(self) -> list[dict[str, Any]]:
        """The table of all trials: cells, status, failure reason, run link."""
        return [
            {
                "trial_id": row["trial_id"],
                "status": row["status"],
                "reason": str(row.get("failure_reason") or ""),
                "cells": ["" if pd.isna(row[c]) else fmt(row[c]) for c in COLUMNS],
                "link": safe_link(row["run_url"]),
            }
            for row in self.table.to_dict("records")
        ]


def finished_trial(store: SweepStore, row: dict[str, Any]) -> FinishedTrial:
    numbers = {k: row[k] for k in FACTS[2:] if isinstance(row[k], float) and pd.notna(row[k])}
    link = safe_link(row["run_url"])
    metrics = store.history(row["run_id"], [key for key, _ in CURVE_METRICS])
    history = TrialHistory(row["trial_id"], metrics, str(row["algorithm"]), link, numbers)
    facts = tuple((k, fmt(row[k])) for k in FACTS if pd.notna(row[k]))
    structure = store.structure(row["run_id"])
    return FinishedTrial(
        row["trial_id"], str(row["target"]), str(row["algorithm"]), link, facts, history, structure
    )


def overview(store: SweepStore, chosen: str | None = None) -> Overview:
    """The sweep in ``store``; ``chosen``: the trial whose widths its target shows.

    Raises:
        sweep.store.SweepNotFound: No sweep of that name in the tracking store.
        ValueError: ``chosen`` is not a finished trial with a structure.
    """
    table = store.results()
    finished = table[table["status"] == "FINISHED"].to_dict("records")
    trials = tuple(finished_trial(store, row) for row in finished)
    known = [t.trial_id for t in trials if t.structure is not None]
    if chosen is not None and chosen not in known:
        raise ValueError(
            f"trial {chosen!r} is not a finished trial of sweep {store.sweep!r} with a structure; "
            f"those are: {known}"
        )
    trial_params = store.trials()
    hardware = next(
        (t.params.get("hardware") for t in trial_params if t.params.get("target") == "latency"),
        None,
    )
    uri = re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", store.uri)  # no password on a page
    parts = targets(table, store.sweep, hardware, trials, chosen)
    return Overview(store.sweep, uri, table, trials, parts)


def targets(
    table: pd.DataFrame,
    sweep: str,
    hardware: str | None,
    trials: tuple[FinishedTrial, ...] = (),
    chosen: str | None = None,
) -> tuple[Target, ...]:
    """Per target of ``table`` (sorted), its front within its own rows and, of its ``trials``,
    the one whose widths are shown: ``chosen``, else the knee, else none."""
    parts = []
    for target in sorted({str(t) for t in table["target"].dropna()}):
        rows, front, knees = table[table["target"] == target], None, []
        if not rows[["cost", "accuracy"]].dropna().empty:
            front = pareto_front(rows, cost="cost", accuracy="accuracy")
            knees = front.table.loc[front.table["knee"].to_numpy(bool), "trial_id"].tolist()
        mine = tuple(t for t in trials if t.target == target)
        by_id = {t.trial_id: t for t in mine if t.structure is not None}
        shown = next((by_id[t] for t in [chosen, *knees] if t in by_id), None)
        knee = shown is not None and shown.trial_id in knees
        label = cost_label(target, hardware)
        title = f"{sweep}: {label} vs retrained accuracy"
        parts.append(Target(target, label, title, mine, front, shown, knee))
    return tuple(parts)
