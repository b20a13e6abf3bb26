"""Network regularizers against the reference numbers of spec §7 (cases 1, 2, 5, 6, 7)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.morphnet.models import CASE1_GAMMAS, L, set_gammas, slim_conv, two_conv_concat_two_heads
from trainers.morphnet import (
    GammaActivationRegularizer,
    GammaFlopsRegularizer,
    GammaLatencyRegularizer,
    GammaModelSizeRegularizer,
    GroupLassoFlopsRegularizer,
    NoSourceError,
    OpRegularizer,
)
from trainers.morphnet.keras3.backend import keras

CONVS = ["conv1", "conv2", "conv3", "conv4"]


class DummyDecorator(OpRegularizer):
    """The original tests' decorator: scales the regularization vector, keeps alive."""

    def __init__(self, regularizer, scale):
        self._regularization_vector = regularizer.regularization_vector * scale
        self._alive_vector = regularizer.alive_vector


@pytest.fixture(scope="module")
def case1():
    return two_conv_concat_two_heads()


def costs(reg, names=CONVS):
    return [float(reg.get_cost([n])) for n in names]


def terms(reg, names=CONVS):
    return [float(reg.get_regularization_term([n])) for n in names]


def test_case1_gamma_flops_costs_and_term(case1):
    reg = GammaFlopsRegularizer(case1, gamma_threshold=0.45)
    # cost = c * A_in * A_out per conv, c = 2 * out spatial * kernel spatial
    assert costs(reg) == [474810, 21318, 291600, 197676]
    assert float(reg.get_cost(["conv3", "conv4"])) == 291600 + 197676
    assert float(reg.get_cost()) == 985404
    # reg = c * (A_in * R_out + A_out * R_in)
    np.testing.assert_allclose(terms(reg), [461244, 17248.2, 595512, 336372.2], rtol=1e-6)
    np.testing.assert_allclose(float(reg.get_regularization_term()), 1410376.375, rtol=1e-6)
    assert (reg.name, reg.cost_name) == ("GammaFlops", "FLOPs")


def test_case1_decorator_scales_term(case1):
    reg = GammaFlopsRegularizer(
        case1, 0.45, regularizer_decorator=DummyDecorator, decorator_parameters={"scale": 0.5}
    )
    # the decorator halves every source vector, so the (linear) term halves
    np.testing.assert_allclose(float(reg.get_regularization_term(CONVS)), 705188.1875, rtol=1e-6)
    np.testing.assert_allclose(float(reg.get_regularization_term([])), 705188.1875, rtol=1e-6)


@pytest.mark.parametrize(
    ("boundary", "expected"),
    [
        (None, ["conv1", "conv2", "conv3", "conv4"]),
        (["conv3_relu"], ["conv1", "conv2", "conv4"]),
        (["concat"], ["conv3", "conv4"]),
    ],
)
def test_case1_sources_per_input_boundary(case1, boundary, expected):
    reg = GammaFlopsRegularizer(case1, 0.45, input_boundary=boundary)
    # the crawl stops at the input boundary, so sources behind it are not regularized
    assert reg.source_ops == [f"{n}_bn/FusedBatchNormV3" for n in expected]


def test_case1_no_sources_inside_boundary_is_an_error(case1):
    with pytest.raises(NoSourceError, match="BatchNormalization"):
        GammaFlopsRegularizer(case1, 0.45, input_boundary=["conv3_relu", "conv4_relu"])


def test_case2_model_size(case1):
    reg = GammaModelSizeRegularizer(case1, 0.45)
    # kernel spatial * A_in * A_out
    assert costs(reg) == [735, 33, 1620, 306]
    assert float(reg.get_cost()) == 2694
    np.testing.assert_allclose(terms(reg), [714.0, 26.7, 3308.4, 520.7], rtol=1e-6)
    np.testing.assert_allclose(float(reg.get_regularization_term()), 4569.8, rtol=1e-6)


def test_case2_activation_count_and_gradient(case1):
    reg = GammaActivationRegularizer(case1, 0.45, output_boundary=["conv3_relu", "conv4_relu"])
    # activation count is the alive output channels of each conv; the term is R_out
    assert costs(reg) == [7, 11, 10, 17]
    np.testing.assert_allclose(terms(reg), [6.8, 8.9, 11.7, 14.1], rtol=1e-6)
    gammas = [case1.get_layer(f"{n}_bn").gamma for n in CONVS]
    with tf.GradientTape() as tape:
        term = reg.get_regularization_term(["conv2"])
    grads = tape.gradient(term, [g.value for g in gammas])
    # d|gamma|/dgamma = sign(gamma) for the conv's own BN, nothing through alive counts
    np.testing.assert_array_equal(np.asarray(grads[1]), [-1.0] * 11 + [1.0] * 12)
    for g in (grads[0], grads[2], grads[3]):
        assert g is None or not np.any(np.asarray(tf.convert_to_tensor(g)))


