"""Bad input raises before any work, naming the bad value and the fix."""

from __future__ import annotations

import pytest

from tests.morphnet.models import L, slim_conv, two_conv_concat_two_heads
from trainers.morphnet import (
    ConfigurationError,
    GammaFlopsRegularizer,
    GammaLatencyRegularizer,
    GroupLassoFlopsRegularizer,
    GroupLassoLatencyRegularizer,
    LogisticSigmoidFlopsRegularizer,
    ModelNotBuiltError,
    NoSourceError,
    PassThrough,
    UnsupportedLayerError,
    register_activation,
)
from trainers.morphnet.keras3.backend import keras


@pytest.fixture(scope="module")
def model():
    return two_conv_concat_two_heads()


class Custom(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


def custom_model():
    img = keras.Input((8, 8, 3))
    x = slim_conv(img, 4, 3, name="c1")
    return keras.Model(img, slim_conv(Custom(name="custom")(x), 4, 3, name="c2"))


def test_unbuilt_and_subclassed_models():
    with pytest.raises(ModelNotBuiltError, match="not built"):
        GammaFlopsRegularizer(keras.Sequential([L.Conv2D(4, 3), L.BatchNormalization()]), 0.1)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    sub = Sub()
    sub(keras.ops.zeros((1, 8, 8, 3)))
    with pytest.raises(ModelNotBuiltError, match="subclassed"):
        GammaFlopsRegularizer(sub, 0.1)
    with pytest.raises(ModelNotBuiltError, match="keras.Model"):
        GammaFlopsRegularizer("resnet", 0.1)


def test_unknown_layer_class_names_layer_and_fix():
    with pytest.raises(UnsupportedLayerError, match=r"'custom'.*Custom.*register_layer"):
        GammaFlopsRegularizer(custom_model(), 0.1)
    # registering the class per call fixes it
    reg = GammaFlopsRegularizer(custom_model(), 0.1, layer_handlers={Custom: PassThrough()})
    assert reg.groups.same_group(reg.graph.index("c1/Conv2D"), reg.graph.index("custom/Identity"))


def test_gamma_without_scaled_batch_norm(model):
    img = keras.Input((8, 8, 3))
    x = L.BatchNormalization(scale=False)(L.Conv2D(4, 3)(img))
    with pytest.raises(NoSourceError, match=r"BatchNormalization\(scale=True\)"):
        GammaFlopsRegularizer(keras.Model(img, x), 0.1)
    with pytest.raises(NoSourceError, match="LogisticSigmoidGating"):
        LogisticSigmoidFlopsRegularizer(model)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda m: GammaFlopsRegularizer(m, -0.1), r"gamma_threshold must be a number >= 0.*-0.1"),
        (lambda m: GammaFlopsRegularizer(m, float("nan")), "gamma_threshold"),
        (lambda m: GroupLassoFlopsRegularizer(m, 0.1, l1_fraction=1.5), r"l1_fraction.*\[0, 1\]"),
        (lambda m: LogisticSigmoidFlopsRegularizer(m, alive_threshold=2), "alive_threshold"),
        (lambda m: GammaLatencyRegularizer(m, 0.1, "Z80"), r"hardware must be one of.*'Z80'"),
        (lambda m: GroupLassoLatencyRegularizer(m, 0.1, None), "register_hardware"),
        (lambda m: GammaFlopsRegularizer(m, 0.1, input_boundary=["nope"]), r"'nope'.*layer names"),
        (lambda m: GammaFlopsRegularizer(m, 0.1, output_boundary=["nope"]), "output_boundary"),
        (lambda m: GammaFlopsRegularizer(m, 0.1, input_boundary="conv1"), "list of layer names"),
    ],
)
def test_bad_parameters(model, build, match):
    with pytest.raises(ConfigurationError, match=match):
        build(model)


def test_bad_parameters_fail_before_reading_the_model():
    # an invalid threshold is reported even though the "model" is not one
    with pytest.raises(ConfigurationError, match="threshold"):
        GroupLassoFlopsRegularizer(object(), -1.0)


def test_unsupported_features():
    img = keras.Input((8, 8, 4))
    grouped = L.Conv2D(4, 3, groups=2, name="g")(img)
    with pytest.raises(UnsupportedLayerError, match="groups=2"):
        GroupLassoFlopsRegularizer(keras.Model(img, grouped), 0.1)
    dynamic = keras.Input((None, None, 3))
    with pytest.raises(ModelNotBuiltError, match="static shapes"):
        GroupLassoFlopsRegularizer(keras.Model(dynamic, L.Conv2D(4, 3)(dynamic)), 0.1)


def doubled(x):
    return 2.0 * x


def test_unknown_activation_and_registration():
    img = keras.Input((8, 8, 3))
    model = keras.Model(img, L.Conv2D(4, 3, activation=doubled, name="c")(img))
    with pytest.raises(UnsupportedLayerError, match=r"activation 'doubled'.*register_activation"):
        GroupLassoFlopsRegularizer(model, 0.0)
    register_activation("doubled", ["Mul"])
    reg = GroupLassoFlopsRegularizer(model, 0.0)
    # the registered op types now appear in the graph after the conv
    assert [op.type for op in reg.graph.ops] == ["Placeholder", "Conv2D", "BiasAdd", "Mul"]
