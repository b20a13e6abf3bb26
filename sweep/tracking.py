"""MLflow tracking of a sweep: one experiment per sweep name, a parent run, a child run per trial.

The sweep driver is the only writer (trials report to it through Ray Tune), so many parallel
trials never contend for the tracking store. Runs are found again by tags, so running a sweep
again reuses its runs instead of duplicating them, and metrics already logged for a step are not
logged twice. With a ``queue_dir`` every write goes through a durable on-disk queue
(``sweep.outbox``): an outage of the tracking server delays writes, it does not lose them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainers.records import EPOCHS_SAVED, finite

from . import views
from .outbox import Outbox
from .store import (
    MLMODEL,
    MODEL_ARTIFACT,
    PARENT,
    PARENT_ID,
    TAG_BUDGETS,
    TAG_REASON,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_SEED_COSTS,
    TAG_STOPPED,
    TAG_SWEEP,
    TAG_TRIAL,
    TRIAL,
    SweepStore,
    run_ended,
    run_url,
    ui_base,
)

DRAIN_TIMEOUT_S = float(os.environ.get("MORPHSWEEP_TRACKING_WAIT_S", 600))


class TrackingUnavailable(RuntimeError):
    """The tracking server or store cannot be reached."""


def reachable(uri: str, timeout: float = 3.0) -> bool:
    """Whether the tracking store answers (an HTTP server's /health; a local store always)."""
    if not uri.startswith(("http://", "https://")):
        return True

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _flat(prefix: str, data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(f"{name}.", value))
        else:
            out[name] = str(value)[:6000]
    return out


class SweepTracker:
    """Writes a sweep to MLflow through ``MlflowClient`` (no global active-run state)."""

    def __init__(
        self,
        tracking_uri: str,
        sweep: str,
        artifact_root: str | None = None,
        queue_dir: str | Path | None = None,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.sweep = sweep
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        # the reads of the writer: its own sweep's runs (resume), through the one read side
        self.store = SweepStore(tracking_uri, sweep, self.client)
        experiment = self.store.find_experiment()
        if experiment is None:
            location = f"{artifact_root.rstrip('/')}/{sweep}" if artifact_root else None
            self.experiment_id = self.client.create_experiment(sweep, artifact_location=location)
            self.store.refresh_experiment()
        else:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            self.experiment_id = experiment.experiment_id
        self.outbox: Outbox | None = None
        self._applying = False
        self.parent_id = self._parent()
        self._runs: dict[str, str] = {}
        self._last_step: dict[tuple[str, str], int] = {}
        if queue_dir is not None:
            # the queue retries with its own backoff: a client that retried each request for
            # minutes would hold the sweep's event loop for as long
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
            self.outbox = Outbox(
                Path(queue_dir), self._apply, lambda: reachable(self.uri), describe=self.uri
            )
            if len(self.outbox):
                print(
                    f"replaying {len(self.outbox)} tracking writes an earlier run left in "
                    f"{self.outbox.journal}",
                    file=sys.stderr,
                    flush=True,
                )
            self.drain()

    # ----- runs ---------------------------------------------------------------------------
    def _read(self) -> SweepStore:
        """The store, refreshed: a read must see the sweep's own writes (queued ones applied
        first, except while applying one)."""
        if self.outbox is not None and len(self.outbox) and not self._applying:
            self.drain()
        self.store.refresh()
        return self.store

    def _parent(self) -> str:
        found = self._read().parent_run()
        if found is not None:
            run_id = str(found.info.run_id)
            if found.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.sweep,
            tags={TAG_SWEEP: self.sweep, TAG_ROLE: PARENT},
        )
        return str(run.info.run_id)

    def children(self) -> dict[str, Any]:
        """Child runs by trial id."""
        return self._read().trial_runs()

    def finished_trials(self) -> set[str]:
        """Trials that need not run again: finished, or stopped early as hopeless."""
        return {tid for tid, run in self.children().items() if run_ended(run)}

    def start(self, trial_id: str, params: Mapping[str, Any] | None = None) -> str | None:
        """Open a trial's child run (RUNNING): reuse it if the sweep ran before, else create it.

        Returns the run id, or None while the write waits in the queue (an outage).
        """
        self._put({"kind": "start", "trial": trial_id, "params": dict(params or {})})
        return self._runs.get(trial_id)

    def run_for(self, trial_id: str, params: Mapping[str, Any] | None = None) -> str:
        """The child run of a trial, created (with its params) the first time it is asked for."""
        if trial_id in self._runs:
            return self._runs[trial_id]
        existing = self.children().get(trial_id)
        if existing is not None:
            run_id = existing.info.run_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=trial_id,
                tags={
                    PARENT_ID: self.parent_id,
                    TAG_SWEEP: self.sweep,
                    TAG_ROLE: TRIAL,
                    TAG_TRIAL: trial_id,
                },
            )
            run_id = run.info.run_id
            if params:
                from mlflow.entities import Param

                flat = _flat("", params)
                self.client.log_batch(run_id, params=[Param(k, v) for k, v in sorted(flat.items())])
        self._runs[trial_id] = run_id
        return run_id

    def _run(self, trial_id: str | None) -> str:
        return self.parent_id if trial_id is None else self.run_for(trial_id)

    # ----- writes: queued (when there is a queue), applied in order ------------------------
    def _put(self, op: dict[str, Any], file: Path | None = None) -> None:
        if self.outbox is None:
            if file is not None:
                op = {**op, "path": str(file)}
            self._apply(op)
            return
        self.outbox.put(op, file)
        self.outbox.flush()

    def drain(self, timeout: float | None = None) -> None:
        """Apply every queued write, waiting out an outage up to ``timeout`` seconds.

        Raises:
            TrackingUnavailable: the store did not come back in time; the writes stay queued.
        """
        if self.outbox is None or not len(self.outbox):
            return
        limit = DRAIN_TIMEOUT_S if timeout is None else timeout
        if not self.outbox.drain(limit):
            raise TrackingUnavailable(
                f"the MLflow tracking store {self.uri} did not answer for {limit:.0f} s; "
                f"{len(self.outbox)} tracking writes are kept in {self.outbox.journal} and are "
                f"replayed, in order, when you run the sweep again with the store up"
            )

    def _apply(self, op: dict[str, Any]) -> None:
        """Perform one queued write against MLflow (each is safe to perform twice)."""
        self._applying = True
        try:
            self._apply_one(op)
        finally:
            self._applying = False

    def _apply_one(self, op: dict[str, Any]) -> None:
        kind, trial_id = op["kind"], op.get("trial")
        if kind == "start":
            self.client.update_run(self.run_for(str(trial_id), op.get("params")), status="RUNNING")
        elif kind == "metrics":
            self._apply_metrics(trial_id, op["metrics"], int(op["step"]), int(op["ts"]))
        elif kind == "tags":
            from mlflow.entities import RunTag

            tags = [RunTag(k, str(v)) for k, v in op["tags"].items()]
            self.client.log_batch(self._run(trial_id), tags=tags)
        elif kind == "artifact":
            path = self.outbox.path_of(op) if self.outbox is not None else Path(op["path"])
            self.client.log_artifact(self._run(trial_id), str(path), op.get("artifact_path"))
        elif kind == "experiment_tag":
            self.client.set_experiment_tag(self.experiment_id, op["key"], op["value"])
        elif kind == "terminate":
            run_id = self._run(trial_id)
            if op.get("reason"):
                self.client.set_tag(run_id, TAG_REASON, op["reason"])
            self.client.set_terminated(run_id, status=op["status"])
        else:
            raise ValueError(f"unknown tracking write {kind!r}")

    def _apply_metrics(
        self, trial_id: str | None, metrics: Mapping[str, float], step: int, ts: int
    ) -> None:
        from mlflow.entities import Metric

        run_id = self._run(trial_id)
        batch = []
        for key, value in metrics.items():
            # a child's (metric, step) already in the run is skipped: a retried or resumed
            # trial reports some epochs again, and a replayed write may already have landed
            if trial_id is not None and step <= self._already_logged(run_id, key):
                continue
            batch.append(Metric(key, float(value), ts, step))
        for start in range(0, len(batch), 900):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(run_id, metrics=batch[start : start + 900])
        if trial_id is not None:
            for metric in batch:
                self._last_step[(run_id, metric.key)] = step

    # ----- metrics and artifacts ----------------------------------------------------------
    def _already_logged(self, run_id: str, key: str) -> int:
        if (run_id, key) not in self._last_step:
            self._last_step[(run_id, key)] = self.store.last_step(run_id, key)
        return self._last_step[(run_id, key)]

    def log_metrics(self, trial_id: str | None, metrics: Mapping[str, Any], step: int) -> None:
        """Numeric metrics at ``step`` (None: the parent run); a child's (metric, step) already
        in the run is skipped."""
        numbers = {k: float(v) for k, v in metrics.items() if finite(v) is not None}
        if numbers:
            self._put(
                {
                    "kind": "metrics",
                    "trial": trial_id,
                    "step": step,
                    "ts": int(time.time() * 1000),
                    "metrics": numbers,
                }
            )

    def log_artifact(
        self, trial_id: str | None, path: str | Path, artifact_path: str | None = None
    ) -> None:
        self._put(
            {"kind": "artifact", "trial": trial_id, "artifact_path": artifact_path}, Path(path)
        )

    def log_model(self, trial_id: str, directory: Path) -> None:
        """An MLflow model directory (``sweep.registry.write_model``) as the trial run's
        ``MODEL_ARTIFACT``, one queued artifact a file and its MLmodel last: a model an outage
        cut short has no MLmodel yet, so nothing takes it for logged (``SweepStore.has_model``)."""
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MLMODEL)
        for path in [*files, directory / MLMODEL]:
            folder = path.parent.relative_to(directory).as_posix()
            self.log_artifact(
                trial_id, path, MODEL_ARTIFACT if folder == "." else f"{MODEL_ARTIFACT}/{folder}"
            )

    def log_figure(self, trial_id: str | None, figure: Any, artifact_file: str) -> None:
        """A plotly (as self-contained HTML) or matplotlib (as PNG) figure, via mlflow.log_figure.

        While earlier writes wait in the queue (an outage), the figure is rendered to a file and
        queued like any artifact instead, so nothing is lost and the order is kept.
        """
        plotly = type(figure).__module__.startswith("plotly")
        save_kwargs = {"include_plotlyjs": True, "full_html": True} if plotly else {}
        if self.outbox is None or not len(self.outbox):
            try:
                self.client.log_figure(
                    self._run(trial_id), figure, artifact_file, save_kwargs=save_kwargs
                )
                return
            except Exception:  # noqa: BLE001 - queued below when the store does not answer
                if self.outbox is None or reachable(self.uri):
                    raise

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            if plotly:
                figure.write_html(path, **save_kwargs)
            else:
                figure.savefig(path)
            folder = str(Path(artifact_file).parent)
            self.log_artifact(trial_id, path, None if folder == "." else folder)

    def set_tags(self, trial_id: str | None, tags: Mapping[str, str]) -> None:
        if tags:
            self._put(
                {"kind": "tags", "trial": trial_id, "tags": {k: str(v) for k, v in tags.items()}}
            )

    def finish(self, trial_id: str, status: str, reason: str | None = None) -> None:
        """End a trial's run FINISHED or FAILED; a failure keeps its reason as a tag."""
        self._put(
            {
                "kind": "terminate",
                "trial": trial_id,
                "status": status,
                "reason": reason[-5000:] if reason else None,
            }
        )

    # ----- the parent run's view of the sweep -----------------------------------------------
    def log_sweep(self, config: Any, costs: Mapping[str, float]) -> None:
        """The search, budgets and seed costs, as parent tags (pick and pareto read them)."""

        self.set_tags(
            None,
            {
                TAG_SEARCH: config.search,
                TAG_BUDGETS: json.dumps({t: list(v) for t, v in config.budgets.items()}),
                TAG_SEED_COSTS: json.dumps(dict(costs)),
            },
        )

    def log_search_summary(self, rows: list[dict[str, Any]]) -> None:
        """Per algorithm, target, seed and budget: the trials the adaptive search needed."""
        metrics = {}
        for row in rows:
            key = f"search/{row['algorithm']}/{row['target']}/s{row['seed']}/b{row['budget_fraction']:.4g}"
            metrics[f"{key}/trials"] = row["trials"]
            if row["trials_to_meet"] is not None:
                metrics[f"{key}/trials_to_meet"] = row["trials_to_meet"]
        self.log_parent_metrics(metrics)

    def log_early_stops(self, store: SweepStore | None = None) -> tuple[int, int]:
        """Trials stopped early and epochs saved, over the whole sweep (resumed runs too), as
        ``store`` read them (default: read now)."""
        runs = (store or self._read()).trial_runs().values()
        stopped = [r for r in runs if TAG_STOPPED in r.data.tags]
        saved = sum(int(r.data.metrics.get(EPOCHS_SAVED, 0)) for r in stopped)
        self.log_parent_metrics(
            {"early_stop/trials_stopped": len(stopped), "early_stop/epochs_saved": saved}
        )
        return len(stopped), saved

    def set_chart_view(self, targets: list[str]) -> str:
        """Saved views of the experiment in MLflow's own UI (``sweep.views``), and links to them
        in the parent run's description. Returns the URL query that opens the chart view."""
        for key, value in views.saved_views(self.sweep, targets).items():
            self._put({"kind": "experiment_tag", "key": key, "value": value})
        self.set_tags(None, views.parent_note(self.sweep, self.experiment_id))
        return views.CHART_QUERY

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        self.log_metrics(None, metrics, step=0)

    def finish_sweep(self, status: str = "FINISHED") -> None:
        self._put({"kind": "terminate", "trial": None, "status": status})
        self.drain()

    def run_url(self, run_id: str) -> str:
        return run_url(ui_base(self.uri), self.experiment_id, run_id)
