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
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.pareto import pareto_front
from sweep.store import SweepStore

from .pareto import pareto_figure, pareto_html, pareto_png
from .render import PLOTLY_JS, plot, write_figures, write_page
from .trials import (
    CURVE_METRICS,
    TrialHistory,
    layer_widths_figure,
    layer_widths_png,
    training_curves_figure,
    training_curves_png,
)

ARTIFACT_DIR = "dashboard"  # where publish_dashboard puts the files on the parent run
HOVER = ("trial_id", "strength", "width", "cost", "accuracy")  # of a trial, when it has them
COLUMNS = ("trial_id", "algorithm", "target", "strength", "width", "status", "cost", "accuracy")
_COST_LABELS = {"flops": "FLOPs", "model_size": "model size (weights)"}
# what a build writes: a rebuild removes those it did not write again (e.g. of gone trials)
_OWNED = re.compile(r"(index\.html|plotly\.min\.js|trial_.+\.html|(pareto|curves|widths)_.+)$")


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
        else _COST_LABELS.get(target, target)
    )


def pareto_pages(rows: pd.DataFrame, sweep: str, label: str, out: Path, name: str) -> Any:
    """Writes ``<name>.html`` and ``.png`` into ``out``: the front of one target's rows (the
    figure and the result); None when no trial has a cost and accuracy yet."""
    if rows[["cost", "accuracy"]].dropna().empty:
        return None
    result = pareto_front(rows, cost="cost", accuracy="accuracy")
    options: dict[str, Any] = {
        "title": f"{sweep}: {label} vs retrained accuracy",
        "cost_label": label,
    }
    pareto_png(result, out / f"{name}.png", **options)
    options |= {"link_column": "run_url", "hover_columns": HOVER}
    pareto_html(result, out / f"{name}.html", **options)
    return pareto_figure(result, **options), result


def _trials(store: SweepStore, table: pd.DataFrame) -> list[dict[str, Any]]:
    """The finished trials' rows, with their page, curves (``history``) and ``structure``."""
    trials = []
    for row in table[table["status"] == "FINISHED"].to_dict("records"):
        numbers = {k: row[k] for k in HOVER[1:] if isinstance(row[k], float) and pd.notna(row[k])}
        metrics = store.history(row["run_id"], [key for key, _ in CURVE_METRICS])
        history = TrialHistory(row["trial_id"], metrics, row["algorithm"], row["run_url"], numbers)
        page = trial_page_name(row["trial_id"])
        trials.append(
            {**row, "page": page, "history": history, "structure": store.structure(row["run_id"])}
        )
    return trials


def _trial_page(trial: dict[str, Any], sweep: str, out: Path) -> str:
    """Writes a finished trial's page (its widths and curves); returns its file name."""
    trial_id, history, structure = trial["trial_id"], trial["history"], trial["structure"]
    logged = [(k, t) for k, t in CURVE_METRICS if history.metrics.get(k)]  # a baseline never learns
    curves = plot(
        training_curves_figure([history], title="", metrics=logged or CURVE_METRICS), "curves"
    )
    title = f"{trial_id}: learned vs seed width"
    widths = structure and plot(
        layer_widths_figure(structure, title=title, trial_id=trial_id), "widths"
    )
    facts = {k: trial[k] for k in COLUMNS[1:] if k != "status" and pd.notna(trial[k])}
    data = {"trial": trial, "facts": facts, "curves": curves, "widths": widths, "sweep": sweep}
    write_page(
        out / trial["page"], "trial.html", shared_js=True, title=f"{sweep}: {trial_id}", **data
    )
    return str(trial["page"])


