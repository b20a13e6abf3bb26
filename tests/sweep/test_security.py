"""Servers stay on this machine unless asked; files never make the tool run code or write
outside its output directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweep.tracking import SweepTracker
from tests.sweep.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def outward_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def serve(args, cwd):
    """Start a morphsweep server command; returns (process, its first lines until the URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", *args],
        env=ENV,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(r"on http://", line):
            break
    return process, "".join(lines)


def stop(process):
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = SweepTracker(uri, "safe")
    for trial_id in ("gamma-flops-m1-s0", "../../../evil"):
        tracker.start(trial_id, {"algorithm": "gamma", "target": "flops"})
        tracker.log_metrics(
            trial_id,
            {"rebuilt_cost": 50.0, "retrained_val_accuracy": 0.9, "seed_cost": 100.0},
            step=0,
        )
        tracker.finish(trial_id, "FINISHED")
    tracker.finish_sweep()
    return uri


def test_dashboard_listens_on_loopback_only_by_default(store, tmp_path):
    port = free_port()
    args = ["dashboard", "safe", "--tracking-uri", store, "--out", str(tmp_path / "d")]
    process, text = serve([*args, "--port", str(port)], tmp_path)
    try:
        assert f"http://127.0.0.1:{port}/" in text, text
        assert "WARNING" not in text
        assert answers("127.0.0.1", port)
        outward = outward_address()
        if outward:
            assert not answers(outward, port), f"the dashboard answers on {outward}"
    finally:
        stop(process)


def test_dashboard_warns_when_exposed(store, tmp_path):
    port = free_port()
    args = ["dashboard", "safe", "--tracking-uri", store, "--out", str(tmp_path / "d")]
    process, text = serve([*args, "--port", str(port), "--host", "0.0.0.0"], tmp_path)
    try:
        assert re.search(r"WARNING: the dashboard listens on 0\.0\.0\.0.*no authentication", text)
    finally:
        stop(process)


@pytest.mark.slow
def test_mlflow_ui_listens_on_loopback_only_by_default(store, tmp_path):
    port = free_port()
    process, text = serve(["ui", "--tracking-uri", store, "--port", str(port)], tmp_path)
    try:
        assert f"http://127.0.0.1:{port}" in text and "WARNING" not in text, text
        deadline = time.time() + 120
        while time.time() < deadline and not answers("127.0.0.1", port):
            time.sleep(0.5)
        assert answers("127.0.0.1", port)
        outward = outward_address()
        if outward:
            assert not answers(outward, port), f"the MLflow UI answers on {outward}"
    finally:
        stop(process)


def test_mlflow_ui_warns_when_exposed(store, tmp_path, monkeypatch, capsys):
    from sweep.cli import main

    launched = []
    monkeypatch.setattr(subprocess, "call", lambda command: launched.append(command) or 0)
    assert main(["ui", "--tracking-uri", store, "--host", "0.0.0.0"]) == 0
    assert "WARNING: the MLflow UI listens on 0.0.0.0" in capsys.readouterr().err
    assert launched[0][launched[0].index("--host") + 1] == "0.0.0.0"
    launched.clear()
    assert main(["ui", "--tracking-uri", store]) == 0
    assert launched[0][launched[0].index("--host") + 1] == "127.0.0.1"
    assert "WARNING" not in capsys.readouterr().err


def test_a_trial_id_with_a_path_in_it_stays_in_the_dashboard_dir(store, tmp_path):
    from dashboards.page import build_dashboard

    out = tmp_path / "sub" / "dashboard"
    index = build_dashboard(store, "safe", out)
    assert index.parent == out
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written), written
    assert not list(tmp_path.rglob("evil*"))


def test_config_files_cannot_run_code(tmp_path):
    """A YAML tag that would call os.system is refused in sweep and trial configs alike."""
    from sweep.config import SweepConfigError, load_sweep_config
    from trainers.config import TrialConfig
    from trainers.errors import TrialConfigError

    marker = tmp_path / "PWNED"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(f"name: x\nseeds: {payload}\n")
    with pytest.raises(SweepConfigError, match="plain YAML"):
        load_sweep_config(sweep_file)
    trial_file = tmp_path / "trial.yaml"
    trial_file.write_text(f"epochs: {payload}\n")
    with pytest.raises(TrialConfigError, match="plain YAML"):
        TrialConfig.from_yaml(trial_file)
    # yaml's own loaders that do construct Python objects are never used on config files
    sources = "\n".join(p.read_text() for p in ROOT.glob("[std]*/**/*.py"))
    assert not re.search(r"yaml\.(unsafe_load|load\(|full_load|UnsafeLoader|FullLoader)", sources)
    assert not marker.exists()
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_a_structure_file_cannot_run_code_or_write_elsewhere(tmp_path):
    """Structures are JSON: a layer name with a path in it is just an unknown layer."""
    from trainers.models import build_model
    from trainers.morphnet import Structure
    from trainers.morphnet.errors import StructureError
    from trainers.morphnet.keras3 import GammaFlopsRegularizer, apply_structure

    model = build_model("zoo:plain", (8, 8, 1), 10, width=8, seed=0)
    structure = GammaFlopsRegularizer(model, 0.1).structure()
    path = structure.save(tmp_path / "s.json")
    text = path.read_text()
    name = next(iter(structure.layers))
    path.write_text(text.replace(f'"{name}"', '"../../outside"', 1))
    with pytest.raises(StructureError, match=r"outside"):
        apply_structure(model, Structure.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]
