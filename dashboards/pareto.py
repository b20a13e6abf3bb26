"""Cost-accuracy Pareto charts of a computed ``sweep.pareto`` result: a matplotlib PNG, a plotly
figure, and a page with the figure over a table of the front. Each series' own front (the step
line) is ``sweep.pareto``'s computation too; nothing here decides what is optimal."""

from __future__ import annotations

import html
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from sweep.pareto import ParetoResult, pareto_front

from .render import write_figures
from .style import BASELINE, fmt, hover_text, matplotlib_figure, safe_link, save_png, series_colors

__all__ = ["DEFAULT_HOVER", "front_table", "pareto_figure", "pareto_html", "pareto_png"]

DEFAULT_HOVER = ("trial", "trial_name", "trial_id", "run_name", "strength")
EMPTY = "no trial with a finite cost and accuracy"


class _Layout(NamedTuple):
    """What both renderers draw, read off the result."""

    valid: pd.DataFrame  # rows with a finite cost and accuracy
    labels: pd.Series  # series label per valid row
    colors: dict[str, str]  # colour per series label, in drawing order (the baseline last)
    steps: list[tuple[str, list[float], list[float]]]  # each series' own front, by cost
    baseline: str | None  # the baseline's label; None without a series column
    log_x: bool  # costs span more than a decade


def _require(result: ParetoResult, **columns: str | None) -> None:
    """ValueError naming a missing column (by its role) and the columns there are."""
    for role, column in columns.items():
        if column is not None and column not in result.table.columns:
            available = [str(c) for c in result.table.columns]
            raise ValueError(f"{role} column {column!r} not found; available columns: {available}")


def _layout(result: ParetoResult, series: str | None, baseline_label: str) -> _Layout:
    _require(result, series=series)
    cost, accuracy = result.cost_column, result.accuracy_column
    valid = result.table[result.table["rank"] >= 0]
    labels = pd.Series("all", index=valid.index, dtype=object)
    if series is not None:
        labels = valid[series].map(lambda v: "(none)" if pd.isna(v) else str(v))
    base = baseline_label if series is not None else None
    colors = series_colors(labels, base)
    steps = []
    for name in colors:
        if name != base:
            rows = valid[(labels == name).to_numpy()]
            group = result.group_column
            own = pareto_front(rows, cost=cost, accuracy=accuracy, group=group).front()
            parts = (
                [own]
                if group is None
                else [p for _, p in own.groupby(group, dropna=False, sort=False)]
            )
            steps += [(name, p[cost].tolist(), p[accuracy].tolist()) for p in parts]
    costs = valid[cost].to_numpy(float)
    log_x = bool(costs.size and costs.min() > 0 and costs.max() / costs.min() > 10)
    return _Layout(valid, labels, colors, steps, base, log_x)


def _rows(layout: _Layout, name: str, result: ParetoResult) -> pd.DataFrame:
    """A series' rows; the baseline's in cost order (drawn as a curve)."""
    rows = layout.valid[(layout.labels == name).to_numpy()]
    if name != layout.baseline:
        return rows
    return rows.sort_values([result.cost_column, result.accuracy_column], kind="mergesort")


def _titles(result: ParetoResult, title: str | None, cost_label: str | None) -> tuple[str, str]:
    x_label = cost_label or result.cost_column
    return title or f"{result.accuracy_column} vs {x_label}", x_label


