"""Per-trial figures of a sweep: training curves over epochs and learned against seed layer widths.

These draw what the sweep logged (MLflow metric histories, a trial's ``structure.json``); they
compute nothing beyond the layout. Like :mod:`dashboards.pareto`, each figure comes as a
matplotlib PNG and as a plotly figure (written into self-contained HTML by
:func:`dashboards.pareto.write_figures`); every plotly trace says what it shows in its ``meta``:

* ``training_curves_figure``: one line per trial and metric panel, ``meta`` {role: "curve",
  trial, metric, series}, ``customdata`` the trial's link;
* ``layer_widths_figure``: two bar traces over the structure's layers in order, ``meta`` {role:
  "bar-original"} (seed width) and {role: "bar-alive"} (learned width), ``meta.trial`` the trial.
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

from trainers.records import LEARN, RETRAIN, Epoch

from .pareto import _BASELINE_COLOR, _PALETTE, _fmt, _hover, _safe_link, write_figures

__all__ = [
    "CURVE_METRICS",
    "TrialHistory",
    "layer_widths_figure",
    "layer_widths_html",
    "layer_widths_png",
    "training_curves_figure",
    "training_curves_html",
    "training_curves_png",
]

# (metric key as the sweep logs an epoch record, panel title); one panel per metric.
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    (Epoch.key(LEARN, "cost"), "cost while learning"),
    (Epoch.key(LEARN, "val_accuracy"), "validation accuracy while learning"),
    (Epoch.key(RETRAIN, "val_accuracy"), "validation accuracy while retraining"),
)

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


# --- training curves -----------------------------------------------------------------------------


def _hover_text(history: TrialHistory, metric: str, points: list[Point]) -> str:
    lines = [f"trial: {history.trial_id}"]
    if history.series:
        lines.append(f"series: {history.series}")
    lines += [f"{k}: {_fmt(v)}" for k, v in history.hover.items()]
    last_epoch, last_value = points[-1]
    lines.append(f"{metric} at epoch {_fmt(last_epoch)}: {_fmt(last_value)}")
    return _hover(lines)


def training_curves_figure(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    *,
    title: str = "Training curves",
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> Any:
    """The curves as a plotly figure: one panel per metric, one line per trial with data.

    Costs spanning more than a decade get a log axis. A line's ``customdata`` holds the trial's
    link (opened on click).

    Args:
        histories: :class:`TrialHistory` per trial, or ``{trial_id: {metric: [(epoch, value)]}}``.
        title: Figure title.
        metrics: (metric key, panel title) pairs, one panel each.
        baseline_label: Series drawn grey (the uniform-width baseline).
    """
    from plotly.subplots import make_subplots

    items = _histories(histories)
    colors = _colors([h.series for h in items], baseline_label)
    figure = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[html.escape(t) for _, t in metrics]
    )
    legend_shown: set[str] = set()
    for col, (key, _) in enumerate(metrics, start=1):
        values = []
        for history in items:
            points = _finite_points(history.metrics.get(key, ()))
            if not points:
                continue
            values += [y for _, y in points]
            series = history.series
            link = _safe_link(history.link) or ""
            figure.add_scatter(
                x=[x for x, _ in points],
                y=[y for _, y in points],
                mode="lines+markers",
                name=html.escape(series or "(none)"),
                legendgroup=series,
                showlegend=series not in legend_shown,
                line={"color": colors[series], "width": 1.8},
                marker={"size": 4},
                hovertext=_hover_text(history, key, points),
                hoverinfo="text",
                customdata=[[history.trial_id, link]] * len(points),
                meta={"role": "curve", "trial": history.trial_id, "metric": key, "series": series},
                row=1,
                col=col,
            )
            legend_shown.add(series)
        positive = [v for v in values if v > 0]
        log = bool(
            key.endswith("cost")
            and positive
            and len(positive) == len(values)
            and max(positive) / min(positive) > 10
        )
        figure.update_xaxes(title_text="epoch", row=1, col=col)
        figure.update_yaxes(type="log" if log else "linear", row=1, col=col)
        if not values:
            figure.add_annotation(
                text="no data",
                showarrow=False,
                row=1,
                col=col,
                x=0.5,
                y=0.5,
                xref="x domain" if col == 1 else f"x{col} domain",
                yref="y domain" if col == 1 else f"y{col} domain",
            )
    figure.update_layout(
        meta={"kind": "curves"},
        title={"text": html.escape(title)},
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 80, "b": 50},
    )
    return figure


def training_curves_html(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    path: str | os.PathLike[str],
    *,
    title: str = "Training curves",
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> Path:
    """Writes :func:`training_curves_figure` as a self-contained HTML page."""
    figure = training_curves_figure(
        histories, title=title, metrics=metrics, baseline_label=baseline_label
    )
    return write_figures(path, title, [figure])


def training_curves_png(
    histories: Sequence[TrialHistory] | Mapping[str, Mapping[str, Sequence[Point]]],
    path: str | os.PathLike[str] | None,
    *,
    title: str = "Training curves",
    metrics: Sequence[tuple[str, str]] = CURVE_METRICS,
    baseline_label: str = "baseline",
) -> Any:
    """Writes the curves as a PNG: one subplot per metric, one line per trial.

    Args:
        histories: :class:`TrialHistory` per trial, or ``{trial_id: {metric: [(epoch, value)]}}``.
        path: Where to write the PNG; None returns the matplotlib Figure (for log_figure).
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
    if path is None:  # the figure itself, e.g. for mlflow.log_figure
        return figure
    out = Path(path)
    figure.savefig(out, format="png")
    return out


