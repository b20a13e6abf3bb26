"""The dashboards' publisher: what a sweep draws into MLflow (registered in ``pyproject.toml``
under the entry point group ``morphsweep.publishers``; ``sweep.plugins`` loads it).

A finished trial gets its layer widths and training curves as PNG figures on its run; the
finished sweep gets, on its parent run, the Pareto front per target (PNG and interactive HTML,
under ``pareto/``) and the static dashboard (under ``dashboard/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweep.pareto import ParetoResult, pareto_front
from sweep.store import SweepStore
from sweep.tracking import SweepTracker
from trainers.records import Epoch

from .page import cost_label, publish_dashboard
from .pareto import pareto_figure, pareto_png
from .trials import TrialHistory, layer_widths_png, training_curves_png

HOVER = ("trial_id", "strength", "width", "cost", "accuracy")


class Dashboards:
    """Draws a sweep's figures and dashboard into MLflow (see the module docstring)."""

    def publish_trial(
        self,
        tracker: SweepTracker,
        trial_id: str,
        structure: dict[str, Any] | None,
        history: Sequence[Epoch],
    ) -> None:
        if structure is not None:
            figure = layer_widths_png(structure, None, title=f"{trial_id}: learned vs seed width")
            tracker.log_figure(trial_id, figure, "figures/layer_widths.png")
        series: dict[str, list[tuple[float, float]]] = {}
        for epoch in history:
            for name in ("cost", "val_accuracy"):
                value = getattr(epoch, name)
                if isinstance(value, int | float):
                    series.setdefault(Epoch.key(epoch.phase, name), []).append(
                        (float(epoch.epoch), float(value))
                    )
        if series:
            figure = training_curves_png(
                [TrialHistory(trial_id, series)], None, title=f"{trial_id}: training curves"
            )
            tracker.log_figure(trial_id, figure, "figures/training_curves.png")

    def publish_sweep(
        self, tracker: SweepTracker, store: SweepStore, config: Any, front: ParetoResult | None
    ) -> None:
        if front is not None:
            publish_pareto_figures(tracker, config, front)
        tracker.drain()
        publish_dashboard(tracker)


def publish_pareto_figures(tracker: SweepTracker, config: Any, front: ParetoResult) -> None:
    """Per target, the front as a PNG and as an interactive page (the MLflow UI shows both
    in the parent run's artifact view)."""
    for target, rows in front.table.groupby("target"):
        if rows[["cost", "accuracy"]].dropna().empty:
            continue
        sub = pareto_front(rows, cost="cost", accuracy="accuracy")
        label = cost_label(str(target), config.trial.get("hardware"))
        title = f"{tracker.sweep}: {label} vs retrained accuracy"
        png = pareto_png(sub, None, series="algorithm", title=title, cost_label=label)
        tracker.log_figure(None, png, f"pareto/pareto_{target}.png")
        figure = pareto_figure(
            sub,
            series="algorithm",
            title=title,
            cost_label=label,
            link_column="run_url",
            hover_columns=HOVER,
        )
        tracker.log_figure(None, figure, f"pareto/pareto_{target}.html")
