"""Channel grouping across adds, concats, depthwise convs, force_group and blacklist (spec §3, §7)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.morphnet.models import L, slim_conv
from trainers.morphnet import (
    ConfigurationError,
    GammaFlopsRegularizer,
    GroupingError,
    GroupLassoFlopsRegularizer,
    PassThrough,
)
from trainers.morphnet.grouping import analyze, handlers_for
from trainers.morphnet.keras3 import read_model
from trainers.morphnet.keras3.backend import keras

T, F = True, False


class StubGamma(GammaFlopsRegularizer):
    """Gamma regularizer whose BN sources return fixed vectors (the original's stub tests)."""

    def __init__(self, model, stubs, **kw):
        self.stubs = stubs
        super().__init__(model, 0.5, **kw)

    def _source_regularizer(self, op_index):
        from tests.morphnet.test_op_regularizers import Stub

        layer = self.graph.ops[op_index].layer.removesuffix("_bn")
        return Stub(*self.stubs[layer])


def vectors(reg, name):
    r = reg.get_regularizer(name)
    return None if r is None else (np.asarray(r.regularization_vector), np.asarray(r.alive_vector))


def add_concat_model(gammas=None):
    """Case 3: concat(conv1, conv2) + conv4(conv3(concat)) -> conv5."""
    img = keras.Input((17, 19, 3), name="image")
    c1 = slim_conv(img, 7, (7, 5), name="conv1")
    c2 = slim_conv(img, 5, 1, name="conv2")
    cat = L.Concatenate(name="concat")([c1, c2])
    c3 = slim_conv(cat, 4, 1, name="conv3")
    c4 = slim_conv(c3, 12, 3, name="conv4")
    add = L.Add(name="add")([cat, c4])
    c5 = slim_conv(add, 3, 3, 2, name="conv5")
    model = keras.Model(img, c5)
    for name, values in (gammas or {}).items():
        model.get_layer(f"{name}_bn").gamma.assign(np.asarray(values, np.float32))
    return model


def test_case3_cost_uses_or_of_concat_and_add():
    gammas = {"conv1": [0, 1, 1, 0, 1, 0, 1], "conv4": [0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0]}
    reg = GammaFlopsRegularizer(add_concat_model(gammas), gamma_threshold=0.1)
    # conv1's alive = OR(conv1 gammas, conv4[0:7]) = 5 channels; 0/1 gammas make reg == cost
    assert float(reg.get_cost(["conv1"])) == 339150
    assert float(reg.get_regularization_term(["conv1"])) == 339150


CASE3_STUBS = {
    "conv1": ([0.1, 0.3, 0.6, 0.2, 0.4, 0.0, 0.8], [F, T, T, F, T, F, T]),
    "conv2": ([0.15, 0.25, 0.05, 0.55, 0.45], [T, F, T, F, F]),
    "conv3": ([0.07, 0.27, 0.17, 0.37], [F, F, T, T]),
    "conv4": (
        [0.07, 0.27, 0.17, 0.37, 0.28, 0.32, 0.12, 0.22, 0.19, 0.11, 0.02, 0.06],
        [F, T, F, T, T, F, T, F, F, T, F, F],
    ),
    "conv5": ([0.24, 0.34, 0.29], [F, T, F]),
}


def test_case3_stub_groups():
    reg = StubGamma(add_concat_model(), CASE3_STUBS)
    expected_reg = [0.1, 0.3, 0.6, 0.37, 0.4, 0.32, 0.8, 0.22, 0.25, 0.11, 0.55, 0.45]
    expected_alive = [F, T, T, T, T, F, T, T, F, T, F, F]
    # concat, add and conv4 share max(concat(conv1, conv2), conv4) and the OR of alive
    for name in ("concat", "add", "conv4", "conv4_relu"):
        r, a = vectors(reg, name)
        np.testing.assert_allclose(r, expected_reg, rtol=1e-6)
        np.testing.assert_array_equal(a, expected_alive)
    np.testing.assert_allclose(vectors(reg, "conv1")[0], expected_reg[:7], rtol=1e-6)
    np.testing.assert_allclose(vectors(reg, "conv2")[0], expected_reg[7:], rtol=1e-6)
    # conv3 and conv5 keep their own vectors; a conv and its relu report the same alive vector
    for name in ("conv3", "conv5"):
        np.testing.assert_allclose(vectors(reg, name)[0], CASE3_STUBS[name][0], rtol=1e-6)
        np.testing.assert_array_equal(vectors(reg, name)[1], vectors(reg, f"{name}_relu")[1])


def test_case4_concat_on_other_axes_merges_channelwise():
    img = keras.Input((17, 19, 3), name="image")
    c1 = slim_conv(img, 3, (7, 5), name="conv1")
    c2 = slim_conv(img, 3, 1, name="conv2")
    concat1 = L.Concatenate(axis=1, name="concat1")([c1, c2])
    c3 = slim_conv(concat1, 4, 1, name="conv3")
    c4 = slim_conv(c3, 4, 3, name="conv4")
    concat2 = L.Concatenate(axis=2, name="concat2")([c4, c3])
    stubs = {
        "conv1": ([0.1, 0.3, 0.6], [F, T, T]),
        "conv2": ([0.15, 0.25, 0.05], [T, F, T]),
        "conv3": ([0.07, 0.17, 0.57, 0.37], [F, F, T, T]),
        "conv4": ([0.06, 100.87, 0.17, 1.57], [F, T, F, T]),
    }
    reg = StubGamma(keras.Model(img, concat2), stubs)
    # a concat along H or W is an elementwise merge of its inputs' channels
    for name in ("conv1", "conv2", "concat1"):
        np.testing.assert_allclose(vectors(reg, name)[0], [0.15, 0.3, 0.6], rtol=1e-6)
        np.testing.assert_array_equal(vectors(reg, name)[1], [T, T, T])
    for name in ("conv3", "conv4", "concat2"):
        np.testing.assert_allclose(vectors(reg, name)[0], [0.07, 100.87, 0.57, 1.57], rtol=1e-6)
        np.testing.assert_array_equal(vectors(reg, name)[1], [F, T, T, T])


def two_convs(merge):
    img = keras.Input((8, 8, 3), name="image")
    c1 = slim_conv(img, 10, 3, name="c1")
    c2 = slim_conv(img, 10, 3, name="c2")
    x = merge([c1, c2])
    c3 = slim_conv(x, 6, 1, name="c3")
    out = L.Identity(name="identity")(c3)
    return keras.Model(img, [out, x])


def op(reg, name):
    return reg.graph.index(name)


def test_case15_add_groups_both_branches():
    reg = GammaFlopsRegularizer(two_convs(L.Add(name="add")), 0.5)
    g = reg.groups
    # c1, c2 and the add share one group; c3 and the identity another; the input is in none
    assert g.same_group(op(reg, "c1/Conv2D"), op(reg, "c2/Conv2D"))
    assert g.same_group(op(reg, "c1/Conv2D"), op(reg, "add/AddV2"))
    assert g.same_group(op(reg, "c3/Conv2D"), op(reg, "identity/Identity"))
    assert not set(g.groups_of(op(reg, "c1/Conv2D"))) & set(g.groups_of(op(reg, "c3/Conv2D")))
    assert np.all(g.groups_of(op(reg, "image/Placeholder")) == -1)


def test_case15_channel_concat_keeps_input_groups():
    model = two_convs(L.Concatenate(name="concat"))
    reg = GammaFlopsRegularizer(model, 0.5)
    g = reg.groups
    c1, c2, cat = (g.groups_of(op(reg, n)) for n in ("c1/Conv2D", "c2/Conv2D", "concat/ConcatV2"))
    # channels 0..9 of the concat are c1's groups, 10..19 are c2's
    assert not set(c1) & set(c2)
    np.testing.assert_array_equal(cat, np.concatenate([c1, c2]))
    for k, name in enumerate(("c1", "c2")):
        model.get_layer(f"{name}_bn").gamma.assign(np.full(10, 0.2 + k, np.float32))
    np.testing.assert_allclose(vectors(reg, "concat")[0], [0.2] * 10 + [1.2] * 10, rtol=1e-6)


@pytest.mark.parametrize("m", [1, 2, 7])
def test_case15_depthwise_multiplier(m):
    img = keras.Input((8, 8, 3), name="image")
    c1 = slim_conv(img, 5, 3, name="c1")
    dw = L.SeparableConv2D(4, 3, depth_multiplier=m, padding="same", name="sep")(c1)
    reg = GroupLassoFlopsRegularizer(keras.Model(img, dw), 0.0)
    depthwise = reg.groups.groups_of(op(reg, "sep/depthwise"))
    source = reg.groups.groups_of(op(reg, "c1/Conv2D"))
    # the depthwise output has 5*m channels; channel i is tied to input channel i // m
    assert depthwise.size == 5 * m
    np.testing.assert_array_equal(depthwise, source[np.arange(5 * m) // m])
    assert np.asarray(reg.get_regularizer("sep/depthwise").regularization_vector).size == 5 * m


def chain():
    img = keras.Input((8, 8, 3), name="image")
    x = slim_conv(img, 10, 3, name="conv1")
    x = slim_conv(x, 10, 3, name="conv2")
    x = slim_conv(x, 10, 3, name="conv3")
    return keras.Model(img, x)


def test_case15_force_group():
    reg = GammaFlopsRegularizer(chain(), 0.5, force_group=["conv2|conv3"])
    # one regex merges every matching op into one group
    assert reg.groups.same_group(op(reg, "conv2/Conv2D"), op(reg, "conv3/Conv2D"))
    assert not reg.groups.same_group(op(reg, "conv1/Conv2D"), op(reg, "conv2/Conv2D"))
    with pytest.raises(ConfigurationError, match="more than 1 OpSlice"):
        GammaFlopsRegularizer(two_convs(L.Concatenate(name="concat")), 0.5, force_group=["concat"])
    img = keras.Input((8, 8, 3), name="image")
    nine = slim_conv(slim_conv(img, 10, 3, name="conv1"), 9, 3, name="conv2")
    with pytest.raises(ConfigurationError, match="different sizes"):
        GammaFlopsRegularizer(keras.Model(img, nine), 0.5, force_group=["conv1|conv2"])
    with pytest.raises(ConfigurationError, match="did not match"):
        GammaFlopsRegularizer(chain(), 0.5, force_group=["nothing_here"])


def test_case15_blacklist():
    reg = GammaFlopsRegularizer(chain(), 0.5, regularizer_blacklist=["conv2"])
    # a blacklisted group gets no regularizer at all
    assert reg.get_regularizer("conv2") is None
    assert reg.get_regularizer("conv1") is not None
    added = GammaFlopsRegularizer(two_convs(L.Add(name="add")), 0.5, regularizer_blacklist=["c1"])
    # c2 is in c1's group through the add, so it loses its regularizer too
    assert added.get_regularizer("c2") is None
    with pytest.raises(ConfigurationError, match="never used"):
        GammaFlopsRegularizer(chain(), 0.5, regularizer_blacklist=["oops"])
    with pytest.raises(TypeError, match="list of regex"):
        GammaFlopsRegularizer(chain(), 0.5, regularizer_blacklist="conv2")


def test_case15_add_of_identities_of_one_input():
    img = keras.Input((8, 8, 3), name="image")
    c = slim_conv(img, 6, 3, name="c", bn=False)
    ids = [L.Identity(name=f"id{k}")(c) for k in range(4)]
    out = L.BatchNormalization(name="bn")(L.Add(name="add")(ids))
    reg = GammaFlopsRegularizer(keras.Model(img, out), 0.5)
    # duplicates are allowed: all four identities, the add and the BN form one group
    names = [f"id{k}/Identity" for k in range(4)] + ["add/AddV2", "bn/FusedBatchNormV3"]
    assert all(reg.groups.same_group(op(reg, "c/Conv2D"), op(reg, n)) for n in names)


class Pick(keras.layers.Layer):
    """Returns its first input; a stand-in for a split/merge of unequal widths."""

    def call(self, inputs):
        return inputs[0]


def test_unequal_merge_is_a_grouping_error():
    img = keras.Input((8, 8, 3), name="image")
    a = slim_conv(img, 10, 3, name="a")
    b = slim_conv(img, 5, 3, name="b")
    out = slim_conv(Pick(name="pick")([a, b]), 4, 1, name="c")
    with pytest.raises(GroupingError, match="10 channels with 5 channels"):
        GammaFlopsRegularizer(keras.Model(img, out), 0.5, layer_handlers={Pick: PassThrough()})


def test_broadcast_single_channel_input_stays_apart():
    img = keras.Input((8, 8, 3), name="image")
    wide = slim_conv(img, 10, 3, name="wide")
    one = slim_conv(img, 1, 3, name="one")
    out = L.Multiply(name="mul")([wide, one])
    graph, _ = read_model(keras.Model(img, out))
    groups = analyze(graph, handlers_for("gamma"))
    mul = groups.groups_of(graph.index("mul/Mul"))
    # the 1-channel input is broadcast, not grouped with the 10 channels
    assert groups.same_group(graph.index("wide/Conv2D"), graph.index("mul/Mul"))
    assert groups.groups_of(graph.index("one/Conv2D"))[0] not in set(mul)
