"""Drawing a chart spec (``Chart`` of ``Mark``s on ``Panel``s) with plotly or matplotlib alike, and
pages from the jinja2 templates in ``templates/``: data in, HTML out (a figure goes in as its
JSON, which the page's one script draws with plotly.js; see ``templates/base.html``)."""

from __future__ import annotations

import functools
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from sweep.charts import BASELINE, safe_link

# matplotlib's tab10, so that PNGs and plotly pages colour the series alike; the baseline is grey
PALETTE = tuple("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #bcbd22 #17becf".split())
PLOTLY_JS = "plotly.min.js"  # the copy that pages written with shared_js=True load
PathLike = str | os.PathLike[str]
SCALE = ("linear", "log")  # an axis' scale, by whether it is logarithmic
# how each kind of mark looks in plotly and in matplotlib
LOOKS = json.loads((Path(__file__).parent / "marks.json").read_text(encoding="utf-8"))


def series_colors(labels: Iterable[str], baseline: str | None = BASELINE) -> dict[str, str]:
    """Colour per series label, in drawing order: sorted, the baseline last and grey."""
    names = sorted(set(labels), key=lambda name: (name == baseline, name))
    return {n: "#555555" if n == baseline else PALETTE[i % 9] for i, n in enumerate(names)}


@dataclass(frozen=True)
class Mark:
    """One thing a chart draws: its ``kind`` (how it looks: a key of ``marks.json``), points,
    colour, legend ``label`` (None: none), plotly ``meta``, per point hover lines, ``custom`` data
    and ``text``, and the panel it is in."""

    kind: str
    x: Sequence[Any]
    y: Sequence[Any]
    color: str = "black"
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    hover: Sequence[Sequence[str]] = ()
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
    """A figure: its ``kind`` (``layout.meta.kind``), marks, panels side by side, plotly height
    and PNG size; ``bars``: horizontal bars, the first category on top."""

    kind: str
    title: str
    marks: Sequence[Mark]
    panels: Sequence[Panel] = (Panel(),)
    subtitle: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    height: int = 480
    size: tuple[float, float] = (8, 5)
    bars: bool = False


