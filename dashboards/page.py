"""The sweep dashboard: one offline HTML page per sweep, built from what MLflow holds.

``build_dashboard`` reads the sweep's results (``sweep.results.results_table``), the metric
histories of its finished trials and their ``structure.json`` artifacts, and writes into a
directory:

* ``index.html``: per cost target, the interactive Pareto chart (plotly: hovering a point shows
  its trial and strength, clicking it opens its MLflow run, the toolbar zooms and exports), the
  training curves of the target's trials, and the layer widths of the knee trial (or a chosen
  one) with a menu of every other trial's page; then a table of all trials;
* ``trial_<trial>.html``: one page per finished trial (layer widths and its own curves);
* ``pareto_<target>.html`` / ``.png``, ``curves_<target>.html`` / ``.png`` and
  ``widths_<target>.png``: the figures on their own (PNGs by matplotlib).

``index.html`` and the figure pages embed plotly.js once, inline; the trial pages share one
``plotly.min.js`` in the directory. Everything else is relative links, so the directory works
from ``file://``, from any static HTTP server and as MLflow artifacts. ``publish_dashboard``
logs it to the sweep's parent run, and the Pareto figures to the parent run with
``mlflow.log_figure``.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.pareto import ParetoResult, pareto_front
from sweep.store import SweepStore

from .pareto import (
    PLOTLY_JS,
    _attr,
    _fmt,
    _safe_link,
    pareto_figure,
    pareto_html,
    pareto_png,
    write_figures,
)
from .trials import (
    CURVE_METRICS,
    TrialHistory,
    layer_widths_figure,
    layer_widths_png,
    training_curves_figure,
    training_curves_html,
    training_curves_png,
)

__all__ = ["ARTIFACT_DIR", "build_dashboard", "publish_dashboard", "trial_page_name"]

# Where publish_dashboard puts the files on the parent run.
ARTIFACT_DIR = "dashboard"
BASELINE = "baseline"
_COST_LABELS = {
    "flops": "FLOPs",
    "model_size": "model size (weights)",
    "activations": "activations",
}
_HOVER = ("trial_id", "strength", "width", "cost", "accuracy")
# Files this module writes; a rebuild removes stale ones (e.g. of trials no longer in the sweep).
_OWNED = re.compile(
    r"^(index\.html|plotly\.min\.js|trial_.+\.html|(pareto|curves|widths)_.+\.(html|png))$"
)


def _slug(text: str) -> str:
    """A file-name-safe form of a trial id or target; unchanged for the ids sweeps make."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if slug != text or slug.startswith("."):
        # different ids must not share a page after their odd characters are replaced
        import hashlib

        slug = f"{slug.lstrip('.')}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return slug


def trial_page_name(trial_id: str) -> str:
    """File name of a trial's page in the dashboard directory."""
    return f"trial_{_slug(str(trial_id))}.html"


@dataclass
class _Trial:
    row: pd.Series
    history: TrialHistory
    structure: dict[str, Any] | None

    @property
    def trial_id(self) -> str:
        return str(self.row["trial_id"])


def cost_label(target: str, hardware: str | None) -> str:
    """The x axis label of a target's cost."""
    if target == "latency":
        return f"{hardware or 'P100'} latency (ns)"
    return _COST_LABELS.get(target, target)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(number) else number


