"""Per-trial figures of a sweep: training curves over epochs and learned against seed layer widths.

These draw what the sweep logged (MLflow metric histories, a trial's ``structure.json``); they
compute nothing beyond the layout. Like :mod:`dashboards.pareto`, each figure comes as a PNG and
as a self-contained HTML page with an inline SVG (no scripts, fonts or stylesheets from
elsewhere), and every drawn element carries a class and ``data-`` attributes:

* ``training_curves_*``: one ``<polyline class="curve">`` per trial and metric panel, with
  ``data-trial``, ``data-metric``, ``data-series`` and ``data-points`` (epochs drawn);
* ``layer_widths_*``: per layer, in the structure's layer order, a ``<rect class="bar-original">``
  (seed width) under a ``<rect class="bar-alive">`` (learned width), both with ``data-layer``,
  ``data-alive`` and ``data-original``.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .pareto import _BASELINE_COLOR, _PALETTE, _attr, _domain, _fmt, _safe_link, _Scale

__all__ = [
    "CURVE_METRICS",
    "TrialHistory",
    "layer_widths_html",
    "layer_widths_png",
    "layer_widths_svg",
    "training_curves_html",
    "training_curves_png",
    "training_curves_svg",
    "CURVE_STYLE",
    "WIDTH_STYLE",
]

# (metric key as sweep.tune_runner logs it, panel title); one panel per metric.
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("learn/cost", "cost while learning"),
    ("learn/val_accuracy", "validation accuracy while learning"),
    ("retrain/val_accuracy", "validation accuracy while retraining"),
)

# Curve panel geometry in pixels.
_PANEL_W, _PANEL_H = 436, 300
_P_LEFT, _P_RIGHT, _P_TOP, _P_BOTTOM = 80, 14, 34, 46
# Width chart geometry: one row per layer.
_ROW, _BAR, _W_TOP, _W_BOTTOM, _W_RIGHT, _W_PLOT = 20, 14, 44, 40, 110, 460
_NAME_CHARS = 40  # longer layer names are shortened on the axis (the full name is in the hover)

Point = tuple[float, float]


@dataclass(frozen=True)
class TrialHistory:
    """What the curves of one trial show.

    Attributes:
        trial_id: Names the trial in the hover text and ``data-trial``.
        metrics: Metric key -> (epoch, value) pairs, as MLflow's metric history has them.
        series: Colours the trial's lines (e.g. its algorithm); "baseline" draws grey.
        link: URL of the trial's page (e.g. its MLflow run); lines become links to it.
        hover: Extra ``name: value`` lines for the hover text (e.g. strength, width).
    """

    trial_id: str
    metrics: Mapping[str, Sequence[Point]]
    series: str = ""
    link: str | None = None
    hover: Mapping[str, Any] = field(default_factory=dict)


def _histories(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
) -> list[TrialHistory]:
    """Accepts TrialHistory objects or a plain ``{trial_id: {metric: [(epoch, value)]}}``."""
    if isinstance(histories, Mapping):
        return [TrialHistory(str(t), m) for t, m in histories.items()]
    return list(histories)


def _finite_points(points: Sequence[Point]) -> list[Point]:
    """The (epoch, value) pairs with finite numbers, sorted by epoch (stable for equal epochs)."""
    out = [(float(x), float(y)) for x, y in points]
    return sorted(
        ((x, y) for x, y in out if math.isfinite(x) and math.isfinite(y)), key=lambda p: p[0]
    )


def _colors(labels: Sequence[str], baseline_label: str) -> dict[str, str]:
    """Series colours in the order dashboards.pareto uses: sorted, baseline last and grey."""
    names = sorted(set(labels))
    order = [n for n in names if n != baseline_label] + [n for n in names if n == baseline_label]
    return {
        n: _BASELINE_COLOR if n == baseline_label else _PALETTE[i % len(_PALETTE)]
        for i, n in enumerate(order)
    }


def _page(title: str, style: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


# --- training curves -----------------------------------------------------------------------------

CURVE_STYLE = """
.curves-figure { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
svg.curves text { font-size: 11px; fill: #222; }
svg.curves .heading { font-size: 13px; font-weight: 600; }
svg.curves .frame { fill: none; stroke: #888; }
svg.curves .grid { stroke: #e4e4e4; }
svg.curves .tick.x, svg.curves .axis-label, svg.curves .empty { text-anchor: middle; }
svg.curves .tick.y { text-anchor: end; }
svg.curves .curve { fill: none; stroke-width: 1.8; opacity: 0.85; pointer-events: stroke; }
svg.curves .curve:hover { stroke-width: 4; opacity: 1; }
svg.curves .marker { stroke: white; stroke-width: 0.5; }
.curves-legend { font-size: 12px; margin: 4px 0 0 0; padding: 0; list-style: none; }
.curves-legend li { display: inline-block; margin-right: 14px; }
.curves-legend .swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle;
  margin-right: 4px; }
"""


def _hover_text(history: TrialHistory, metric: str, points: list[Point]) -> str:
    lines = [f"trial: {history.trial_id}"]
    if history.series:
        lines.append(f"series: {history.series}")
    lines += [f"{k}: {_fmt(v)}" for k, v in history.hover.items()]
    last_epoch, last_value = points[-1]
    lines.append(f"{metric} at epoch {_fmt(last_epoch)}: {_fmt(last_value)}")
    return "\n".join(lines)


def _curve_panel(
    histories: list[TrialHistory],
    metric: str,
    heading: str,
    colors: Mapping[str, str],
) -> str:
    """One ``<svg class="curves">`` panel: every trial's line for ``metric``."""
    drawn = [(h, _finite_points(h.metrics.get(metric, ()))) for h in histories]
    drawn = [(h, pts) for h, pts in drawn if pts]
    xs = np.array([x for _, pts in drawn for x, _ in pts], dtype=float)
    ys = np.array([y for _, pts in drawn for _, y in pts], dtype=float)
    # like the Pareto chart: a log axis only when positive values span more than a decade
    log_y = bool(ys.size and ys.min() > 0 and ys.max() / ys.min() > 10)
    right, bottom = _PANEL_W - _P_RIGHT, _PANEL_H - _P_BOTTOM
    x_domain = (
        (float(xs.min()) - 0.5, float(xs.max()) + 0.5)
        if xs.size and xs.max() - xs.min() < 1
        else _domain(xs, False)
    )
    sx = _Scale(x_domain, (_P_LEFT, right), False)
    sy = _Scale(_domain(ys, log_y), (bottom, _P_TOP), log_y)
    out = [
        f'<svg class="curves" data-metric="{_attr(metric)}" data-curves="{len(drawn)}" '
        f'width="{_PANEL_W}" height="{_PANEL_H}" viewBox="0 0 {_PANEL_W} {_PANEL_H}" '
        f'role="img" aria-label="{_attr(heading)}" data-y-scale="{"log" if log_y else "linear"}">',
        f'<text class="heading" x="{_P_LEFT}" y="{_P_TOP - 12}">{html.escape(heading)}</text>',
        f'<rect class="frame" x="{_P_LEFT}" y="{_P_TOP}" width="{right - _P_LEFT}" '
        f'height="{bottom - _P_TOP}"/>',
    ]
    # epochs are whole numbers: integer ticks only
    x_ticks = [t for t in sx.ticks() if float(t).is_integer()] if xs.size else []
    for value in x_ticks:
        x = sx(value)
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{_P_TOP}" x2="{x:.1f}" y2="{bottom}"/>')
        out.append(f'<text class="tick x" x="{x:.1f}" y="{bottom + 14}">{int(value)}</text>')
    for value in sy.ticks() if ys.size else []:
        y = sy(value)
        out.append(f'<line class="grid" x1="{_P_LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="tick y" x="{_P_LEFT - 5}" y="{y + 4:.1f}">{_fmt(float(value))}</text>'
        )
    out.append(
        f'<text class="axis-label x" x="{(_P_LEFT + right) / 2:.0f}" y="{_PANEL_H - 12}">'
        f"epoch</text>"
    )
    y_label = f"{metric}{' (log scale)' if log_y else ''}"
    out.append(
        f'<text class="axis-label y" x="14" y="{(_P_TOP + bottom) / 2:.0f}" '
        f'transform="rotate(-90 14 {(_P_TOP + bottom) / 2:.0f})">{html.escape(y_label)}</text>'
    )
    for history, pts in drawn:
        color = colors.get(history.series, _PALETTE[0])
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        title = f"<title>{html.escape(_hover_text(history, metric, pts))}</title>"
        line = (
            f'<polyline class="curve" data-trial="{_attr(history.trial_id)}" '
            f'data-metric="{_attr(metric)}" data-series="{_attr(history.series)}" '
            f'data-points="{len(pts)}" points="{coords}" stroke="{color}">{title}</polyline>'
        )
        # markers keep single-epoch histories visible (a one-point polyline draws nothing)
        markers = "".join(
            f'<circle class="marker" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>'
            for x, y in pts
        )
        group = f'<g class="trial" data-trial="{_attr(history.trial_id)}">{line}{markers}</g>'
        link = _safe_link(history.link)
        if link is not None:
            group = f'<a href="{_attr(link)}" target="_blank">{group}</a>'
        out.append(group)
    if not drawn:
        out.append(
            f'<text class="empty" x="{(_P_LEFT + right) / 2:.0f}" '
            f'y="{(_P_TOP + bottom) / 2:.0f}">no trial logged {html.escape(metric)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def training_curves_svg(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    *,
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> str:
    """Returns the curves figure as HTML: one SVG panel per metric and a series legend.

    Args:
        histories: :class:`TrialHistory` per trial, or ``{trial_id: {metric: [(epoch, value)]}}``.
        metrics: (metric key, panel title) pairs, one panel each.
        baseline_label: Series drawn grey (the uniform-width baseline).

    Returns:
        A ``<div class="curves-figure">`` holding the panels, followed by the legend.
    """
    items = _histories(histories)
    colors = _colors([h.series for h in items], baseline_label)
    panels = [_curve_panel(items, key, heading, colors) for key, heading in metrics]
    legend = "".join(
        f'<li><span class="swatch" style="background:{color}"></span>{html.escape(name or "(none)")}</li>'
        for name, color in colors.items()
    )
    return (
        f'<div class="curves-figure">\n{chr(10).join(panels)}\n</div>\n'
        f'<ul class="curves-legend">{legend}</ul>'
    )


def training_curves_html(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training curves",
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> Path:
    """Writes a self-contained HTML page of :func:`training_curves_svg`.

    Each trial with a finite value of a metric is one ``<polyline class="curve">`` in that
    metric's panel (``data-trial``, ``data-metric``, ``data-series``, ``data-points``) with a
    hover ``<title>``; with a ``link`` it is wrapped in a link. Costs spanning more than a decade
    get a log axis.

    Args:
        histories: :class:`TrialHistory` per trial, or ``{trial_id: {metric: [(epoch, value)]}}``.
        path: Where to write the HTML.
        title: Page heading.
        metrics: (metric key, panel title) pairs, one panel each.
        baseline_label: Series drawn grey.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    body = (
        f"<h1>{html.escape(title)}</h1>\n"
        f"{training_curves_svg(histories, metrics=metrics, baseline_label=baseline_label)}"
    )
    out = Path(path)
    out.write_text(_page(title, _BASE_STYLE + CURVE_STYLE, body), encoding="utf-8")
    return out


def training_curves_png(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training curves",
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> Path:
    """Writes the curves as a PNG: one subplot per metric, one line per trial.

    Args:
        histories: :class:`TrialHistory` per trial, or ``{trial_id: {metric: [(epoch, value)]}}``.
        path: Where to write the PNG.
        title: Figure title.
        metrics: (metric key, subplot title) pairs.
        baseline_label: Series drawn grey.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    items = _histories(histories)
    colors = _colors([h.series for h in items], baseline_label)
    figure = Figure(figsize=(4.2 * max(len(metrics), 1), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    labelled: set[str] = set()
    for ax, (metric, heading) in zip(axes, metrics, strict=False):
        values: list[float] = []
        for history in items:
            pts = _finite_points(history.metrics.get(metric, ()))
            if not pts:
                continue
            label = None
            if history.series not in labelled:
                labelled.add(history.series)
                label = history.series or "(none)"
            ax.plot(
                [x for x, _ in pts],
                [y for _, y in pts],
                "o-",
                markersize=3,
                color=colors.get(history.series, _PALETTE[0]),
                alpha=0.85,
                label=label,
            )
            values += [y for _, y in pts]
        if values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        if not values:
            ax.text(0.5, 0.5, f"no trial logged {metric}", ha="center", va="center")
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    if labelled:
        figure.legend(loc="outside lower center", ncols=min(len(labelled), 6), fontsize=9)
    figure.suptitle(title)
    out = Path(path)
    figure.savefig(out, format="png")
    return out


# --- layer widths --------------------------------------------------------------------------------

WIDTH_STYLE = """
svg.widths text { font-size: 11px; fill: #222; }
svg.widths .heading { font-size: 13px; font-weight: 600; }
svg.widths .subheading { fill: #555; }
svg.widths .layer-name { text-anchor: end; }
svg.widths .tick { text-anchor: middle; }
svg.widths .grid { stroke: #e4e4e4; }
svg.widths .bar-original { fill: #d9d9d9; stroke: #9a9a9a; stroke-width: 0.5; }
svg.widths .bar-alive { fill: #1f77b4; }
svg.widths .bar-alive.zero { fill: #d62728; }
svg.widths g.layer:hover .bar-original { stroke: black; }
"""


def _layers(structure: Mapping[str, Any]) -> list[tuple[str, int, int, str]]:
    """(name, alive, original, class) per layer in the structure's order; ValueError when malformed."""
    layers = structure.get("layers") if isinstance(structure, Mapping) else None
    if not isinstance(layers, Mapping):
        raise ValueError(
            "a structure needs a 'layers' object ({name: {alive, original, ...}}), as in "
            "structure.json"
        )
    out = []
    for name, data in layers.items():
        try:
            alive, original = int(data["alive"]), int(data["original"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"layer {name!r} of the structure needs integer 'alive' and 'original', got {data!r}"
            ) from exc
        out.append((str(name), alive, original, str(data.get("class", ""))))
    return out


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[: _NAME_CHARS - 1] + "\u2026"


def _cost_line(structure: Mapping[str, Any]) -> str:
    cost = structure.get("cost")
    if not isinstance(cost, Mapping):
        return ""
    try:
        seed_f, learned_f = float(cost["seed"]), float(cost["learned"])
    except (KeyError, TypeError, ValueError):
        return ""
    if not (math.isfinite(seed_f) and math.isfinite(learned_f)):
        return ""
    name = str(cost.get("name") or "cost")
    share = f" ({learned_f / seed_f:.1%} of the seed)" if seed_f > 0 else ""
    return f"{name}: seed {_fmt(seed_f)} \u2192 learned {_fmt(learned_f)}{share}"


def layer_widths_svg(
    structure: Mapping[str, Any], *, title: str = "Learned vs seed width", trial_id: str = ""
) -> str:
    """Returns the width chart as an inline ``<svg class="widths">``.

    Args:
        structure: A parsed ``structure.json`` (``layers`` -> {name: {alive, original, ...}}).
        title: Chart heading.
        trial_id: Stored as ``data-trial`` on the chart.

    Returns:
        The SVG text.

    Raises:
        ValueError: ``structure`` has no ``layers`` object or a layer lacks integer widths.
    """
    layers = _layers(structure)
    left = 16 + 6.6 * max([len(_short(n)) for n, *_ in layers] + [8])
    width = int(left + _W_PLOT + _W_RIGHT)
    height = _W_TOP + _ROW * max(len(layers), 1) + _W_BOTTOM
    top_width = max([o for _, _, o, _ in layers] + [1])
    sx = _Scale((0.0, float(top_width)), (left, left + _W_PLOT), False)
    subheading = _cost_line(structure)
    out = [
        f'<svg class="widths" data-trial="{_attr(trial_id)}" data-layers="{len(layers)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_attr(title)}">',
        f'<text class="heading" x="8" y="16">{html.escape(title)}</text>',
        f'<text class="subheading" x="8" y="32">{html.escape(subheading)}</text>',
    ]
    bottom = _W_TOP + _ROW * len(layers)
    for value in sx.ticks():
        if value < 0 or value > top_width:
            continue
        x = sx(value)
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_W_TOP - 4}" x2="{x:.1f}" y2="{bottom}"/>'
        )
        out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 14}">{_fmt(value)}</text>')
    out.append(
        f'<text class="tick" x="{left + _W_PLOT / 2:.0f}" y="{bottom + 30}">'
        "output channels (grey: seed width, blue: learned width)</text>"
    )
    for i, (name, alive, original, layer_class) in enumerate(layers):
        y = _W_TOP + _ROW * i + (_ROW - _BAR) / 2
        share = f" ({alive / original:.0%})" if original > 0 else ""
        hover = f"{name}{f' ({layer_class})' if layer_class else ''}: {alive} of {original} channels{share}"
        data = (
            f'data-layer="{_attr(name)}" data-alive="{alive}" data-original="{original}" '
            f'data-index="{i}"'
        )
        zero = " zero" if alive == 0 else ""
        out.append(
            f'<g class="layer" {data}><title>{html.escape(hover)}</title>'
            f'<text class="layer-name" x="{left - 6:.1f}" y="{y + _BAR - 3:.1f}">'
            f"{html.escape(_short(name))}</text>"
            f'<rect class="bar-original" {data} x="{left:.1f}" y="{y:.1f}" '
            f'width="{sx(original) - left:.1f}" height="{_BAR}"/>'
            f'<rect class="bar-alive{zero}" {data} x="{left:.1f}" y="{y + 2:.1f}" '
            f'width="{sx(alive) - left:.1f}" height="{_BAR - 4}"/>'
            f'<text class="value" x="{sx(original) + 6:.1f}" y="{y + _BAR - 3:.1f}">'
            f"{alive} / {original}</text></g>"
        )
    if not layers:
        out.append(f'<text x="{left:.0f}" y="{_W_TOP + 14}">the structure has no layers</text>')
    out.append("</svg>")
    return "\n".join(out)


def layer_widths_html(
    structure: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str = "Learned vs seed width",
    trial_id: str = "",
    link: str | None = None,
) -> Path:
    """Writes a self-contained HTML page with the learned against seed width of every layer.

    One row per layer in the structure's order: ``<rect class="bar-original">`` (seed width)
    under ``<rect class="bar-alive">`` (learned width), both with ``data-layer``, ``data-alive``
    and ``data-original``, and a hover ``<title>``.

    Args:
        structure: A parsed ``structure.json``.
        path: Where to write the HTML.
        title: Chart and page title.
        trial_id: Stored as ``data-trial`` on the chart.
        link: Optional URL (e.g. the trial's MLflow run) shown under the chart.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``structure`` is malformed.
    """
    body = layer_widths_svg(structure, title=title, trial_id=trial_id)
    safe = _safe_link(link)
    if safe is not None:
        body += f'\n<p><a class="run-link" href="{_attr(safe)}" target="_blank">MLflow run</a></p>'
    out = Path(path)
    out.write_text(_page(title, _BASE_STYLE + WIDTH_STYLE, body), encoding="utf-8")
    return out


def layer_widths_png(
    structure: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str = "Learned vs seed width",
) -> Path:
    """Writes the width chart as a PNG: horizontal bars, first layer at the top.

    Args:
        structure: A parsed ``structure.json``.
        path: Where to write the PNG.
        title: Figure title.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: ``structure`` is malformed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = _layers(structure)
    figure = Figure(figsize=(8, 1.4 + 0.28 * max(len(layers), 1)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    rows = np.arange(len(layers))
    ax.barh(
        rows,
        [o for _, _, o, _ in layers],
        height=0.8,
        color="#d9d9d9",
        edgecolor="#9a9a9a",
        label="seed width",
    )
    ax.barh(rows, [a for _, a, _, _ in layers], height=0.55, color="#1f77b4", label="learned width")
    ax.set_yticks(rows, [_short(n) for n, *_ in layers], fontsize=8)
    ax.invert_yaxis()  # layer order reads top to bottom
    ax.set_xlabel("output channels")
    ax.set_title(
        title + (f"\n{_cost_line(structure)}" if _cost_line(structure) else ""), fontsize=10
    )
    ax.grid(True, axis="x", alpha=0.3)
    if layers:
        ax.legend(loc="lower right", fontsize=8)
    out = Path(path)
    figure.savefig(out, format="png")
    return out


_BASE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; }
"""
