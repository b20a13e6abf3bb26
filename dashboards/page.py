"""The sweep's dashboard: a directory of static pages drawn from what ``sweep.store`` reads.

``index.html`` shows per cost target the Pareto chart (hover: a trial and its strength; click:
its MLflow run), the training curves and the layer widths of the knee (or the chosen) trial with
a menu of the trial pages, then a table of all trials; ``trial_<id>.html`` shows one finished
trial; ``pareto_<target>.html`` / ``.png``, ``curves_<target>.html`` / ``.png`` and
``widths_<target>.png`` are the figures alone. Links are relative, so the directory works from
file://, a static HTTP server and as MLflow artifacts (``publish_dashboard``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.charts import FinishedTrial, finished_trials, fmt, safe_link
from sweep.pareto import pareto_front
from sweep.store import SweepStore

from .pareto import pareto_figure, pareto_html, pareto_png
from .render import PLOTLY_JS, PathLike, plot, write_page
from .trials import (
    layer_widths_figure,
    layer_widths_png,
    training_curves_figure,
    training_curves_html,
    training_curves_png,
)

ARTIFACT_DIR = "dashboard"  # where publish_dashboard puts the files on the parent run
HOVER = ("trial_id", "strength", "width", "cost", "accuracy")  # of a trial, when it has them
COLUMNS = ("trial_id", "algorithm", "target", "strength", "width", "status", "cost", "accuracy")
COST_LABELS = {"flops": "FLOPs", "model_size": "model size (weights)"}
# what a build writes: a rebuild removes those it did not write again (e.g. of gone trials)
OWNED = re.compile(r"(index\.html|plotly\.min\.js|trial_.+\.html|(pareto|curves|widths)_.+)$")


def file_slug(text: str) -> str:
    """A file-name-safe form of a trial id or target; unchanged for the ids sweeps make."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if slug == text and not slug.startswith("."):
        return slug
    # ids that differ only in the characters replaced must not share a page
    return f"{slug.lstrip('.')}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def trial_page_name(trial_id: str) -> str:
    """File name of a trial's page in the dashboard directory."""
    return f"trial_{file_slug(str(trial_id))}.html"


def cost_label(target: str, hardware: str | None) -> str:
    """The x axis label of a target's cost."""
    return (
        f"{hardware or 'P100'} latency (ns)"
        if target == "latency"
        else COST_LABELS.get(target, target)
    )


def _trial_page(trial: FinishedTrial, sweep: str, out: Path) -> str:
    """Writes a finished trial's page (its widths and curves); returns its file name."""
    curves = training_curves_figure([trial.history], title="", metrics=trial.logged_metrics)
    title = f"{trial.trial_id}: learned vs seed width"
    widths = trial.structure and layer_widths_figure(
        trial.structure, title=title, trial_id=trial.trial_id
    )
    data = {"trial_id": trial.trial_id, "link": trial.link, "facts": trial.facts, "sweep": sweep}
    page = trial_page_name(trial.trial_id)
    plots = {"curves": plot(curves, "curves"), "widths": widths and plot(widths, "widths")}
    write_page(
        out / page,
        "trial.html",
        shared_js=True,
        title=f"{sweep}: {trial.trial_id}",
        **data,
        **plots,
    )
    return page


def _section(
    target: str,
    label: str,
    table: pd.DataFrame,
    trials: list[FinishedTrial],
    out: Path,
    chosen: str | None,
    sweep: str,
) -> tuple[dict[str, Any], set[str]]:
    """Writes a target's figures; returns what its section of the index shows, and the files."""
    slug, mine = file_slug(target), [t for t in trials if t.target == target]
    title = f"{sweep}: training curves ({target})"
    training_curves_html([t.history for t in mine], out / f"curves_{slug}.html", title=title)
    training_curves_png([t.history for t in mine], out / f"curves_{slug}.png", title=title)
    curves = training_curves_figure([t.history for t in mine], title=title)
    written = {f"curves_{slug}.html", f"curves_{slug}.png"}
    menu = [
        {
            "page": trial_page_name(t.trial_id),
            "trial_id": t.trial_id,
            "label": f"{t.trial_id} ({t.algorithm})",
        }
        for t in mine
        if t.structure is not None
    ]
    section = {"target": target, "slug": slug, "menu": menu, "pareto": None, "widths": None}
    section["curves"] = plot(curves, f"curves-{slug}", target=target)
    rows, knees = table[table["target"] == target], []
    if not rows[["cost", "accuracy"]].dropna().empty:
        result = pareto_front(rows, cost="cost", accuracy="accuracy")
        options = {"title": f"{sweep}: {label} vs retrained accuracy", "cost_label": label}
        pareto_png(result, out / f"pareto_{slug}.png", **options)
        options |= {"link_column": "run_url", "hover_columns": HOVER}
        pareto_html(result, out / f"pareto_{slug}.html", **options)
        section["pareto"] = plot(pareto_figure(result, **options), f"pareto-{slug}", target=target)
        written |= {f"pareto_{slug}.html", f"pareto_{slug}.png"}
        knees = result.table.loc[result.table["knee"].to_numpy(bool), "trial_id"].tolist()
    by_id = {t.trial_id: t for t in mine if t.structure is not None}
    shown = next((by_id[t] for t in [chosen, *knees] if t in by_id), None)
    if shown is not None and shown.structure is not None:
        knee = shown.trial_id in knees
        title = f"{shown.trial_id} ({'knee of the front' if knee else 'chosen trial'}): learned vs seed width"
        layer_widths_png(shown.structure, out / f"widths_{slug}.png", title=title)
        widths = layer_widths_figure(shown.structure, title=title, trial_id=shown.trial_id)
        section |= {
            "widths": plot(widths, f"widths-{slug}", target=target),
            "shown": shown.trial_id,
            "knee": knee,
        }
        written.add(f"widths_{slug}.png")
    return section, written


