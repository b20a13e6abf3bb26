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
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Mark:
    """One thing a chart draws, alike in plotly and matplotlib: its ``kind`` (a key of
    ``marks.json``), points, colour, legend ``label`` (None: none), plotly ``meta``, per point hover
    text, ``custom`` data and ``text``, and the panel it is in."""

    kind: str
    x: Sequence[Any]
    y: Sequence[Any]
    color: str = "black"
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    hover: Sequence[str] = ()
    custom: Sequence[Any] = ()
    text: Sequence[str] = ()
    panel: int = 0


@dataclass(frozen=True)
class Panel:
    """Axes: a title, axis titles and scales, and what to say when nothing is drawn there."""

    title: str = ""
    x: str = ""
    y: str = ""
    log_x: bool = False
    log_y: bool = False
    empty: str = ""


@dataclass(frozen=True)
class Chart:
    """A figure: its ``kind`` (``layout.meta.kind``), marks, panels side by side; ``bars``:
    horizontal bars, the first category on top."""

    kind: str
    title: str
    marks: Sequence[Mark]
    panels: Sequence[Panel] = (Panel(),)
    subtitle: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    height: int = 480
    size: tuple[float, float] = (8, 5)
    bars: bool = False


@functools.cache
def _marks() -> dict[str, Any]:
    """How each kind of mark looks in plotly and in matplotlib (``marks.json``)."""
    return dict(json.loads((Path(__file__).parent / "marks.json").read_text(encoding="utf-8")))


def to_plotly(chart: Chart) -> Any:
    """The chart as a plotly figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grid = len(chart.panels) > 1 or bool(chart.panels[0].title)
    titles = [html.escape(p.title) for p in chart.panels]
    figure = (
        make_subplots(rows=1, cols=len(chart.panels), subplot_titles=titles)
        if grid
        else go.Figure()
    )
    for m in chart.marks:
        style = json.loads(json.dumps(_marks()[m.kind]["plotly"]))  # a copy to add colours to
        trace = {"x": list(m.x), "y": list(m.y), "meta": m.meta, "showlegend": m.label is not None}
        trace |= {
            "name": html.escape(m.label or m.meta.get("series") or ""),
            "customdata": list(m.custom),
        }
        trace |= {"hovertext": list(m.hover), "hoverinfo": "text"} if m.hover else {}
        where = {"row": 1, "col": m.panel + 1} if grid else {}
        if m.kind.endswith("bar"):
            trace["y"] = [html.escape(str(v)) for v in m.y]
            figure.add_bar(marker_color=m.color, **style, **trace, **where)
            continue
        style.setdefault("line", {}).setdefault("color", m.color)
        style.setdefault("marker", {}).setdefault("color", m.color)
        text = {"text": list(m.text)} if m.text else {}
        figure.add_scatter(legendgroup=m.meta.get("series"), **{**trace, **style}, **text, **where)
    for i, p in enumerate(chart.panels):
        where = {"row": 1, "col": i + 1} if grid else {}
        figure.update_xaxes(
            title_text=html.escape(p.x), type="log" if p.log_x else "linear", **where
        )
        figure.update_yaxes(
            title_text=html.escape(p.y), type="log" if p.log_y else "linear", **where
        )
        if p.empty:
            axis = "" if i == 0 else i + 1
            at = {"x": 0.5, "y": 0.5, "xref": f"x{axis} domain", "yref": f"y{axis} domain"}
            figure.add_annotation(text=html.escape(p.empty), showarrow=False, **at)
    if chart.bars:
        figure.update_yaxes(autorange="reversed", type="category")
    subtitle = f"<br><sub>{html.escape(chart.subtitle)}</sub>" if chart.subtitle else ""
    return figure.update_layout(
        title={"text": html.escape(chart.title) + subtitle},
        template="plotly_white",
        height=chart.height,
        hovermode="closest",
        barmode="overlay",
        meta={"kind": chart.kind, **chart.meta},
        margin={"l": 20 if chart.bars else 60, "r": 20, "t": 80, "b": 50},
    )


def _png_mark(ax: Any, m: Mark) -> None:
    method, options = _marks()[m.kind]["matplotlib"]
    colour = {} if "facecolors" in options else {"color": m.color}  # a ring keeps its own
    if method == "barh":
        ax.barh(range(len(m.y)), m.x, label=m.label, **colour, **options)
    else:
        getattr(ax, method)(m.x, m.y, label=m.label, **colour, **options)
    for x, y, text in zip(m.x, m.y, m.text, strict=False):
        ax.annotate(text, (x, y), xytext=(8, -14), textcoords="offset points")
    if m.kind == "bar":
        ax.set_yticks(range(len(m.y)), [str(v) for v in m.y], fontsize=8)
        ax.invert_yaxis()  # layer order reads top to bottom


def to_png(chart: Chart, path: PathLike | None) -> Any:
    """Writes the chart as a PNG; returns its Path (the matplotlib Figure when ``path`` is None,
    for ``mlflow.log_figure``). Drawn on the Agg canvas: no pyplot state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=chart.size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(chart.panels), squeeze=False)[0]
    for m in chart.marks:
        _png_mark(axes[m.panel], m)
    for ax, p in zip(axes, chart.panels, strict=True):
        if p.empty:
            ax.text(0.5, 0.5, p.empty, ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale="log" if p.log_x else "linear", yscale="log" if p.log_y else "linear")
        ax.set(xlabel=p.x, ylabel=p.y)
        ax.set_title(p.title, fontsize=10)
        ax.grid(True, alpha=0.3, **({"axis": "x"} if chart.bars else {}))
    labelled = [m for m in chart.marks if m.label is not None]
    if labelled and len(chart.panels) > 1:
        figure.legend(loc="outside lower center", ncols=min(len(labelled), 6), fontsize=9)
    elif labelled:
        axes[0].legend(loc="lower right", fontsize=9)
    figure.suptitle("\n".join(filter(None, [chart.title, chart.subtitle])), fontsize=11)
    if path is not None:
        figure.savefig(Path(path), format="png")
    return figure if path is None else Path(path)


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
    loader = jinja2.PackageLoader("dashboards")
    return jinja2.Environment(
        loader=loader,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


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


def write_chart(
    chart: Chart, path: PathLike, *, link: str | None = None, table: Any = None
) -> Path:
    """Writes the chart as a PNG (``path`` ends in .png) or a self-contained page."""
    if str(path).endswith(".png"):
        return Path(to_png(chart, path))
    return write_figures(path, chart.title, [to_plotly(chart)], link=link, table=table)