def to_plotly(chart: Chart) -> Any:
    """The chart as a plotly figure (text plotly renders as HTML escaped)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    grid = len(chart.panels) > 1 or bool(chart.panels[0].title)  # a plain figure, else subplots
    titles = [html.escape(p.title) for p in chart.panels]
    figure = make_subplots(1, len(chart.panels), subplot_titles=titles) if grid else go.Figure()
    for m in chart.marks:
        look = json.loads(json.dumps(LOOKS[m.kind]["plotly"]))  # a copy to colour
        name = html.escape(m.label or m.meta.get("series") or "")
        trace = {"x": list(m.x), "y": list(m.y), "name": name, "showlegend": m.label is not None}
        trace |= {"meta": m.meta, "customdata": list(m.custom)}
        # plotly renders a subset of HTML in hover text: every line escaped
        hover = ["<br>".join(html.escape(line) for line in lines) for lines in m.hover]
        trace |= {"hovertext": hover, "hoverinfo": "text"} if m.hover else {}
        trace |= {"row": 1, "col": m.panel + 1} if grid else {}
        if m.kind.endswith("bar"):
            trace["y"] = [html.escape(str(v)) for v in m.y]
            figure.add_bar(marker_color=m.color, **look, **trace)
            continue
        for part in ("line", "marker"):
            look.setdefault(part, {}).setdefault("color", m.color)
        trace |= {"legendgroup": m.meta.get("series"), **look}
        figure.add_scatter(**trace, **({"text": list(m.text)} if m.text else {}))
    for i, p in enumerate(chart.panels, start=1):
        where = {"row": 1, "col": i} if grid else {}
        figure.update_xaxes(type=SCALE[p.log_x], title_text=html.escape(p.x), **where)
        figure.update_yaxes(type=SCALE[p.log_y], title_text=html.escape(p.y), **where)
        if p.empty:
            at = {"xref": f"x{i if i > 1 else ''} domain", "yref": f"y{i if i > 1 else ''} domain"}
            figure.add_annotation(text=html.escape(p.empty), showarrow=False, x=0.5, y=0.5, **at)
    if chart.bars:
        figure.update_yaxes(autorange="reversed", type="category")
    sub = f"<br><sub>{html.escape(chart.subtitle)}</sub>" if chart.subtitle else ""
    layout = {"template": "plotly_white", "height": chart.height, "hovermode": "closest"}
    margin = {"l": 20 if chart.bars else 60, "r": 20, "t": 80, "b": 50}
    meta = {"kind": chart.kind, **chart.meta}
    title = {"text": html.escape(chart.title) + sub}
    return figure.update_layout(title=title, barmode="overlay", meta=meta, margin=margin, **layout)


def to_png(chart: Chart, path: PathLike | None) -> Any:
    """Writes the chart as a PNG and returns its Path; None returns the matplotlib Figure (for
    ``mlflow.log_figure``). Drawn on the Agg canvas: no pyplot state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=chart.size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(chart.panels), squeeze=False)[0]
    for ax, p in zip(axes, chart.panels, strict=True):  # first: a scale resets the ticks
        if p.empty:
            ax.text(0.5, 0.5, p.empty, ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale=SCALE[p.log_x], yscale=SCALE[p.log_y], xlabel=p.x, ylabel=p.y)
        ax.set_title(p.title, fontsize=10)
        ax.grid(True, alpha=0.3, **({"axis": "x"} if chart.bars else {}))
    for m in chart.marks:
        ax, (method, look) = axes[m.panel], LOOKS[m.kind]["matplotlib"]
        color = {} if "facecolors" in look else {"color": m.color}  # a ring keeps its own
        at = (range(len(m.y)), m.x) if method == "barh" else (m.x, m.y)  # bars: a row per category
        getattr(ax, method)(*at, label=m.label, **color, **look)
        for x, y, text in zip(m.x, m.y, m.text, strict=False):
            ax.annotate(text, (x, y), xytext=(8, -14), textcoords="offset points", fontsize=9)
        if m.kind == "bar":
            ax.set_yticks(range(len(m.y)), [str(v) for v in m.y], fontsize=8)
            ax.invert_yaxis()  # layer order reads top to bottom
    labelled = [m for m in chart.marks if m.label is not None]
    if labelled and len(chart.panels) > 1:
        figure.legend(loc="outside lower center", ncols=min(len(labelled), 6), fontsize=9)
    elif labelled:
        axes[0].legend(loc="lower right", fontsize=9)
    figure.suptitle("\n".join(filter(None, [chart.title, chart.subtitle])), fontsize=11)
    if path is not None:
        figure.savefig(Path(path), format="png")
    return figure if path is None else Path(path)


def plot(chart: Chart, div_id: str, **meta: Any) -> dict[str, Any]:
    """The chart as a page embeds it (``templates/macros.html``): its div's id, its plotly JSON."""
    import plotly.io as pio

    figure = json.loads(pio.to_json(to_plotly(chart), validate=False))
    figure["layout"]["meta"] |= meta
    return {"id": div_id, "figure": figure}


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


@functools.cache
def _templates() -> jinja2.Environment:
    options: dict[str, Any] = {"trim_blocks": True, "lstrip_blocks": True}
    options["undefined"] = jinja2.StrictUndefined  # a name the data lacks is an error
    return jinja2.Environment(loader=jinja2.PackageLoader("dashboards"), autoescape=True, **options)


def write_page(
    path: PathLike, template: str, data: Mapping[str, Any], shared_js: bool = False
) -> Path:
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


def write_chart(chart: Chart, path: PathLike, link: str | None = None, table: Any = None) -> Path:
    """Writes the chart as a PNG (``path`` ends in .png) or as a self-contained page (then a link
    to the run, when safe, and a table: a ``sweep.charts.FrontChart``'s rows)."""
    if str(path).endswith(".png"):
        return Path(to_png(chart, path))
    page = {"plots": [plot(chart, "figure-0")], "link": safe_link(link), "table": table}
    return write_page(path, "figures.html", {"title": chart.title, **page})