def _section(
    target: str,
    sweep: str,
    table: pd.DataFrame,
    trials: list[dict[str, Any]],
    label: str,
    out: Path,
    chosen: str | None,
) -> tuple[dict[str, Any], set[str]]:
    """Writes a target's figures; returns what its section of the index shows, and the files."""
    slug, mine = file_slug(target), [t for t in trials if t["target"] == target]
    histories, title = [t["history"] for t in mine], f"{sweep}: training curves ({target})"
    curves = training_curves_figure(histories, title=title)
    write_figures(out / f"curves_{slug}.html", title, [curves])
    training_curves_png(histories, out / f"curves_{slug}.png", title=title)
    written = {f"curves_{slug}.html", f"curves_{slug}.png"}
    menu = [t for t in mine if t["structure"] is not None]  # the trials with a page of widths
    section = {"target": target, "slug": slug, "menu": menu, "pareto": None, "widths": None}
    section["curves"] = plot(curves, f"curves-{slug}", target=target)
    pareto = pareto_pages(table[table["target"] == target], sweep, label, out, f"pareto_{slug}")
    knees: list[str] = []
    if pareto is not None:
        section["pareto"] = plot(pareto[0], f"pareto-{slug}", target=target)
        written |= {f"pareto_{slug}.html", f"pareto_{slug}.png"}
        knees = pareto[1].table.loc[pareto[1].table["knee"].to_numpy(bool), "trial_id"].tolist()
    by_id = {t["trial_id"]: t for t in menu}
    shown = next((by_id[t] for t in [chosen, *knees] if t in by_id), None)
    if shown is not None:
        trial_id, knee = shown["trial_id"], shown["trial_id"] in knees
        title = (
            f"{trial_id} ({'knee of the front' if knee else 'chosen trial'}): learned vs seed width"
        )
        layer_widths_png(shown["structure"], out / f"widths_{slug}.png", title=title)
        widths = layer_widths_figure(shown["structure"], title=title, trial_id=trial_id)
        section |= {
            "widths": plot(widths, f"widths-{slug}", target=target),
            "shown": trial_id,
            "knee": knee,
        }
        written.add(f"widths_{slug}.png")
    return section, written


def build_dashboard(
    tracking_uri: str | SweepStore,
    sweep: str,
    out_dir: str | os.PathLike[str],
    *,
    trial_id: str | None = None,
) -> Path:
    """Writes the sweep's dashboard into ``out_dir`` (created when missing) and returns the path
    of its ``index.html``. Files of an earlier build not written again are removed, others left.

    Args:
        tracking_uri: The sweep's MLflow tracking URI, or its store already open.
        sweep: Sweep (experiment) name.
        out_dir: Directory to write into.
        trial_id: Trial whose layer widths its target's section shows (default: the knee).

    Raises:
        sweep.store.SweepNotFound: No sweep of that name in the tracking store.
        ValueError: ``trial_id`` is not a finished trial with a structure.
    """
    store = (
        tracking_uri if isinstance(tracking_uri, SweepStore) else SweepStore(tracking_uri, sweep)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = store.results()
    trials = _trials(store, table)
    known = [t["trial_id"] for t in trials if t["structure"] is not None]
    if trial_id is not None and trial_id not in known:
        raise ValueError(
            f"trial {trial_id!r} is not a finished trial of sweep {sweep!r} with a structure; those are: {known}"
        )
    hardware = next(
        (t.params.get("hardware") for t in store.trials() if t.params.get("target") == "latency"),
        None,
    )
    written = {_trial_page(t, sweep, out) for t in trials} | ({PLOTLY_JS} if trials else set())
    sections = []
    for target in sorted({str(t) for t in table["target"].dropna()}):
        label = cost_label(target, hardware)
        section, files = _section(target, sweep, table, trials, label, out, trial_id)
        sections.append(section)
        written |= files
    rows = [{**row, "page": trial_page_name(row["trial_id"])} for row in table.to_dict("records")]
    store_uri = re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", store.uri)  # no password on the page
    data = {
        "sweep": sweep,
        "store": store_uri,
        "sections": sections,
        "rows": rows,
        "columns": COLUMNS,
    }
    index = write_page(
        out / "index.html", "index.html", title=f"Sweep {sweep}", pages=written, **data
    )
    for stale in out.iterdir():
        if (
            stale.is_file()
            and _OWNED.fullmatch(stale.name)
            and stale.name not in written | {index.name}
        ):
            stale.unlink()
    return index


def publish_dashboard(
    tracker_or_uri: Any, sweep: str | None = None, *, trial_id: str | None = None
) -> list[str]:
    """Builds the dashboard and logs its files to the sweep's parent run under ``dashboard/``;
    returns their artifact paths, sorted.

    Args:
        tracker_or_uri: A :class:`sweep.tracking.SweepTracker` (its store and parent run are
            used; the files go through its queue), or a tracking URI (the parent run is found
            by its tag and its status left as it is).
        sweep: Sweep name; required with a URI, and must be the tracker's with a tracker.
        trial_id: As for :func:`build_dashboard`.

    Raises:
        ValueError: A URI without a sweep name, or a sweep name that is not the tracker's.
        sweep.store.SweepNotFound: No such sweep or no parent run.
    """
    if isinstance(tracker_or_uri, str | os.PathLike):
        if not sweep:
            raise ValueError("publish_dashboard(uri, sweep): the sweep name is required")
        tracker, store = None, SweepStore(str(tracker_or_uri), sweep)
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
