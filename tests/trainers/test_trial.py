"""One trial end to end on small synthetic data: reports, files, resume, failures, warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainers.config import TrialConfig
from trainers.errors import TrialConfigError, TrialFailed
from trainers.morphnet import Structure
from trainers.morphnet.keras3 import model_cost
from trainers.morphnet.keras3.backend import keras
from trainers.reporting import RecordingReporter
from trainers.trial import run_trial

SMALL = {
    "model": "zoo:plain",
    "model_width": 8,
    "dataset": "synthetic",
    "epochs": 2,
    "retrain_epochs": 1,
    "batch_size": 32,
    "export_every_steps": 5,
    "verbose": 0,
}


def config(tmp_path, **changes):
    return TrialConfig(**{**SMALL, "output_dir": str(tmp_path / "trial"), **changes})


@pytest.mark.parametrize(
    ("algorithm", "target"),
    [("gamma", "flops"), ("group_lasso", "model_size"), ("logistic_sigmoid", "latency")],
)
def test_trial_reports_and_writes_everything(tmp_path, algorithm, target):
    reporter = RecordingReporter()
    result = run_trial(
        config(tmp_path, algorithm=algorithm, target=target, multiplier=30.0), reporter
    )
    learn = [m for m in reporter.metrics if m["phase"] == "learn"]
    # one report per structure-learning epoch with the MorphNet quantities
    assert [m["epoch"] for m in learn] == [1, 2]
    for key in (
        "task_loss",
        "regularization_loss",
        "cost",
        "alive_fraction",
        "accuracy",
        "val_accuracy",
    ):
        assert all(np.isfinite(m[key]) for m in learn), key
    assert any(k.startswith("alive/conv") for k in learn[0])
    assert [m["phase"] for m in reporter.metrics][-2:] == ["retrain", "done"]
    # the structure JSON, the rebuilt model and the metrics file exist and agree
    structure = Structure.load(result.structure_path)
    # what early stopping reads: the cost the structure would have now, as a fraction of the
    # seed's, whether it can be rebuilt, and how far the term fell from its start
    assert all(m["predicted_fraction"] == m["predicted_cost"] / result.seed_cost for m in learn)
    assert all(m["collapsed"] in (0.0, 1.0) and m["term_fraction"] > 0 for m in learn)
    if algorithm != "logistic_sigmoid":  # FiGS' final structure reads the inference masks
        assert learn[-1]["predicted_cost"] == structure.learned_cost
    assert structure.cost_name == result.cost_name and structure.extra["algorithm"] == algorithm
    model = keras.models.load_model(result.model_path)
    assert model_cost(model, _target(structure.cost_name)) == pytest.approx(result.rebuilt_cost)
    # the cost predicted at export is the cost of the rebuilt model
    assert result.rebuilt_cost == pytest.approx(result.predicted_cost, rel=1e-9)
    metrics = json.loads((tmp_path / "trial" / "metrics.json").read_text())
    assert metrics["summary"]["rebuilt_cost"] == pytest.approx(result.rebuilt_cost)
    assert (tmp_path / "trial" / "learned_structure").is_dir()
    assert len(list((tmp_path / "trial" / "structures").glob("structure_*.json"))) >= 2
    # where the trial's time went: training (steps, validation) inside the trial's whole time
    assert 0 < result.train_seconds < result.trial_seconds
    assert metrics["summary"]["train_seconds"] == result.train_seconds
    assert reporter.metrics[-1]["trial_seconds"] == result.trial_seconds


def _target(cost_name):
    from trainers.morphnet.costs import TARGETS, latency_target

    if cost_name.endswith("Latency"):
        return latency_target(cost_name.split()[0])
    return {t.cost_name: t for t in TARGETS.values()}[cost_name]


class CrashAfter(RecordingReporter):
    def __init__(self, reports):
        super().__init__()
        self.left = reports

    def report(self, metrics, checkpoint=None):
        super().report(metrics, checkpoint)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt("simulated crash")


def test_resume_continues_where_it_stopped(tmp_path):
    cfg = config(tmp_path, epochs=3, multiplier=10.0)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, CrashAfter(2))
    crashed = json.loads((tmp_path / "trial" / "checkpoint" / "state.json").read_text())
    reporter = RecordingReporter()
    result = run_trial(cfg, reporter)
    # the second run starts at epoch 3: no epoch is trained twice
    assert [m["epoch"] for m in reporter.metrics if m["phase"] == "learn"] == [3]
    # the times of the run that crashed are counted in, not lost
    assert result.train_seconds > crashed["train_seconds"] > 0
    assert result.trial_seconds > crashed["trial_seconds"] > crashed["train_seconds"]
    assert [m["epoch"] for m in result.history if m["phase"] == "learn"] == [1, 2, 3]


def test_resume_in_retraining_phase(tmp_path):
    cfg = config(tmp_path, epochs=1, retrain_epochs=2, multiplier=10.0)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, CrashAfter(2))  # learn epoch 1, retrain epoch 1
    reporter = RecordingReporter()
    result = run_trial(cfg, reporter)
    # only the second retraining epoch runs again, then the trial finishes
    assert [(m["phase"], m.get("epoch")) for m in reporter.metrics] == [
        ("retrain", 2),
        ("done", None),
    ]
    assert Structure.load(result.structure_path).layers


def test_nan_loss_stops_the_trial(tmp_path):
    path = tmp_path / "nan.npz"
    x = np.full((64, 6, 6, 1), np.nan, np.float32)
    np.savez(path, x=x, y=np.zeros(64, np.int64))
    with pytest.raises(TrialFailed, match="loss became nan"):
        run_trial(config(tmp_path, dataset=f"npz:{path}"), RecordingReporter())


def test_missing_dataset_fails_before_training(tmp_path):
    reporter = RecordingReporter()
    with pytest.raises(TrialConfigError, match="does not exist"):
        run_trial(config(tmp_path, dataset=f"npz:{tmp_path}/none.npz"), reporter)
    assert reporter.metrics == []


def test_too_low_strength_warns(tmp_path):
    reporter = RecordingReporter()
    result = run_trial(config(tmp_path, strength=1e-15), reporter)
    # nothing shrinks: the warning says which way to move the strength
    assert any("too low" in w and "higher" in w for w in result.warnings)
    assert reporter.warnings == result.warnings


def test_op_determinism_follows_the_config(tmp_path):
    from tensorflow.python.framework import config as tf_config

    from trainers.trial import set_determinism

    # a worker runs trials in turn: each one sets the process-wide switch its own way
    run_trial(config(tmp_path, deterministic=False), RecordingReporter())
    assert not tf_config.is_op_determinism_enabled()
    set_determinism(0, True)
    assert tf_config.is_op_determinism_enabled()


def test_baseline_width_scales_the_seed_network(tmp_path):
    result = run_trial(config(tmp_path, baseline_width=0.5), RecordingReporter())
    structure = Structure.load(result.structure_path)
    # every prunable layer is half as wide (at least one channel)
    assert all(s.alive == max(1, round(s.original * 0.5)) for s in structure.layers.values())
    assert result.rebuilt_cost < 0.5 * result.seed_cost


def test_user_model_and_dataset_functions(tmp_path):
    cfg = config(
        tmp_path,
        model="tests.trainers.fixtures:tiny_model",
        dataset="tests.trainers.fixtures:tiny_dataset",
    )
    result = run_trial(cfg, RecordingReporter())
    assert result.seed_cost > 0 and 0.0 <= result.retrained_val_accuracy <= 1.0


def test_a_collapsing_run_reports_collapsed(tmp_path):
    reporter = RecordingReporter()
    # a strength far too high kills every channel within the first epoch
    run_trial(config(tmp_path, multiplier=1e4, learning_rate=0.1, threshold=0.5), reporter)
    learn = [m for m in reporter.metrics if m["phase"] == "learn"]
    assert learn[0]["collapsed"] == 1.0 and learn[0]["predicted_fraction"] < 0.05


def test_a_save_killed_midway_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    from trainers import checkpoint as checkpoint_module

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    ckpt = checkpoint_module.Checkpoint(tmp_path / "checkpoint")
    ckpt.save(model, optimizer, {"phase": "learn", "epoch": 1})
    first = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1.0 for w in first])

    savez, calls = checkpoint_module.np.savez, []

    def killed(*args, **kwargs):  # the process dies after the new weights, before the rest
        calls.append(args[0])
        if len(calls) > 1:
            raise KeyboardInterrupt("killed")
        savez(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module.np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(model, optimizer, {"phase": "learn", "epoch": 2})
    monkeypatch.undo()
    # the new weights file is there, but the checkpoint is still epoch 1's, and whole
    assert (tmp_path / "checkpoint" / "model-2.weights.npz").is_file()
    assert ckpt.state() == {"phase": "learn", "epoch": 1}
    restored = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ckpt.restore(restored, keras.optimizers.Adam(1e-3))
    for got, want in zip(restored.get_weights(), first, strict=True):
        np.testing.assert_array_equal(got, want)
    # the next save completes and leaves one set of files, the ones state.json names
    ckpt.save(model, optimizer, {"phase": "learn", "epoch": 2})
    assert ckpt.state() == {"phase": "learn", "epoch": 2}
    names = sorted(p.name for p in (tmp_path / "checkpoint").iterdir())
    assert names == ["model-3.weights.npz", "optimizer-3.npz", "state.json"]
    ckpt.restore(restored, keras.optimizers.Adam(1e-3))
    for got, want in zip(restored.get_weights(), first, strict=True):
        np.testing.assert_array_equal(got, want + 1.0)


def test_a_multiplier_means_the_same_in_a_trial_and_in_a_sweep(tmp_path):
    """strength = multiplier / seed cost, with the seed cost the sweep's driver computes."""
    from sweep.config import load_sweep_config
    from sweep.space import seed_costs
    from trainers.models import build_model
    from trainers.morphnet.keras3 import read_model
    from trainers.morphnet.widths import seed_cost
    from trainers.trial import target_of

    trial = {**SMALL, "model": "zoo:resnet", "epochs": 1, "retrain_epochs": 1}
    trial.pop("verbose")
    sweep = load_sweep_config(
        {
            "name": "m",
            "trial": trial,
            "algorithms": ["group_lasso"],
            "targets": ["model_size", "latency"],
            "workdir": str(tmp_path / "w"),
        }
    )
    driver = seed_costs(sweep)
    for target in ("model_size", "latency"):
        cfg = config(tmp_path / target, model="zoo:resnet", epochs=1, target=target, multiplier=7.0)
        cfg = cfg.replace(algorithm="group_lasso")
        result = run_trial(cfg, RecordingReporter())
        assert result.seed_cost == driver[target]
        assert result.strength == pytest.approx(7.0 / driver[target], rel=1e-12)
    # the definition: the exact cost of the full-width seed network
    model = build_model("zoo:resnet", (16, 16, 3), 4, 8, 0)
    graph, _ = read_model(model)
    target = target_of(TrialConfig(target="model_size"))
    assert seed_cost(graph, target) == model_cost(model, target)
