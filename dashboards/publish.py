"""The dashboards' publisher (entry point group ``morphsweep.publishers``, see ``pyproject.toml``):
a finished trial's layer widths and training curves as PNGs on its run; on the parent run, the
Pareto front per target (PNG and page, ``pareto/``) and the dashboard (``dashboard/``)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep.charts import CURVE_METRICS, TrialHistory
from sweep.overview import targets
from sweep.pareto import ParetoResult
from sweep.store import SweepStore
from sweep.tracking import SweepTracker
from trainers.records import Epoch

from .page import build_dashboard
from .pareto import pareto_chart
from .render import to_plotly, to_png
from .trials import curves_chart, widths_chart

ARTIFACT_DIR = "dashboard"  # where publish_dashboard puts the files on the parent run
Json = dict[str, Any]  # a structure JSON, as a trial wrote it


class Dashboards:
    """Draws a sweep's figures and dashboard into MLflow (see the module docstring)."""

    def publish_trial(
        self, tracker: SweepTracker, trial_id: str, structure: Json | None, history: Sequence[Epoch]
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
    """Per target, the front as a PNG and a page (the parent run's artifact view shows both)."""
    for part in targets(front.table, tracker.sweep, config.trial.get("hardware")):
        if (chart := part.chart()) is not None:
            name = f"pareto/pareto_{part.target}"
            tracker.log_figure(None, to_png(pareto_chart(chart), None), f"{name}.png")
            tracker.log_figure(None, to_plotly(pareto_chart(chart)), f"{name}.html")


def publish_dashboard(
    tracker_or_uri: Any, sweep: str | None = None, *, trial_id: str | None = None
) -> list[str]:
    """Builds the dashboard and logs its files to the sweep's parent run under ``dashboard/``;
    returns their artifact paths, sorted. ``tracker_or_uri``: a ``sweep.tracking.SweepTracker``
    (the files go through its queue: an outage delays them, never loses them), or a tracking URI
    with ``sweep`` (the parent run's status is left as it is).

    Raises:
        ValueError: A URI without a sweep name, or a sweep name that is not the tracker's.
        sweep.store.SweepNotFound: No such sweep or no parent run.
    """
    uri = isinstance(tracker_or_uri, str)
    if uri and not sweep:
        raise ValueError("publish_dashboard(uri, sweep): the sweep name is required")
    if not uri and sweep not in (None, tracker_or_uri.sweep):
        raise ValueError(f"sweep {sweep!r} is not the tracker's sweep {tracker_or_uri.sweep!r}")
    tracker = None if uri else tracker_or_uri
    store = SweepStore(tracker_or_uri, str(sweep)) if uri else tracker_or_uri.store
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / ARTIFACT_DIR
        build_dashboard(store, store.sweep, out, trial_id=trial_id)
        files = sorted(p.name for p in out.iterdir())
        if tracker is None:
            store.client.log_artifacts(store.parent_id(), str(out), ARTIFACT_DIR)
        else:
            for name in files:
                tracker.log_artifact(None, out / name, ARTIFACT_DIR)
    return [f"{ARTIFACT_DIR}/{name}" for name in files]
