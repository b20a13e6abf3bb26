"""The sweep's read side: the only code that queries MLflow.

A sweep lives in MLflow as one experiment (the sweep's name) holding a parent run and a child
run per trial, found by their tags. ``SweepStore`` looks them up and hands out records: the
trials (``TrialRun``), the results table (one row per trial, pandas), the budgets and seed costs
the sweep ran with, metric histories, structures and the links into MLflow's UI. It reads a
sweep's runs once and keeps them until ``refresh()``; the writer (``sweep.tracking``) refreshes
it when it needs to see its own writes. It also asks the Model Registry what ``pick --register``
needs to know first: whether there is one, whether a trial's run holds its MLflow model
(``MODEL_ARTIFACT``), whether a registered model exists.

Reading imports MLflow and pandas, never TensorFlow or Ray.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from trainers.records import COST_FRACTION, SEED_ACCURACY, SEED_COST, Outcome

TAG_SWEEP = "morphsweep.sweep"
TAG_ROLE = "morphsweep.role"
TAG_TRIAL = "morphsweep.trial_id"
TAG_PARETO = "morphsweep.pareto"
TAG_KNEE = "morphsweep.knee"
TAG_REASON = "morphsweep.failure_reason"
TAG_NODE = "morphsweep.node_id"
TAG_NODE_IP = "morphsweep.node_ip"
TAG_WORKER = "morphsweep.worker_pid"
TAG_STOPPED = "morphsweep.stopped"
TAG_STOPPED_REASON = "morphsweep.stopped_reason"
TAG_BUDGETS = "morphsweep.budgets"
TAG_SEED_COSTS = "morphsweep.seed_costs"
TAG_SEARCH = "morphsweep.search"
TAG_RESUMED = "morphsweep.resumed_from"
PARENT_ID = "mlflow.parentRunId"
PARENT, TRIAL = "parent", "trial"  # the values of TAG_ROLE

# the sweep's trial runs in MLflow's search syntax, and the key of the saved views
TRIALS_FILTER = f"tags.`{TAG_ROLE}` = '{TRIAL}'"
PARENT_FILTER = f"tags.`{TAG_ROLE}` = '{PARENT}'"
VIEW_KEY = "morphsweep"

# where a finished trial's run keeps its retrained model as an MLflow model (keras flavor); its
# MLmodel file is uploaded last, so a model whose upload was cut short does not count as logged
MODEL_ARTIFACT = "mlflow_model"
MLMODEL = "MLmodel"

DEFAULT_STORE = "morphsweep_runs"  # where a sweep without workdir or tracking_uri keeps its runs
LOCAL_UI = "http://127.0.0.1:5000"  # where `morphsweep ui` serves a local store by default

# one row per trial: what the front, the knee, pick and the dashboards read
COLUMNS = [
    "trial_id",
    "algorithm",
    "target",
    "seed",
    "multiplier",
    "strength",
    "width",
    "status",
    "cost",
    "accuracy",
    SEED_COST,
    COST_FRACTION,
    SEED_ACCURACY,
    "failure_reason",
    "stopped",
    "run_id",
    "run_url",
]


class SweepNotFound(LookupError):
    """No sweep of that name in the tracking store."""


class NoModelRegistry(LookupError):
    """The tracking store has no Model Registry this MLflow can use."""


def default_tracking_uri(root: str | Path = DEFAULT_STORE) -> str:
    """The local MLflow store of a sweep that names no tracking server (absolute)."""
    return f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def ui_base(uri: str) -> str:
    """Where the MLflow UI of a tracking URI is: the server itself, or `morphsweep ui`'s."""
    return uri if uri.startswith(("http://", "https://")) else LOCAL_UI


def ui_urls(base: str, experiment_id: str) -> dict[str, str]:
    """MLflow UI links of a sweep: its trial runs as a table, and the saved cost-accuracy chart."""
    runs = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return {
        "table": f"{runs}?viewStateShareKey={VIEW_KEY}-table&compareRunsMode=TABLE",
        "chart": f"{runs}?viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART",
    }


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI at ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(base: str, name: str, version: str | int) -> str:
    """A registered model version's page in the MLflow UI at ``base``."""
    return f"{base.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


