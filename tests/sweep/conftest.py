"""Real services for sweep tests: an MLflow tracking server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """`mlflow server` with a SQLite store and proxied artifacts on 127.0.0.1; can be stopped
    and started again on the same port and store (an outage)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self, timeout: float = 120) -> str:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        self.log = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.uri
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 15)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A tracking server shared by the session's tests."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield server.start()
    server.stop()


@pytest.fixture
def private_mlflow_server(tmp_path_factory):
    """A tracking server of one test's own, which the test may stop and start again."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_private"))
    server.start()
    yield server
    server.stop()


def record_for_repeat(name: str, data: object) -> None:
    """Keep a sweep's results for ``make test-repeat`` (tests/repeat.py), which compares them
    between runs; nothing happens outside it."""
    import json

    folder = os.environ.get("MORPHSWEEP_REPEAT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True))


# metrics that measure time or name a process: they differ between runs of the same sweep
VARYING = ("seconds", "time/", "_at", "node_id", "worker")


def fingerprint(uri: str, config) -> dict:
    """What a finished sweep decided and produced, without timings: per trial its status, every
    metric's history and its structure JSON; the adaptive search's suggestions, if it had one."""
    import json

    from mlflow.tracking import MlflowClient

    from sweep.store import TAG_ROLE, TAG_TRIAL

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    trials = {}
    for run in runs:
        if run.data.tags.get(TAG_ROLE) != "trial":
            continue
        trial_id = run.data.tags[TAG_TRIAL]
        metrics = {
            key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in sorted(run.data.metrics)
            if not any(word in key for word in VARYING)
        }
        structure = config.trials_dir() / trial_id / "structure.json"
        trials[trial_id] = {
            "status": run.info.status,
            "metrics": metrics,
            "structure": json.loads(structure.read_text()) if structure.is_file() else None,
        }
    state = Path(config.resolved_storage_path) / config.name / "adaptive_search.json"
    suggestions = None
    if state.is_file():
        groups = json.loads(state.read_text())["groups"]
        suggestions = {k: [g["multipliers"][t] for t in g["suggested"]] for k, g in groups.items()}
    return {"trials": trials, "suggestions": suggestions}


RUN_TREE = Path(__file__).with_name("run_tree.json")
# tags MLflow sets by itself from the process that logged (user, source file, git commit)
_MLFLOW_OWN = ("mlflow.user", "mlflow.source.", "mlflow.log-model", "mlflow.gitRepoURL")


def run_tree(uri: str, sweep: str) -> dict:
    """What a user finds of a sweep in MLflow, as names only: the experiment's tags and, for the
    parent run and every trial run (by trial id), its status, param, metric and tag keys and
    every artifact path. Values that differ between runs (times, ids) are left out; the names
    are what a redesign must keep."""
    from mlflow.tracking import MlflowClient

    from sweep.store import TAG_ROLE, TAG_TRIAL

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)

    def artifacts(run_id: str, path: str | None = None) -> list[str]:
        found = []
        for item in client.list_artifacts(run_id, path):
            found.extend(artifacts(run_id, item.path) if item.is_dir else [item.path])
        return sorted(found)

    def keys(run) -> dict:
        return {
            "status": run.info.status,
            "params": sorted(run.data.params),
            "metrics": sorted(run.data.metrics),
            "tags": sorted(t for t in run.data.tags if not t.startswith(_MLFLOW_OWN)),
            "artifacts": artifacts(run.info.run_id),
        }

    tree: dict = {
        "experiment_tags": sorted(t for t in experiment.tags if t != "mlflow.experimentKind")
    }
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        role = run.data.tags.get(TAG_ROLE)
        name = "parent" if role == "parent" else f"trial {run.data.tags.get(TAG_TRIAL)}"
        tree[name] = keys(run)
    return dict(sorted(tree.items()))
