"""Cost-accuracy Pareto charts of a computed sweep.pareto result: a matplotlib PNG and an
interactive plotly figure (zoom, hover, PNG export), written as a self-contained HTML page."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from sweep.pareto import ParetoResult, pareto_front

__all__ = ["pareto_figure", "pareto_html", "pareto_png", "write_figures"]

# Fixed palette (matplotlib's tab10) so the PNG and the HTML colour series identically.
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
_BASELINE_COLOR = "#555555"
# Link schemes allowed in the HTML: the file gets shared, so a data value must not run script.
_SAFE_SCHEMES = ("", "http", "https", "file")
_DEFAULT_HOVER = ("trial", "trial_name", "trial_id", "run_name", "strength")


@dataclass(frozen=True)
class _Layout:
    """What both renderers draw; derived from the result, never recomputed by the renderers."""

    valid: pd.DataFrame  # rows with a finite cost and accuracy, in input order
    labels: pd.Series  # series label (str) per valid row
    order: list[str]  # series labels, non-baseline sorted, baseline last
    colors: dict[str, str]
    steps: list[tuple[str, np.ndarray, np.ndarray]]  # per-series front, sorted by cost
    baseline: tuple[np.ndarray, np.ndarray] | None  # baseline curve sorted by cost
    log_x: bool
    baseline_name: str | None  # None when there is no series column to find a baseline in


def _label(value: object) -> str:
    """Series value as legend text; missing values read "(none)"."""
    return "(none)" if pd.isna(value) else str(value)


def _layout(result: ParetoResult, series: str | None, baseline_label: str) -> _Layout:
    """Prepares what both renderers draw; ValueError when ``series`` is not a column."""
    table = result.table
    if series is not None and series not in table.columns:
        available = [str(c) for c in table.columns]
        raise ValueError(f"series column {series!r} not found; available columns: {available}")
    cost, accuracy = result.cost_column, result.accuracy_column
    valid = table[table["rank"] >= 0]
    if series is None:
        labels = pd.Series("all", index=valid.index, dtype=object)
    else:
        labels = valid[series].map(_label)
    base = baseline_label if series is not None else None
    names = sorted(set(labels))
    order = [n for n in names if n != base] + [n for n in names if n == base]
    colors = {
        n: _BASELINE_COLOR if n == base else _PALETTE[i % len(_PALETTE)]
        for i, n in enumerate(order)
    }

    steps: list[tuple[str, np.ndarray, np.ndarray]] = []
    baseline = None
    for name in order:
        rows = valid[(labels == name).to_numpy()]
        if name == base:
            ordered = rows.sort_values([cost, accuracy], kind="mergesort")
            baseline = (ordered[cost].to_numpy(float), ordered[accuracy].to_numpy(float))
            continue
        # each series' own front is sweep's computation; within groups when the result has them
        own = pareto_front(rows, cost=cost, accuracy=accuracy, group=result.group_column).front()
        parts = (
            [own]
            if result.group_column is None
            else [part for _, part in own.groupby(result.group_column, dropna=False, sort=False)]
        )
        for part in parts:
            steps.append((name, part[cost].to_numpy(float), part[accuracy].to_numpy(float)))

    costs = valid[cost].to_numpy(float)
    # a log axis only helps when costs span more than a decade (and it needs positive costs)
    log_x = bool(costs.size and costs.min() > 0 and costs.max() / costs.min() > 10)
    return _Layout(valid, labels, order, colors, steps, baseline, log_x, base)


def _titles(
    result: ParetoResult, title: str | None, cost_label: str | None
) -> tuple[str, str, str]:
    """Returns (title, x label, y label) with their defaults filled in."""
    x_label = cost_label or result.cost_column
    return (title or f"{result.accuracy_column} vs {x_label}", x_label, result.accuracy_column)


def pareto_png(
    result: ParetoResult,
    path: str | os.PathLike[str] | None,
    *,
    series: str | None = "algorithm",
    baseline_label: str = "baseline",
    title: str | None = None,
    cost_label: str | None = None,
) -> Any:
    """Writes a scatter of cost (x) against accuracy (y) as a PNG.

    Every valid row is a point, coloured by its ``series`` value. Each series' own front is
    joined by a step line; rows of the baseline series are joined in cost order instead (the
    uniform-width baseline curve). Rows on ``result``'s front get a black ring and the knee a
    "knee" note. The x axis is logarithmic when costs span more than a decade. With a grouped
    result, pass one group's rows for a meaningful x axis: costs of groups are not comparable.

    Args:
        result: Output of :func:`sweep.pareto.pareto_front`.
        path: Where to write the PNG; None returns the matplotlib Figure (for log_figure).
        series: Column that tells series apart (e.g. the MorphNet algorithm); None for one.
        baseline_label: Series value of the baseline trials.
        title: Figure title; defaults to "<accuracy> vs <cost>".
        cost_label: x axis label; defaults to the cost column name.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``series`` is not a column of the result.
    """
    # matplotlib is imported here so that reading results never pays for it; Figure plus the Agg
    # canvas avoids pyplot's global state and any GUI backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layout = _layout(result, series, baseline_label)
    cost, accuracy = result.cost_column, result.accuracy_column
    heading, x_label, y_label = _titles(result, title, cost_label)

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if layout.baseline is not None:
        xs, ys = layout.baseline
        ax.plot(xs, ys, "o-", color=_BASELINE_COLOR, label=baseline_label, zorder=2)
    for name, xs, ys in layout.steps:
        ax.step(xs, ys, where="post", color=layout.colors[name], alpha=0.8, zorder=2)
    for name in layout.order:
        if name == layout.baseline_name:
            continue
        rows = layout.valid[(layout.labels == name).to_numpy()]
        ax.scatter(rows[cost], rows[accuracy], color=layout.colors[name], label=name, zorder=3)
    front = layout.valid[layout.valid["pareto"].to_numpy(bool)]
    if not front.empty:
        ax.scatter(
            front[cost],
            front[accuracy],
            s=90,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            label="Pareto front",
            zorder=4,
        )
    for _, row in layout.valid[layout.valid["knee"].to_numpy(bool)].iterrows():
        ax.annotate(
            "knee",
            (row[cost], row[accuracy]),
            xytext=(8, -14),
            textcoords="offset points",
            fontsize=9,
        )
    if layout.valid.empty:
        ax.text(0.5, 0.5, "no trial with a finite cost and accuracy", ha="center", va="center")
    if layout.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(heading)
    ax.grid(True, alpha=0.3)
    if not layout.valid.empty:
        ax.legend(loc="lower right", fontsize=9)
    if path is None:  # the figure itself, e.g. for mlflow.log_figure
        return figure
    out = Path(path)
    figure.savefig(out, format="png")
    return out


# --- plotly ----------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    """Formats a value for hover text and the table."""
    if isinstance(value, float | np.floating):
        text = f"{float(value):.6g}"
        mantissa, e, exponent = text.partition("e")
        # "1e6" reads better than Python's "1e+06" in hover text
        return f"{mantissa}e{int(exponent)}" if e else text
    return str(value)


def _attr(value: object) -> str:
    """Escapes a value for use inside a double-quoted attribute."""
    return html.escape(str(value), quote=True)


def _safe_link(value: object) -> str | None:
    """Returns the row's URL when it is non-empty and cannot run script, else None."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    text = str(value).strip()
    if not text or urlsplit(text).scheme.lower() not in _SAFE_SCHEMES:
        return None
    return text