def _rows(table: pd.DataFrame, pages: set[str]) -> list[dict[str, Any]]:
    """The trials table's rows: cells, status, failure reason, run link, page."""
    return [
        {
            "trial_id": row["trial_id"],
            "status": row["status"],
            "reason": str(row.get("failure_reason") or ""),
            "cells": ["" if pd.isna(row[c]) else fmt(row[c]) for c in COLUMNS],
            "link": safe_link(row["run_url"]),
            "page": page if (page := trial_page_name(row["trial_id"])) in pages else None,
        }
        for row in table.to_dict("records")
    ]


def build_dashboard(
    tracking_uri: str | SweepStore, sweep: str, out_dir: PathLike, *, trial_id: str | None = None
) -> Path:
    """Writes the sweep's dashboard into ``out_dir`` (created when missing) and returns the path
    of its ``index.html``. Files of an earlier build not written again are removed, others left.

    Raises:
        sweep.store.SweepNotFound: No sweep of that name in the tracking store.
        ValueError: ``trial_id`` is not a finished trial with a structure.
    """
    store = (
        tracking_uri if isinstance(tracking_uri, SweepStore) else SweepStore(tracking_uri, sweep)
    )
    out = Path(out_dir)
    table = store.results()
    trials = finished_trials(store, table)
    known = [t.trial_id for t in trials if t.structure is not None]
    if trial_id is not None and trial_id not in known:
        raise ValueError(
            f"trial {trial_id!r} is not a finished trial of sweep {sweep!r} with a structure; those are: {known}"
        )
    out.mkdir(parents=True, exist_ok=True)
    hardware = next(
        (t.params.get("hardware") for t in store.trials() if t.params.get("target") == "latency"),
        None,
    )
    written = {_trial_page(t, sweep, out) for t in trials} | ({PLOTLY_JS} if trials else set())
    sections = []
    for target in sorted({str(t) for t in table["target"].dropna()}):
        section, files = _section(
            target, cost_label(target, hardware), table, trials, out, trial_id, sweep
        )
        sections.append(section)
        written |= files
    store_uri = re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", store.uri)  # no password on the page
    data = {
        "sweep": sweep,
        "store": store_uri,
        "sections": sections,
        "columns": COLUMNS,
        "finished": len(trials),
    }
    index = write_page(
        out / "index.html", "index.html", title=f"Sweep {sweep}", rows=_rows(table, written), **data
    )
    for stale in out.iterdir():
        if (
            stale.is_file()
            and OWNED.fullmatch(stale.name)
            and stale.name not in written | {index.name}
        ):
            stale.unlink()
    return index


def publish_dashboard(
    tracker_or_uri: Any, sweep: str | None = None, *, trial_id: str | None = None
) -> list[str]:
    """Builds the dashboard and logs its files to the sweep's parent run under ``dashboard/``;
    returns their artifact paths, sorted. ``tracker_or_uri``: a ``sweep.tracking.SweepTracker``
    (the files go through its queue), or a tracking URI with ``sweep`` (the parent run is found by
    its tag and its status left as it is).

    Raises:
        ValueError: A URI without a sweep name, or a sweep name that is not the tracker's.
        sweep.store.SweepNotFound: No such sweep or no parent run.
    """
    if isinstance(tracker_or_uri, str):
        if not sweep:
            raise ValueError("publish_dashboard(uri, sweep): the sweep name is required")
        tracker, store = None, SweepStore(tracker_or_uri, sweep)
    elif sweep is not None and sweep != tracker_or_uri.sweep:
        raise ValueError(f"sweep {sweep!r} is not the tracker's sweep {tracker_or_uri.sweep!r}")
    else:
        tracker, store = tracker_or_uri, tracker_or_uri.store
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ARTIFACT_DIR
        build_dashboard(store, store.sweep, out, trial_id=trial_id)
        files = sorted(p.name for p in out.iterdir())
        if tracker is None:
            store.client.log_artifacts(store.parent_id(), str(out), ARTIFACT_DIR)
        for name in files if tracker is not None else ():
            # through the sweep's tracking queue: an outage delays the files, never loses them
            tracker.log_artifact(None, out / name, ARTIFACT_DIR)
    return [f"{ARTIFACT_DIR}/{name}" for name in files]