def test_case2_unregularized_conv_counts_full_width():
    model = two_conv_concat_two_heads(with_conv5=True)
    reg = GammaActivationRegularizer(model, 0.45, output_boundary=["conv5"])
    # conv5 has no BN after it: no regularizer, so all 11 channels count
    assert float(reg.get_cost(["conv5"])) == 11
    np.testing.assert_allclose(float(reg.get_regularization_term(["conv3"])), 11.7, rtol=1e-6)


def test_case2_latency_p100(case1):
    reg = GammaLatencyRegularizer(case1, 0.45, "P100", output_boundary=["conv3_relu", "conv4_relu"])
    assert (reg.name, reg.cost_name) == ("Latency", "P100 Latency")
    # conv1 compute-bound, the others memory-bound (bytes / 732 GB/s)
    np.testing.assert_allclose(
        costs(reg), [51.0548400879, 24.8907108307, 45.5409851074, 63.4480857849], rtol=1e-6
    )
    np.testing.assert_allclose(float(reg.get_cost(["conv3", "conv4"])), 108.989074707, rtol=1e-6)
    per_op = reg.cost_per_op()
    np.testing.assert_allclose(per_op["conv1_relu/Relu"], 323 * 7 * 2 * 4 / 732, rtol=1e-9)
    np.testing.assert_allclose(
        terms(reg, ["conv1", "conv1_relu", "conv1_bn", "conv2", "conv2_relu", "concat"]),
        [
            22610 * 3 * 6.8 / 9300,  # conv1: compute branch
            323 * 6.8 * 2 * 4 / 732,  # conv1 relu: memory, in and out
            323 * 6.8 * 2 * 4 / 732,
            (3 * 8.9 + 323 * 8.9) * 4 / 732,  # conv2: memory branch
            323 * 8.9 * 2 * 4 / 732,
            323 * 15.7 * 2 * 4 / 732,  # concat moves its output twice
        ],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        terms(reg, ["conv3", "conv3_relu", "conv4", "conv4_relu"]),
        [
            (323 * 15.7 + 9 * (18 * 11.7 + 10 * 15.7) + 90 * 11.7) * 4 / 732,
            90 * 11.7 * 2 * 4 / 732,
            (323 * 15.7 + (18 * 14.1 + 17 * 15.7) + 323 * 14.1) * 4 / 732,
            323 * 14.1 * 2 * 4 / 732,
        ],
        rtol=1e-6,
    )
    np.testing.assert_allclose(float(reg.get_regularization_term(CONVS)), 172.4377, rtol=1e-6)
    np.testing.assert_allclose(float(reg.get_regularization_term([])), 461.2672, rtol=1e-6)
    np.testing.assert_allclose(float(reg.get_cost()), 515.2516, rtol=1e-6)


def test_gamma_flops_gradient_matches_formula(case1):
    reg = GammaFlopsRegularizer(case1, 0.45)
    gammas = [case1.get_layer(f"{n}_bn").gamma for n in CONVS]
    with tf.GradientTape() as tape:
        term = reg.get_regularization_term()
    grads = [np.asarray(g) for g in tape.gradient(term, [g.value for g in gammas])]
    sign = [np.sign(CASE1_GAMMAS[n]) for n in CONVS]
    # gamma1 feeds R_out of conv1 (x 22610*3) and R_in of conv3 (x 1620*10) and conv4 (x 646*17)
    np.testing.assert_allclose(grads[0], sign[0] * (22610 * 3 + 1620 * 10 + 646 * 17), rtol=1e-6)
    np.testing.assert_allclose(grads[1], sign[1] * (646 * 3 + 1620 * 10 + 646 * 17), rtol=1e-6)
    # gamma3 feeds only R_out of conv3, times A_in = 18 (alive counts carry no gradient)
    np.testing.assert_allclose(grads[2], sign[2] * 1620 * 18, rtol=1e-6)
    np.testing.assert_allclose(grads[3], sign[3] * 646 * 18, rtol=1e-6)


def depthwise_model(bn_on_depthwise: bool):
    """Case 5: depthwise convs (slim separable with num_outputs=None) feeding a concat."""
    img = keras.Input((17, 19, 3), name="image")

    def dw(x, k, name):
        x = L.DepthwiseConv2D(k, padding="same", use_bias=not bn_on_depthwise, name=name)(x)
        if bn_on_depthwise:
            x = L.BatchNormalization(name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x)

    d1 = dw(img, 3, "dw1")
    c1 = slim_conv(d1, 13, (7, 5), name="conv1")
    c2 = slim_conv(img, 23, 1, name="conv2")
    d2 = dw(c2, 5, "dw2")
    cat = L.Concatenate(name="concat")([c1, d2])
    c3 = slim_conv(cat, 29, 3, 2, name="conv3")
    model = keras.Model(img, c3)
    set_gammas(model, {k: CASE1_GAMMAS[k] for k in ("conv1", "conv2", "conv3")})
    if bn_on_depthwise:
        set_gammas(model, {"dw1": [-0.3] + [-0.9] * 2, "dw2": [0.3] * 5 + [0.9] * 10 + [-0.1] * 8})
    return model


