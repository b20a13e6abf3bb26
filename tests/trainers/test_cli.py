"""The morphsweep CLI: `train` a trial from YAML and `apply` its structure, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "sweep.cli"]


def run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(CLI + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_train_then_apply(tmp_path):
    config = {
        "model": "zoo:plain",
        "model_width": 8,
        "dataset": "synthetic",
        "epochs": 1,
        "retrain_epochs": 1,
        "multiplier": 30.0,
        "output_dir": "out",
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(config))
    train = run(["train", "trial.yaml", "--set", "batch_size=32"], tmp_path)
    assert train.returncode == 0, train.stderr
    # progress and the summary line are printed; files land under the relative output_dir
    assert "phase=learn epoch=1" in train.stdout and "FLOPs: seed" in train.stdout
    for name in ("structure.json", "model.keras", "metrics.json"):
        assert (tmp_path / "out" / name).is_file()
    applied = run(
        [
            "apply",
            "out/structure.json",
            "--model",
            "zoo:plain",
            "--width",
            "8",
            "--dataset",
            "synthetic",
            "-o",
            "small.keras",
        ],
        tmp_path,
    )
    assert applied.returncode == 0, applied.stderr
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())["summary"]
    # the rebuilt model's FLOPs printed by apply equal the trial's rebuilt cost
    assert f"-> {summary['rebuilt_cost']:.4g}" in applied.stdout
    assert (tmp_path / "small.keras").is_file()


def test_bad_config_is_rejected_with_the_field(tmp_path):
    (tmp_path / "trial.yaml").write_text("model: zoo:plain\nstrength: 0\n")
    result = run(["train", "trial.yaml"], tmp_path)
    assert result.returncode == 2
    assert "strength must be > 0" in result.stderr
    result = run(["train", "trial.yaml", "--set", "strength=1e-6", "--set", "epocs=2"], tmp_path)
    assert result.returncode == 2 and "unknown trial config key(s) ['epocs']" in result.stderr


def test_apply_rejects_a_structure_of_another_model(tmp_path):
    structure = {"schema_version": 1, "layers": {"conv_x": {"alive": 1, "original": 8}}}
    (tmp_path / "s.json").write_text(json.dumps(structure))
    result = run(
        ["apply", "s.json", "--model", "zoo:plain", "--dataset", "synthetic", "-o", "x.keras"],
        tmp_path,
    )
    assert result.returncode == 2 and "conv_x" in result.stderr
    assert not (tmp_path / "x.keras").exists()