def _hover(lines: Sequence[str]) -> str:
    """Hover text: escaped, since plotly renders a subset of HTML in it."""
    return "<br>".join(html.escape(line) for line in lines)


def pareto_figure(
    result: ParetoResult,
    *,
    series: str | None = "algorithm",
    baseline_label: str = "baseline",
    title: str | None = None,
    link_column: str | None = None,
    hover_columns: Sequence[Hashable] = _DEFAULT_HOVER,
    cost_label: str | None = None,
) -> Any:
    """The interactive Pareto chart as a ``plotly.graph_objects.Figure``.

    One marker trace per series (``meta.role`` "points"; the baseline's also joined in cost
    order, role "baseline"), each series' own front as a step line (role "front-line"), rings on
    the rows of ``result``'s front (role "front") and the knee (role "knee", with a "knee"
    label). Every point's ``customdata`` is [trial, link, pareto, rank]; the link (an http(s),
    file or relative URL, never script) opens when the point is clicked. The x axis is
    logarithmic when costs span more than a decade.

    Raises:
        ValueError: ``series`` or ``link_column`` is not a column of the result.
    """
    import plotly.graph_objects as go

    if link_column is not None and link_column not in result.table.columns:
        available = [str(c) for c in result.table.columns]
        raise ValueError(f"link column {link_column!r} not found; available columns: {available}")
    layout = _layout(result, series, baseline_label)
    cost, accuracy = result.cost_column, result.accuracy_column
    heading, x_label, y_label = _titles(result, title, cost_label)
    shown = {series, cost, accuracy}
    columns = [c for c in hover_columns if c in layout.valid.columns and c not in shown]
    trial_column = next((c for c in _DEFAULT_HOVER[:4] if c in layout.valid.columns), None)

    def points(rows: pd.DataFrame, name: str) -> dict[str, Any]:
        hover, custom = [], []
        for _, row in rows.iterrows():
            lines = [f"{series}: {name}"] if series is not None else []
            lines += [f"{c}: {_fmt(row[c])}" for c in columns]
            lines += [f"{cost}: {_fmt(row[cost])}", f"{accuracy}: {_fmt(row[accuracy])}"]
            lines.append(f"rank: {row['rank']}{' (Pareto front)' if row['pareto'] else ''}")
            hover.append(_hover(lines))
            link = _safe_link(row[link_column]) if link_column is not None else None
            trial = str(row[trial_column]) if trial_column is not None else ""
            custom.append([trial, link or "", bool(row["pareto"]), int(row["rank"])])
        return {
            "x": rows[cost].astype(float).tolist(),
            "y": rows[accuracy].astype(float).tolist(),
            "hovertext": hover,
            "hoverinfo": "text",
            "customdata": custom,
        }

    figure = go.Figure()
    for name, xs, ys in layout.steps:
        figure.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=ys.tolist(),
                mode="lines",
                line={"shape": "hv", "color": layout.colors[name], "width": 1.5},
                opacity=0.8,
                hoverinfo="skip",
                showlegend=False,
                meta={"role": "front-line", "series": name},
            )
        )
    for name in layout.order:
        rows = layout.valid[(layout.labels == name).to_numpy()]
        is_base = name == layout.baseline_name
        if is_base:
            rows = rows.sort_values([cost, accuracy], kind="mergesort")
        figure.add_trace(
            go.Scatter(
                name=html.escape(name),
                mode="lines+markers" if is_base else "markers",
                marker={
                    "color": layout.colors[name],
                    "size": 9,
                    "line": {"color": "white", "width": 1},
                },
                line={"color": layout.colors[name], "width": 2, "dash": "dash"}
                if is_base
                else None,
                meta={"role": "baseline" if is_base else "points", "series": name},
                **points(rows, name),
            )
        )
    front = layout.valid[layout.valid["pareto"].to_numpy(bool)]
    figure.add_trace(
        go.Scatter(
            name="Pareto front",
            mode="markers",
            marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
            meta={"role": "front"},
            **points(front, "front"),
        )
    )
    knee = layout.valid[layout.valid["knee"].to_numpy(bool)]
    figure.add_trace(
        go.Scatter(
            name="knee",
            mode="markers+text",
            text=["knee"] * len(knee),
            textposition="bottom right",
            marker={"symbol": "star", "size": 14, "color": "black"},
            meta={"role": "knee"},
            **points(knee, "knee"),
        )
    )
    figure.update_layout(
        title={"text": html.escape(heading)},
        xaxis={
            "title": {"text": html.escape(x_label)},
            "type": "log" if layout.log_x else "linear",
        },
        yaxis={"title": {"text": html.escape(y_label)}},
        template="plotly_white",
        hovermode="closest",
        legend={"orientation": "v"},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        height=480,
        meta={"kind": "pareto", "log_x": layout.log_x, "points": int(len(layout.valid))},
    )
    if layout.valid.empty:
        figure.add_annotation(
            text="no trial with a finite cost and accuracy",
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
    return figure


# Clicking a point with a link (customdata[1]) opens it: the one script the pages carry.
_CLICK = """
document.querySelectorAll('.plotly-graph-div').forEach(function (div) {
  div.on('plotly_click', function (event) {
    var point = event.points && event.points[0];
    var link = point && point.customdata && point.customdata[1];
    if (link) { window.open(link, '_blank'); }
  });
});
"""


PLOTLY_JS = "plotly.min.js"  # the shared copy next to pages written with shared_js=True


def figure_div(figure: Any, div_id: str, *, include_plotlyjs: bool | str) -> str:
    """A figure's ``<div>`` and script (with plotly.js inline when ``include_plotlyjs``)."""
    import plotly.io as pio

    return str(
        pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=include_plotlyjs,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def write_figures(
    path: str | os.PathLike[str],
    title: str,
    parts: Sequence[Any],
    style: str = "",
    *,
    shared_js: bool = False,
) -> Path:
    """Writes one HTML page: HTML strings and plotly figures, in order (ids ``figure-<n>``).

    plotly.js is embedded once, inline, before the first figure, so the page loads nothing
    from elsewhere and works offline. With ``shared_js`` the page loads ``plotly.min.js`` from
    its own directory instead (written there once): many small pages of one dashboard then
    share one copy of the library.
    """
    out = Path(path)
    if shared_js:
        library = out.parent / PLOTLY_JS
        if not library.is_file():
            from plotly.offline import get_plotlyjs

            library.write_text(get_plotlyjs(), encoding="utf-8")
    body, count = [], 0
    for part in parts:
        if isinstance(part, str):
            body.append(part)
            continue
        if count:
            include: bool | str = False
        else:
            include = "directory" if shared_js else True
        body.append(figure_div(part, f"figure-{count}", include_plotlyjs=include))
        count += 1
    if count:
        body.append(f"<script>{_CLICK}</script>")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}{style}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    out.write_text(page, encoding="utf-8")
    return out


def figure_data(page: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The figures a page written here holds, as plotly dicts (``data``, ``layout``), in order.

    Reads the ``Plotly.newPlot(id, data, layout, config)`` calls plotly writes; for tests and
    tools that check what a page shows without a browser.
    """
    text = Path(page).read_text(encoding="utf-8")
    decoder = json.JSONDecoder()

    def value(i: int) -> tuple[Any, int]:
        while text[i] in " \t\r\n,":
            i += 1
        return decoder.raw_decode(text, i)

    figures = []
    # the calls plotly writes for each div; plotly.js itself also contains the name
    for call in re.finditer(r'Plotly\.newPlot\(\s*(?="[\w-]+",)', text):
        try:
            _, i = value(call.end())  # the div id
            data, i = value(i)
            layout, i = value(i)
        except json.JSONDecodeError:
            continue
        figures.append({"data": data, "layout": layout})
    return figures


def _front_table(
    result: ParetoResult, series: str | None, link_column: str | None, hover: Sequence[Hashable]
) -> str:
    """Returns the HTML table of the front rows, cheapest first."""
    front = result.front()
    columns: list[Hashable] = []
    # cost, accuracy and knee close every row, so hover columns naming them are skipped earlier
    last = [result.cost_column, result.accuracy_column, "knee"]
    for column in [result.group_column, series, *hover]:
        if column is not None and column in front.columns and column not in columns + last:
            columns.append(column)
    columns += last
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    if link_column is not None:
        head += "<th>link</th>"
    body = []
    for _, row in front.iterrows():
        cells = "".join(
            f"<td>{html.escape('yes' if row[c] else '') if c == 'knee' else html.escape(_fmt(row[c]))}</td>"
            for c in columns
        )
        if link_column is not None:
            link = _safe_link(row[link_column])
            cells += f'<td><a href="{_attr(link)}">open</a></td>' if link else "<td></td>"
        body.append(f"<tr>{cells}</tr>")
    caption = f"Pareto front ({len(front)} trial{'s' if len(front) != 1 else ''}), cheapest first"
    return (
        f'<table class="front-table"><caption>{caption}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table.front-table { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
table.front-table caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
table.front-table th, table.front-table td { border: 1px solid #ccc; padding: 3px 8px; }
table.front-table td { text-align: right; }
"""


def pareto_html(
    result: ParetoResult,
    path: str | os.PathLike[str],
    *,
    series: str | None = "algorithm",
    baseline_label: str = "baseline",
    title: str | None = None,
    link_column: str | None = None,
    hover_columns: Sequence[Hashable] = _DEFAULT_HOVER,
    cost_label: str | None = None,
) -> Path:
    """Writes :func:`pareto_figure` as a self-contained page, with a table of the front rows.

    Args:
        result: Output of :func:`sweep.pareto.pareto_front`.
        path: Where to write the HTML.
        series: Column that tells series apart; None for one series.
        baseline_label: Series value of the baseline trials.
        title: Chart and page title; defaults to "<accuracy> vs <cost>".
        link_column: Column holding a URL per row (e.g. the MLflow run page).
        hover_columns: Columns shown in the hover text (and the front table) when present.
        cost_label: x axis label; defaults to the cost column name.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

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
    heading, _, _ = _titles(result, title, cost_label)
    table = _front_table(result, series, link_column, list(hover_columns))
    return write_figures(path, heading, [figure, table])