def run_ended(run: Any) -> bool:
    """A trial's run that needs no rerun: finished, or stopped early as hopeless."""
    return run.info.status == "FINISHED" or (
        run.info.status == "KILLED" and TAG_STOPPED in run.data.tags
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class TrialRun:
    """A trial as MLflow holds it: its settings (params), last metrics, tags and status."""

    trial_id: str
    run_id: str
    status: str
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    url: str

    @property
    def outcome(self) -> Outcome | None:
        """The finished trial's cost and accuracy; None for a trial that did not finish."""
        return Outcome.from_metrics(self.metrics) if self.status == "FINISHED" else None

    def row(self) -> dict[str, Any]:
        """The trial's row of the results table (``COLUMNS``)."""
        params, outcome = self.params, self.outcome
        nan = float("nan")
        return {
            "trial_id": self.trial_id,
            "algorithm": params.get("algorithm", ""),
            "target": params.get("target", ""),
            "seed": int(_number(params.get("seed", 0)) or 0),
            "multiplier": _number(params.get("multiplier")),
            "strength": _number(params.get("strength")),
            "width": _number(params.get("width")),
            "status": self.status,
            "cost": outcome.cost if outcome else nan,
            "accuracy": outcome.accuracy if outcome else nan,
            SEED_COST: outcome.seed_cost if outcome else nan,
            COST_FRACTION: outcome.cost_fraction if outcome else nan,
            SEED_ACCURACY: _seed_accuracy(outcome),
            "failure_reason": self.tags.get(TAG_REASON, self.tags.get(TAG_STOPPED_REASON, "")),
            "stopped": self.tags.get(TAG_STOPPED, ""),
            "run_id": self.run_id,
            "run_url": self.url,
        }


def _seed_accuracy(outcome: Outcome | None) -> float:
    value = outcome.seed_val_accuracy if outcome else None
    return float("nan") if value is None else float(value)


class SweepStore:
    """Reads one sweep from an MLflow tracking store.

    Args:
        uri: the tracking URI.
        sweep: the sweep's name (its experiment).
        client: an ``MlflowClient`` to share (the writer's), or None for a new one.
    """

    def __init__(self, uri: str, sweep: str, client: Any = None) -> None:
        if client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.sweep = sweep
        self.client = client
        self._experiment: Any = None
        self._runs: list[Any] | None = None

    # ----- the experiment and its runs -------------------------------------------------------
    def find_experiment(self) -> Any:
        """The sweep's MLflow experiment, or None when there is none (deleted ones included)."""
        if self._experiment is None:
            self._experiment = self.client.get_experiment_by_name(self.sweep)
        return self._experiment

    @property
    def experiment_id(self) -> str:
        experiment = self.find_experiment()
        if experiment is None:
            known = [e.name for e in self.client.search_experiments()]
            raise SweepNotFound(
                f"no sweep named {self.sweep!r} in {self.uri}; known sweeps: {known}"
            )
        return str(experiment.experiment_id)

    def refresh(self) -> None:
        """Forget the runs read: the next question reads MLflow again."""
        self._runs = None

    def refresh_experiment(self) -> None:
        """Forget the experiment looked up (the writer has just created it)."""
        self._experiment = None
        self._runs = None

    def _all_runs(self) -> list[Any]:
        if self._runs is None:
            self._runs = list(self.client.search_runs([self.experiment_id], max_results=5000))
        return self._runs

    def parent_run(self) -> Any:
        """The sweep's parent run (an MLflow run), or None before the sweep first ran."""
        parents = [r for r in self._all_runs() if r.data.tags.get(TAG_ROLE) == PARENT]
        return parents[0] if parents else None

    def parent_id(self) -> str:
        parent = self.parent_run()
        if parent is None:
            raise SweepNotFound(f"sweep {self.sweep!r} in {self.uri} has no parent run")
        return str(parent.info.run_id)

    def trial_runs(self) -> dict[str, Any]:
        """The trials' MLflow runs under the parent, by trial id."""
        parent = self.parent_run()
        parent_id = parent.info.run_id if parent is not None else None
        return {
            r.data.tags[TAG_TRIAL]: r
            for r in self._all_runs()
            if r.data.tags.get(TAG_ROLE) == TRIAL
            and TAG_TRIAL in r.data.tags
            and (parent_id is None or r.data.tags.get(PARENT_ID) == parent_id)
        }

    def ended_trials(self) -> set[str]:
        """Trials that need not run again: finished, or stopped early as hopeless."""
        return {tid for tid, run in self.trial_runs().items() if run_ended(run)}

    def trials(self) -> list[TrialRun]:
        """Every trial of the sweep as a record."""
        base = ui_base(self.uri)
        return [
            TrialRun(
                trial_id=trial_id,
                run_id=run.info.run_id,
                status=run.info.status,
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                tags=dict(run.data.tags),
                url=run_url(base, self.experiment_id, run.info.run_id),
            )
            for trial_id, run in self.trial_runs().items()
        ]

    # ----- tables -----------------------------------------------------------------------------
    def results(self) -> pd.DataFrame:
        """One row per trial: its settings, status, rebuilt cost and retrained accuracy.

        Failed or unfinished trials stay in the table with no cost or accuracy (they never enter
        the front). Rows are sorted by target, algorithm, cost and trial id: every later choice
        (front, knee, pick) reads them in this order, whatever order MLflow returned.
        """
        table = pd.DataFrame([t.row() for t in self.trials()], columns=COLUMNS)
        order = ["target", "algorithm", "cost", "trial_id"]
        return table.sort_values(order, kind="stable").reset_index(drop=True)

    def budgets(self) -> tuple[dict[str, list[float]], dict[str, float]]:
        """The budgets and seed costs the sweep ran with (tags of its parent run)."""
        self.experiment_id  # noqa: B018 - a missing sweep is SweepNotFound
        parent = self.parent_run()
        tags = parent.data.tags if parent is not None else {}
        return json.loads(tags.get(TAG_BUDGETS, "{}")), json.loads(tags.get(TAG_SEED_COSTS, "{}"))

    def parent_tags(self) -> dict[str, str]:
        parent = self.parent_run()
        return dict(parent.data.tags) if parent is not None else {}

    # ----- one run's details ------------------------------------------------------------------
    def history(self, run_id: str, keys: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
        """Each metric's values by step, in the order logged."""
        return {
            key: [
                (float(m.step), float(m.value)) for m in self.client.get_metric_history(run_id, key)
            ]
            for key in keys
        }

    def last_step(self, run_id: str, key: str) -> int:
        """The highest step a metric was logged at in a run; -1 when never."""
        history = self.client.get_metric_history(run_id, key)
        return max((m.step for m in history), default=-1)

    def download(self, run_id: str, artifact: str, directory: str | Path) -> Path:
        """An artifact of a run, downloaded into ``directory``; returns its local path."""
        return Path(self.client.download_artifacts(run_id, artifact, str(directory)))

    def structure(self, run_id: str) -> dict[str, Any] | None:
        """A trial's structure JSON; None when it has none (or none that reads)."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                return dict(json.loads(self.download(run_id, "structure.json", tmp).read_text()))
            except (MlflowException, OSError, ValueError):
                return None

    def ui_urls(self, base: str | None = None) -> dict[str, str]:
        return ui_urls(base or ui_base(self.uri), self.experiment_id)

    # ----- the model registry -----------------------------------------------------------------
    def has_model(self, run_id: str) -> bool:
        """Whether a trial's run holds its whole MLflow model (its MLmodel, uploaded last)."""
        found = {a.path for a in self.client.list_artifacts(run_id, MODEL_ARTIFACT)}
        return f"{MODEL_ARTIFACT}/{MLMODEL}" in found

    def check_registry(self) -> None:
        """Ask the Model Registry one question; raise ``NoModelRegistry`` when there is none.

        A registry URI MLflow has no registry store for (FEATURE_DISABLED), or a server without
        the registry's endpoints (HTTP 404), is none; any other failure (an outage) is raised as
        it is.
        """
        from mlflow.exceptions import MlflowException

        try:
            self.client.search_registered_models(max_results=1)
        except MlflowException as exc:
            if exc.error_code not in ("FEATURE_DISABLED", "ENDPOINT_NOT_FOUND"):
                raise
            where = os.environ.get("MLFLOW_REGISTRY_URI")
            fix = f"fix or unset MLFLOW_REGISTRY_URI={where!r}" if where else "use one that has"
            raise NoModelRegistry(
                f"the tracking store {self.uri} has no Model Registry to register to "
                f"({str(exc).strip().split('. ')[0][:200]}); {fix} (an MLflow tracking server, "
                f"or a database store such as sqlite:///path/mlflow.db)"
            ) from None

    def registered_model(self, name: str) -> Any:
        """The registered model ``name``; None when the registry has none of that name."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise


def results_table(uri: str, sweep: str) -> pd.DataFrame:
    """``SweepStore(uri, sweep).results()``: the results table of a sweep, read afresh."""
    return SweepStore(uri, sweep).results()
