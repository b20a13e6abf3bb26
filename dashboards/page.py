"""The sweep's dashboard: a directory of static pages drawing ``sweep.overview``'s records.

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

from sweep.charts import front_chart
from sweep.overview import COLUMNS, FinishedTrial, Target, overview
from sweep.store import SweepStore

from .pareto import pareto_chart
from .render import PLOTLY_JS, Chart, PathLike, plot, to_plotly, to_png, write_figures, write_page
from .trials import curves_chart, widths_chart

ARTIFACT_DIR = "dashboard"  # where publish_dashboard puts the files on the parent run
HOVER = ("trial_id", "strength", "width", "cost", "accuracy")  # of a trial, when it has them
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


def _trial_page(trial: FinishedTrial, sweep: str, out: Path) -> str:
    """Writes a finished trial's page (its widths and curves); returns its file name."""
    curves = plot(to_plotly(curves_chart([trial.history], "", trial.logged_metrics)), "curves")
    title = f"{trial.trial_id}: learned vs seed width"
    widths = trial.structure and widths_chart(trial.structure, title, trial.trial_id)
    data = {"trial_id": trial.trial_id, "link": trial.link, "facts": trial.facts, "sweep": sweep}
    page, shown = trial_page_name(trial.trial_id), widths and plot(to_plotly(widths), "widths")
    title = f"{sweep}: {trial.trial_id}"
    write_page(
        out / page, "trial.html", shared_js=True, title=title, curves=curves, widths=shown, **data
    )
    return page


def _figure(chart: Chart, out: Path, name: str, html: Any = None, **meta: Any) -> Any:
    """Writes ``<name>.png`` (and ``.html`` with ``html`` as its table); the plot for the index."""
    figure = to_plotly(chart)
    to_png(chart, out / f"{name}.png")
    if html is not None:
        write_figures(out / f"{name}.html", chart.title, [figure], table=html or None)
    return plot(figure, name.replace("_", "-", 1), **meta)


def _section(part: Target, sweep: str, out: Path) -> dict[str, Any]:
    """Writes a target's figures; returns what its section of the index shows."""
    slug, target, trials = file_slug(part.target), part.target, part.trials
    curves = curves_chart([t.history for t in trials], f"{sweep}: training curves ({target})")
    menu = [
        {
            "page": trial_page_name(t.trial_id),
            "trial_id": t.trial_id,
            "label": f"{t.trial_id} ({t.algorithm})",
        }
        for t in trials
        if t.structure is not None
    ]
    section: dict[str, Any] = {"target": target, "slug": slug, "menu": menu}
    section |= {"pareto": None, "widths": None}
    section["curves"] = _figure(curves, out, f"curves_{slug}", html="", target=target)
    if part.front is not None:
        options = {
            "title": f"{sweep}: {part.label} vs retrained accuracy",
            "cost_label": part.label,
        }
        front = front_chart(part.front, link_column="run_url", hover_columns=HOVER, **options)
        section["pareto"] = _figure(
            pareto_chart(front), out, f"pareto_{slug}", html=front, target=target
        )
    if part.shown is not None and part.shown.structure is not None:
        what = "knee of the front" if part.knee else "chosen trial"
        title = f"{part.shown.trial_id} ({what}): learned vs seed width"
        widths = widths_chart(part.shown.structure, title, part.shown.trial_id)
        section["widths"] = _figure(widths, out, f"widths_{slug}", target=target)
        section |= {"shown": part.shown.trial_id, "knee": part.knee}
    return section


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
    sweep_now, out = overview(store, trial_id), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = {_trial_page(t, sweep, out) for t in sweep_now.trials}
    sections = [_section(part, sweep, out) for part in sweep_now.targets]
    rows = [
        {**row, "page": p if (p := trial_page_name(row["trial_id"])) in pages else None}
        for row in sweep_now.rows()
    ]
    data: dict[str, Any] = {"sweep": sweep, "store": sweep_now.store}
    index = write_page(
        out / "index.html",
        "index.html",
        title=f"Sweep {sweep}",
        sections=sections,
        rows=rows,
        columns=COLUMNS,
        finished=len(sweep_now.trials),
        **data,
    )
    # the files this build wrote: the pages, the figures of each section, plotly.js for the pages
    written = pages | {index.name} | ({PLOTLY_JS} if pages else set())
    for section in sections:
        kinds = [k for k in ("curves", "pareto", "widths") if section[k] is not None]
        written |= {f"{k}_{section['slug']}.{ext}" for k in kinds for ext in ("png", "html")}
    for stale in out.iterdir():
        if stale.is_file() and OWNED.fullmatch(stale.name) and stale.name not in written:
            stale.unlink()
    return index


def publish_dashboard(
    tracker_or_uri: Any, sweep: str | None = None, *, trial_id: str | None = None
) -> list[str]:
    """Builds the dashboard and logs its files to the sweep's parent run under ``dashboard/``;
    returns their artifact paths, sorted. ``tracker_or_uri``: a ``sweep.tracking.SweepTracker``
    (the files go through its queue, so an outage delays them and never loses them), or a
    tracking URI with ``sweep`` (the parent run's status is left as it is).

    Raises:
        ValueError: A URI without a sweep name, or a sweep name that is not the tracker's.
        sweep.store.SweepNotFound: No such sweep or no parent run.
    """
    if isinstance(tracker_or_uri, str) and not sweep:
        raise ValueError("publish_dashboard(uri, sweep): the sweep name is required")
    if not isinstance(tracker_or_uri, str) and sweep not in (None, tracker_or_uri.sweep):
        raise ValueError(f"sweep {sweep!r} is not the tracker's sweep {tracker_or_uri.sweep!r}")
    tracker = None if isinstance(tracker_or_uri, str) else tracker_or_uri
    store = SweepStore(tracker_or_uri, str(sweep)) if tracker is None else tracker.store
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ARTIFACT_DIR
        build_dashboard(store, store.sweep, out, trial_id=trial_id)
        files = sorted(p.name for p in out.iterdir())
        if tracker is None:
            store.client.log_artifacts(store.parent_id(), str(out), ARTIFACT_DIR)
        else:
            for name in files:
                tracker.log_artifact(None, out / name, ARTIFACT_DIR)
    return [f"{ARTIFACT_DIR}/{name}" for name in files]
