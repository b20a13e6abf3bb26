"""A trial's figures, each as plotly figure and matplotlib PNG: its training curves (a panel per
metric, a line per trial; traces tagged ``meta`` {role: "curve", trial, metric, series} with the
trial's link in ``customdata``) and its learned against seed layer widths (bars tagged {role:
"bar-original"} for the seed width, {role: "bar-alive"} for the learned one, and the trial)."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainers.records import LEARN, RETRAIN, Epoch

from .style import (
    PALETTE,
    fmt,
    hover_text,
    plotly_layout,
    png_figure,
    safe_link,
    save_png,
    series_colors,
)

# (metric key of an epoch record, panel title): a panel each
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    (Epoch.key(LEARN, "cost"), "cost while learning"),
    (Epoch.key(LEARN, "val_accuracy"), "validation accuracy while learning"),
    (Epoch.key(RETRAIN, "val_accuracy"), "validation accuracy while retraining"),
)
Metrics = Sequence[tuple[str, str]]
Path = str | os.PathLike[str] | None


@dataclass(frozen=True)
class TrialHistory:
    """A trial's curves: metric key -> (epoch, value) pairs. ``series`` colours its lines (the
    baseline grey), ``link`` opens on click, ``hover`` adds ``name: value`` lines."""

    trial_id: str
    metrics: Mapping[str, Sequence[tuple[float, float]]]
    series: str = ""
    link: str | None = None
    hover: Mapping[str, Any] = field(default_factory=dict)


def _panels(
    histories: Sequence[TrialHistory], metrics: Metrics
) -> list[tuple[str, str, list, bool]]:
    """Per metric: key, title, its lines [(trial, epochs, values)] of finite points in epoch
    order, and whether it is a cost spanning more than a decade (a log axis)."""
    panels = []
    for key, title in metrics:
        lines = []
        for h in histories:
            finite = [
                (float(x), float(y))
                for x, y in h.metrics.get(key, ())
                if math.isfinite(x) and math.isfinite(y)
            ]
            points = sorted(finite, key=lambda p: p[0])
            lines += [(h, [x for x, _ in points], [y for _, y in points])] if points else []
        ys = [y for *_, values in lines for y in values]
        log = key.endswith("cost") and bool(ys) and min(ys) > 0 and max(ys) / min(ys) > 10
        panels.append((key, title, lines, log))
    return panels


def training_curves_figure(
    histories: Sequence[TrialHistory],
    *,
    title: str = "Training curves",
    metrics: Metrics = CURVE_METRICS,
) -> Any:
    """The curves as a plotly figure: a panel per metric, a line per trial with data there."""
    from plotly.subplots import make_subplots

    panels = _panels(histories, metrics)
    colors = series_colors(h.series for h in histories)
    figure = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[html.escape(p[1]) for p in panels]
    )
    for col, (key, _, lines, log) in enumerate(panels, start=1):
        for h, xs, ys in lines:
            hover = [f"trial: {h.trial_id}"] + [f"series: {h.series}"] * bool(h.series)
            hover += [f"{k}: {fmt(v)}" for k, v in h.hover.items()] + [
                f"{key} at epoch {fmt(xs[-1])}: {fmt(ys[-1])}"
            ]
            meta = {"role": "curve", "trial": h.trial_id, "metric": key, "series": h.series}
            style = {"line": {"color": colors[h.series], "width": 1.8}, "marker": {"size": 4}}
            legend = {
                "name": html.escape(h.series or "(none)"),
                "legendgroup": h.series,
                "showlegend": col == 1 and h is next(g for g, *_ in lines if g.series == h.series),
            }
            figure.add_scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                hovertext=hover_text(hover),
                hoverinfo="text",
                customdata=[[h.trial_id, safe_link(h.link) or ""]] * len(xs),
                meta=meta,
                row=1,
                col=col,
                **style,
                **legend,
            )
        figure.update_xaxes(title_text="epoch", row=1, col=col)
        figure.update_yaxes(type="log" if log else "linear", row=1, col=col)
        if not lines:
            axis = "" if col == 1 else col
            figure.add_annotation(
                text="no data",
                showarrow=False,
                x=0.5,
                y=0.5,
                xref=f"x{axis} domain",
                yref=f"y{axis} domain",
            )
    return plotly_layout(figure, "curves", title, 380)


def training_curves_png(
    histories: Sequence[TrialHistory],
    path: Path,
    *,
    title: str = "Training curves",
    metrics: Metrics = CURVE_METRICS,
) -> Any:
    """Writes the curves as a PNG, a subplot per metric (see :func:`dashboards.style.save_png`)."""
    panels = _panels(histories, metrics)
    colors = series_colors(h.series for h in histories)
    figure = png_figure(4.2 * max(len(panels), 1), 3.6)
    labelled: set[str] = set()
    for ax, (key, heading, lines, log) in zip(
        figure.subplots(1, max(len(panels), 1), squeeze=False)[0], panels, strict=False
    ):
        for h, xs, ys in lines:
            label = None if h.series in labelled else h.series or "(none)"
            labelled.add(h.series)
            ax.plot(xs, ys, "o-", markersize=3, color=colors[h.series], alpha=0.85, label=label)
        if not lines:
            ax.text(0.5, 0.5, f"no trial logged {key}", ha="center", va="center")
        ax.set(yscale="log" if log else "linear", xlabel="epoch", ylabel=key)
        ax.set_title(heading, fontsize=10)
        ax.grid(True, alpha=0.3)
    if labelled:
        figure.legend(loc="outside lower center", ncols=min(len(labelled), 6), fontsize=9)
    figure.suptitle(title)
    return save_png(figure, path)


def _layers(structure: Mapping[str, Any]) -> tuple[list[tuple[str, int, int, str]], str]:
    """(name, alive, original, class) per layer, in order, and a line on the cost ("FLOPs: seed
    1e6 → learned 5e5 (50.0% of the seed)", or ""); ValueError when malformed."""
    layers = structure.get("layers") if isinstance(structure, Mapping) else None
    if not isinstance(layers, Mapping):
        raise ValueError("a structure needs a 'layers' object ({name: {alive, original, ...}})")
    out = []
    for name, data in layers.items():
        try:
            out.append(
                (str(name), int(data["alive"]), int(data["original"]), str(data.get("class", "")))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"layer {name!r} of the structure needs integer 'alive' and 'original', got {data!r}"
            ) from exc
    cost = structure.get("cost") or {}
    seed, learned = (float(cost.get(k, "nan")) for k in ("seed", "learned"))
    if not (math.isfinite(seed) and math.isfinite(learned)):
        return out, ""
    share = f" ({learned / seed:.1%} of the seed)" if seed > 0 else ""
    return (
        out,
        f"{cost.get('name') or 'cost'}: seed {fmt(seed)} \u2192 learned {fmt(learned)}{share}",
    )


def _short(name: str) -> str:
    """Layer names longer than 40 characters cut on the axis (the hover has them whole)."""
    return name if len(name) <= 40 else name[:39] + "\u2026"


def layer_widths_figure(
    structure: Mapping[str, Any], *, title: str = "Learned vs seed width", trial_id: str = ""
) -> Any:
    """Learned against seed width per layer as a plotly figure: horizontal bars, the first layer
    on top, the seed width (grey) behind the learned one; ValueError on a malformed structure."""
    import plotly.graph_objects as go

    layers, cost = _layers(structure)
    hover = [
        hover_text(
            [
                f"{n}{f' ({c})' if c else ''}: {a} of {o} channels"
                + (f" ({a / o:.0%})" if o > 0 else "")
            ]
        )
        for n, a, o, c in layers
    ]
    figure = go.Figure()
    for role, column, color, name in (
        ("bar-original", 2, "#d0d0d0", "seed width"),
        ("bar-alive", 1, PALETTE[0], "learned width"),
    ):
        bars = {
            "y": [html.escape(_short(layer[0])) for layer in layers],
            "x": [layer[column] for layer in layers],
        }
        figure.add_bar(
            orientation="h",
            name=name,
            marker_color=color,
            hovertext=hover,
            hoverinfo="text",
            customdata=[[layer[0]] for layer in layers],
            meta={"role": role, "trial": trial_id},
            **bars,
        )
    if not layers:
        figure.add_annotation(text="the structure has no layers", showarrow=False)
    subtitle = f"<br><sub>{html.escape(cost)}</sub>" if cost else ""
    axes = {
        "xaxis": {"title": {"text": "output channels"}},
        "yaxis": {"autorange": "reversed", "type": "category"},
    }
    meta = {"trial": trial_id, "layers": len(layers)}
    return plotly_layout(
        figure,
        "widths",
        title,
        160 + 22 * max(len(layers), 1),
        subtitle=subtitle,
        barmode="overlay",
        margin={"l": 20},
        meta=meta,
        **axes,
    )


def layer_widths_png(
    structure: Mapping[str, Any], path: Path, *, title: str = "Learned vs seed width"
) -> Any:
    """Writes the widths as a PNG, the first layer on top (see :func:`dashboards.style.save_png`)."""
    layers, cost = _layers(structure)
    figure = png_figure(8, 1.4 + 0.28 * max(len(layers), 1))
    ax = figure.add_subplot()
    rows = range(len(layers))
    ax.barh(
        rows,
        [o for _, _, o, _ in layers],
        height=0.8,
        color="#d9d9d9",
        edgecolor="#9a9a9a",
        label="seed width",
    )
    ax.barh(
        rows, [a for _, a, _, _ in layers], height=0.55, color=PALETTE[0], label="learned width"
    )
    ax.set_yticks(rows, [_short(n) for n, *_ in layers], fontsize=8)
    ax.invert_yaxis()  # layer order reads top to bottom
    ax.set_xlabel("output channels")
    ax.set_title("\n".join(filter(None, [title, cost])), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    if layers:
        ax.legend(loc="lower right", fontsize=8)
    return save_png(figure, path)