def test_case5a_depthwise_with_bn_and_blacklist():
    reg = GammaFlopsRegularizer(depthwise_model(True), 0.45, regularizer_blacklist=["dw1"])
    names = ["dw1", "conv1", "conv2", "dw2", "conv3"]
    # depthwise cost is linear: c * A_out; the group {conv2, dw2} ORs its two BNs
    assert costs(reg, names) == [17442, 474810, 29070, 242250, 356400]
    np.testing.assert_allclose(
        terms(reg, ["dw1", "conv1", "conv2", "dw2"]), [0, 461244, 25775.4, 429590], rtol=1e-6
    )


def test_case5b_depthwise_without_bn():
    reg = GammaFlopsRegularizer(depthwise_model(False), 0.45)
    names = ["dw1", "conv1", "conv2", "dw2", "conv3"]
    assert costs(reg, names) == [17442, 474810, 21318, 177650, 291600]
    # depthwise term is c * (R_in + R_out), both from conv2's gammas
    np.testing.assert_allclose(terms(reg, ["dw1", "conv1", "dw2"]), [0, 461244, 287470], rtol=1e-6)


def single_conv(spatial, bn=True):
    img = keras.Input(spatial + (3,), name="image")
    x = L.Conv2D(2, 1, padding="same", use_bias=False, name="conv1")(img)
    if bn:
        x = L.BatchNormalization(name="conv1_bn")(x)
    return keras.Model(img, x)


def test_case6_decorated_single_layers():
    scale = {"regularizer_decorator": DummyDecorator, "decorator_parameters": {"scale": 0.5}}
    gamma = GammaFlopsRegularizer(single_conv((3, 3)), 0.1, **scale)
    # c = 18, cost = 18 * 2 * 3, reg = 18 * 3 * (2 * 0.5)
    assert float(gamma.get_cost()) == 108
    assert float(gamma.get_regularization_term()) == 54
    model = single_conv((3, 3), bn=False)
    model.get_layer("conv1").kernel.assign(np.ones((1, 1, 3, 2), np.float32))
    lasso = GroupLassoFlopsRegularizer(model, 0.1, 0, **scale)
    assert (float(lasso.get_cost()), float(lasso.get_regularization_term())) == (108, 54)
    size = GammaModelSizeRegularizer(single_conv((1, 1)), 0.1, **scale)
    assert (float(size.get_cost()), float(size.get_regularization_term())) == (6, 3)


def mlp():
    x = keras.Input((6,), name="x")
    h = L.Dense(4, activation="relu", name="fc1")(x)
    y = L.Dense(1, activation="relu", name="fc2")(h)
    model = keras.Model(x, y)
    model.get_layer("fc1").set_weights(
        [np.arange(24, dtype=np.float32).reshape(6, 4), np.arange(4.0)]
    )
    model.get_layer("fc2").set_weights(
        [np.array([[21], [22], [23], [24]], np.float32), np.zeros(1)]
    )
    return model


@pytest.mark.parametrize(("threshold", "cost", "term"), [(32.0, 0, 642.6363), (13.0, 28, 839.853)])
def test_case7_group_lasso_mlp(threshold, cost, term):
    reg = GroupLassoFlopsRegularizer(mlp(), threshold=threshold, l1_fraction=0)
    # group norms are RMS over the input axis: r1 sums to 53.553024, r2 = 22.527761
    assert float(reg.get_cost()) == cost
    np.testing.assert_allclose(float(reg.get_regularization_term()), term, rtol=1e-6)


def test_group_lasso_kernel_gradient_matches_formula():
    model = mlp()
    reg = GroupLassoFlopsRegularizer(model, threshold=13.0)
    kernel = model.get_layer("fc2").kernel
    with tf.GradientTape() as tape:
        term = reg.get_regularization_term()
    grad = np.asarray(tape.gradient(term, kernel.value))
    w = np.array([[21], [22], [23], [24]], np.float64)
    rms = np.sqrt(np.mean(w**2))
    # fc2's norm enters as R_out with A_in = 2 alive units of fc1: d/dw sqrt(mean w^2) = w/(n rms)
    np.testing.assert_allclose(grad, 2 * 2 * w / (4 * rms), rtol=1e-5)
