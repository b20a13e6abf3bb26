"""A trial's charts (``render.Chart``, drawn as plotly figures, pages and PNGs): its training curves (a panel
per metric, a line per trial; marks tagged ``meta`` {role: "curve", trial, metric, series} with
the trial's link in ``customdata``) and its learned against seed layer widths (bars tagged {role:
"bar-original"} for the seed width, {role: "bar-alive"} for the learned one, and the trial)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.charts import CURVE_METRICS, Curve, TrialHistory, curve_panels, histories, widths

from .render import (
    PALETTE,
    Chart,
    Mark,
    Panel,
    hover_text,
    series_colors,
)

Histories = Sequence[TrialHistory] | Mapping[str, Mapping[str, Curve]]
Metrics = Sequence[tuple[str, str]]


def curves_chart(trials: Histories, title: str, metrics: Metrics = CURVE_METRICS) -> Chart:
    """A panel per metric, a line per trial with data there; a series' first line is in the legend."""
    found = histories(trials)
    panels, colors = curve_panels(found, metrics), series_colors(h.series for h in found)
    marks, axes, legend = [], [], set()
    for i, panel in enumerate(panels):
        for line in panel.lines:
            series, trial = line.history.series, line.history.trial_id
            label = None if i or series in legend else series or "(none)"
            legend.add(series)
            meta = {"role": "curve", "trial": trial, "metric": panel.key, "series": series}
            hover = [hover_text(line.hover)] * len(line.xs)
            custom = [[trial, line.link]] * len(line.xs)
            marks.append(
                Mark("curve", line.xs, line.ys, colors[series], label, meta, hover, custom, panel=i)
            )
        empty = "" if panel.lines else "no data"
        axes.append(Panel(panel.title, "epoch", panel.key, log_y=panel.log, empty=empty))
    return Chart("curves", title, marks, axes, height=380, size=(4.2 * max(len(panels), 1), 3.6))


def widths_chart(structure: Mapping[str, Any], title: str, trial_id: str = "") -> Chart:
    """Learned against seed width per layer, the seed's (grey) behind; ValueError when the
    structure is malformed."""
    shown = widths(structure)
    names, hover = (
        [layer.short for layer in shown.layers],
        [hover_text([layer.hover]) for layer in shown.layers],
    )
    custom = [[layer.name] for layer in shown.layers]
    bars = [
        Mark(
            "back-bar", [layer.original for layer in shown.layers], names, "#d0d0d0", "seed width"
        ),
        Mark("bar", [layer.alive for layer in shown.layers], names, PALETTE[0], "learned width"),
    ]
    roles = ("bar-original", "bar-alive")
    marks = [
        Mark(
            **{**vars(m), "meta": {"role": r, "trial": trial_id}, "hover": hover, "custom": custom}
        )
        for m, r in zip(bars, roles, strict=True)
    ]
    axes = Panel(x="output channels", empty="" if shown.layers else "the structure has no layers")
    size = (8, 1.4 + 0.28 * max(len(names), 1))
    meta = {"trial": trial_id, "layers": len(names)}
    return Chart(
        "widths",
        title,
        marks,
        [axes],
        shown.cost,
        meta,
        160 + 22 * max(len(names), 1),
        size,
        bars=True,
    )