# --- layer widths --------------------------------------------------------------------------------


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


def layer_widths_figure(
    structure: Mapping[str, Any], *, title: str = "Learned vs seed width", trial_id: str = ""
) -> Any:
    """Learned against seed width per layer as a plotly figure: horizontal bars, first layer on
    top, the seed width (grey) behind the learned width (blue), a hover line per layer.

    Raises:
        ValueError: ``structure`` has no ``layers`` object or a layer lacks integer widths.
    """
    import plotly.graph_objects as go

    layers = _layers(structure)
    names = [html.escape(_short(n)) for n, *_ in layers]
    hover = []
    for name, alive, original, layer_class in layers:
        share = f" ({alive / original:.0%})" if original > 0 else ""
        kind = f" ({layer_class})" if layer_class else ""
        hover.append(_hover([f"{name}{kind}: {alive} of {original} channels{share}"]))
    figure = go.Figure()
    for role, values, color, label in (
        ("bar-original", [o for _, _, o, _ in layers], "#d0d0d0", "seed width"),
        ("bar-alive", [a for _, a, _, _ in layers], _PALETTE[0], "learned width"),
    ):
        figure.add_bar(
            y=names,
            x=values,
            orientation="h",
            name=label,
            marker_color=color,
            hovertext=hover,
            hoverinfo="text",
            customdata=[[n] for n, *_ in layers],
            meta={"role": role, "trial": trial_id},
        )
    subtitle = _cost_line(structure)
    heading = html.escape(title) + (f"<br><sub>{html.escape(subtitle)}</sub>" if subtitle else "")
    figure.update_layout(
        title={"text": heading},
        barmode="overlay",
        template="plotly_white",
        xaxis={"title": {"text": "output channels"}},
        yaxis={"autorange": "reversed", "type": "category"},
        height=160 + 22 * max(len(layers), 1),
        margin={"l": 20, "r": 20, "t": 80, "b": 50},
        meta={"kind": "widths", "trial": trial_id, "layers": len(layers)},
    )
    if not layers:
        figure.add_annotation(text="the structure has no layers", showarrow=False)
    return figure


def layer_widths_html(
    structure: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    title: str = "Learned vs seed width",
    trial_id: str = "",
    link: str | None = None,
) -> Path:
    """Writes :func:`layer_widths_figure` as a self-contained page (with a link to the run)."""
    parts: list[Any] = [layer_widths_figure(structure, title=title, trial_id=trial_id)]
    safe = _safe_link(link)
    if safe is not None:
        parts.append(
            f'<p><a class="run-link" href="{html.escape(safe, quote=True)}" '
            f'target="_blank">MLflow run</a></p>'
        )
    return write_figures(path, title, parts)


def layer_widths_png(
    structure: Mapping[str, Any],
    path: str | os.PathLike[str] | None,
    *,
    title: str = "Learned vs seed width",
) -> Any:
    """Writes the width chart as a PNG: horizontal bars, first layer at the top.

    Args:
        structure: A parsed ``structure.json``.
        path: Where to write the PNG; None returns the matplotlib Figure (for log_figure).
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
    if path is None:  # the figure itself, e.g. for mlflow.log_figure
        return figure
    out = Path(path)
    figure.savefig(out, format="png")
    return out
