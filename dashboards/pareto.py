"""Cost-accuracy Pareto charts (PNG and offline HTML/SVG) of a computed sweep.pareto result."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from sweep.pareto import ParetoResult, pareto_front

__all__ = ["pareto_html", "pareto_png"]

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

# SVG geometry in pixels: plot area plus room for tick labels, axis titles and the legend.
_WIDTH, _HEIGHT = 900, 480
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 210, 40, 56


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
    path: str | os.PathLike[str],
    *,
    series: str | None = "algorithm",
    baseline_label: str = "baseline",
    title: str | None = None,
    cost_label: str | None = None,
) -> Path:
    """Writes a scatter of cost (x) against accuracy (y) as a PNG.

    Every valid row is a point, coloured by its ``series`` value. Each series' own front is
    joined by a step line; rows of the baseline series are joined in cost order instead (the
    uniform-width baseline curve). Rows on ``result``'s front get a black ring and the knee a
    "knee" note. The x axis is logarithmic when costs span more than a decade. With a grouped
    result, pass one group's rows for a meaningful x axis: costs of groups are not comparable.

    Args:
        result: Output of :func:`sweep.pareto.pareto_front`.
        path: Where to write the PNG.
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
    out = Path(path)
    figure.savefig(out, format="png")
    return out


# --- HTML ----------------------------------------------------------------------------------------