def pareto_png(
    result: ParetoResult,
    path: str | os.PathLike[str] | None,
    *,
    series: str | None = "algorithm",
    baseline_label: str = BASELINE,
    title: str | None = None,
    cost_label: str | None = None,
) -> Any:
    """Writes the chart as a PNG; returns its Path (the matplotlib Figure when ``path`` is None).

    Every valid row is a point coloured by its ``series``; each series' front is a step line,
    the baseline's rows a curve in cost order; the front's rows get black rings, the knee a note.
    A grouped result should be drawn one group at a time: costs of groups do not compare.

    Raises:
        ValueError: ``series`` is not a column of the result.
    """
    layout = _layout(result, series, baseline_label)
    cost, accuracy = result.cost_column, result.accuracy_column
    figure = matplotlib_figure(8, 5)
    ax = figure.add_subplot()
    for name, color in layout.colors.items():
        rows = _rows(layout, name, result)
        if name == layout.baseline:
            ax.plot(rows[cost], rows[accuracy], "o-", color=color, label=name, zorder=2)
        else:
            ax.scatter(rows[cost], rows[accuracy], color=color, label=name, zorder=3)
    for name, xs, ys in layout.steps:
        ax.step(xs, ys, where="post", color=layout.colors[name], alpha=0.8, zorder=2)
    front = layout.valid[layout.valid["pareto"].to_numpy(bool)]
    ring = {"s": 90, "facecolors": "none", "edgecolors": "black", "linewidths": 1.2, "zorder": 4}
    if not front.empty:
        ax.scatter(front[cost], front[accuracy], label="Pareto front", **ring)
    for _, row in layout.valid[layout.valid["knee"].to_numpy(bool)].iterrows():
        ax.annotate("knee", (row[cost], row[accuracy]), xytext=(8, -14), textcoords="offset points")
    if layout.valid.empty:
        ax.text(0.5, 0.5, EMPTY, ha="center", va="center")
    else:
        ax.legend(loc="lower right", fontsize=9)
    heading, x_label = _titles(result, title, cost_label)
    ax.set(xscale="log" if layout.log_x else "linear", xlabel=x_label, ylabel=accuracy)
    ax.set_title(heading)
    ax.grid(True, alpha=0.3)
    return save_png(figure, path)


