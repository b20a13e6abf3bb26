"""The dashboards' publisher: what a sweep draws into MLflow (registered in ``pyproject.toml``
under the entry point group ``morphsweep.publishers``; ``sweep.plugins`` loads it).

A finished trial gets its layer widths and training curves as PNG figures on its run; the
finished sweep gets, on its parent run, the Pareto front per target (PNG and interactive HTML,
under ``pareto/``) and the static dashboard (under ``dashboard/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweep.charts import CURVE_METRICS, TrialHistory, front_chart
from sweep.overview import cost_label
from sweep.pareto import ParetoResult, pareto_front
from sweep.store import SweepStore
from sweep.tracking import SweepTracker
from trainers.records import Epoch

from .page import HOVER, publish_dashboard
from .pareto import pareto_chart, pareto_png
from .render import to_plotly, to_png
from .trials import curves_chart, widths_chart


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
            figure = to_png(widths_chart(structure, f"{trial_id}: learned vs seed width"), None)
            tracker.log_figure(trial_id, figure, "figures/layer_widths.png")
        curves = TrialHistory.of_epochs(trial_id, history, [key for key, _ in CURVE_METRICS])
        if curves.metrics:
            figure = to_png(curves_chart([curves], f"{trial_id}: training curves"), None)
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
        result = pareto_front(rows, cost="cost", accuracy="accuracy")
        label = cost_label(str(target), config.trial.get("hardware"))
        options = {"title": f"{tracker.sweep}: {label} vs retrained accuracy", "cost_label": label}
        tracker.log_figure(None, pareto_png(result, None, **options), f"pareto/pareto_{target}.png")
        chart = front_chart(result, link_column="run_url", hover_columns=HOVER, **options)
        tracker.log_figure(None, to_plotly(pareto_chart(chart)), f"pareto/pareto_{target}.html")
