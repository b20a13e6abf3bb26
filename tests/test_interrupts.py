"""Ctrl-C (SIGINT) during `morphsweep train` and `morphsweep run`, as a user presses it.

Each run is interrupted once its first epoch is saved. It must end with exit status 130 and one
line saying what was kept and how to go on (no traceback), and the same command must then
resume, say where it picks up, and finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, list[str]]:
    """The command; its stderr lines (where the message goes), collected as they come."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    return process, lines


def interrupt_when(process: subprocess.Popen, ready, timeout: float = 300) -> int:
    """SIGINT as soon as ``ready()``; the exit status."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the command ended before it could be interrupted"
        assert time.monotonic() < deadline, "the command never got to its first checkpoint"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=120)


def finish(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )


def the_message(lines: list[str], command: str) -> str:
    text = "".join(lines)
    assert "Traceback" not in text, text
    ours = [line for line in text.splitlines() if line.startswith(f"morphsweep {command}:")]
    assert len(ours) == 1, text
    assert ours[0].startswith(f"morphsweep {command}: interrupted; "), text
    return ours[0]


def test_ctrl_c_during_train_says_what_is_kept_and_resumes(tmp_path):
    config = {
        "model": "zoo:plain",
        "model_width": 8,
        "dataset": "digits",
        "epochs": 4,
        "retrain_epochs": 1,
        "batch_size": 16,
        "output_dir": "out",
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(config))
    state = tmp_path / "out" / "checkpoint" / "state.json"
    process, lines = start(["train", "trial.yaml"], tmp_path)
    code = interrupt_when(process, state.is_file)
    time.sleep(0.5)  # the reader thread has the last lines
    message = the_message(lines, "train")
    assert code == 130, "".join(lines)
    assert "checkpoint" in message and "keeps learn epoch" in message, message
    assert "rerun `morphsweep train trial.yaml`" in message, message
    resumed = finish(["train", "trial.yaml"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming the trial in" in resumed.stdout and "after learn epoch" in resumed.stdout
    # it went on from the saved epoch: epoch 1 is not trained again
    assert "phase=learn epoch=1 " not in resumed.stdout, resumed.stdout
    assert (tmp_path / "out" / "model.keras").is_file()


def test_ctrl_c_during_run_ends_the_sweep_cleanly_and_resumes(tmp_path):
    from mlflow.tracking import MlflowClient

    sweep = {
        "name": "interrupted",
        "trial": {
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "digits",
            "epochs": 3,
            "retrain_epochs": 1,
            "batch_size": 16,
        },
        "algorithms": ["gamma"],
        "strengths": {"decades_below": 0, "decades_above": 0},
        "baseline": {"widths": [0.5]},
        "max_concurrent": 1,
        "retries": 0,
        "workdir": str(tmp_path / "work"),
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    from sweep.config import load_sweep_config

    trials = load_sweep_config(tmp_path / "sweep.yaml").trials_dir()

    def first_epoch_saved() -> bool:
        return any(trials.glob("*/checkpoint/state.json"))

    process, lines = start(["run", "sweep.yaml", "--verbose", "0"], tmp_path)
    code = interrupt_when(process, first_epoch_saved)
    time.sleep(0.5)
    message = the_message(lines, "run")
    assert code == 130, "".join(lines)
    assert "of 2 trials" in message and "rerun the same `morphsweep run`" in message, message
    client = MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "interrupted"]
    runs = client.search_runs([experiment.experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs), [r.info.status for r in runs]
    resumed = finish(["run", "sweep.yaml", "--verbose", "0"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    output = resumed.stdout + resumed.stderr
    assert "resumed after learn epoch" in output or "1 already finished" in output, output
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3, output  # parent, 2 trials
