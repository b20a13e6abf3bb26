"""A trial's charts (``render.Chart``): its training curves, a panel per metric and a line per
trial (marks tagged ``meta`` {role: "curve", trial, metric, series}, the trial's link in
``customdata``), and its learned against seed layer widths (bars tagged {role: "bar-original"}
for the seed width, {role: "bar-alive"} for the learned one, and the trial)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sweep.charts import CURVE_METRICS, Curve, TrialHistory, curve_panels, histories, widths

from .render import PALETTE, Chart, Mark, Panel, series_colors

Histories = Sequence[TrialHistory] | Mapping[str, Mapping[str, Curve]]


def curves_chart(
    trials: Histories, title: str, metrics: Sequence[tuple[str, str]] = CURVE_METRICS
) -> Chart:
    """A panel per metric, a line per trial with data there; a series' first line is in the legend."""
    found = histories(trials)
    panels, colors = curve_panels(found, metrics), series_colors(h.series for h in found)
    marks, axes, legend = [], [], set()
    for i, panel in enumerate(panels):
        for line in panel.lines:
            series, trial, n = line.history.series, line.history.trial_id, len(line.xs)
            label = None if series in legend else series or "(none)"
            legend.add(series)
            meta = {"role": "curve", "trial": trial, "metric": panel.key, "series": series}
            hover, custom, color = [line.hover] * n, [[trial, line.link]] * n, colors[series]
            marks.append(
                Mark("curve", line.xs, line.ys, color, label, meta, hover, custom, panel=i)
            )
        empty = "" if panel.lines else "no data"
        axes.append(Panel(panel.title, "epoch", panel.key, log_y=panel.log, empty=empty))
    return Chart("curves", title, marks, axes, height=380, size=(4.2 * max(len(axes), 1), 3.6))


def widths_chart(structure: Mapping[str, Any], title: str, trial_id: str = "") -> Chart:
    """Learned against seed width per layer, the seed's (grey) behind; ValueError when the
    structure is malformed."""
    shown = widths(structure)
    names, layers = [layer.short for layer in shown.layers], shown.layers
    hover, custom = [[layer.hover] for layer in layers], [[layer.name] for layer in layers]
    seed, learned = [layer.original for layer in layers], [layer.alive for layer in layers]
    original, alive = ({"role": role, "trial": trial_id} for role in ("bar-original", "bar-alive"))
    marks = [
        Mark("back-bar", seed, names, "#d0d0d0", "seed width", original, hover, custom),
        Mark("bar", learned, names, PALETTE[0], "learned width", alive, hover, custom),
    ]
    axes = Panel(x="output channels", empty="" if names else "the structure has no layers")
    rows, meta = max(len(names), 1), {"trial": trial_id, "layers": len(names)}
    size = (8, 1.4 + 0.28 * rows)
    return Chart("widths", title, marks, [axes], shown.cost, meta, 160 + 22 * rows, size, True)
