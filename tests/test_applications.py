"""MorphNet regularizers on real Keras architectures (keras.applications, weights=None).

The full-width FLOPs, model size and activation count of each network are counted here
independently, straight from the Keras layer objects (kernel shapes and output shapes), and
compared with what the library's graph reader, channel grouping and cost functions produce.
Every (algorithm, target) regularizer is then built on every network and its cost, its
regularization term and the term's gradient are checked. Small inputs and ``classes=10`` keep the
models cheap; each one is built once per module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import trainers.morphnet as morphnet
from trainers.morphnet import REGULARIZERS, NoSourceError

L = keras.layers
A = keras.applications

# name -> (constructor, smallest-ish valid square input side for that architecture)
APPLICATIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "ResNet50": (A.ResNet50, 32),
    "MobileNetV2": (A.MobileNetV2, 32),
    "InceptionV3": (A.InceptionV3, 75),
    "DenseNet121": (A.DenseNet121, 32),
    "EfficientNetB0": (A.EfficientNetB0, 32),
    "Xception": (A.Xception, 71),
    "NASNetMobile": (A.NASNetMobile, 32),
}
CLASSES = 10
TARGETS = ("flops", "model_size", "latency", "activations")
COMBINATIONS = [(a, t) for a in ("gamma", "group_lasso") for t in TARGETS] + [
    ("logistic_sigmoid", t) for t in ("flops", "model_size", "latency")
]
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")
SOURCE_WEIGHTS = {"gamma": {"gamma"}, "group_lasso": {"kernel", "pointwise_kernel"}}
P100_PEAK_GFLOPS = 9300.0  # the original library's P100 profile


@dataclass(frozen=True)
class Counts:
    """Full-width costs of a network, counted from its Keras layers."""

    flops: int = 0
    model_size: int = 0
    activations: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.flops + other.flops,
            self.model_size + other.model_size,
            self.activations + other.activations,
        )


def _spatial(shape: Any) -> int:
    """Product of the spatial dimensions of a batch-first, channels-last shape."""
    return math.prod(int(d) for d in shape[1:-1])


def _walk(model: Any) -> Iterator[Any]:
    """Every leaf layer of a model, nested models flattened."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def layer_counts(layer: Any) -> Counts:
    """FLOPs, kernel weights and conv/matmul output channels of one Keras layer (0 for others)."""
    if isinstance(layer, L.SeparableConv2D):
        dw, pw = tuple(layer.depthwise_kernel.shape), tuple(layer.pointwise_kernel.shape)
        out = _spatial(layer.output.shape)
        mid = int(layer.input.shape[-1]) * layer.depth_multiplier
        assert dw[2] * dw[3] == mid == pw[2]
        return Counts(
            flops=2 * out * dw[0] * dw[1] * mid + 2 * out * mid * pw[3],
            model_size=dw[0] * dw[1] * mid + mid * pw[3],
            activations=mid + pw[3],
        )
    if isinstance(layer, L.DepthwiseConv2D):
        k = tuple(layer.kernel.shape)
        out_channels = int(layer.output.shape[-1])
        assert out_channels == int(layer.input.shape[-1]) * layer.depth_multiplier
        return Counts(
            flops=2 * _spatial(layer.output.shape) * k[0] * k[1] * out_channels,
            model_size=k[0] * k[1] * out_channels,
            activations=out_channels,
        )
    if isinstance(layer, L.Conv2DTranspose):
        k = tuple(layer.kernel.shape)  # (kh, kw, out, in)
        c_in, c_out = int(layer.input.shape[-1]), int(layer.output.shape[-1])
        assert k[-1] == c_in and k[-2] == c_out
        return Counts(
            flops=2 * _spatial(layer.input.shape) * math.prod(k[:-2]) * c_in * c_out,
            model_size=math.prod(k),
            activations=c_out,
        )
    if isinstance(layer, L.Conv1D | L.Conv2D | L.Conv3D | L.Dense):
        k = tuple(layer.kernel.shape)  # (*spatial, in, out); Dense: (in, out)
        c_in, c_out = int(layer.input.shape[-1]), int(layer.output.shape[-1])
        assert k[-2] == c_in and k[-1] == c_out
        return Counts(
            flops=2 * _spatial(layer.output.shape) * math.prod(k[:-2]) * c_in * c_out,
            model_size=math.prod(k),
            activations=c_out,
        )
    return Counts()


def count_model(model: Any) -> Counts:
    """Full-width costs of a whole network: the sum over its layers."""
    total = Counts()
    for layer in _walk(model):
        total = total + layer_counts(layer)
    return total