def _nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round numbers (1, 2 or 5 times a power of ten) spanning [low, high]."""
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = [round(k * step, 12) for k in range(first, int(math.floor(high / step + 1e-9)) + 1)]
    return ticks


def _log_ticks(low: float, high: float) -> list[float]:
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks = [10.0**d for d in decades if low <= 10.0**d <= high]
    if len(ticks) < 3:
        # spans of one or two decades need intermediate labels to be readable
        ticks = [m * 10.0**d for d in decades for m in (1, 2, 5) if low <= m * 10.0**d <= high]
    return ticks


def _domain(values: np.ndarray, log: bool) -> tuple[float, float]:
    """Padded axis range (in log10 units when ``log``)."""
    if values.size == 0:
        return (0.0, 1.0)
    data = np.log10(values) if log else values
    low, high = float(data.min()), float(data.max())
    if high == low:
        # one distinct value still needs a visible range around it
        pad = 0.5 if log else (abs(low) * 0.1 or 1.0)
        return (low - pad, high + pad)
    pad = (high - low) * 0.06
    return (low - pad, high + pad)


class _Scale:
    """Maps data values to SVG pixels on one axis."""

    def __init__(self, domain: tuple[float, float], pixels: tuple[float, float], log: bool) -> None:
        """Stores the mapping.

        Args:
            domain: Padded (low, high) in data units, or log10 units when ``log``.
            pixels: Pixel positions of low and high.
            log: Whether values are mapped by their log10.
        """
        self.domain, self.pixels, self.log = domain, pixels, log

    def __call__(self, value: float) -> float:
        """Returns the pixel position of ``value``."""
        v = math.log10(value) if self.log else value
        (d0, d1), (p0, p1) = self.domain, self.pixels
        return p0 + (v - d0) / (d1 - d0) * (p1 - p0)

    def ticks(self) -> list[float]:
        """Returns tick values (in data units) inside the domain."""
        d0, d1 = self.domain
        return _log_ticks(10**d0, 10**d1) if self.log else _nice_ticks(d0, d1)


def _fmt(value: object) -> str:
    """Formats a value for tick labels, hover text and the table."""
    if isinstance(value, float | np.floating):
        text = f"{float(value):.6g}"
        mantissa, e, exponent = text.partition("e")
        # "1e6" reads better than Python's "1e+06" on axes and in hover text
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


def _svg(
    result: ParetoResult,
    layout: _Layout,
    *,
    series: str | None,
    heading: str,
    x_label: str,
    y_label: str,
    link_column: str | None,
    hover: Sequence[Hashable],
) -> str:
    """Returns the inline SVG chart."""
    cost, accuracy = result.cost_column, result.accuracy_column
    plot_right, plot_bottom = _WIDTH - _RIGHT, _HEIGHT - _BOTTOM
    costs = layout.valid[cost].to_numpy(float)
    accs = layout.valid[accuracy].to_numpy(float)
    sx = _Scale(_domain(costs, layout.log_x), (_LEFT, plot_right), layout.log_x)
    sy = _Scale(_domain(accs, False), (plot_bottom, _TOP), False)

    out = [
        f'<svg class="pareto" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{_attr(heading)}" '
        f'data-x-scale="{"log" if layout.log_x else "linear"}">',
        f'<text class="heading" x="{_LEFT}" y="{_TOP - 16}">{html.escape(heading)}</text>',
        f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{plot_right - _LEFT}" '
        f'height="{plot_bottom - _TOP}"/>',
    ]
    for value in sx.ticks():
        x = sx(value)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{plot_bottom}"/>')
        out.append(
            f'<text class="tick x" x="{x:.1f}" y="{plot_bottom + 16}">{_fmt(float(value))}</text>'
        )
    for value in sy.ticks():
        y = sy(value)
        out.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{plot_right}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick y" x="{_LEFT - 6}" y="{y + 4:.1f}">{_fmt(float(value))}</text>'
        )
    out.append(
        f'<text class="axis-label x" x="{(_LEFT + plot_right) / 2:.0f}" y="{_HEIGHT - 14}">'
        f"{html.escape(x_label)}{' (log scale)' if layout.log_x else ''}</text>"
    )
    out.append(
        f'<text class="axis-label y" x="18" y="{(_TOP + plot_bottom) / 2:.0f}" '
        f'transform="rotate(-90 18 {(_TOP + plot_bottom) / 2:.0f})">{html.escape(y_label)}</text>'
    )

    if layout.baseline is not None:
        xs, ys = layout.baseline
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        out.append(
            f'<polyline class="baseline-line" points="{points}" stroke="{_BASELINE_COLOR}"/>'
        )
    for name, xs, ys in layout.steps:
        # post-step: the best accuracy reachable at a cost holds until the next front point
        d = f"M{sx(xs[0]):.1f},{sy(ys[0]):.1f}"
        for x, y in zip(xs[1:], ys[1:], strict=True):
            d += f" H{sx(x):.1f} V{sy(y):.1f}"
        out.append(
            f'<path class="front-line" data-series="{_attr(name)}" d="{d}" '
            f'stroke="{layout.colors[name]}"/>'
        )

    # cost, accuracy and series always appear in the hover text; listing them again adds noise
    shown = {series, cost, accuracy}
    hover_columns = [c for c in hover if c in layout.valid.columns and c not in shown]
    # front points last so their rings are drawn on top of the others
    ordered = layout.valid.assign(_label=layout.labels.to_numpy()).sort_values(
        "pareto", kind="mergesort"
    )
    for _, row in ordered.iterrows():
        name = row["_label"]
        classes = ["point"]
        if row["pareto"]:
            classes.append("front")
        if name == layout.baseline_name:
            classes.append("baseline")
        if row["knee"]:
            classes.append("knee")
        lines = [f"{series}: {name}"] if series is not None else []
        lines += [f"{c}: {_fmt(row[c])}" for c in hover_columns]
        lines += [f"{cost}: {_fmt(row[cost])}", f"{accuracy}: {_fmt(row[accuracy])}"]
        lines.append(f"rank: {row['rank']}{' (Pareto front)' if row['pareto'] else ''}")
        x, y = sx(row[cost]), sy(row[accuracy])
        circle = (
            f'<circle class="{" ".join(classes)}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="{7 if row["knee"] else 5}" fill="{layout.colors[name]}" '
            f'data-series="{_attr(name)}" data-cost="{float(row[cost])!r}" '
            f'data-accuracy="{float(row[accuracy])!r}" '
            f'data-pareto="{"true" if row["pareto"] else "false"}" data-rank="{row["rank"]}">'
            f"<title>{html.escape(chr(10).join(lines))}</title></circle>"
        )
        link = _safe_link(row[link_column]) if link_column is not None else None
        if link is not None:
            circle = f'<a href="{_attr(link)}" target="_blank">{circle}</a>'
        out.append(circle)
        if row["knee"]:
            out.append(f'<text class="knee-label" x="{x + 9:.1f}" y="{y + 16:.1f}">knee</text>')

    legend_x, legend_y = plot_right + 18, _TOP + 6
    out.append('<g class="legend">')
    entries = [(n, layout.colors[n]) for n in layout.order]
    for i, (name, color) in enumerate(entries):
        y = legend_y + 20 * i
        if name == layout.baseline_name:
            out.append(
                f'<line x1="{legend_x - 8}" y1="{y}" x2="{legend_x + 8}" y2="{y}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        out.append(f'<circle cx="{legend_x}" cy="{y}" r="5" fill="{color}"/>')
        out.append(f'<text x="{legend_x + 14}" y="{y + 4}">{html.escape(name)}</text>')
    y = legend_y + 20 * len(entries)
    out.append(f'<circle class="legend-front" cx="{legend_x}" cy="{y}" r="7"/>')
    out.append(f'<text x="{legend_x + 14}" y="{y + 4}">Pareto front</text>')
    out.append("</g>")
    if layout.valid.empty:
        out.append(
            f'<text class="empty" x="{(_LEFT + plot_right) / 2:.0f}" '
            f'y="{(_TOP + plot_bottom) / 2:.0f}">no trial with a finite cost and accuracy</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


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
svg.pareto text { font-size: 12px; fill: #222; }
svg.pareto .heading { font-size: 15px; font-weight: 600; }
svg.pareto .frame { fill: none; stroke: #888; }
svg.pareto .grid { stroke: #e4e4e4; }
svg.pareto .tick.x, svg.pareto .axis-label, svg.pareto .empty { text-anchor: middle; }
svg.pareto .tick.y { text-anchor: end; }
svg.pareto .front-line { fill: none; stroke-width: 1.5; opacity: 0.8; }
svg.pareto .baseline-line { fill: none; stroke-width: 2; }
svg.pareto .point { stroke: white; stroke-width: 1; }
svg.pareto .point.front, svg.pareto .legend-front { stroke: black; stroke-width: 2; }
svg.pareto .legend-front { fill: none; }
svg.pareto .point:hover { stroke: black; stroke-width: 3; }
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
    """Writes a self-contained HTML page with an inline SVG version of :func:`pareto_png`.

    The page loads nothing (no scripts, fonts or stylesheets from elsewhere), so it works on
    offline machines. Each valid row is a ``<circle class="point">`` with ``data-series``,
    ``data-cost``, ``data-accuracy``, ``data-pareto`` ("true"/"false") and ``data-rank``, and a
    ``<title>`` hover text; rows on the front also have class ``front``, baseline rows class
    ``baseline`` and the knee class ``knee``. A table of the front rows follows the chart.

    Args:
        result: Output of :func:`sweep.pareto.pareto_front`.
        path: Where to write the HTML.
        series: Column that tells series apart; None for one series.
        baseline_label: Series value of the baseline trials.
        title: Chart and page title; defaults to "<accuracy> vs <cost>".
        link_column: Column holding a URL per row (e.g. the MLflow run page); rows with a
            non-empty http(s), file or relative URL get their point wrapped in a link.
        hover_columns: Columns shown in the hover text (and the front table) when present.
        cost_label: x axis label; defaults to the cost column name.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``series`` or ``link_column`` is not a column of the result.
    """
    if link_column is not None and link_column not in result.table.columns:
        available = [str(c) for c in result.table.columns]
        raise ValueError(f"link column {link_column!r} not found; available columns: {available}")
    layout = _layout(result, series, baseline_label)
    heading, x_label, y_label = _titles(result, title, cost_label)
    hover = list(hover_columns)
    svg = _svg(
        result,
        layout,
        series=series,
        heading=heading,
        x_label=x_label,
        y_label=y_label,
        link_column=link_column,
        hover=hover,
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(heading)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{svg}\n{_front_table(result, series, link_column, hover)}\n</body>\n</html>\n"
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out
