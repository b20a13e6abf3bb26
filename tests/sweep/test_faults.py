"""Fault injection on a real local Ray cluster with a real MLflow server on loopback.

A trial's worker is SIGKILLed mid structure learning; the sweep driver is SIGKILLed during
structure learning, during retraining and while the Pareto front is being published; the
tracking server is stopped for 20 s mid-sweep. Each time the sweep must end complete, with one
child run per trial and every epoch's metrics once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweep.store import TAG_KNEE, TAG_PARETO, TAG_RESUMED, TAG_ROLE, TAG_TRIAL
from tests.sweep.conftest import MlflowServer, free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "local-cluster.sh"
pytestmark = pytest.mark.slow

# 3 retrain epochs: the kill in the retrain phase has two epochs to land in, not one
EPOCHS, RETRAIN_EPOCHS = 4, 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One Ray head (2 CPUs, dashboard and state API, token auth) on loopback."""
    base = tmp_path_factory.mktemp("faults")
    ports = {
        "GCS_PORT": free_port(),
        "DASHBOARD_PORT": free_port(),
        "MLFLOW_PORT": free_port(),
        "AGENT_PORT_BASE": free_port(),
    }
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "WORKERS": "0",
        "CPUS_PER_NODE": "2",
        "HOME": str(base / "home"),
    }
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(key, None)
    (base / "home").mkdir()
    directory = base / "c"
    started = subprocess.run(
        [str(SCRIPT), "start", str(directory)], env=env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stdout + started.stderr
    client_env = {
        **env,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(directory / "auth_token"),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    yield {
        "env": client_env,
        "address": f"127.0.0.1:{ports['GCS_PORT']}",
        "dashboard": f"http://127.0.0.1:{ports['DASHBOARD_PORT']}",
    }
    subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, capture_output=True, timeout=120)


def write_config(tmp_path, name, uri, **extra):
    config = {
        "name": name,
        "trial": {
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "synthetic",
            "epochs": EPOCHS,
            "retrain_epochs": RETRAIN_EPOCHS,
            "batch_size": 16,
        },
        "algorithms": ["gamma"],
        "targets": ["flops"],
        "strengths": {"decades_below": 0, "decades_above": 0.5, "points_per_decade": 2},
        "seeds": [0],
        "baseline": {"widths": [1.0]},
        "resources": {"cpus": 1},
        "max_concurrent": 1,
        "retries": 1,
        "early_stop": "off",
        "tracking_uri": uri,
        "storage_path": str(tmp_path / "storage"),
        "workdir": str(tmp_path / "work"),
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_sweep(path, cluster, **env):
    command = [
        sys.executable,
        "-m",
        "sweep.cli",
        "run",
        str(path),
        "--address",
        cluster["address"],
        "--verbose",
        "0",
    ]
    log = open(Path(path).with_suffix(f".{time.monotonic_ns()}.log"), "w+")
    process = subprocess.Popen(
        command,
        env={**cluster["env"], **env},
        cwd=Path(path).parent,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def output(process) -> str:
    process.log.seek(0)
    return process.log.read()


def children(uri, name):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client, [], []
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = [r for r in found if r.data.tags.get(TAG_ROLE) == "parent"]
    return client, parent, [r for r in found if r.data.tags.get(TAG_ROLE) == "trial"]


def wait_for(condition, process, what, timeout=600):
    """Poll until ``condition()`` returns something true; fail if the sweep ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = condition()
        except Exception:  # the experiment may not exist yet, or the server is restarting
            found = None
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}:\n{output(process)[-3000:]}")
        # each poll is several requests to the tracking server, which shares the CPUs with the
        # trials: once a second is often enough for phases that last several seconds
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def steps(client, run_id, key):
    return [m.step for m in client.get_metric_history(run_id, key)]


def in_phase(uri, name, phase):
    """A RUNNING child that has reported an epoch of ``phase`` and none of the next phase."""
    client, _, runs = children(uri, name)
    for run in runs:
        if run.info.status != "RUNNING":
            continue
        learn = steps(client, run.info.run_id, "learn/cost")
        retrain = steps(client, run.info.run_id, "retrain/accuracy")
        if phase == "learn" and learn and max(learn) < EPOCHS and not retrain:
            return run.data.tags[TAG_TRIAL]
        if phase == "retrain" and retrain and max(retrain) < RETRAIN_EPOCHS:
            return run.data.tags[TAG_TRIAL]
    return None


def finished_end_times(uri, name):
    _, _, runs = children(uri, name)
    return {r.data.tags[TAG_TRIAL]: r.info.end_time for r in runs if r.info.status == "FINISHED"}


def assert_complete(uri, name, trials, storage):
    """One FINISHED child per trial with every epoch once, its structure, a published front."""
    client, parent, runs = children(uri, name)
    ids = [r.data.tags[TAG_TRIAL] for r in runs]
    assert len(ids) == len(set(ids)) == trials, ids
    for run in runs:
        tid, run_id = run.data.tags[TAG_TRIAL], run.info.run_id
        assert run.info.status == "FINISHED", (tid, run.info.status)
        if not tid.startswith("baseline"):
            assert steps(client, run_id, "learn/cost") == list(range(1, EPOCHS + 1)), tid
        assert steps(client, run_id, "retrain/accuracy") == list(range(1, RETRAIN_EPOCHS + 1))
        assert "structure.json" in {a.path for a in client.list_artifacts(run_id)}, tid
        assert run.data.tags.get(TAG_PARETO) in ("true", "false") and TAG_KNEE in run.data.tags
        # every epoch the trial recorded locally is in MLflow, with the same value
        state = json.loads(
            (storage / name / "trials" / tid / "checkpoint" / "state.json").read_text()
        )
        for epoch in state["history"]:
            for key, value in epoch.items():
                if key in ("phase", "epoch", "step") or not isinstance(value, int | float):
                    continue
                name_ = key if key.startswith("alive/") else f"{epoch['phase']}/{key}"
                logged = {m.step: m.value for m in client.get_metric_history(run_id, name_)}
                assert logged.get(epoch["epoch"]) == pytest.approx(value), (tid, name_, epoch)
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    pareto = {a.path for a in client.list_artifacts(parent[0].info.run_id, "pareto")}
    assert {"pareto/pareto.csv", "pareto/pareto_flops.png", "pareto/pareto_flops.html"} <= pareto
    return client, runs


def alive_trial_workers(cluster):
    """Pids of the Tune trial actors alive on the cluster, from Ray's state API."""
    code = (
        "import json, sys\n"
        "from ray.util.state import list_actors\n"
        "actors = list_actors(address=sys.argv[1], filters=[('state', '=', 'ALIVE')], detail=True)\n"
        "print(json.dumps([[a.class_name, a.pid] for a in actors]))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code, cluster["dashboard"]],
        env=cluster["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    return [pid for name, pid in json.loads(found.stdout) if "ImplicitFunc" in name]


def test_a_killed_trial_worker_is_retried_from_its_checkpoint(cluster, mlflow_server, tmp_path):
    name = "worker-kill"
    one_strength = {"decades_below": 0, "decades_above": 0, "points_per_decade": 1}
    path = write_config(
        tmp_path, name, mlflow_server, strengths=one_strength, baseline={"widths": []}
    )
    process = start_sweep(path, cluster)
    victim = wait_for(lambda: in_phase(mlflow_server, name, "learn"), process, "structure learning")
    pids = alive_trial_workers(cluster)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    assert process.wait(timeout=600) == 0, output(process)[-3000:]
    _, runs = assert_complete(mlflow_server, name, 1, tmp_path / "storage")
    # it went on from the epoch it had checkpointed, not from the start
    resumed = runs[0].data.tags.get(TAG_RESUMED, "")
    assert runs[0].data.tags[TAG_TRIAL] == victim
    assert re.fullmatch(r"learn epoch [1-9]\d*", resumed), resumed


def test_a_killed_driver_resumes_at_each_stage(cluster, mlflow_server, tmp_path):
    name = "driver-kill"
    # 2 trials at a time on the 2-CPU head: a kill lands on whichever is in the phase
    path = write_config(tmp_path, name, mlflow_server, max_concurrent=2)
    trials = 3  # gamma at 2 strengths + 1 baseline width
    finished_before: dict[str, int] = {}
    victims = {}
    for stage in ("learn", "retrain"):
        process = start_sweep(path, cluster)
        victims[stage] = wait_for(
            lambda s=stage: in_phase(mlflow_server, name, s), process, f"{stage} phase"
        )
        finished_before.update(finished_end_times(mlflow_server, name))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    # and once more while the front is being published, after every trial has finished
    process = start_sweep(path, cluster, MORPHSWEEP_KILL_AT="publish")
    assert process.wait(timeout=600) == -signal.SIGKILL, output(process)[-3000:]
    finished_before.update(finished_end_times(mlflow_server, name))
    assert len(finished_before) == trials
    process = start_sweep(path, cluster)
    assert process.wait(timeout=600) == 0, output(process)[-3000:]
    assert "(3 already finished)" in output(process)
    _, runs = assert_complete(mlflow_server, name, trials, tmp_path / "storage")
    for run in runs:
        # no trial ran again once it had finished
        assert run.info.end_time == finished_before[run.data.tags[TAG_TRIAL]]
    # the trials cut off went on from their checkpoints (the tag names the latest resume)
    resumed = {r.data.tags[TAG_TRIAL]: r.data.tags.get(TAG_RESUMED, "") for r in runs}
    assert re.fullmatch(r"(learn|retrain) epoch \d+", resumed[victims["learn"]]), resumed
    assert re.fullmatch(r"retrain epoch \d+", resumed[victims["retrain"]]), resumed


def test_an_mlflow_outage_mid_sweep_loses_nothing(cluster, tmp_path_factory, tmp_path):
    server = MlflowServer(tmp_path_factory.mktemp("outage_server"))
    server.start()
    try:
        name = "outage"
        # one strength and the baseline width, at the same time: two trials write through it
        one_strength = {"decades_below": 0, "decades_above": 0, "points_per_decade": 1}
        path = write_config(tmp_path, name, server.uri, strengths=one_strength, max_concurrent=2)
        process = start_sweep(path, cluster)
        wait_for(lambda: in_phase(server.uri, name, "learn"), process, "structure learning")
        server.stop()
        time.sleep(20)
        assert process.poll() is None, output(process)[-3000:]  # the sweep went on meanwhile
        server.start()
        assert process.wait(timeout=600) == 0, output(process)[-3000:]
        text = output(process)
        # one warning line for the outage, not a traceback per write
        warnings = [line for line in text.splitlines() if "is not answering" in line]
        assert len(warnings) == 1 and server.uri in warnings[0], text[-3000:]
        assert "Traceback" not in text, text[-3000:]
        assert_complete(server.uri, name, 2, tmp_path / "storage")
        assert not (tmp_path / "storage" / name / "tracking_queue" / "ops.jsonl").exists()
    finally:
        server.stop()
