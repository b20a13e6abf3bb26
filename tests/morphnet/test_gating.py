"""The LogisticSigmoidGating layer and the FiGS regularizers (spec §2.6, §7 cases 9 and 10)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.morphnet.models import L
from trainers.morphnet import (
    ConfigurationError,
    LogisticSigmoidFlopsRegularizer,
    LogisticSigmoidGating,
    LogisticSigmoidLatencyRegularizer,
    LogisticSigmoidModelSizeRegularizer,
    NoSourceError,
    logistic_sigmoid_sample,
)
from trainers.morphnet.keras3.backend import keras

K = {"conv1": 7, "conv2": 11, "conv3": 10, "conv4": 17}
CONVS = list(K)


def gated_model(seed=0):
    """Case 9: case 1's topology with biased convs each followed by a gate, no BN, no ReLU."""
    img = keras.Input((17, 19, 3), name="image")

    def conv(x, n, k, stride=1, name="conv"):
        x = L.Conv2D(n, k, strides=stride, padding="same", name=name)(x)
        return LogisticSigmoidGating(name=f"{name}_gate", seed=seed)(x)

    c1, c2 = conv(img, 13, (7, 5), name="conv1"), conv(img, 23, 1, name="conv2")
    cat = L.Concatenate(name="concat")([c1, c2])
    model = keras.Model(img, [conv(cat, 29, 3, 2, name="conv3"), conv(cat, 31, 1, name="conv4")])
    for name, k in K.items():
        logits = model.get_layer(f"{name}_gate").mask_logits
        logits.assign(np.where(np.arange(logits.shape[0]) < k, 10.0, -10.0).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def gated():
    model = gated_model()
    model(np.zeros((1, 17, 19, 3), np.float32), training=True)  # draws this step's gate samples
    return model


def test_case9_flops_and_model_size(gated):
    flops = LogisticSigmoidFlopsRegularizer(gated)
    assert [float(flops.get_cost([n])) for n in CONVS] == [474810, 21318, 291600, 197676]
    # masks are 0/1, so reg = cost with an unregularized input and 2 * cost with both regularized
    terms = [float(flops.get_regularization_term([n])) for n in CONVS]
    np.testing.assert_allclose(terms, [474810, 21318, 583200, 395352], rtol=1e-6)
    size = LogisticSigmoidModelSizeRegularizer(gated)
    assert [float(size.get_cost([n])) for n in CONVS] == [735, 33, 1620, 306]
    latency = LogisticSigmoidLatencyRegularizer(gated, "P100")
    assert latency.cost_name == "P100 Latency" and float(latency.get_cost()) > 0


def test_case9_sources_and_boundaries(gated):
    reg = LogisticSigmoidFlopsRegularizer(gated)
    assert reg.source_ops == [f"{n}_gate/LogisticSigmoidGating" for n in CONVS]
    without3 = LogisticSigmoidFlopsRegularizer(gated, input_boundary=["conv3_gate"])
    assert "conv3_gate/LogisticSigmoidGating" not in without3.source_ops
    with pytest.raises(NoSourceError, match="LogisticSigmoidGating"):
        LogisticSigmoidFlopsRegularizer(gated, input_boundary=["conv3_gate", "conv4_gate"])


def test_term_reads_the_forward_sample_and_reaches_logits():
    model = gated_model()
    reg = LogisticSigmoidFlopsRegularizer(model, regularize_on_mask=False)
    x = np.ones((2, 17, 19, 3), np.float32)
    logits = model.get_layer("conv3_gate").mask_logits

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            model(x, training=True)
            term = reg.get_regularization_term(["conv3"])
        return term, tape.gradient(term, logits.value)

    term, grad = step()
    p = 1 / (1 + np.exp(-np.asarray(logits)))
    # conv3 term = c * (A_in * sum(p3) + A_out * R_in), so d/dlogit3 = c * A_in * p (1 - p)
    np.testing.assert_allclose(np.asarray(grad), 1620 * 18 * p * (1 - p), rtol=1e-4, atol=1e-9)
    assert float(term) > 0


def test_forward_sample_is_the_one_regularized():
    model = gated_model()
    gate = model.get_layer("conv1_gate")
    gate.mask_logits.assign(np.zeros(13, np.float32))  # p = 0.5: samples differ between steps
    reg = LogisticSigmoidFlopsRegularizer(model)
    x = np.ones((1, 17, 19, 3), np.float32)
    for _ in range(3):
        model(x, training=True)
        mask = np.asarray(gate.sampled_mask())
        alive = int(np.sum(np.maximum(mask >= 0.1, np.arange(13) == 0)))
        # the alive count in the cost is the sample multiplied into this step's activations
        assert float(reg.get_cost(["conv1"])) == 22610 * 3 * alive


@pytest.mark.parametrize("straight_through", [True, False])
def test_case10_sample_means(straight_through):
    for logit, mean in ((5.5, 0.996), (0.5, 0.6), (-5.5, 0.004)):
        sample = logistic_sigmoid_sample(np.full(1000, logit, np.float32), 0.01, straight_through)
        # P(open) = sigmoid(logit)
        assert abs(float(np.mean(sample)) - mean) < 0.07
    if not straight_through:
        assert float(np.mean(logistic_sigmoid_sample(np.full(100, -1000.0), 0.01))) == 0.0
        assert float(np.mean(logistic_sigmoid_sample(np.full(100, 1000.0), 0.01))) == 1.0


def test_case10_inference_with_open_gates_is_identity():
    layer = LogisticSigmoidGating(log_odds_init=1000)
    x = np.ones((1, 17, 19, 4), np.float32)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


@pytest.mark.parametrize("straight_through", [True, False])
def test_case10_gated_batch_norm_equals_batch_norm(straight_through):
    x = np.tile(np.eye(16, dtype=np.float32)[None, :, :, None], (1, 1, 1, 3))
    inputs = keras.Input((16, 16, 3))
    bn = L.BatchNormalization(name="bn")
    gate = LogisticSigmoidGating(log_odds_init=100, straight_through=straight_through)
    model = keras.Model(inputs, gate(bn(inputs)))
    np.testing.assert_allclose(model(x, training=True), bn(x, training=True), rtol=1e-6)


def test_straight_through_gradient_is_soft():
    logits = tf.Variable(np.zeros(4, np.float32))
    with tf.GradientTape() as tape:
        mask = logistic_sigmoid_sample(logits, 1.0, straight_through=True, seed=3)
        total = tf.reduce_sum(mask)
    # forward values are hard 0/1; the gradient is that of sigmoid((logits + L)/tau), nonzero
    assert set(np.asarray(mask).tolist()) <= {0.0, 1.0}
    assert np.all(np.asarray(tape.gradient(total, logits)) > 0)


def test_keep_first_channel_alive_counts_in_cost():
    img = keras.Input((4, 4, 3), name="image")
    x = L.Conv2D(5, 1, name="conv")(img)
    x = LogisticSigmoidGating(name="gate", log_odds_init=-20.0)(x)
    # a head, so that conv is not an output layer (those keep every channel)
    model = keras.Model(img, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    model(np.ones((1, 4, 4, 3), np.float32), training=True)
    reg = LogisticSigmoidFlopsRegularizer(model)
    # every gate is closed but channel 0, which the forward pass keeps open, is counted
    assert float(reg.get_cost()) == 2 * 16 * 3 * 1 + 2 * 1 * 2
    assert reg.structure().layers["conv"].alive_channels == (0,)


def test_annealing_and_zero_temperature():
    step = tf.Variable(0, dtype=tf.int64)
    layer = LogisticSigmoidGating(temperature=1.0, annealing_rate=100, global_step=step)
    step.assign(200)
    # tau(step) = tau0 * 0.1 ** (step / rate)
    np.testing.assert_allclose(float(layer.current_temperature()), 0.01, rtol=1e-6)
    assert not LogisticSigmoidGating(temperature=0.0).is_source
    with pytest.raises(ConfigurationError, match="global_step"):
        LogisticSigmoidGating(annealing_rate=10)
    with pytest.raises(ConfigurationError, match="temperature"):
        LogisticSigmoidGating(temperature=-1.0)
    with pytest.raises(ConfigurationError, match="axis"):
        LogisticSigmoidGating(axis=1)
