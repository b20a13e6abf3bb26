"""MLflow tracking of a sweep: one experiment per sweep name, a parent run, a child run per trial.

The sweep driver is the only writer (trials report to it through Ray Tune), so many parallel
trials never contend for the tracking store. Runs are found again by tags, so running a sweep
again reuses its runs instead of duplicating them, and metrics already logged for a step are not
logged twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TAG_SWEEP = "morphsweep.sweep"
TAG_ROLE = "morphsweep.role"
TAG_TRIAL = "morphsweep.trial_id"
TAG_PARETO = "morphsweep.pareto"
TAG_KNEE = "morphsweep.knee"
TAG_REASON = "morphsweep.failure_reason"
TAG_NODE = "morphsweep.node_id"
TAG_NODE_IP = "morphsweep.node_ip"
TAG_STOPPED = "morphsweep.stopped"
TAG_STOPPED_REASON = "morphsweep.stopped_reason"
TAG_BUDGETS = "morphsweep.budgets"
TAG_SEED_COSTS = "morphsweep.seed_costs"
TAG_SEARCH = "morphsweep.search"
PARENT_ID = "mlflow.parentRunId"


class TrackingUnavailable(RuntimeError):
    """The tracking server or store cannot be reached."""


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail at once, before any trial, when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status != 200:
                raise TrackingUnavailable(
                    f"MLflow tracking server {uri} answered {response.status} on /health"
                )
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking server at {uri} ({exc}); start it or fix "
            f"tracking_uri (leave it empty for the local store)"
        ) from exc


def _flat(prefix: str, data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(f"{name}.", value))
        else:
            out[name] = str(value)[:6000]
    return out


def run_ended(run: Any) -> bool:
    """A trial's run that needs no rerun: finished, or stopped early as hopeless."""
    return run.info.status == "FINISHED" or (
        run.info.status == "KILLED" and TAG_STOPPED in run.data.tags
    )


class SweepTracker:
    """Writes a sweep to MLflow through ``MlflowClient`` (no global active-run state)."""

    def __init__(self, tracking_uri: str, sweep: str, artifact_root: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.sweep = sweep
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        experiment = self.client.get_experiment_by_name(sweep)
        if experiment is None:
            location = f"{artifact_root.rstrip('/')}/{sweep}" if artifact_root else None
            self.experiment_id = self.client.create_experiment(sweep, artifact_location=location)
        else:
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            self.experiment_id = experiment.experiment_id
        self.parent_id = self._parent()
        self._runs: dict[str, str] = {}
        self._last_step: dict[tuple[str, str], int] = {}

    # ----- runs ---------------------------------------------------------------------------
    def _search(self, filter_string: str) -> list[Any]:
        return list(
            self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=5000
            )
        )

    def _parent(self) -> str:
        found = self._search(f"tags.`{TAG_ROLE}` = 'parent'")
        if found:
            run_id = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.sweep,
            tags={TAG_SWEEP: self.sweep, TAG_ROLE: "parent"},
        )
        return run.info.run_id

    def children(self) -> dict[str, Any]:
        """Child runs by trial id."""
        runs = self._search(f"tags.`{TAG_ROLE}` = 'trial'")
        return {
            r.data.tags[TAG_TRIAL]: r for r in runs if r.data.tags.get(PARENT_ID) == self.parent_id
        }

    def finished_trials(self) -> set[str]:
        """Trials that need not run again: finished, or stopped early as hopeless."""
        return {tid for tid, run in self.children().items() if run_ended(run)}

    def start(self, trial_id: str, params: Mapping[str, Any] | None = None) -> str:
        """Open a trial's child run (RUNNING): reuse it if the sweep ran before, else create it."""
        run_id = self.run_for(trial_id, params)
        self.client.update_run(run_id, status="RUNNING")
        return run_id

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
                    TAG_ROLE: "trial",
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

    # ----- metrics and artifacts ----------------------------------------------------------
    def _already_logged(self, run_id: str, key: str) -> int:
        if (run_id, key) not in self._last_step:
            history = self.client.get_metric_history(run_id, key)
            self._last_step[(run_id, key)] = max((m.step for m in history), default=-1)
        return self._last_step[(run_id, key)]

    def log_metrics(self, trial_id: str, metrics: Mapping[str, Any], step: int) -> None:
        """Numeric metrics at ``step``; a (metric, step) already in the run is skipped."""
        from mlflow.entities import Metric

        run_id = self.run_for(trial_id)
        now = int(time.time() * 1000)
        batch = []
        for key, value in metrics.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                continue
            if step <= self._already_logged(run_id, key):
                continue
            batch.append(Metric(key, float(value), now, step))
            self._last_step[(run_id, key)] = step
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_artifact(
        self, trial_id: str | None, path: str | Path, artifact_path: str | None = None
    ) -> None:
        run_id = self.parent_id if trial_id is None else self.run_for(trial_id)
        self.client.log_artifact(run_id, str(path), artifact_path)

    def set_tags(self, trial_id: str | None, tags: Mapping[str, str]) -> None:
        run_id = self.parent_id if trial_id is None else self.run_for(trial_id)
        for key, value in tags.items():
            self.client.set_tag(run_id, key, value)

    def finish(self, trial_id: str, status: str, reason: str | None = None) -> None:
        """End a trial's run FINISHED or FAILED; a failure keeps its reason as a tag."""
        run_id = self.run_for(trial_id)
        if reason:
            self.client.set_tag(run_id, TAG_REASON, reason[-5000:])
        self.client.set_terminated(run_id, status=status)

    # ----- the parent run's view of the sweep -----------------------------------------------
    def log_sweep(self, config: Any, costs: Mapping[str, float]) -> None:
        """The search, budgets and seed costs, as parent tags (pick and pareto read them)."""
        import json

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

    def log_early_stops(self) -> tuple[int, int]:
        """Trials stopped early and epochs saved, over the whole sweep (resumed runs too)."""
        runs = [r for r in self.children().values() if TAG_STOPPED in r.data.tags]
        saved = sum(int(r.data.metrics.get("epochs_saved", 0)) for r in runs)
        self.log_parent_metrics(
            {"early_stop/trials_stopped": len(runs), "early_stop/epochs_saved": saved}
        )
        return len(runs), saved

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if math.isfinite(v)]
        for start in range(0, len(batch), 900):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(self.parent_id, metrics=batch[start : start + 900])

    def finish_sweep(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_id, status=status)

    def run_url(self, run_id: str) -> str:
        base = self.uri if self.uri.startswith("http") else "http://127.0.0.1:5000"
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