def pareto_figure(
    result: ParetoResult,
    *,
    series: str | None = "algorithm",
    baseline_label: str = BASELINE,
    title: str | None = None,
    link_column: str | None = None,
    hover_columns: Sequence[Hashable] = DEFAULT_HOVER,
    cost_label: str | None = None,
) -> Any:
    """The interactive chart as a ``plotly.graph_objects.Figure``.

    Traces by ``meta.role``: "points" per series (the baseline's "baseline", joined in cost
    order), "front-line" (each series' front as a step line), "front" (rings on the result's
    front) and "knee". Every point's ``customdata`` is [trial, link, pareto, rank]; the link (an
    http(s), file or relative URL, never script) opens on click.

    Raises:
        ValueError: ``series`` or ``link_column`` is not a column of the result.
    """
    import plotly.graph_objects as go

    _require(result, link=link_column)
    layout = _layout(result, series, baseline_label)
    cost, accuracy = result.cost_column, result.accuracy_column
    heading, x_label = _titles(result, title, cost_label)
    valid = layout.valid
    columns = [c for c in hover_columns if c in valid.columns and c not in {series, cost, accuracy}]
    trial = next((c for c in DEFAULT_HOVER[:4] if c in valid.columns), None)

    def points(rows: pd.DataFrame, name: str) -> dict[str, Any]:
        hover, custom = [], []
        for _, row in rows.iterrows():
            lines = [f"{series}: {name}"] if series is not None else []
            lines += [f"{c}: {fmt(row[c])}" for c in [*columns, cost, accuracy]]
            lines.append(f"rank: {row['rank']}{' (Pareto front)' if row['pareto'] else ''}")
            hover.append(hover_text(lines))
            link = safe_link(row[link_column]) if link_column is not None else None
            name_ = str(row[trial]) if trial is not None else ""
            custom.append([name_, link or "", bool(row["pareto"]), int(row["rank"])])
        xs, ys = rows[cost].astype(float).tolist(), rows[accuracy].astype(float).tolist()
        return {"x": xs, "y": ys, "hovertext": hover, "hoverinfo": "text", "customdata": custom}

    figure = go.Figure()
    for name, xs, ys in layout.steps:
        line = {"shape": "hv", "color": layout.colors[name], "width": 1.5}
        quiet = {"hoverinfo": "skip", "showlegend": False, "opacity": 0.8}
        meta = {"role": "front-line", "series": name}
        figure.add_scatter(x=xs, y=ys, mode="lines", line=line, meta=meta, **quiet)
    for name, color in layout.colors.items():
        base = name == layout.baseline
        marker = {"color": color, "size": 9, "line": {"color": "white", "width": 1}}
        figure.add_scatter(
            name=html.escape(name),
            mode="lines+markers" if base else "markers",
            marker=marker,
            line={"color": color, "width": 2, "dash": "dash"} if base else None,
            meta={"role": "baseline" if base else "points", "series": name},
            **points(_rows(layout, name, result), name),
        )
    ring = {"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}}
    front = points(valid[valid["pareto"].to_numpy(bool)], "front")
    figure.add_scatter(
        name="Pareto front", mode="markers", marker=ring, meta={"role": "front"}, **front
    )
    knee = points(valid[valid["knee"].to_numpy(bool)], "knee")
    star = {"symbol": "star", "size": 14, "color": "black"}
    text = {"text": ["knee"] * len(knee["x"]), "textposition": "bottom right"}
    figure.add_scatter(
        name="knee", mode="markers+text", marker=star, meta={"role": "knee"}, **text, **knee
    )
    figure.update_layout(
        title={"text": html.escape(heading)},
        xaxis={
            "title": {"text": html.escape(x_label)},
            "type": "log" if layout.log_x else "linear",
        },
        yaxis={"title": {"text": html.escape(accuracy)}},
        template="plotly_white",
        hovermode="closest",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        height=480,
        meta={"kind": "pareto", "log_x": layout.log_x, "points": len(valid)},
    )
    if valid.empty:
        figure.add_annotation(text=EMPTY, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def front_table(
    result: ParetoResult, series: str | None, link_column: str | None, hover: Sequence[Hashable]
) -> dict[str, Any]:
    """The front's rows, cheapest first, as the page's table shows them: its caption, column
    names, rows of cells (formatted text) and safe links (``links``: whether there is a column)."""
    front = result.front()
    last = [result.cost_column, result.accuracy_column, "knee"]
    columns: list[Hashable] = []
    for column in [result.group_column, series, *hover]:
        if column is not None and column in front.columns and column not in columns + last:
            columns.append(column)
    columns += last
    rows = [
        {
            "cells": [("yes" if row[c] else "") if c == "knee" else fmt(row[c]) for c in columns],
            "link": safe_link(row[link_column]) if link_column is not None else None,
        }
        for _, row in front.iterrows()
    ]
    caption = f"Pareto front ({len(front)} trial{'s' if len(front) != 1 else ''}), cheapest first"
    names = [str(c) for c in columns]
    return {"caption": caption, "columns": names, "rows": rows, "links": link_column is not None}


def pareto_html(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    series: str | None = "algorithm",
    baseline_label: str = BASELINE,
    title: str | None = None,
    link_column: str | None = None,
    hover_columns: Sequence[Hashable] = DEFAULT_HOVER,
    cost_label: str | None = None,
) -> Path:
    """Writes :func:`pareto_figure` as a self-contained page over a table of the front's rows
    (``link_column``: a URL per row, e.g. its MLflow run; ``hover_columns``: shown when present).

    Raises:
        ValueError: ``series`` or ``link_column`` is not a column of the result.
    """
    figure = pareto_figure(
        result,
        series=series,
        baseline_label=baseline_label,
        title=title,
        link_column=link_column,
        hover_columns=hover_columns,
        cost_label=cost_label,
    )
    table = front_table(result, series, link_column, hover_columns)
    return write_figures(path, _titles(result, title, cost_label)[0], [figure], table=table)
