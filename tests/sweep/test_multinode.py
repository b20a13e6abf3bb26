"""A real multi-node cluster on loopback with token auth: `morphsweep submit` end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.sweep.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "local-cluster.sh"
pytestmark = pytest.mark.slow


def cli(args, env, timeout=300):
    command = [sys.executable, "-m", "sweep.cli", *args]
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    ports = {
        "GCS_PORT": free_port(),
        "DASHBOARD_PORT": free_port(),
        "MLFLOW_PORT": free_port(),
        "AGENT_PORT_BASE": free_port(),
    }
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "WORKERS": "1",
        "CPUS_PER_NODE": "1",
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
    yield {"dir": directory, "env": env, **ports}
    subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, capture_output=True, timeout=120)


def test_submit_runs_on_several_nodes_and_tracks_to_mlflow(cluster, tmp_path):
    mlflow_uri = f"http://127.0.0.1:{cluster['MLFLOW_PORT']}"
    address = f"http://127.0.0.1:{cluster['DASHBOARD_PORT']}"
    config = {
        "name": "multinode",
        "trial": {
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "synthetic",
            "epochs": 2,
            "retrain_epochs": 1,
            "batch_size": 32,
        },
        "algorithms": ["gamma"],
        "targets": ["flops"],
        "strengths": {"decades_below": 0.5, "decades_above": 0.5, "points_per_decade": 2},
        "baseline": {"widths": [1.0]},
        "resources": {"cpus": 1},
        "max_concurrent": 2,
        "retries": 0,
        "early_stop": "off",  # the cluster path; early stopping has its own tests
        "tracking_uri": mlflow_uri,
        "storage_path": str(cluster["dir"] / "storage"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    no_token = {**cluster["env"], "HOME": str(tmp_path / "nobody")}
    refused = cli(["submit", str(path), "--address", address], no_token, timeout=120)
    # a client without the cluster's token is refused before anything runs
    assert refused.returncode != 0
    assert re.search(r"auth|token|401|403", refused.stderr, re.I), refused.stderr[-2000:]
    with_token = {
        **cluster["env"],
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(cluster["dir"] / "auth_token"),
    }
    submitted = cli(["submit", str(path), "--address", address], with_token, timeout=120)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = re.search(r"as job (\S+)", submitted.stdout).group(1)
    status, deadline = "", time.time() + 900
    while time.time() < deadline:
        status = cli(["status", job_id, "--address", address], with_token, timeout=60).stdout
        if re.search(r"SUCCEEDED|FAILED|STOPPED", status):
            break
        time.sleep(10)  # each status is a new process importing Ray: not too often
    logs = cli(["logs", job_id, "--address", address], with_token, timeout=60).stdout
    assert "SUCCEEDED" in status, status + logs[-4000:]
    # the job's log shows the sweep's Pareto table
    assert "Pareto front of sweep 'multinode'" in logs
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("multinode")
    runs = client.search_runs([experiment.experiment_id])
    trials = [r for r in runs if r.data.tags.get("morphsweep.role") == "trial"]
    parent = [r for r in runs if r.data.tags.get("morphsweep.role") == "parent"]
    # 3 strengths x 1 seed + 1 baseline width
    assert len(trials) == 4 and all(r.info.status == "FINISHED" for r in trials)
    assert parent and {a.path for a in client.list_artifacts(parent[0].info.run_id, "pareto")} >= {
        "pareto/pareto.csv"
    }
    # trials ran on more than one node
    assert len({r.data.tags["morphsweep.node_id"] for r in trials}) >= 2
