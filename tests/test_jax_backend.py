"""A trial and a sweep on Keras' JAX backend, end to end, in processes that cannot import
TensorFlow (a package named ``tensorflow`` that refuses to import comes first on their path):
what a GPU machine with JAX alone runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def no_tensorflow_env(tmp_path_factory):
    blocked = tmp_path_factory.mktemp("blocked")
    (blocked / "tensorflow").mkdir()
    (blocked / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("tensorflow is blocked here: the JAX path must not need it")\n'
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)]),
        "CUDA_VISIBLE_DEVICES": "",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("KERAS_BACKEND", None)  # the config chooses the backend
    return env


def _morphsweep(env, *args, timeout=900):
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sweep.cli import main; sys.exit(main())", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_blocked_import_really_blocks(no_tensorflow_env):
    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], env=no_tensorflow_env, capture_output=True
    )
    assert done.returncode != 0 and b"blocked" in done.stderr


def test_a_trial_runs_on_jax_without_tensorflow(no_tensorflow_env, tmp_path):
    out = tmp_path / "trial"
    done = _morphsweep(
        no_tensorflow_env,
        "train",
        str(ROOT / "trainers/examples/trial_digits.yaml"),
        "-o",
        str(out),
        "--set",
        "backend=jax",
        "--set",
        "model_width=8",
        "--set",
        "epochs=3",
        "--set",
        "retrain_epochs=1",
        "--set",
        "multiplier=100",
        "--set",
        "learning_rate=0.05",
        "--set",
        "export_every_steps=10",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["backend"] == "jax"
    summary, history = metrics["summary"], metrics["history"]
    learned = [h for h in history if h["phase"] == "learn"]
    assert len(learned) == 3
    assert all(h["task_loss"] > 0 and h["regularization_loss"] > 0 for h in learned)
    # the term did its work: the structure shrank and the rebuilt network costs less
    assert summary["rebuilt_cost"] < 0.9 * summary["seed_cost"]
    assert 0 < summary["retrained_val_accuracy"] <= 1.0
    # exports mid-epoch (every 10 steps of 23 per epoch), each with the step it was taken at
    steps = sorted(int(p.stem.split("_")[1]) for p in (out / "structures").glob("structure_*.json"))
    assert [s for s in steps if s % 10 == 0][:4] == [10, 20, 30, 40]
    exported = json.loads((out / "structures" / "structure_20.json").read_text())
    assert exported["step"] == 20


def test_an_image_folder_and_a_seed_file_train_on_jax_without_tensorflow(
    no_tensorflow_env, tmp_path
):
    """The image folder is read batch by batch with no TensorFlow, and a trained .keras seed
    (saved under JAX) is what learning starts from."""
    make = (
        "import sys; sys.path.insert(0, 'sweep/examples'); from pathlib import Path; "
        "from make_real_workload import train_seed, write_images; "
        f"out = Path({str(tmp_path)!r}); images = write_images(out, 200); "
        "print(train_seed(images, out, epochs=2, width=4))"
    )
    env = {**no_tensorflow_env, "KERAS_BACKEND": "jax"}
    made = subprocess.run(
        [sys.executable, "-c", make], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr[-3000:]
    out = tmp_path / "trial"
    config = {
        "model": str(tmp_path / "seed.keras"),
        "dataset": f"images:{tmp_path / 'images'}",
        "backend": "jax",
        "epochs": 1,
        "retrain_epochs": 1,
        "batch_size": 16,
        "steps_per_epoch": 4,
        "augment": ["flip", "crop"],  # Keras' augmentation layers, traced by JAX
        "output_dir": str(out),
        "verbose": 0,
    }
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(config))
    done = _morphsweep(no_tensorflow_env, "train", str(tmp_path / "trial.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # 4 steps an epoch over 160 training images; the seed's accuracy measured before learning
    assert [h["step"] for h in metrics["history"]] == [4, 8]
    assert 0 <= metrics["summary"]["seed_val_accuracy"] <= 1
    assert metrics["summary"]["seed_cost"] > 0
    structure = json.loads((out / "structure.json").read_text())
    assert structure["extra"]["preprocessing"]["augment"] == ["flip", "crop"]


def test_a_sweep_runs_on_jax_without_tensorflow(no_tensorflow_env, tmp_path):
    config = {
        "name": "jax-sweep",
        "trial": {
            "backend": "jax",
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "digits",
            "epochs": 2,
            "retrain_epochs": 1,
            "batch_size": 32,
        },
        "algorithms": ["gamma", "logistic_sigmoid"],
        "targets": ["flops"],
        "strengths": {"decades_below": 0, "decades_above": 0, "points_per_decade": 1},
        "seeds": [0],
        "resources": {"cpus": 1},
        "max_concurrent": 2,
        "retries": 0,
        "early_stop": "off",
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "workdir": str(tmp_path / "work"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _morphsweep(no_tensorflow_env, "run", str(path), "--verbose", "0")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    from mlflow.tracking import MlflowClient

    from sweep.store import TAG_ROLE

    client = MlflowClient(config["tracking_uri"])
    experiment = client.get_experiment_by_name("jax-sweep")
    found = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in found if r.data.tags.get(TAG_ROLE) == "trial"]
    assert {r.data.params["algorithm"] for r in trials} == {"gamma", "logistic_sigmoid", "baseline"}
    for run in trials:
        assert run.info.status == "FINISHED"
        assert run.data.params["backend"] == "jax"
        assert 0 < run.data.metrics["accuracy"] <= 1
        assert run.data.metrics["cost/flops"] > 0
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "structure.json" in names, names
