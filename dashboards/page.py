"""The sweep's dashboard, static pages of ``sweep.overview``'s records: ``index.html`` (per target
the Pareto chart, curves and widths of the knee or chosen trial; all trials), ``trial_<id>.html``
and the figures alone; links are relative (file://, a static HTTP server, MLflow artifacts)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sweep.overview import COLUMNS, FinishedTrial, Target, overview
from sweep.store import SweepStore

from .pareto import pareto_chart
from .render import PathLike, plot, write_chart, write_page
from .trials import curves_chart, widths_chart

# the files a build writes (a rebuild removes them first: none of a gone trial stays)
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
    name, page = trial.trial_id, trial_page_name(trial.trial_id)
    data = {"title": f"{sweep}: {name}", "trial": trial, "sweep": sweep, "widths": None}
    data["curves"] = plot(curves_chart([trial.history], "", trial.logged_metrics), "curves")
    if trial.structure is not None:
        widths = widths_chart(trial.structure, f"{name}: learned vs seed width", name)
        data["widths"] = plot(widths, "widths")
    write_page(out / page, "trial.html", data, shared_js=True)
    return page


def _section(part: Target, sweep: str, out: Path) -> dict[str, Any]:
    """Writes a target's figures (PNGs, and pages of the curves and the front); returns what its
    section of the index shows."""
    slug, target, shown = file_slug(part.target), part.target, part.shown
    curves = curves_chart([t.history for t in part.trials], f"{sweep}: training curves ({target})")
    write_chart(curves, out / f"curves_{slug}.html")
    charts = {"curves": curves}
    if (front := part.chart()) is not None:
        charts["pareto"] = pareto_chart(front)
        write_chart(charts["pareto"], out / f"pareto_{slug}.html", table=front)
    if shown is not None and shown.structure is not None:
        title = f"{shown.trial_id} ({'knee of the front' if part.knee else 'chosen trial'})"
        title = f"{title}: learned vs seed width"
        charts["widths"] = widths_chart(shown.structure, title, shown.trial_id)
    section = {"part": part, "slug": slug, "pareto": None, "widths": None}
    for kind, chart in charts.items():
        write_chart(chart, out / f"{kind}_{slug}.png")
        section[kind] = plot(chart, f"{kind}-{slug}", target=target)
    return section


def build_dashboard(
    tracking_uri: str | SweepStore, sweep: str, out_dir: PathLike, *, trial_id: str | None = None
) -> Path:
    """Writes the sweep's dashboard into ``out_dir`` (created when missing) and returns the path
    of its ``index.html``. An earlier build's files are replaced (others in it are left alone).

    Raises:
        sweep.store.SweepNotFound: No sweep of that name in the tracking store.
        ValueError: ``trial_id`` is not a finished trial with a structure.
    """
    store = SweepStore(tracking_uri, sweep) if isinstance(tracking_uri, str) else tracking_uri
    shown, out = overview(store, trial_id), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # an earlier build's: this one writes again those still there
        if stale.is_file() and OWNED.fullmatch(stale.name):
            stale.unlink()
    pages = {t.trial_id: _trial_page(t, shown.sweep, out) for t in shown.trials}
    sections = [_section(part, shown.sweep, out) for part in shown.targets]
    data = {"overview": shown, "sections": sections, "pages": pages, "columns": COLUMNS}
    return write_page(out / "index.html", "index.html", {"title": f"Sweep {shown.sweep}", **data})
