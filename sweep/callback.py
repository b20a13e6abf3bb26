"""On the driver: Tune's events become MLflow runs, metrics, artifacts and statuses.

``TrackingCallback`` is the sweep's single writer to MLflow (through ``SweepTracker``): trials
report to it through Tune, so many parallel trials never contend for the tracking store. It reads
each result as a record (``trainers.records.parse``) and logs the record's metrics; the files a
report's checkpoint carries (``sweep.worker.BUNDLE``) become the trial run's artifacts, the
retrained network among them as an MLflow model (``sweep.registry``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from trainers.records import EPOCHS_SAVED, Epoch, Failure, Outcome, parse

from .plugins import Publisher
from .registry import write_model
from .space import TrialSpec
from .store import TAG_NODE, TAG_NODE_IP, TAG_RESUMED, TAG_STOPPED, TAG_STOPPED_REASON, TAG_WORKER
from .tracking import SweepTracker
from .worker import BUNDLE, ENTERED_AT, NODE_ID, REPORTED_AT, RESUMED_FROM

# what the driver measures of a finished trial, on its run
WALL, OVERHEAD, REPORT_LAG, STARTUP = (
    "time/wall_seconds",
    "time/overhead_seconds",
    "time/report_lag_seconds",
    "time/startup_seconds",
)


class TrackingCallback(tune.Callback):
    """Single writer: turns Tune events into MLflow runs, metrics, artifacts and statuses.

    Args:
        tracker: the sweep's writer.
        specs: the trials by sweep trial id (a dict, or the adaptive search's, which grows).
        stopped: the early stops decided so far, by sweep trial id (the scheduler's), if any.
        publishers: what draws a finished trial's figures (``sweep.plugins``).
    """

    def __init__(
        self,
        tracker: SweepTracker,
        specs: Mapping[str, TrialSpec],
        stopped: Mapping[str, Any] | None = None,
        publishers: Sequence[Publisher] = (),
    ) -> None:
        self.tracker = tracker
        self.specs = specs
        self.stopped = stopped if stopped is not None else {}
        self.publishers = publishers
        self.failures: dict[str, str] = {}
        self.nodes: dict[str, str] = {}
        self.started: dict[str, float] = {}
        # trial id -> (start, last report: time.monotonic(); seconds training), this run
        self.times: dict[str, tuple[float, float, float]] = {}
        self.started_at: dict[str, float] = {}
        # seconds from the driver starting a trial to its worker beginning it
        self.startup: dict[str, float] = {}
        # a resumed trial's first epoch, logged after the epochs it had saved (its checkpoint's)
        self.after_replay: dict[str, Epoch] = {}

    @staticmethod
    def _id(trial: Any) -> str:
        return str(trial.config["trial_id"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.specs[self._id(trial)]
        self.tracker.start(spec.trial_id, spec.params())
        self.started[spec.trial_id] = time.monotonic()
        self.started_at[spec.trial_id] = time.time()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        trial_id, record = self._id(trial), parse(result)
        if ENTERED_AT in result and trial_id in self.started_at:
            self.startup[trial_id] = float(result[ENTERED_AT]) - self.started_at[trial_id]
        if RESUMED_FROM in result:
            # a resumed trial's first report, whatever its phase (it may already be done)
            self.tracker.set_tags(trial_id, {TAG_RESUMED: str(result[RESUMED_FROM])})
            print(f"trial {trial_id} resumed after {result[RESUMED_FROM]}", flush=True)
        if isinstance(record, Failure):
            self.failures[trial_id] = record.reason
        elif isinstance(record, Outcome):
            self._log_outcome(trial_id, record, result)
        elif isinstance(record, Epoch):
            if trial_id not in self.nodes:
                self.nodes[trial_id] = str(result.get(NODE_ID, ""))
                self.tracker.set_tags(
                    trial_id,
                    {
                        TAG_NODE: self.nodes[trial_id],
                        TAG_NODE_IP: str(result.get("node_ip", "")),
                        # the worker process (one runs several trials in turn)
                        TAG_WORKER: str(result.get("pid", "")),
                    },
                )
            if RESUMED_FROM in result:
                self.after_replay[trial_id] = record
            else:
                self.tracker.log_metrics(trial_id, record.metrics(), step=record.epoch)

    def _log_outcome(self, trial_id: str, outcome: Outcome, result: Mapping[str, Any]) -> None:
        metrics = outcome.metrics(self.specs[trial_id].target)
        if trial_id in self.started:
            # the trial as the driver saw it (worker start, Ray, tracking included)
            now = time.monotonic()
            wall = now - self.started[trial_id]
            self.times[trial_id] = (self.started[trial_id], now, outcome.train_seconds)
            metrics[WALL] = wall
            metrics[OVERHEAD] = wall - outcome.train_seconds
            if REPORTED_AT in result:  # how long the report took to reach this callback
                metrics[REPORT_LAG] = time.time() - float(result[REPORTED_AT])
            if trial_id in self.startup:
                metrics[STARTUP] = self.startup[trial_id]
        self.tracker.log_metrics(trial_id, metrics, step=0)

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        trial_id = self._id(trial)
        with checkpoint.as_directory() as directory:
            source = Path(directory)
            self._replay(trial_id, source)
            for path in sorted((source / BUNDLE["structures"]).glob("*.json")):
                self.tracker.log_artifact(trial_id, path, "structures")
            report = source / BUNDLE["report"]
            if not report.is_file() or not isinstance(
                parse(json.loads(report.read_text())), Outcome
            ):
                return
            for name in (BUNDLE["structure"], BUNDLE["final_structure"], BUNDLE["metrics"]):
                if (source / name).is_file():
                    self.tracker.log_artifact(trial_id, source / name)
            self._log_model(trial_id, source)
            self._publish_trial(trial_id, source)

    def _log_model(self, trial_id: str, source: Path) -> None:
        """The retrained network as an MLflow model on the trial's run (``sweep.registry``)."""
        if not (source / BUNDLE["model"]).is_file():
            return
        backend = str(self.specs[trial_id].config.get("backend", "tensorflow"))
        with tempfile.TemporaryDirectory() as tmp:
            directory = write_model(
                source / BUNDLE["model"], Path(tmp) / "model", backend, source / BUNDLE["structure"]
            )
            self.tracker.log_model(trial_id, directory)

    def _replay(self, trial_id: str, source: Path) -> None:
        """A resumed trial's saved epochs (one may never have reached this driver), then the
        epoch it reported first."""
        saved = source / BUNDLE["history"]
        if saved.is_file():
            for past in json.loads(saved.read_text()):
                epoch = Epoch.from_result(past)
                self.tracker.log_metrics(trial_id, epoch.metrics(), step=epoch.epoch)
        first = self.after_replay.pop(trial_id, None)
        if first is not None:
            self.tracker.log_metrics(trial_id, first.metrics(), step=first.epoch)

    def _publish_trial(self, trial_id: str, source: Path) -> None:
        structure_file, metrics_file = source / BUNDLE["structure"], source / BUNDLE["metrics"]
        structure = json.loads(structure_file.read_text()) if structure_file.is_file() else None
        history = (
            [Epoch.from_result(e) for e in json.loads(metrics_file.read_text()).get("history", [])]
            if metrics_file.is_file()
            else []
        )
        for publisher in self.publishers:
            publisher.publish_trial(self.tracker, trial_id, structure, history)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._id(trial)
        reason = self.failures.pop(trial_id, None)
        stop = self.stopped.get(trial_id)
        if stop is not None and not reason:
            # stopped during structure learning: KILLED, with the kind and the reason
            self.tracker.set_tags(
                trial_id, {TAG_STOPPED: stop.kind, TAG_STOPPED_REASON: stop.reason}
            )
            self.tracker.log_metrics(trial_id, {EPOCHS_SAVED: stop.epochs_saved}, step=0)
            self.tracker.finish(trial_id, "KILLED")
            return
        self.tracker.finish(trial_id, "FAILED" if reason else "FINISHED", reason)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.finish(self._id(trial), "FAILED", error_text(trial))


def error_text(trial: Any) -> str:
    """The last lines of a trial's error file (what Tune kept of its exception)."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        return "\n".join(lines[-3:])
    return "the trial process failed (see the Ray logs)"


SpecLookup = Callable[[str], TrialSpec | None]
