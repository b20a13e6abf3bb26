"""What every figure and page shares: colours, plotly's layout, matplotlib's canvas, and pages
written from the jinja2 templates in ``templates/`` (data in, HTML out).

A plotly figure on a page is an empty ``<div class="plotly-graph-div">`` and its JSON in a
``<script type="application/json" class="plotly-figure">``; the page's one script draws each with
plotly.js (inline, or the shared ``plotly.min.js`` beside the page) and opens a point's link
(``customdata[1]``) when it is clicked.
"""

from __future__ import annotations

import functools
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from sweep.charts import BASELINE, safe_link

# matplotlib's tab10, so that PNGs and plotly pages colour the series alike; the baseline is grey
PALETTE = tuple("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #bcbd22 #17becf".split())
BASELINE_COLOR = "#555555"
PLOTLY_JS = "plotly.min.js"  # the copy that pages written with shared_js=True load
PathLike = str | os.PathLike[str]


def series_colors(labels: Iterable[str], baseline: str | None = BASELINE) -> dict[str, str]:
    """Colour per series label, in drawing order: sorted, the baseline last and grey."""
    names = sorted(set(labels))
    order = [n for n in names if n != baseline] + [n for n in names if n == baseline]
    return {n: BASELINE_COLOR if n == baseline else PALETTE[i % 9] for i, n in enumerate(order)}


def hover_text(lines: Sequence[str]) -> str:
    """Hover lines joined for plotly, escaped: plotly renders a subset of HTML in them."""
    return "<br>".join(html.escape(line) for line in lines)


def plotly_layout(figure: Any, kind: str, title: str, height: int, **layout: Any) -> Any:
    """The layout every plotly figure shares; ``meta.kind`` names the figure."""
    meta = {"kind": kind, **layout.pop("meta", {})}
    margin = {"l": 60, "r": 20, "t": 80, "b": 50, **layout.pop("margin", {})}
    heading = {"text": html.escape(title) + layout.pop("subtitle", "")}
    return figure.update_layout(
        title=heading, template="plotly_white", height=height, meta=meta, margin=margin, **layout
    )


def png_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas: no pyplot state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: PathLike | None) -> Any:
    """Writes the figure and returns its Path; None returns the Figure (for mlflow.log_figure)."""
    if path is None:
        return figure
    figure.savefig(Path(path), format="png")
    return Path(path)


@dataclass(frozen=True)
class Plot:
    """A plotly figure as a page embeds it: its div's id and its JSON."""

    id: str
    figure: dict[str, Any]


def plot(figure: Any, div_id: str, **meta: Any) -> Plot:
    """The figure as JSON data, with ``meta`` added to its ``layout.meta``."""
    import plotly.io as pio

    data = json.loads(pio.to_json(figure, validate=False))
    data["layout"]["meta"] = {**data["layout"].get("meta", {}), **meta}
    return Plot(div_id, data)


@functools.cache
def _templates() -> jinja2.Environment:
    options = {"trim_blocks": True, "lstrip_blocks": True, "undefined": jinja2.StrictUndefined}
    return jinja2.Environment(loader=jinja2.PackageLoader("dashboards"), autoescape=True, **options)


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_page(path: PathLike, template: str, *, shared_js: bool = False, **data: Any) -> Path:
    """Renders ``templates/<template>`` with ``data`` into ``path``. plotly.js is inline, so the
    page works offline; with ``shared_js`` it loads ``plotly.min.js`` from the page's directory
    (written there once), so that many pages share one copy."""
    out = Path(path)
    if shared_js and not (out.parent / PLOTLY_JS).is_file():
        (out.parent / PLOTLY_JS).write_text(_plotly_js(), encoding="utf-8")
    inline = None if shared_js else Markup(_plotly_js())  # the library itself, never data
    page = _templates().get_template(template)
    out.write_text(page.render(plotly_js=inline, plotly_src=PLOTLY_JS, **data), encoding="utf-8")
    return out


def write_figures(
    path: PathLike,
    title: str,
    figures: Sequence[Any],
    *,
    link: str | None = None,
    table: Any = None,
) -> Path:
    """Writes a self-contained page of plotly figures (ids ``figure-0`` ...), then a link to the
    run (when safe) and a table (a ``sweep.charts.FrontChart``'s rows)."""
    plots = [plot(figure, f"figure-{i}") for i, figure in enumerate(figures)]
    return write_page(
        path, "figures.html", title=title, plots=plots, link=safe_link(link), table=table
    )
