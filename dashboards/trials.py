"""A trial's figures, each as plotly figure, page and matplotlib PNG: its training curves (a panel
per metric, a line per trial; traces tagged ``meta`` {role: "curve", trial, metric, series} with
the trial's link in ``customdata``) and its learned against seed layer widths (bars tagged {role:
"bar-original"} for the seed width, {role: "bar-alive"} for the learned one, and the trial)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from sweep.charts import CURVE_METRICS, Curve, TrialHistory, curve_panels, histories, widths

from .render import (
    PALETTE,
    PathLike,
    hover_text,
    plotly_layout,
    png_figure,
    save_png,
    series_colors,
    write_figures,
)

Histories = Sequence[TrialHistory] | Mapping[str, Mapping[str, Curve]]
Metrics = Sequence[tuple[str, str]]


def training_curves_figure(
    trials: Histories, *, title: str = "Training curves", metrics: Metrics = CURVE_METRICS
) -> Any:
    """The curves as a plotly figure: a panel per metric, a line per trial with data there."""
    from plotly.subplots import make_subplots

    panels = curve_panels(histories(trials), metrics)
    colors = series_colors(h.series for h in histories(trials))
    figure = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[html.escape(p.title) for p in panels]
    )
    for col, panel in enumerate(panels, start=1):
        legend: set[str] = set()
        for line in panel.lines:
            series = line.history.series
            figure.add_scatter(
                x=line.xs,
                y=line.ys,
                mode="lines+markers",
                hovertext=hover_text(line.hover),
                hoverinfo="text",
                customdata=[[line.history.trial_id, line.link]] * len(line.xs),
                meta={
                    "role": "curve",
                    "trial": line.history.trial_id,
                    "metric": panel.key,
                    "series": series,
                },
                line={"color": colors[series], "width": 1.8},
                marker={"size": 4},
                name=html.escape(series or "(none)"),
                legendgroup=series,
                showlegend=col == 1 and series not in legend,
                row=1,
                col=col,
            )
            legend.add(series)
        figure.update_xaxes(title_text="epoch", row=1, col=col)
        figure.update_yaxes(type="log" if panel.log else "linear", row=1, col=col)
        if not panel.lines:
            axis = "" if col == 1 else col
            where = {"x": 0.5, "y": 0.5, "xref": f"x{axis} domain", "yref": f"y{axis} domain"}
            figure.add_annotation(text="no data", showarrow=False, **where)
    return plotly_layout(figure, "curves", title, 380)


def training_curves_html(
    trials: Histories, path: PathLike, *, title: str = "Training curves"
) -> Any:
    """Writes :func:`training_curves_figure` as a self-contained page."""
    return write_figures(path, title, [training_curves_figure(trials, title=title)])


def training_curves_png(
    trials: Histories,
    path: PathLike | None,
    *,
    title: str = "Training curves",
    metrics: Metrics = CURVE_METRICS,
) -> Any:
    """Writes the curves as a PNG, a subplot per metric (None: returns the Figure)."""
    panels = curve_panels(histories(trials), metrics)
    colors = series_colors(h.series for h in histories(trials))
    figure = png_figure(4.2 * max(len(panels), 1), 3.6)
    labelled: set[str] = set()
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        for line in panel.lines:
            series = line.history.series
            label = None if series in labelled else series or "(none)"
            labelled.add(series)
            ax.plot(
                line.xs, line.ys, "o-", markersize=3, color=colors[series], alpha=0.85, label=label
            )
        if not panel.lines:
            ax.text(0.5, 0.5, f"no trial logged {panel.key}", ha="center", va="center")
        ax.set(yscale="log" if panel.log else "linear", xlabel="epoch", ylabel=panel.key)
        ax.set_title(panel.title, fontsize=10)
        ax.grid(True, alpha=0.3)
    if labelled:
        figure.legend(loc="outside lower center", ncols=min(len(labelled), 6), fontsize=9)
    figure.suptitle(title)
    return save_png(figure, path)


def layer_widths_figure(
    structure: Mapping[str, Any], *, title: str = "Learned vs seed width", trial_id: str = ""
) -> Any:
    """Learned against seed width per layer as a plotly figure: horizontal bars, the first layer
    on top, the seed width (grey) behind the learned one; ValueError on a malformed structure."""
    import plotly.graph_objects as go

    shown, figure = widths(structure), go.Figure()
    for role, color, name in (
        ("bar-original", "#d0d0d0", "seed width"),
        ("bar-alive", PALETTE[0], "learned width"),
    ):
        figure.add_bar(
            orientation="h",
            name=name,
            marker_color=color,
            y=[html.escape(layer.short) for layer in shown.layers],
            x=[layer.original if role == "bar-original" else layer.alive for layer in shown.layers],
            hovertext=[hover_text([layer.hover]) for layer in shown.layers],
            hoverinfo="text",
            customdata=[[layer.name] for layer in shown.layers],
            meta={"role": role, "trial": trial_id},
        )
    if not shown.layers:
        figure.add_annotation(text="the structure has no layers", showarrow=False)
    return plotly_layout(
        figure,
        "widths",
        title,
        160 + 22 * max(len(shown.layers), 1),
        subtitle=f"<br><sub>{html.escape(shown.cost)}</sub>" if shown.cost else "",
        barmode="overlay",
        margin={"l": 20},
        meta={"trial": trial_id, "layers": len(shown.layers)},
        xaxis={"title": {"text": "output channels"}},
        yaxis={"autorange": "reversed", "type": "category"},
    )


def layer_widths_html(
    structure: Mapping[str, Any],
    path: PathLike,
    *,
    title: str = "Learned vs seed width",
    trial_id: str = "",
    link: str | None = None,
) -> Any:
    """Writes :func:`layer_widths_figure` as a self-contained page (with a link to the run)."""
    figure = layer_widths_figure(structure, title=title, trial_id=trial_id)
    return write_figures(path, title, [figure], link=link)


def layer_widths_png(
    structure: Mapping[str, Any], path: PathLike | None, *, title: str = "Learned vs seed width"
) -> Any:
    """Writes the widths as a PNG, the first layer on top (None: returns the Figure)."""
    shown = widths(structure)
    figure = png_figure(8, 1.4 + 0.28 * max(len(shown.layers), 1))
    ax, rows = figure.add_subplot(), range(len(shown.layers))
    seed = [layer.original for layer in shown.layers]
    ax.barh(rows, seed, height=0.8, color="#d9d9d9", edgecolor="#9a9a9a", label="seed width")
    ax.barh(
        rows,
        [layer.alive for layer in shown.layers],
        height=0.55,
        color=PALETTE[0],
        label="learned width",
    )
    ax.set_yticks(rows, [layer.short for layer in shown.layers], fontsize=8)
    ax.invert_yaxis()  # layer order reads top to bottom
    ax.set_xlabel("output channels")
    ax.set_title("\n".join(filter(None, [title, shown.cost])), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    if shown.layers:
        ax.legend(loc="lower right", fontsize=8)
    return save_png(figure, path)
