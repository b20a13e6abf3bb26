"""The GroupLasso term's fused norm gives the values of square-then-mean, to 1e-6.

The reference below is the formula the library computed before (``sqrt(mean(w**2))`` per output
channel, as two separate ops): the whole network term, its gradient and the alive vectors are
compared on networks whose sources reduce over different axes (Conv2D, DepthwiseConv2D, Dense,
Conv1D, Conv3D, Conv2DTranspose), with and without an L1 part. The term must also stay inside
the compiled training step: no Python runs per layer once the step is traced.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainers.morphnet.keras3 import network_regularizers as nr
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.keras3.op_regularizers import GroupLassoRegularizer, OpRegularizer

L = keras.layers


class SquareThenMean(OpRegularizer):
    """The earlier GroupLasso computation: square, mean, square root, as separate ops."""

    def __init__(self, weight_tensor, reduce_dims, threshold, l1_fraction=0.0):
        w = tf.cast(tf.convert_to_tensor(weight_tensor), tf.float32)
        norm = tf.sqrt(tf.reduce_mean(tf.square(w), axis=list(reduce_dims)))
        if l1_fraction:
            l1 = tf.reduce_mean(tf.abs(w), axis=list(reduce_dims))
            norm = l1_fraction * l1 + (1.0 - l1_fraction) * norm
        self._regularization_vector = norm
        self._alive_vector = norm > threshold


def _mixed_network():
    rng = np.random.default_rng(3)
    img = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", name="c1")(img)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = L.Conv2D(6, 1, name="pw")(x)
    x = L.Conv2DTranspose(5, 3, strides=2, padding="same", name="up")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(7, name="d1")(x)
    out = L.Dense(3, name="logits")(x)
    model = keras.Model(img, out)
    for v in model.trainable_variables:  # varied scales: some channels far below the threshold
        scale = rng.choice([1e-3, 0.05, 1.0], size=v.shape[-1:])
        v.assign((rng.normal(size=v.shape) * scale).astype(np.float32))
    return model


def _sequence_network():
    seq = keras.Input((10, 4))
    x = L.Conv1D(6, 3, name="k1")(seq)
    x = L.Reshape((2, 4, 6, 1))(x)
    x = L.Conv3D(4, 2, name="k3")(x)
    x = L.Flatten()(x)
    out = L.Dense(2, name="logits")(x)
    return keras.Model(seq, out)


NETWORKS = {
    "mixed": _mixed_network,
    "sequence": _sequence_network,
    "MobileNetV2": lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10
    ),
}


def _term_grads_alive(model, l1_fraction, target="flops", reference=False, monkeypatch=None):
    if reference:
        monkeypatch.setattr(nr, "GroupLassoRegularizer", SquareThenMean)
    cls = nr.GroupLassoFlopsRegularizer if target == "flops" else nr.GroupLassoModelSizeRegularizer
    reg = cls(model, threshold=1e-2, l1_fraction=l1_fraction)
    variables = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            term = reg.get_regularization_term()
        return term, tape.gradient(term, variables)

    term, grads = step()
    vector, alive = reg.group_vectors()
    if reference:
        monkeypatch.setattr(nr, "GroupLassoRegularizer", GroupLassoRegularizer)
    grads = [
        np.zeros(v.shape) if g is None else np.asarray(g)
        for v, g in zip(variables, grads, strict=True)
    ]
    return float(term), grads, np.asarray(vector), np.asarray(alive), float(reg.get_cost())


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("l1_fraction", [0.0, 0.3])
def test_fused_norm_equals_square_then_mean(name, l1_fraction, monkeypatch):
    model = NETWORKS[name]()
    target = "flops" if name != "sequence" else "model_size"
    fused = _term_grads_alive(model, l1_fraction, target)
    ref = _term_grads_alive(model, l1_fraction, target, reference=True, monkeypatch=monkeypatch)
    term, grads, vector, alive, cost = fused
    assert term > 0
    assert abs(term - ref[0]) <= 1e-6 * abs(ref[0])
    np.testing.assert_allclose(vector, ref[2], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(alive, ref[3])
    assert cost == ref[4]
    assert any(np.any(g) for g in grads)  # the term reaches the kernels
    for g, r in zip(grads, ref[1], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6 * np.abs(r).max(initial=1e-12))


def test_fused_norm_by_hand():
    # one 2x2x1x2 kernel: channel 0 holds 1, 2, 2, 4 -> sqrt((1 + 4 + 4 + 16) / 4) = 2.5
    w = np.zeros((2, 2, 1, 2), np.float32)
    w[..., 0, 0] = [[1, 2], [2, 4]]
    w[..., 0, 1] = [[0, 0], [0, 3]]  # sqrt(9 / 4) = 1.5
    reg = GroupLassoRegularizer(w, (0, 1, 2), 1.6)
    np.testing.assert_allclose(reg.regularization_vector, [2.5, 1.5], rtol=1e-7)
    np.testing.assert_array_equal(reg.alive_vector, [True, False])
    mixed = GroupLassoRegularizer(w, (0, 1, 2), 1.6, l1_fraction=0.5)
    # mean |w|: 9 / 4 and 3 / 4
    np.testing.assert_allclose(mixed.regularization_vector, [2.375, 1.125], rtol=1e-7)


def test_term_runs_no_python_per_layer_per_step(monkeypatch):
    """Training steps run the traced graph: the per-source Python runs at trace time only."""
    from trainers.morphnet.keras3 import StructureLearner

    model = _mixed_network()
    reg = nr.GroupLassoFlopsRegularizer(model, threshold=1e-2)
    sources = len(reg.groups.sources)
    calls = []
    original = nr.GroupLassoFlopsRegularizer._source_regularizer

    def counting(self, op_index):
        calls.append(op_index)
        return original(self, op_index)

    monkeypatch.setattr(nr.GroupLassoFlopsRegularizer, "_source_regularizer", counting)
    learner = StructureLearner(model, reg, 1e-3)
    learner.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    steps = 12
    x = np.random.default_rng(0).normal(size=(steps * 4, 12, 12, 3)).astype(np.float32)
    y = np.zeros(steps * 4, np.int32)
    learner.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert 0 < len(calls) <= 2 * sources < steps * sources
