"""The Pareto chart of a ``sweep.charts.FrontChart``: a matplotlib PNG, a plotly figure, and a
page with the figure over a table of the front. Every point a series (the baseline's joined in
cost order), each series' own front a step line, rings on the front, a star on the knee."""

from __future__ import annotations

import html
from typing import Any

from sweep.charts import FrontChart, Point, front_chart
from sweep.pareto import ParetoResult

from .render import PathLike, hover_text, png_figure, save_png, series_colors, write_figures

EMPTY = "no trial with a finite cost and accuracy"


def _colors(chart: FrontChart) -> dict[str, str]:
    base = next((s.label for s in chart.series if s.baseline), None)
    return series_colors([s.label for s in chart.series], base)


def pareto_png(result: ParetoResult, path: PathLike | None, **options: Any) -> Any:
    """Writes the chart as a PNG; returns its Path (the matplotlib Figure when ``path`` is None).
    ``options`` are :func:`sweep.charts.front_chart`'s."""
    chart, figure = front_chart(result, **options), png_figure(8, 5)
    colors, ax = _colors(chart), figure.add_subplot()
    for s in chart.series:
        xs, ys = [p.x for p in s.points], [p.y for p in s.points]
        if s.baseline:
            ax.plot(xs, ys, "o-", color=colors[s.label], label=s.label, zorder=2)
        else:
            ax.scatter(xs, ys, color=colors[s.label], label=s.label, zorder=3)
        for fx, fy in s.fronts:
            ax.step(fx, fy, where="post", color=colors[s.label], alpha=0.8, zorder=2)
    ring = {"s": 90, "facecolors": "none", "edgecolors": "black", "linewidths": 1.2, "zorder": 4}
    if chart.front:
        ax.scatter(
            [p.x for p in chart.front], [p.y for p in chart.front], label="Pareto front", **ring
        )
    for p in chart.knee:
        ax.annotate("knee", (p.x, p.y), xytext=(8, -14), textcoords="offset points")
    if chart.empty:
        ax.text(0.5, 0.5, EMPTY, ha="center", va="center")
    else:
        ax.legend(loc="lower right", fontsize=9)
    ax.set(xscale="log" if chart.log_x else "linear", xlabel=chart.x_label, ylabel=chart.y_label)
    ax.set_title(chart.title)
    ax.grid(True, alpha=0.3)
    return save_png(figure, path)


def _points(points: tuple[Point, ...]) -> dict[str, Any]:
    return {
        "x": [p.x for p in points],
        "y": [p.y for p in points],
        "hovertext": [hover_text(p.hover) for p in points],
        "hoverinfo": "text",
        "customdata": [[p.trial, p.link, p.pareto, p.rank] for p in points],
    }


def pareto_figure(result: ParetoResult, **options: Any) -> Any:
    """The interactive chart as a ``plotly.graph_objects.Figure``; ``options`` as for PNGs.

    Traces by ``meta.role``: "points" per series (the baseline's "baseline"), "front-line" (each
    series' front), "front" (rings on the result's front) and "knee". Every point's
    ``customdata`` is [trial, link, pareto, rank]; the link opens on click.
    """
    import plotly.graph_objects as go

    chart, figure = front_chart(result, **options), go.Figure()
    colors = _colors(chart)
    for s in chart.series:
        for fx, fy in s.fronts:
            line = {"shape": "hv", "color": colors[s.label], "width": 1.5}
            quiet = {"hoverinfo": "skip", "showlegend": False, "opacity": 0.8}
            meta = {"role": "front-line", "series": s.label}
            figure.add_scatter(x=fx, y=fy, mode="lines", line=line, meta=meta, **quiet)
    for s in chart.series:
        marker = {"color": colors[s.label], "size": 9, "line": {"color": "white", "width": 1}}
        figure.add_scatter(
            name=html.escape(s.label),
            mode="lines+markers" if s.baseline else "markers",
            marker=marker,
            line={"color": colors[s.label], "width": 2, "dash": "dash"} if s.baseline else None,
            meta={"role": "baseline" if s.baseline else "points", "series": s.label},
            **_points(s.points),
        )
    ring = {"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}}
    figure.add_scatter(
        name="Pareto front",
        mode="markers",
        marker=ring,
        meta={"role": "front"},
        **_points(chart.front),
    )
    star = {"symbol": "star", "size": 14, "color": "black"}
    text = {"text": ["knee"] * len(chart.knee), "textposition": "bottom right"}
    figure.add_scatter(
        name="knee",
        mode="markers+text",
        marker=star,
        meta={"role": "knee"},
        **text,
        **_points(chart.knee),
    )
    figure.update_layout(
        title={"text": html.escape(chart.title)},
        xaxis={
            "title": {"text": html.escape(chart.x_label)},
            "type": "log" if chart.log_x else "linear",
        },
        yaxis={"title": {"text": html.escape(chart.y_label)}},
        template="plotly_white",
        hovermode="closest",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        height=480,
        meta={
            "kind": "pareto",
            "log_x": chart.log_x,
            "points": sum(len(s.points) for s in chart.series),
        },
    )
    if chart.empty:
        figure.add_annotation(text=EMPTY, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def pareto_html(result: ParetoResult, path: PathLike, **options: Any) -> Any:
    """Writes :func:`pareto_figure` as a self-contained page over a table of the front's rows
    (``link_column``: a URL per row, e.g. its MLflow run)."""
    chart = front_chart(result, **options)
    return write_figures(path, chart.title, [pareto_figure(result, **options)], table=chart)