def _hover(row: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("strength", "width", "cost", "accuracy"):
        value = _number(row.get(key))
        if value is not None:
            out[key] = value
    return out


def _load_trials(store: SweepStore, table: pd.DataFrame) -> list[_Trial]:
    """Metric histories and structures of the finished trials, in table order."""
    trials = []
    for _, row in table[table["status"] == "FINISHED"].iterrows():
        run_id = str(row["run_id"])
        history = TrialHistory(
            trial_id=str(row["trial_id"]),
            metrics=store.history(run_id, [key for key, _ in CURVE_METRICS]),
            series=str(row["algorithm"]),
            link=str(row["run_url"]),
            hover=_hover(row),
        )
        # a trial without a (readable) structure still has its curves and Pareto point
        trials.append(_Trial(row, history, store.structure(run_id)))
    return trials


def _hardware(store: SweepStore) -> str | None:
    """The latency hardware the trials were configured with (a trial param), if any."""
    for trial in store.trials():
        if trial.params.get("target") == "latency":
            return trial.params.get("hardware") or trial.params.get("trial.hardware")
    return None


def _choose(trials: list[_Trial], pareto: ParetoResult, chosen: str | None) -> _Trial | None:
    """The trial whose widths the section shows: the chosen one, else the knee, else none."""
    by_id = {t.trial_id: t for t in trials if t.structure is not None}
    if chosen is not None and chosen in by_id:
        return by_id[chosen]
    knees = pareto.table[pareto.table["knee"].to_numpy(bool)]
    for trial_id in knees["trial_id"].astype(str):
        if trial_id in by_id:
            return by_id[trial_id]
    return None


def _trial_menu(trials: Iterable[_Trial], shown: _Trial | None) -> str:
    """A <select> that opens a trial's page, and the same pages as plain links."""
    options, links = [], []
    for trial in trials:
        if trial.structure is None:
            continue
        page = trial_page_name(trial.trial_id)
        label = f"{trial.trial_id} ({trial.row['algorithm']})"
        selected = " selected" if shown is not None and trial is shown else ""
        options.append(
            f'<option value="{_attr(page)}" data-trial="{_attr(trial.trial_id)}"{selected}>'
            f"{html.escape(label)}</option>"
        )
        links.append(
            f'<li><a class="trial-page" href="{_attr(page)}" data-trial="{_attr(trial.trial_id)}">'
            f"{html.escape(label)}</a></li>"
        )
    if not options:
        return ""
    return (
        '<p><label>Layer widths of another trial: <select class="trial-select" '
        'onchange="if (this.value) { window.location.href = this.value; }">'
        f"{''.join(options)}</select></label></p>\n"
        f'<details><summary>All trial pages</summary><ul class="trial-pages">{"".join(links)}'
        "</ul></details>"
    )


def _trials_table(table: pd.DataFrame, pages: set[str]) -> str:
    columns = ["trial_id", "algorithm", "target", "strength", "width", "status", "cost", "accuracy"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "<th>pages</th>"
    body = []
    for _, row in table.iterrows():
        cells = "".join(
            f"<td>{html.escape(_fmt(row[c]) if not pd.isna(row[c]) else '')}</td>" for c in columns
        )
        links = []
        url = _safe_link(row["run_url"])
        if url:
            links.append(f'<a class="run-link" href="{_attr(url)}" target="_blank">MLflow run</a>')
        page = trial_page_name(str(row["trial_id"]))
        if page in pages:
            links.append(f'<a href="{_attr(page)}">widths</a>')
        reason = str(row.get("failure_reason") or "")
        title = f' title="{_attr(reason)}"' if reason else ""
        body.append(
            f'<tr data-trial="{_attr(row["trial_id"])}" data-status="{_attr(row["status"])}"{title}>'
            f"{cells}<td>{' '.join(links)}</td></tr>"
        )
    return (
        f'<table class="trials"><caption>All trials ({len(table)})</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
section.target { border-top: 1px solid #ccc; }
nav.targets a { margin-right: 12px; }
.note { color: #555; font-size: 13px; }
table.trials { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
table.trials caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
table.trials th, table.trials td { border: 1px solid #ccc; padding: 3px 8px; }
table.trials tr[data-status="FAILED"] { color: #a00; }
"""


def _trial_page(trial: _Trial, sweep: str, out: Path) -> str:
    """Writes a finished trial's own page; returns its file name."""
    name = trial_page_name(trial.trial_id)
    row = trial.row
    facts = [
        ("algorithm", row["algorithm"]),
        ("target", row["target"]),
        ("strength", row["strength"]),
        ("width", row["width"]),
        ("cost", row["cost"]),
        ("accuracy", row["accuracy"]),
    ]
    items = "".join(
        f"<li>{html.escape(k)}: {html.escape(_fmt(v))}</li>" for k, v in facts if not pd.isna(v)
    )
    url = _safe_link(row["run_url"])
    run_link = (
        f'<a class="run-link" href="{_attr(url)}" target="_blank">MLflow run</a> \u00b7 '
        if url
        else ""
    )
    structure = trial.structure
    parts: list[Any] = [
        f"<h1>{html.escape(trial.trial_id)}</h1>",
        f'<p>{run_link}<a href="index.html">back to sweep {html.escape(sweep)}</a></p>',
        f"<ul>{items}</ul>",
    ]
    if structure is not None:
        title = f"{trial.trial_id}: learned vs seed width"
        parts.append(layer_widths_figure(structure, title=title, trial_id=trial.trial_id))
    else:
        parts.append('<p class="note">this trial logged no structure.json</p>')
    # only the panels this trial has data for (a baseline never learns)
    logged = [(k, t) for k, t in CURVE_METRICS if trial.history.metrics.get(k)]
    parts.append("<h2>Training curves</h2>")
    parts.append(training_curves_figure([trial.history], title="", metrics=logged or CURVE_METRICS))
    write_figures(out / name, f"{sweep}: {trial.trial_id}", parts, _STYLE, shared_js=True)
    return name


def build_dashboard(
    tracking_uri: str,
    sweep: str,
    out_dir: str | os.PathLike[str],
    *,
    trial_id: str | None = None,
) -> Path:
    """Writes the sweep's dashboard into ``out_dir`` (see the module docstring for the files).

    Args:
        tracking_uri: MLflow tracking URI of the sweep.
        sweep: Sweep (experiment) name.
        out_dir: Directory to write into; created when missing. Files of an earlier build that
            this build does not write again are removed; other files are left alone.
        trial_id: Trial whose layer widths the page shows in its target's section (default:
            that target's knee; other targets still show their knee).

    Returns:
        The path of ``index.html``.

    Raises:
        sweep.results.SweepNotFound: No sweep of that name in the tracking store.
        ValueError: ``trial_id`` is not a finished trial with a structure.
    """
    return write_dashboard(SweepStore(tracking_uri, sweep), out_dir, trial_id=trial_id)


def write_dashboard(
    store: SweepStore, out_dir: str | os.PathLike[str], *, trial_id: str | None = None
) -> Path:
    """``build_dashboard`` from a store already open (what a finished sweep publishes)."""
    sweep, tracking_uri = store.sweep, store.uri
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = store.results()
    written: set[str] = set()
    trials = _load_trials(store, table)
    if trial_id is not None and not any(
        t.trial_id == trial_id and t.structure is not None for t in trials
    ):
        known = [t.trial_id for t in trials if t.structure is not None]
        raise ValueError(
            f"trial {trial_id!r} is not a finished trial of sweep {sweep!r} with a structure; "
            f"those are: {known}"
        )
    hardware = _hardware(store)

    pages = {_trial_page(t, sweep, out) for t in trials}
    written |= pages | ({PLOTLY_JS} if pages else set())
    # the index: HTML pieces and plotly figures in order; plotly.js is embedded once, inline
    parts: list[Any] = []
    nav = []
    targets = sorted({str(t) for t in table["target"].dropna()})
    for target in targets:
        rows = table[table["target"] == target]
        slug = _slug(target)
        label = cost_label(target, hardware)
        heading = f"{sweep}: {label} vs retrained accuracy"
        parts += [
            f'<section class="target" id="target-{_attr(slug)}" data-target="{_attr(target)}">',
            f"<h2>Target {html.escape(target)}</h2>",
        ]
        nav.append(f'<a href="#target-{_attr(slug)}">{html.escape(target)}</a>')
        # the same front sweep.results.publish_pareto draws: computed within the target's rows
        pareto = pareto_front(rows, cost="cost", accuracy="accuracy")
        if rows[["cost", "accuracy"]].dropna().empty:
            parts.append('<p class="note">no finished trial with a cost and accuracy yet</p>')
        else:
            options: dict[str, Any] = {
                "series": "algorithm",
                "title": heading,
                "link_column": "run_url",
                "hover_columns": _HOVER,
                "cost_label": label,
            }
            page = pareto_html(pareto, out / f"pareto_{slug}.html", **options)
            pareto_png(
                pareto,
                out / f"pareto_{slug}.png",
                series="algorithm",
                title=heading,
                cost_label=label,
            )
            written |= {page.name, f"pareto_{slug}.png"}
            parts.append(
                '<h3>Pareto front</h3><p class="note">Hover a point for its trial and strength; '
                "click it to open its MLflow run; drag to zoom, double-click to reset. "
                f'<a href="{_attr(page.name)}">chart on its own, with the front table</a> \u00b7 '
                f'<a href="pareto_{_attr(slug)}.png">PNG</a></p>'
            )
            parts.append(f'<div class="pareto-figure" data-target="{_attr(target)}">')
            figure = pareto_figure(pareto, **options)
            parts.append(figure.update_layout(meta={**figure.layout.meta, "target": target}))
            parts.append("</div>")

        in_target = [t for t in trials if str(t.row["target"]) == target]
        histories = [t.history for t in in_target]
        curves_title = f"{sweep}: training curves ({target})"
        training_curves_html(histories, out / f"curves_{slug}.html", title=curves_title)
        training_curves_png(histories, out / f"curves_{slug}.png", title=curves_title)
        written |= {f"curves_{slug}.html", f"curves_{slug}.png"}
        parts.append(
            '<h3>Training curves</h3><p class="note">One line per finished trial; hover a line for '
            "its trial, click it for its MLflow run. "
            f'<a href="curves_{_attr(slug)}.png">PNG</a></p>'
        )
        parts.append(f'<div class="curves-section" data-target="{_attr(target)}">')
        curves = training_curves_figure(histories, title=curves_title)
        parts.append(curves.update_layout(meta={"kind": "curves", "target": target}))
        parts.append("</div>")

        shown = _choose(in_target, pareto, trial_id)
        structure = shown.structure if shown is not None else None
        parts.append("<h3>Layer widths</h3>")
        if shown is not None and structure is not None:
            knees = set(
                pareto.table.loc[pareto.table["knee"].to_numpy(bool), "trial_id"].astype(str)
            )
            is_knee = shown.trial_id in knees
            why = "knee of the front" if is_knee else "chosen trial"
            title = f"{shown.trial_id} ({why}): learned vs seed width"
            layer_widths_png(structure, out / f"widths_{slug}.png", title=title)
            written.add(f"widths_{slug}.png")
            parts.append(
                f'<div class="widths-figure" data-target="{_attr(target)}" '
                f'data-trial="{_attr(shown.trial_id)}" data-knee="{str(is_knee).lower()}">'
            )
            widths = layer_widths_figure(structure, title=title, trial_id=shown.trial_id)
            parts.append(widths.update_layout(meta={**widths.layout.meta, "target": target}))
            parts.append("</div>")
        else:
            parts.append('<p class="note">no finished trial of this target logged a structure</p>')
        parts.append(_trial_menu(in_target, shown))
        parts.append("</section>")

    finished = int((table["status"] == "FINISHED").sum())
    head = [
        f"<h1>Sweep {html.escape(sweep)}</h1>",
        f'<p class="note">{len(table)} trials, {finished} finished; tracking store '
        f"{html.escape(_redact(tracking_uri))}</p>",
        f'<nav class="targets">{"".join(nav)}</nav>',
    ]
    index = write_figures(
        out / "index.html", f"Sweep {sweep}", [*head, *parts, _trials_table(table, pages)], _STYLE
    )
    written.add(index.name)
    for stale in out.iterdir():
        if stale.is_file() and _OWNED.match(stale.name) and stale.name not in written:
            stale.unlink()
    return index


def _redact(uri: str) -> str:
    """The URI without a password (user:password@host)."""
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", uri)


def publish_dashboard(
    tracker_or_uri: Any, sweep: str | None = None, *, trial_id: str | None = None
) -> list[str]:
    """Builds the dashboard and logs its files to the sweep's parent run under ``dashboard/``.

    Args:
        tracker_or_uri: A :class:`sweep.tracking.SweepTracker` (its URI, sweep and parent run
            are used), or a tracking URI (the parent run is looked up by its tag; its status is
            left as it is).
        sweep: Sweep name; required with a URI, optional (must match) with a tracker.
        trial_id: As for :func:`build_dashboard`.

    Returns:
        The artifact paths logged, e.g. ``dashboard/index.html``, sorted.

    Raises:
        ValueError: A URI without a sweep name, or a sweep name that is not the tracker's.
        sweep.results.SweepNotFound: No such sweep or no parent run.
    """
    tracker = None
    if isinstance(tracker_or_uri, str | os.PathLike):
        if not sweep:
            raise ValueError("publish_dashboard(uri, sweep): the sweep name is required")
        store = SweepStore(str(tracker_or_uri), sweep)
        client, parent = store.client, store.parent_id()
    else:
        name = tracker_or_uri.sweep
        if sweep is not None and sweep != name:
            raise ValueError(f"sweep {sweep!r} is not the tracker's sweep {name!r}")
        tracker, store = tracker_or_uri, tracker_or_uri.store
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ARTIFACT_DIR
        write_dashboard(store, out, trial_id=trial_id)
        files = sorted(p.name for p in out.iterdir() if p.is_file())
        if tracker is not None:
            # through the sweep's tracking queue: an outage delays the files, never loses them
            for name in files:
                tracker.log_artifact(None, out / name, ARTIFACT_DIR)
        else:
            client.log_artifacts(parent, str(out), ARTIFACT_DIR)
        shutil.rmtree(out, ignore_errors=True)
    return [f"{ARTIFACT_DIR}/{name}" for name in files]