def build(cls: type, model: Any, algorithm: str, target: str) -> Any:
    """A regularizer with every channel alive (threshold 0, untrained weights)."""
    kwargs = {"hardware": "P100"} if target == "latency" else {}
    if algorithm == "logistic_sigmoid":
        return cls(model, **kwargs)
    return cls(model, 0.0, **kwargs)


# ----- a hand-computed model: checks the independent counter itself (fast) ------------------
def _tiny_model() -> Any:
    x = inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(x)  # 8x8x4
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", name="dw")(x)  # 4x4x8
    x = L.SeparableConv2D(6, 3, padding="same", name="sep")(x)  # 4x4x6
    x = L.Conv2DTranspose(5, 2, strides=2, name="convt")(x)  # 8x8x5
    x = L.Dense(7, name="dense_map")(x)  # 8x8x7
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="tiny")


TINY_FLOPS = (
    2 * 64 * 9 * 3 * 4  # conv: out 8x8, 3x3 kernel, 3 -> 4
    + 2 * 16 * 9 * 8  # dw: out 4x4, 3x3 kernel, 8 output channels
    + (2 * 16 * 9 * 8 + 2 * 16 * 8 * 6)  # sep: depthwise 8 channels + pointwise 8 -> 6
    + 2 * 16 * 4 * 6 * 5  # convt: INPUT 4x4, 2x2 kernel, 6 -> 5
    + 2 * 64 * 5 * 7  # dense_map: per position of the 8x8 map, 5 -> 7
    + 2 * 7 * 3  # logits
)
TINY_SIZE = 9 * 3 * 4 + 9 * 8 + (9 * 8 + 8 * 6) + 4 * 6 * 5 + 5 * 7 + 7 * 3
TINY_ACTIVATIONS = 4 + 8 + (8 + 6) + 5 + 7 + 3


def test_independent_counter_matches_hand_computed_costs() -> None:
    counts = count_model(_tiny_model())
    # The counter follows the spec's per-layer FLOP, model-size and activation rules.
    assert counts == Counts(TINY_FLOPS, TINY_SIZE, TINY_ACTIVATIONS)


@pytest.mark.parametrize(
    ("cls_name", "expected"),
    [
        ("GammaFlopsRegularizer", TINY_FLOPS),
        ("GroupLassoFlopsRegularizer", TINY_FLOPS),
        ("GammaModelSizeRegularizer", TINY_SIZE),
        ("GroupLassoModelSizeRegularizer", TINY_SIZE),
        ("GammaActivationRegularizer", TINY_ACTIVATIONS),
        ("GroupLassoActivationRegularizer", TINY_ACTIVATIONS),
    ],
)
def test_tiny_model_seed_and_full_width_cost(cls_name: str, expected: int) -> None:
    reg = getattr(morphnet, cls_name)(_tiny_model(), 0.0)
    # Seed cost (every channel alive) is the hand-computed full-width cost, exactly.
    assert reg.seed_cost == expected
    # With every channel alive the current cost equals the seed cost.
    assert float(reg.get_cost()) == pytest.approx(expected, rel=1e-6)


# ----- keras.applications -------------------------------------------------------------------
@dataclass(frozen=True)
class App:
    name: str
    model: Any
    counts: Counts

    @property
    def has_scaled_bn(self) -> bool:
        return any(
            isinstance(layer, L.BatchNormalization) and layer.scale for layer in _walk(self.model)
        )


@pytest.fixture(scope="module", params=list(APPLICATIONS))
def app(request: pytest.FixtureRequest) -> Iterator[App]:
    """One keras.applications network, built once per module and freed after its tests."""
    constructor, side = APPLICATIONS[request.param]
    model = constructor(weights=None, input_shape=(side, side, 3), classes=CLASSES)
    yield App(request.param, model, count_model(model))
    keras.backend.clear_session()


def _has_sources(app: App, algorithm: str) -> bool:
    """Whether the algorithm can regularize the network, decided from its layers alone."""
    if algorithm == "gamma":
        return app.has_scaled_bn
    return algorithm == "group_lasso"  # no LogisticSigmoidGating layers in keras.applications


