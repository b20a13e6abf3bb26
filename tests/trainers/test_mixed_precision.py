"""Mixed precision (``mixed_precision: true``): float16 compute, float32 weights and MorphNet term."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import tensorflow as tf

from tests.trainers.test_trial import CrashAfter
from tests.trainers.test_trial import config as small_config
from trainers import trial as trial_module
from trainers.config import TrialConfig
from trainers.errors import TrialConfigError
from trainers.models import build_model
from trainers.morphnet.keras3 import StructureLearner, add_gating
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.keras3.gating import ChannelGate, LogisticSigmoidGating
from trainers.reporting import RecordingReporter
from trainers.trial import make_regularizer, run_trial


@contextlib.contextmanager
def policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _spy_on_learning(monkeypatch):
    """Record the network and the optimizer each structure-learning run trains."""
    seen: dict = {}
    real_make_regularizer, real_compile = make_regularizer, StructureLearner.compile

    def spy_make_regularizer(model, config):
        seen["network"] = model
        seen["policy"] = keras.config.dtype_policy().name
        return real_make_regularizer(model, config)

    def spy_compile(self, **kwargs):
        real_compile(self, **kwargs)
        seen["optimizer"] = self.optimizer

    monkeypatch.setattr(trial_module, "make_regularizer", spy_make_regularizer)
    monkeypatch.setattr(StructureLearner, "compile", spy_compile)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["gamma", "logistic_sigmoid"])
def test_a_mixed_precision_trial_learns_in_float16(tmp_path, monkeypatch, algorithm):
    seen = _spy_on_learning(monkeypatch)
    cfg = TrialConfig(
        model="zoo:resnet",
        model_width=8,
        dataset="digits",
        algorithm=algorithm,
        epochs=1,
        retrain_epochs=1,
        mixed_precision=True,
        output_dir=str(tmp_path / "trial"),
        verbose=0,
    )
    result = run_trial(cfg, RecordingReporter())
    assert math.isfinite(result.retrained_val_accuracy)
    assert math.isfinite(result.learned_val_accuracy)
    # the network MorphNet regularized computed in float16 on float32 weights
    network = seen["network"]
    assert seen["policy"] == "mixed_float16"
    convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "float16" for layer in convs)
    assert all(layer.variable_dtype == "float32" for layer in convs)
    if algorithm == "logistic_sigmoid":
        gates = [layer for layer in network.layers if isinstance(layer, ChannelGate)]
        assert gates and all(g.compute_dtype == "float16" for g in gates)
        assert all(g.mask_logits.dtype == "float32" for g in gates)
    # compile wrapped the trial's Adam in a loss scaler, whose scale stayed finite
    optimizer = seen["optimizer"]
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert math.isfinite(float(optimizer.dynamic_scale)) and float(optimizer.dynamic_scale) > 1
    # the rebuilt, retrained model was built under the policy too
    model = keras.models.load_model(result.model_path, compile=False)
    assert model.get_layer("logits").dtype_policy.name == "mixed_float16"
    # the process is back in float32 for whatever runs next
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow
def test_a_mixed_precision_trial_resumes_in_both_phases(tmp_path):
    cfg = small_config(tmp_path, epochs=2, retrain_epochs=2, multiplier=10.0, mixed_precision=True)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, CrashAfter(1))  # learn epoch 1
    # the policy is restored even when the trial is interrupted
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, CrashAfter(2))  # learn epoch 2, retrain epoch 1
    reporter = RecordingReporter()
    result = run_trial(cfg, reporter)
    # the inner Adam's state is what the checkpoint holds: each run goes on where the last stopped
    assert [(m["phase"], m.get("epoch")) for m in reporter.metrics] == [
        ("retrain", 2),
        ("done", None),
    ]
    assert [(m["phase"], m["epoch"]) for m in result.history] == [
        ("learn", 1),
        ("learn", 2),
        ("retrain", 1),
        ("retrain", 2),
    ]
    assert all(math.isfinite(m["loss"]) for m in result.history)
    assert math.isfinite(result.retrained_val_accuracy)


def test_a_failing_mixed_precision_trial_restores_the_policy(tmp_path):
    cfg = small_config(tmp_path, dataset=f"npz:{tmp_path}/none.npz", mixed_precision=True)
    with pytest.raises(TrialConfigError, match="does not exist"):
        run_trial(cfg, RecordingReporter())
    assert keras.config.dtype_policy().name == "float32"


def _twin_models(algorithm, spec="zoo:resnet"):
    """The same seed network (same weights) built in float32 and under mixed_float16."""
    with policy("float32"):
        full = build_model(spec, (8, 8, 1), 10, width=8, seed=0)
    with policy("mixed_float16"):
        mixed = build_model(spec, (8, 8, 1), 10, width=8, seed=1)
    if algorithm == "logistic_sigmoid":
        with policy("float32"):
            full = add_gating(full, seed=0, log_odds_init=0.5)
        with policy("mixed_float16"):
            mixed = add_gating(mixed, seed=0, log_odds_init=0.5)
    mixed.set_weights(full.get_weights())
    return full, mixed


@pytest.mark.parametrize("algorithm", ["gamma", "group_lasso", "logistic_sigmoid"])
def test_the_term_of_a_mixed_model_is_the_float32_term(algorithm):
    full, mixed = _twin_models(algorithm)
    assert mixed.get_layer("stem").compute_dtype == "float16"
    cfg = TrialConfig(algorithm=algorithm)
    with policy("mixed_float16"):
        mixed_term = make_regularizer(mixed, cfg).get_regularization_term()
    full_term = make_regularizer(full, cfg).get_regularization_term()
    # the term is float32 whatever the compute dtype, computed from the same float32 weights
    assert mixed_term.dtype == tf.float32
    assert float(mixed_term) == pytest.approx(float(full_term), rel=1e-6)


def test_a_mixed_step_updates_the_weights_as_a_float32_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16).astype(np.int32)
    full, mixed = _twin_models("gamma", "tests.trainers.fixtures:tiny_model")
    before = [w.copy() for w in full.get_weights()]
    deltas = []
    for name, network in (("float32", full), ("mixed_float16", mixed)):
        with policy(name):
            regularizer = make_regularizer(network, TrialConfig())
            learner = StructureLearner(network, regularizer, 10.0 / regularizer.seed_cost)
            # plain SGD: a loss scale left in the gradients (or a loss not scaled) shows as a
            # 32768x too large (or small) step, which Adam's normalisation would hide
            learner.compile(
                optimizer=keras.optimizers.SGD(0.1),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            # fit, not train_on_batch: the learner's step takes (x, y) batches, as a trial feeds
            history = learner.fit(tf.data.Dataset.from_tensors((x, y)), verbose=0)
        assert math.isfinite(history.history["loss"][0])
        deltas.append([a - b for a, b in zip(network.get_weights(), before, strict=True)])
    assert isinstance(learner.optimizer, keras.optimizers.LossScaleOptimizer)
    step_full = np.concatenate([d.ravel() for d in deltas[0]])
    step_mixed = np.concatenate([d.ravel() for d in deltas[1]])
    # the same step up to float16 rounding of the activations
    assert np.linalg.norm(step_mixed - step_full) < 0.05 * np.linalg.norm(step_full)


def test_the_task_loss_of_float16_logits_is_float32():
    logits = tf.constant([[2.0, -1.0, 0.5]], tf.float16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(np.array([0]), logits)
    # Keras' losses cast y_pred to float32 (their dtype is floatx), so does the trial's step
    assert loss.dtype == tf.float32


def test_a_gate_on_float16_inputs_samples_in_float32():
    with policy("mixed_float16"):
        gate = LogisticSigmoidGating(temperature=0.5, straight_through=True, seed=0)
        x = tf.ones((2, 3, 3, 4), tf.float16)
        with tf.GradientTape() as tape:
            out = gate(x, training=True)
            term = tf.reduce_sum(gate.sampled_mask())
        grad = tape.gradient(term, gate.mask_logits)
        inference = gate(x, training=False)
    # activations stay float16; the logits, the sample the regularizer reads and its gradient
    # are float32
    assert out.dtype == tf.float16 and inference.dtype == tf.float16
    assert gate.mask_logits.dtype == "float32" and gate.sampled_mask().dtype == tf.float32
    assert grad.dtype == tf.float32 and bool(tf.reduce_all(tf.math.is_finite(grad)))


def test_mixed_precision_must_be_a_bool():
    with pytest.raises(
        TrialConfigError, match=r"mixed_precision must be bool, but got mixed_precision='yes'"
    ):
        TrialConfig(mixed_precision="yes")