@pytest.mark.slow
def test_independent_model_size_matches_kernel_variables(app: App) -> None:
    kernels = sum(math.prod(v.shape) for v in app.model.trainable_weights if v.name in KERNEL_NAMES)
    # Model size counts every kernel weight once and nothing else (no biases, no BN).
    assert app.counts.model_size == kernels
    # The FLOP count covers the network (sanity: it is at least 2 FLOPs per kernel weight).
    assert app.counts.flops >= 2 * app.counts.model_size


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["gamma", "group_lasso"])
@pytest.mark.parametrize("target", ["flops", "model_size", "activations"])
def test_seed_cost_matches_independent_count(app: App, algorithm: str, target: str) -> None:
    cls = REGULARIZERS[(algorithm, target)]
    if not _has_sources(app, algorithm):
        # No BatchNormalization(scale=True) (InceptionV3): Gamma has nothing to regularize.
        with pytest.raises(NoSourceError):
            build(cls, app.model, algorithm, target)
        return
    reg = build(cls, app.model, algorithm, target)
    expected = getattr(app.counts, target)
    # Seed cost is the layer-by-layer full-width cost, exactly.
    assert reg.seed_cost == expected
    # Every channel alive (threshold 0, untrained weights): current cost == full-width cost.
    assert float(reg.get_cost()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_latency_seed_cost_is_bounded_by_compute_time(app: App) -> None:
    algorithm = "gamma" if app.has_scaled_bn else "group_lasso"
    p100 = build(REGULARIZERS[(algorithm, "latency")], app.model, algorithm, "latency")
    flop_only = REGULARIZERS[(algorithm, "latency")](app.model, 0.0, hardware="FLOP_LATENCY")
    # FLOP_LATENCY (1 GFLOP/s, unbounded bandwidth): latency in ns equals the FLOP count.
    assert flop_only.seed_cost == pytest.approx(app.counts.flops, rel=1e-9)
    # Latency is a sum of max(compute, memory), so it is at least FLOPs / peak compute.
    assert p100.seed_cost >= app.counts.flops / P100_PEAK_GFLOPS * (1 - 1e-9)
    # All channels alive: the current latency is the seed latency.
    assert float(p100.get_cost()) == pytest.approx(p100.seed_cost, rel=1e-6)


def test_regularizer_table_has_every_combination() -> None:
    # Every algorithm x target of the spec exists, and LogisticSigmoid has no activation target.
    assert set(REGULARIZERS) == set(COMBINATIONS)


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "target"), COMBINATIONS)
def test_every_regularizer_builds_and_differentiates(app: App, algorithm: str, target: str) -> None:
    cls = REGULARIZERS[(algorithm, target)]
    if not _has_sources(app, algorithm):
        # An algorithm without sources on the network refuses it instead of costing nothing.
        with pytest.raises(NoSourceError):
            build(cls, app.model, algorithm, target)
        return
    reg = build(cls, app.model, algorithm, target)
    cost = float(reg.get_cost())
    # Cost is a finite, non-negative number.
    assert math.isfinite(cost) and cost >= 0
    variables = app.model.trainable_variables
    with tf.GradientTape() as tape:
        term = reg.get_regularization_term()
    # The regularization term is a finite, non-negative float32 scalar.
    assert term.dtype == tf.float32 and term.shape == ()
    assert math.isfinite(float(term)) and float(term) >= 0
    grads = tape.gradient(term, variables)
    reached = [(v, g) for v, g in zip(variables, grads, strict=True) if g is not None]
    # The term is differentiable w.r.t. the model's weights, with a non-zero gradient.
    assert reached and any(float(tf.reduce_max(tf.abs(g))) > 0 for _, g in reached)
    # Gradient flows only into the algorithm's source weights (BN gammas or conv kernels).
    assert {v.name for v, _ in reached} <= SOURCE_WEIGHTS[algorithm]


@pytest.mark.slow
def test_structure_lists_every_prunable_layer(app: App) -> None:
    # ResNet50 is the case the spec names; the other networks get the same check for free.
    algorithm = "gamma" if app.has_scaled_bn else "group_lasso"
    reg = build(REGULARIZERS[(algorithm, "flops")], app.model, algorithm, "flops")
    structure = reg.structure()
    widths = {
        layer.name: getattr(layer, "filters", None) or layer.units
        for layer in _walk(app.model)
        if isinstance(layer, L.Conv2D | L.SeparableConv2D | L.Dense)
    }
    # Sanity of the walk: ResNet50 has 53 Conv2D layers and one Dense classifier.
    if app.name == "ResNet50":
        assert len(widths) == 54
    listed = {name: structure.layers[name].original for name in widths if name in structure.layers}
    # Every Conv2D, SeparableConv2D and Dense layer is listed with its full width as 'original'.
    assert listed == widths
    # Threshold 0 on untrained weights: every channel of every layer is alive.
    assert all(structure.layers[name].alive == width for name, width in widths.items())
    # The alive channel indices are exactly 0..width-1 when everything is alive.
    assert all(
        np.array_equal(structure.layers[name].alive_channels, np.arange(width))
        for name, width in widths.items()
    )
    # The structure reports the seed cost, which is the independent FLOP count, as learned too.
    assert structure.seed_cost == app.counts.flops
    assert structure.learned_cost == pytest.approx(app.counts.flops, rel=1e-6)
    as_dict = structure.to_dict()["layers"]
    # The JSON form carries the same widths.
    assert {name: as_dict[name]["original"] for name in widths} == widths
