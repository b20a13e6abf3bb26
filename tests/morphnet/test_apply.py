"""Rebuilding Keras models at a learned structure, and the FiGS gate transforms.

``apply_structure`` rebuilds a model at the widths a MorphNet regularizer learned; these tests
check that the rebuilt model costs exactly what the structure predicts (FLOPs, model size and P100
latency, plus an independent FLOP and weight count read off the rebuilt Keras layers), that
surviving weights are carried over as slices of the seed's, that the input model is never
mutated, that structures made for another model are refused before anything is built, how layers
pruned to zero channels are handled, the width scaling helpers (``scale_structure``,
``expand_to_budget``), and the ``add_gating`` / ``remove_gating`` round trip.

Small hand-built models (plain CNN, residual, inception-like, MobileNet-like, Dense head) cover
each topology quirk fast; keras.applications models (MobileNetV2, ResNet50, DenseNet121 at
32x32, ``weights=None``) are marked ``slow`` and built once per module.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import trainers.morphnet.keras3.apply as apply_module
from trainers.morphnet import (
    ConfigurationError,
    GammaFlopsRegularizer,
    GammaLatencyRegularizer,
    GammaModelSizeRegularizer,
    GatedBatchNormalization,
    LayerStructure,
    LogisticSigmoidFlopsRegularizer,
    Structure,
    StructureError,
    add_gating,
    apply_structure,
    gate_layers,
    model_cost,
    remove_gating,
)
from trainers.morphnet.costs import TARGETS, latency_target
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.widths import (
    channel_map,
    check_structure,
    expand_to_budget,
    scale_structure,
    seed_structure,
    structure_cost,
)

L = keras.layers
THRESHOLD = 0.5  # gamma threshold: channels with |gamma| <= 0.5 are dead
SIDE = 16  # input side of the small models
CLASSES = 10
TARGET_KEYS = ("flops", "model_size", "latency")
PRUNABLE = (L.Conv2D, L.Dense, L.SeparableConv2D)  # DepthwiseConv2D is not a Conv2D in Keras 3


# ----- small models ---------------------------------------------------------------------------
def _cbr(x: Any, n: int, k: int, stride: int = 1, name: str = "conv") -> Any:
    """Conv (no bias) -> BatchNormalization -> ReLU, SAME padding."""
    x = L.Conv2D(n, k, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def _head(x: Any) -> Any:
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(CLASSES, name="head")(x)


def plain_cnn(widths: tuple[int, int, int] = (8, 12, 16), side: int = SIDE) -> Any:
    img = keras.Input((side, side, 3), name="img")
    x = _cbr(img, widths[0], 3, name="c1")
    x = _cbr(x, widths[1], 3, 2, name="c2")
    x = _cbr(x, widths[2], 3, name="c3")
    return keras.Model(img, _head(x), name="plain")


def residual_net() -> Any:
    img = keras.Input((SIDE, SIDE, 3), name="img")
    x = _cbr(img, 16, 3, name="stem")
    y = _cbr(x, 8, 3, name="b1a")
    y = L.Conv2D(16, 3, padding="same", use_bias=False, name="b1b")(y)
    y = L.BatchNormalization(name="b1b_bn")(y)
    x = L.ReLU(name="add1_relu")(L.Add(name="add1")([x, y]))
    s = L.Conv2D(24, 1, strides=2, use_bias=False, name="proj")(x)
    s = L.BatchNormalization(name="proj_bn")(s)
    y = _cbr(x, 12, 3, 2, name="b2a")
    y = L.Conv2D(24, 3, padding="same", use_bias=False, name="b2b")(y)
    y = L.BatchNormalization(name="b2b_bn")(y)
    x = L.ReLU(name="add2_relu")(L.Add(name="add2")([s, y]))
    return keras.Model(img, _head(x), name="residual")


def inception_net() -> Any:
    img = keras.Input((SIDE, SIDE, 3), name="img")
    x = _cbr(img, 12, 3, name="stem")
    a = _cbr(x, 8, 1, name="br1")
    b = _cbr(_cbr(x, 6, 1, name="br2a"), 10, 3, name="br2b")
    c = _cbr(x, 4, 1, name="br3")
    x = L.Concatenate(name="cat")([a, b, c])
    x = _cbr(x, 16, 3, 2, name="post")
    return keras.Model(img, _head(x), name="inception")


def mobile_net() -> Any:
    img = keras.Input((SIDE, SIDE, 3), name="img")
    x = _cbr(img, 16, 3, 2, name="stem")
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x)
    x = L.ReLU(name="dw1_relu")(L.BatchNormalization(name="dw1_bn")(x))
    x = _cbr(x, 24, 1, name="pw1")
    x = L.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2, use_bias=False, name="dw2"
    )(x)
    x = L.ReLU(name="dw2_relu")(L.BatchNormalization(name="dw2_bn")(x))
    x = _cbr(x, 20, 1, name="pw2")
    x = L.SeparableConv2D(32, 3, padding="same", use_bias=False, name="sep")(x)
    x = L.ReLU(name="sep_relu")(L.BatchNormalization(name="sep_bn")(x))
    return keras.Model(img, _head(x), name="mobile")


def dense_head_net() -> Any:
    img = keras.Input((SIDE, SIDE, 3), name="img")
    x = _cbr(img, 12, 3, name="c1")
    x = _cbr(x, 20, 3, 2, name="c2")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(24, use_bias=False, name="fc1")(x)
    x = L.ReLU(name="fc1_relu")(L.BatchNormalization(name="fc1_bn")(x))
    return keras.Model(img, L.Dense(CLASSES, name="head")(x), name="dense_head")


SMALL: dict[str, Callable[[], Any]] = {
    "plain": plain_cnn,
    "residual": residual_net,
    "inception": inception_net,
    "mobile": mobile_net,
    "dense_head": dense_head_net,
}
APPS = ("MobileNetV2", "ResNet50", "DenseNet121")


def _bns(model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, L.BatchNormalization)]


def randomize(model: Any, seed: int = 0, zero_dead: bool = False) -> Any:
    """Random BN gammas in [0, 1) (channel 0 kept at 1 so no layer vanishes), betas and stats.

    With ``zero_dead`` the gammas and betas at or below the threshold are set to 0, so a dead
    channel outputs exactly 0 after its BatchNormalization.
    """
    rng = np.random.default_rng(seed)
    for bn in _bns(model):
        n = bn.moving_mean.shape[0]
        bn.moving_mean.assign(rng.normal(0.0, 0.1, n).astype(np.float32))
        bn.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
        gamma = rng.uniform(0.0, 1.0, n).astype(np.float32)
        gamma[0] = 1.0
        beta = rng.normal(0.0, 0.1, n).astype(np.float32)
        if zero_dead:
            beta[gamma <= THRESHOLD] = 0.0
            gamma[gamma <= THRESHOLD] = 0.0
        if bn.scale:
            bn.gamma.assign(gamma)
        if bn.center:
            bn.beta.assign(beta)
    return model


def regularizer(model: Any, key: str) -> Any:
    if key == "latency":
        return GammaLatencyRegularizer(model, THRESHOLD, "P100")
    cls = {"flops": GammaFlopsRegularizer, "model_size": GammaModelSizeRegularizer}[key]
    return cls(model, THRESHOLD)


def inputs_for(model: Any, batch: int = 2, seed: int = 1) -> np.ndarray:
    shape = (batch, *tuple(int(d) for d in model.input.shape[1:]))
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


# ----- independent cost counter ---------------------------------------------------------------
def _spatial(shape: Any) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def count_costs(model: Any) -> tuple[int, int]:
    """(FLOPs, kernel weights) of a Keras model, read off its layers' kernel and output shapes.

    conv: 2 * out_spatial * kernel_spatial * in * out; depthwise: 2 * out_spatial *
    kernel_spatial * out; separable: its depthwise then its pointwise part; dense: 2 * in * out.
    """
    flops = weights = 0
    for layer in model.layers:
        if isinstance(layer, L.SeparableConv2D):
            dw, pw = tuple(layer.depthwise_kernel.shape), tuple(layer.pointwise_kernel.shape)
            mid = int(layer.input.shape[-1]) * layer.depth_multiplier
            out = _spatial(layer.output.shape)
            flops += 2 * out * dw[0] * dw[1] * mid + 2 * out * mid * pw[3]
            weights += dw[0] * dw[1] * mid + mid * pw[3]
        elif isinstance(layer, L.DepthwiseConv2D):
            k = tuple(layer.kernel.shape)
            out_channels = int(layer.output.shape[-1])
            flops += 2 * _spatial(layer.output.shape) * k[0] * k[1] * out_channels
            weights += k[0] * k[1] * out_channels
        elif isinstance(layer, L.Conv2D | L.Dense):
            k = tuple(layer.kernel.shape)
            c_in, c_out = int(layer.input.shape[-1]), int(layer.output.shape[-1])
            flops += 2 * _spatial(layer.output.shape) * math.prod(k[:-2]) * c_in * c_out
            weights += math.prod(k)
    return flops, weights


def test_independent_counter_on_a_hand_computed_model() -> None:
    img = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same")(img)  # 2*64*9*3*4, 9*3*4
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)  # 2*16*9*8, 72
    x = L.SeparableConv2D(6, 3, padding="same")(x)  # 2*16*9*8 + 2*16*8*6, 72 + 48
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(img, L.Dense(5)(x))  # 2*6*5, 30
    expected_flops = 2 * 64 * 9 * 12 + 2 * 16 * 72 + (2 * 16 * 72 + 2 * 16 * 48) + 2 * 30
    # The counter follows the FLOP and kernel-weight rules of the cost model.
    assert count_costs(model) == (expected_flops, 108 + 72 + 72 + 48 + 30)


# ----- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_models() -> dict[str, Any]:
    """Every small model, built once with random BN gammas, betas and statistics."""
    return {name: randomize(build(), seed=k) for k, (name, build) in enumerate(SMALL.items())}


@functools.cache
def application(name: str) -> Any:
    """A keras.applications network at 32x32, 10 classes, random BN gammas; built once."""
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=CLASSES
    )
    return randomize(model, seed=7)


def slow_apps(*names: str) -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.slow) for name in names]


def _snapshot(model: Any) -> tuple[list[np.ndarray], list[tuple[str, tuple]]]:
    shapes = [(layer.name, tuple(layer.output.shape)) for layer in model.layers]
    return [np.array(w) for w in model.get_weights()], shapes


def _assert_unchanged(
    model: Any, snapshot: tuple[list[np.ndarray], list[tuple[str, tuple]]]
) -> None:
    weights, shapes = snapshot
    now_weights, now_shapes = _snapshot(model)
    # A transform never mutates its input: same layers, same widths, same weight values.
    assert now_shapes == shapes
    assert len(now_weights) == len(weights)
    for before, after in zip(weights, now_weights, strict=True):
        np.testing.assert_array_equal(before, after)


def _pruned_fraction(structure: Structure) -> float:
    layers = structure.layers.values()
    return sum(s.alive < s.original for s in layers) / len(layers)


def _check_costs(model: Any, min_pruned: float) -> None:
    """Rule 1 on one model: rebuilt cost == predicted cost == structure_cost, for every target."""
    new = None
    for key in TARGET_KEYS:
        reg = regularizer(model, key)
        structure = reg.structure()
        if new is None:
            assert _pruned_fraction(structure) >= min_pruned
            assert all(s.alive >= 1 for s in structure.layers.values())
            new = apply_structure(model, structure)
            # The rebuilt model runs and keeps the seed's output shape.
            out = predict(new, inputs_for(model))
            assert out.shape == (2, CLASSES)
            flops, weights = count_costs(new)
            first = structure
        # The alive channels come from the gammas only, so every target learns the same widths.
        assert structure.layers == first.layers
        target = reg.target
        predicted = structure.learned_cost
        # The rebuilt model costs exactly what the regularizer predicted for the structure.
        assert model_cost(new, target) == pytest.approx(predicted, rel=1e-9)
        assert structure_cost(reg.graph, structure, target) == pytest.approx(predicted, rel=1e-9)
        assert predicted < reg.seed_cost
        if key == "flops":
            # An independent FLOP count of the rebuilt layers agrees with the cost model.
            assert flops == pytest.approx(predicted, rel=1e-9)
            assert model_cost(new, "flops") == model_cost(new, TARGETS["flops"])
        if key == "model_size":
            # So does an independent count of the rebuilt kernels' weights.
            assert weights == pytest.approx(predicted, rel=1e-9)


# ----- 1. cost of the rebuilt model -------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_rebuilt_small_model_costs_what_the_structure_predicts(
    name: str, small_models: dict
) -> None:
    _check_costs(small_models[name], min_pruned=0.5)


def test_model_cost_of_the_seed_is_the_seed_cost(small_models: dict) -> None:
    model = small_models["mobile"]
    for key in TARGET_KEYS:
        reg = regularizer(model, key)
        # With every channel alive, model_cost is the regularizer's seed cost.
        assert model_cost(model, reg.target) == pytest.approx(reg.seed_cost, rel=1e-9)
    assert reg.target.cost_name == latency_target("P100").cost_name
    assert count_costs(model)[0] == model_cost(model, "flops")


@pytest.mark.parametrize("name", slow_apps(*APPS))
def test_rebuilt_application_costs_what_the_structure_predicts(name: str) -> None:
    _check_costs(application(name), min_pruned=0.5)


# ----- 2. keep_weights ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_keep_weights_with_nothing_removed_reproduces_outputs(
    name: str, small_models: dict
) -> None:
    model = small_models[name]
    reg = GammaFlopsRegularizer(model, THRESHOLD)
    x = inputs_for(model)
    for structure in (seed_structure(reg.graph), GammaFlopsRegularizer(model, 0.0).structure()):
        assert all(s.alive == s.original for s in structure.layers.values())
        new = apply_structure(model, structure, keep_weights=True)
        # Nothing pruned and weights kept: the rebuilt model computes the same function.
        np.testing.assert_allclose(predict(new, x), predict(model, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(SMALL))
def test_keep_weights_removing_zeroed_channels_reproduces_outputs(name: str) -> None:
    model = randomize(SMALL[name](), seed=3, zero_dead=True)
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    assert _pruned_fraction(structure) >= 0.6
    new = apply_structure(model, structure, keep_weights=True)
    x = inputs_for(model)
    # Dead channels output exactly 0, so cutting them with the kept weights changes nothing.
    np.testing.assert_allclose(predict(new, x), predict(model, x), rtol=1e-5, atol=1e-6)


def test_keep_weights_carries_slices_of_the_seed_weights(small_models: dict) -> None:
    model = small_models["plain"]
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    new = apply_structure(model, structure, keep_weights=True)
    c1, c2, c3 = (np.array(structure.layers[n].alive_channels) for n in ("c1", "c2", "c3"))
    assert len(c2) < 12 and len(c1) < 8
    old_kernel = np.asarray(model.get_layer("c2").kernel)
    # A kept conv kernel is the seed's, sliced to the alive input and output channels.
    np.testing.assert_array_equal(
        np.asarray(new.get_layer("c2").kernel), old_kernel[:, :, c1][..., c2]
    )
    old_bn, new_bn = model.get_layer("c2_bn"), new.get_layer("c2_bn")
    for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
        # BN parameters and statistics are the seed's at the alive channels.
        np.testing.assert_array_equal(
            np.asarray(getattr(new_bn, attr)), np.asarray(getattr(old_bn, attr))[c2]
        )
    head = np.asarray(model.get_layer("head").kernel)
    np.testing.assert_array_equal(np.asarray(new.get_layer("head").kernel), head[c3])
    np.testing.assert_array_equal(
        np.asarray(new.get_layer("head").bias), np.asarray(model.get_layer("head").bias)
    )


def test_keep_weights_slices_depthwise_and_separable_kernels(small_models: dict) -> None:
    model = small_models["mobile"]
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    new = apply_structure(model, structure, keep_weights=True)
    stem, pw1, pw2, sep = (
        np.array(structure.layers[n].alive_channels) for n in ("stem", "pw1", "pw2", "sep")
    )
    old, now = model.get_layer, new.get_layer
    # A depthwise kernel keeps the input channels that survive before it.
    np.testing.assert_array_equal(
        np.asarray(now("dw1").kernel), np.asarray(old("dw1").kernel)[:, :, stem]
    )
    np.testing.assert_array_equal(
        np.asarray(now("dw2").kernel), np.asarray(old("dw2").kernel)[:, :, pw1]
    )
    # With depth_multiplier m, input channel c owns outputs c*m .. c*m+m-1 (and their BN).
    mid = (pw1[:, None] * 2 + np.arange(2)).reshape(-1)
    np.testing.assert_array_equal(
        np.asarray(now("dw2_bn").gamma), np.asarray(old("dw2_bn").gamma)[mid]
    )
    np.testing.assert_array_equal(
        np.asarray(now("sep").depthwise_kernel), np.asarray(old("sep").depthwise_kernel)[:, :, pw2]
    )
    np.testing.assert_array_equal(
        np.asarray(now("sep").pointwise_kernel),
        np.asarray(old("sep").pointwise_kernel)[:, :, pw2][..., sep],
    )


APP_SLICES = {  # conv checked, the prunable layer feeding it, a BN checked, that BN's conv
    "MobileNetV2": ("block_1_project", "block_1_expand", "block_1_project_BN", "block_1_project"),
    "ResNet50": (
        "conv2_block1_2_conv",
        "conv2_block1_1_conv",
        "conv2_block1_2_bn",
        "conv2_block1_2_conv",
    ),
    "DenseNet121": (
        "conv2_block1_2_conv",
        "conv2_block1_1_conv",
        "conv2_block1_1_bn",
        "conv2_block1_1_conv",
    ),
}


@pytest.mark.parametrize("name", slow_apps(*APPS))
def test_application_keep_weights(name: str) -> None:
    app = application(name)
    before = _snapshot(app)
    reg = GammaFlopsRegularizer(app, THRESHOLD)
    x = inputs_for(app)
    same = apply_structure(app, seed_structure(reg.graph), keep_weights=True)
    # Nothing pruned and weights kept: the same outputs.
    np.testing.assert_allclose(predict(same, x), predict(app, x), rtol=1e-5, atol=1e-6)
    structure = reg.structure()
    new = apply_structure(app, structure, keep_weights=True)
    assert predict(new, x).shape == (2, CLASSES)
    conv, feeder, bn, bn_owner = APP_SLICES[name]
    out_ids = np.array(structure.layers[conv].alive_channels)
    in_ids = np.array(structure.layers[feeder].alive_channels)
    bn_ids = np.array(structure.layers[bn_owner].alive_channels)
    assert len(in_ids) < structure.layers[feeder].original
    assert len(bn_ids) < structure.layers[bn_owner].original
    # The kept kernel and BN gamma are slices of the seed's at the alive channels.
    np.testing.assert_array_equal(
        np.asarray(new.get_layer(conv).kernel),
        np.asarray(app.get_layer(conv).kernel)[:, :, in_ids][..., out_ids],
    )
    np.testing.assert_array_equal(
        np.asarray(new.get_layer(bn).gamma), np.asarray(app.get_layer(bn).gamma)[bn_ids]
    )
    _assert_unchanged(app, before)


def test_keep_weights_refuses_channels_the_seed_lacks(small_models: dict) -> None:
    model = small_models["plain"]
    wider = scale_structure(GammaFlopsRegularizer(model, THRESHOLD).structure(), 3.0)
    assert wider.layers["c1"].alive > wider.layers["c1"].original
    # Channels beyond the seed's have no weights to keep.
    with pytest.raises(StructureError, match="keep_weights"):
        apply_structure(model, wider, keep_weights=True)


# ----- 3. no mutation -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_transforms_do_not_mutate_the_input_model(name: str, small_models: dict) -> None:
    model = small_models[name]
    before = _snapshot(model)
    x = inputs_for(model)
    y = predict(model, x)
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    apply_structure(model, structure)
    apply_structure(model, structure, keep_weights=True)
    apply_structure(model, structure, min_channels=2)
    gated = add_gating(model)
    _assert_unchanged(model, before)
    gated_before = _snapshot(gated)
    remove_gating(gated)
    _assert_unchanged(gated, gated_before)
    np.testing.assert_array_equal(predict(model, x), y)


# ----- 4. structures of another model ---------------------------------------------------------
@pytest.fixture()
def no_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if apply_structure gets as far as building a model."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("apply_structure started building before checking the structure")

    monkeypatch.setattr(apply_module, "rebuild", refuse)


def test_structure_with_other_layer_names_is_refused(small_models: dict, no_rebuild: None) -> None:
    other = GammaFlopsRegularizer(small_models["inception"], THRESHOLD).structure()
    # A structure naming layers the model lacks belongs to another model.
    with pytest.raises(StructureError, match="does not have"):
        apply_structure(small_models["plain"], other)


def test_structure_with_other_widths_is_refused(small_models: dict, no_rebuild: None) -> None:
    structure = GammaFlopsRegularizer(small_models["plain"], THRESHOLD).structure()
    other = plain_cnn(widths=(8, 14, 16))
    # Same layer names but another seed width: refused before building.
    with pytest.raises(StructureError, match="14 channels in this model but 12"):
        apply_structure(other, structure)
    # Same names and widths but another input shape: the fingerprint differs.
    with pytest.raises(StructureError, match="fingerprint"):
        apply_structure(plain_cnn(side=20), structure)
    # Alive channels outside the seed's range are refused too.
    data = structure.to_dict()
    data["layers"]["c1"]["alive_channels"][-1] = 99
    with pytest.raises(StructureError, match="outside"):
        apply_structure(small_models["plain"], data)


def test_missing_structure_file_is_refused(small_models: dict, tmp_path: Any) -> None:
    # A path that is not a file raises StructureError, not OSError.
    with pytest.raises(StructureError, match="does not exist"):
        apply_structure(small_models["plain"], tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StructureError, match="not valid JSON"):
        apply_structure(small_models["plain"], str(tmp_path / "bad.json"))


def test_structure_dict_path_and_object_give_the_same_model(
    small_models: dict, tmp_path: Any
) -> None:
    model = small_models["inception"]
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    path = structure.save(tmp_path / "structure.json")
    x = inputs_for(model)
    built = {
        "object": apply_structure(model, structure, keep_weights=True),
        "dict": apply_structure(model, json.loads(path.read_text()), keep_weights=True),
        "path": apply_structure(model, path, keep_weights=True),
        "str": apply_structure(model, str(path), keep_weights=True),
    }
    reference = built["object"]
    for new in built.values():
        # A Structure, its JSON dict and its file path all rebuild the same model.
        assert [tuple(layer.output.shape) for layer in new.layers] == [
            tuple(layer.output.shape) for layer in reference.layers
        ]
        np.testing.assert_array_equal(predict(new, x), predict(reference, x))
        assert model_cost(new) == pytest.approx(structure.learned_cost, rel=1e-9)


# ----- 5. zero-width layers -------------------------------------------------------------------
def _kill(model: Any, layer: str) -> None:
    """Every gamma of ``layer``'s BN below the threshold (the whole layer dies)."""
    bn = model.get_layer(f"{layer}_bn")
    bn.gamma.assign(np.full(bn.gamma.shape, 0.1, np.float32))


def test_zero_width_branch_of_a_concat_is_removed() -> None:
    model = randomize(inception_net(), seed=5)
    _kill(model, "br3")
    reg = GammaFlopsRegularizer(model, THRESHOLD)
    structure = reg.structure()
    assert structure.layers["br3"].alive == 0
    new = apply_structure(model, structure)
    names = {layer.name for layer in new.layers}
    # A branch pruned to zero channels disappears with its BN and activation.
    assert not names & {"br3", "br3_bn", "br3_relu"}
    width = structure.layers["br1"].alive + structure.layers["br2b"].alive
    # The concat narrows to the surviving branches' channels.
    assert new.get_layer("cat").output.shape[-1] == width
    assert new.get_layer("post").kernel.shape[2] == width
    assert predict(new, inputs_for(model)).shape == (2, CLASSES)
    # The removed branch costs nothing: the rebuilt cost is still the predicted one.
    assert model_cost(new, reg.target) == pytest.approx(structure.learned_cost, rel=1e-9)
    assert count_costs(new)[0] == pytest.approx(structure.learned_cost, rel=1e-9)
    # keep_weights still works: the remaining layers keep their slices.
    kept = apply_structure(model, structure, keep_weights=True)
    ids = np.array(structure.layers["br1"].alive_channels)
    np.testing.assert_array_equal(
        np.asarray(kept.get_layer("br1_bn").gamma), np.asarray(model.get_layer("br1_bn").gamma)[ids]
    )


def test_concat_with_one_surviving_branch_and_with_none() -> None:
    model = randomize(inception_net(), seed=6)
    _kill(model, "br1")
    _kill(model, "br3")
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    new = apply_structure(model, structure)
    # A concat left with one input is replaced by that input.
    assert "cat" not in {layer.name for layer in new.layers}
    assert new.get_layer("post").kernel.shape[2] == structure.layers["br2b"].alive
    assert predict(new, inputs_for(model)).shape == (2, CLASSES)
    _kill(model, "br2b")
    # With every branch gone the network is cut: an error that points at min_channels.
    with pytest.raises(StructureError, match="min_channels"):
        apply_structure(model, GammaFlopsRegularizer(model, THRESHOLD).structure())


def test_zero_width_layer_in_a_chain_needs_min_channels() -> None:
    model = randomize(plain_cnn(), seed=8)
    _kill(model, "c2")
    reg = GammaFlopsRegularizer(model, THRESHOLD)
    structure = reg.structure()
    assert structure.layers["c2"].alive == 0
    # A chain conv pruned to zero would cut the network: StructureError naming min_channels.
    with pytest.raises(StructureError, match="min_channels"):
        apply_structure(model, structure)
    new = apply_structure(model, structure, min_channels=1)
    # min_channels raises the dead layer to that width and leaves wider layers alone.
    assert new.get_layer("c2").filters == 1
    for name in ("c1", "c3"):
        assert new.get_layer(name).filters == structure.layers[name].alive
    assert predict(new, inputs_for(model)).shape == (2, CLASSES)
    raised = structure.to_dict()
    raised["layers"]["c2"].update(alive=1, alive_channels=[0])
    assert model_cost(new, reg.target) == pytest.approx(
        structure_cost(reg.graph, Structure.from_dict(raised), reg.target), rel=1e-9
    )
    # min_channels also applies with keep_weights (the lowest seed channels are taken).
    kept = apply_structure(model, structure, keep_weights=True, min_channels=1)
    np.testing.assert_array_equal(
        np.asarray(kept.get_layer("c2_bn").gamma), np.asarray(model.get_layer("c2_bn").gamma)[:1]
    )


def test_cuts_network_tells_a_dead_chain_from_a_dead_branch() -> None:
    from trainers.morphnet.keras3 import cuts_network

    chain = randomize(plain_cnn(), seed=8)
    # nothing dead: no cut
    assert not cuts_network(chain, GammaFlopsRegularizer(chain, THRESHOLD).structure())
    _kill(chain, "c2")
    # a dead conv in a chain leaves no path to the output
    assert cuts_network(chain, GammaFlopsRegularizer(chain, THRESHOLD).structure())
    branches = randomize(inception_net(), seed=6)
    _kill(branches, "br1")
    _kill(branches, "br3")
    # one live branch of the concat is still a path
    assert not cuts_network(branches, GammaFlopsRegularizer(branches, THRESHOLD).structure())
    _kill(branches, "br2b")
    assert cuts_network(branches, GammaFlopsRegularizer(branches, THRESHOLD).structure())
    residual = randomize(residual_net(), seed=3)
    _kill(residual, "b1a")
    structure = GammaFlopsRegularizer(residual, THRESHOLD).structure()
    # a dead residual branch leaves the skip path (apply_structure alone would refuse it)
    assert structure.layers["b1a"].alive == 0
    assert not cuts_network(residual, structure)


# ----- 6. scaling and expanding ---------------------------------------------------------------
def test_scale_structure_widths() -> None:
    structure = Structure(
        layers={
            "a": LayerStructure(6, 12, (0, 2, 3, 5, 7, 11)),
            "b": LayerStructure(1, 4, (2,)),
            "c": LayerStructure(0, 4, ()),
            "d": LayerStructure(7, 8, tuple(range(7))),
        }
    )
    half, double = scale_structure(structure, 0.5), scale_structure(structure, 2.0)
    # Widths are alive * multiplier rounded, at least 1 for a live layer, 0 stays 0.
    assert {n: s.alive for n, s in half.layers.items()} == {"a": 3, "b": 1, "c": 0, "d": 4}
    assert {n: s.alive for n, s in double.layers.items()} == {"a": 12, "b": 2, "c": 0, "d": 14}
    # Narrowing keeps the first alive channels; widening keeps all of them (the rest are new).
    assert half.layers["a"].alive_channels == (0, 2, 3)
    assert double.layers["a"].alive_channels == (0, 2, 3, 5, 7, 11)
    assert double.layers["d"].original == 8
    assert half.extra["width_multiplier"] == 0.5
    assert scale_structure(structure, 0.5, min_channels=0).layers["b"].alive == 0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(StructureError, match="multiplier"):
            scale_structure(structure, bad)


@pytest.mark.parametrize("multiplier", [0.5, 2.0])
def test_scaled_structure_rebuilds_at_its_cost(multiplier: float, small_models: dict) -> None:
    model = small_models["residual"]
    reg = GammaFlopsRegularizer(model, THRESHOLD)
    learned = reg.structure()
    # The logits layer is never resized by apply_structure: scale the hidden layers only.
    assert predict(
        apply_structure(model, scale_structure(learned, multiplier)), inputs_for(model)
    ).shape == (2, CLASSES)
    structure = dataclasses.replace(
        learned, layers={n: s for n, s in learned.layers.items() if n != "head"}
    )
    scaled = scale_structure(structure, multiplier)
    for name, s in scaled.layers.items():
        alive = structure.layers[name].alive
        # Each width is the rounded product, at least 1.
        assert s.alive >= 1 and abs(s.alive - alive * multiplier) <= 0.5
    new = apply_structure(model, scaled)
    assert new.get_layer("b2a").filters == scaled.layers["b2a"].alive
    assert predict(new, inputs_for(model)).shape[0] == 2
    # The rebuilt scaled model costs what structure_cost predicts for the scaled structure.
    assert model_cost(new, reg.target) == pytest.approx(
        structure_cost(reg.graph, scaled, reg.target), rel=1e-9
    )
    assert count_costs(new)[0] == pytest.approx(model_cost(new, reg.target), rel=1e-9)


def _check_expand(model: Any, key: str, factors: tuple[float, ...], within: float) -> None:
    reg = regularizer(model, key)
    structure, target = reg.structure(), reg.target
    cost = structure_cost(reg.graph, structure, target)
    for factor in factors:
        budget = factor * cost
        expanded, got = expand_to_budget(reg.graph, structure, target, budget)
        multiplier = expanded.extra["width_multiplier"]
        # The expanded structure fits the budget and comes within a few percent of it.
        assert got <= budget
        assert got >= (1 - within) * budget
        assert got == pytest.approx(structure_cost(reg.graph, expanded, target), rel=1e-12)
        # It is the largest uniform scaling that fits (up to the bisection's tolerance).
        base = dataclasses.replace(
            structure, layers={n: s for n, s in structure.layers.items() if n in expanded.layers}
        )
        bigger = structure_cost(reg.graph, scale_structure(base, multiplier * 1.002), target)
        assert bigger > budget
    new = apply_structure(model, expanded)
    # The model rebuilt from the expanded structure has the returned cost and as many outputs.
    assert model_cost(new, target) == pytest.approx(got, rel=1e-9)
    assert new.output.shape == model.output.shape


@pytest.mark.parametrize("key", TARGET_KEYS)
@pytest.mark.parametrize(("name", "within"), [("mobile", 0.03), ("residual", 0.08)])
def test_expand_to_budget(name: str, within: float, key: str, small_models: dict) -> None:
    # Widths move in whole channels, so a tiny net (residual: 4..24 channels) lands coarser.
    _check_expand(small_models[name], key, (1.5, 2.5, 3.9), within=within)


def test_expand_to_budget_below_the_narrowest_structure(small_models: dict) -> None:
    reg = GammaFlopsRegularizer(small_models["plain"], THRESHOLD)
    # A budget no scaling can meet is an error, as is a non-positive one.
    with pytest.raises(StructureError, match="raise the budget"):
        expand_to_budget(reg.graph, reg.structure(), reg.target, 1.0)
    with pytest.raises(StructureError, match="budget must be > 0"):
        expand_to_budget(reg.graph, reg.structure(), reg.target, 0.0)


@pytest.mark.slow
def test_expand_resnet50_to_budget() -> None:
    _check_expand(application("ResNet50"), "flops", (1.3, 2.2, 3.7), within=0.01)


# ----- 7. FiGS gates --------------------------------------------------------------------------
def _gates(model: Any) -> dict[str, Any]:
    """``<layer>_gate`` -> the gate of that layer, a gate layer or a gated batch norm."""
    return {f"{owner}_gate": gate for owner, gate in gate_layers(model).items()}


def _expected_gated(model: Any) -> set[str]:
    outputs = {t._keras_history[0].name for t in model.outputs}
    return {
        f"{layer.name}_gate"
        for layer in model.layers
        if isinstance(layer, PRUNABLE) and layer.name not in outputs
    }


def _set_logits(gated: Any, make: Callable[[str, int], np.ndarray]) -> None:
    for name, gate in _gates(gated).items():
        gate.mask_logits.assign(
            make(name[: -len("_gate")], gate.mask_logits.shape[0]).astype(np.float32)
        )


def _gate_input(gated: Any, gate: str) -> str:
    return gated.get_layer(gate)._inbound_nodes[0].input_tensors[0]._keras_history[0].name


@pytest.mark.parametrize("name", list(SMALL))
def test_add_gating_places_one_gate_per_prunable_layer(name: str, small_models: dict) -> None:
    model = small_models[name]
    gated = add_gating(model)
    # One gate per prunable layer that does not produce a model output, named <layer>_gate.
    assert set(_gates(gated)) == _expected_gated(model)
    assert "head_gate" not in _gates(gated)
    # Every original layer is kept, with its weights (a gated batch norm adds the gate's).
    for layer in model.layers:
        kept = {w.name: np.asarray(w) for w in gated.get_layer(layer.name).weights}
        for w in layer.weights:
            np.testing.assert_array_equal(np.asarray(w), kept[w.name])


def test_gates_sit_after_the_conv_bn_activation_chain(small_models: dict) -> None:
    gated = add_gating(small_models["residual"], fold=False)
    # The gate follows the activation, or the BN when an Add consumes the BN directly.
    assert _gate_input(gated, "stem_gate") == "stem_relu"
    assert _gate_input(gated, "b1a_gate") == "b1a_relu"
    assert _gate_input(gated, "b1b_gate") == "b1b_bn"
    assert _gate_input(gated, "proj_gate") == "proj_bn"
    gated = add_gating(small_models["dense_head"], fold=False)
    assert _gate_input(gated, "fc1_gate") == "fc1_relu"


def test_gates_fold_into_batch_norms_followed_by_relus_only() -> None:
    img = keras.Input((SIDE, SIDE, 3), name="img")
    x = _cbr(img, 8, 3, name="a")  # conv -> BN -> ReLU: folds
    x = L.Conv2D(8, 3, padding="same", name="b")(x)
    x = L.ReLU(max_value=6.0, name="b_relu6")(L.BatchNormalization(name="b_bn")(x))  # ReLU6: no
    x = L.Conv2D(8, 3, padding="same", name="c")(x)
    x = L.BatchNormalization(name="c_bn")(L.ReLU(name="c_relu")(x))  # BN last: folds
    x = L.Conv2D(8, 3, padding="same", name="d")(x)
    x = L.Activation("swish", name="d_swish")(L.BatchNormalization(name="d_bn")(x))  # no
    x = L.Conv2D(8, 3, padding="same", name="e")(x)
    x = L.LeakyReLU(name="e_leaky")(L.BatchNormalization(name="e_bn")(x))  # folds
    x = L.ReLU(name="f_relu")(L.Conv2D(8, 3, padding="same", name="f")(x))  # no BN: a gate
    model = keras.Model(img, _head(x), name="chains")
    gated = add_gating(model)
    kinds = {owner: type(gate).__name__ for owner, gate in gate_layers(gated).items()}
    assert kinds == {
        "a": "GatedBatchNormalization",
        "b": "LogisticSigmoidGating",
        "c": "GatedBatchNormalization",
        "d": "LogisticSigmoidGating",
        "e": "GatedBatchNormalization",
        "f": "LogisticSigmoidGating",
    }
    # a folded gate keeps its batch norm's name; the others sit at the end of their chain
    assert gate_layers(gated)["a"].name == "a_bn"
    assert _gate_input(gated, "b_gate") == "b_relu6"
    assert _gate_input(gated, "f_gate") == "f_relu"
    # the layers around are unchanged: same names, in the same order, but the gates
    assert [n for n in (layer.name for layer in gated.layers) if not n.endswith("_gate")] == [
        layer.name for layer in model.layers
    ]
    with pytest.raises(ConfigurationError, match=r"\['temprature'\]"):
        add_gating(model, temprature=0.5)


def _fixed_noise(shape: Any, seed: Any = None) -> Any:
    """Logistic noise that depends only on the number of channels (the same in both models)."""
    n = int(shape[0])
    u = (np.arange(n, dtype=np.float64) * 0.618034 + 0.1) % 1.0
    return keras.ops.convert_to_tensor(np.log(u) - np.log1p(-u), "float32")


def _step(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Training-mode outputs, FiGS term and the gradient of (loss + term) for every weight, keyed
    by layer/weight (a gate's logits by the layer it gates)."""
    import tensorflow as tf

    reg = LogisticSigmoidFlopsRegularizer(model)
    owners = {id(gate.mask_logits): owner for owner, gate in gate_layers(model).items()}
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        term = reg.get_regularization_term()
        total = loss_fn(y, out) + 1e-3 * term
    variables = model.trainable_variables
    grads = tape.gradient(total, [v.value for v in variables])
    keyed = {}
    for v, g in zip(variables, grads, strict=True):
        key = f"gate:{owners[id(v)]}" if id(v) in owners else v.path.split("/", 1)[0] + "/" + v.name
        keyed[key] = np.asarray(g)
    return np.asarray(out), float(term), keyed


@pytest.mark.parametrize("name", ["residual", "dense_head", "mobile"])
def test_folded_gates_train_exactly_as_gates_after_the_activation(
    name: str, small_models: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.morphnet.keras3 import gating

    monkeypatch.setattr(gating, "logistic_noise", _fixed_noise)
    model = small_models[name]
    folded = add_gating(model, temperature=0.5)
    apart = add_gating(model, fold=False, temperature=0.5)
    assert any(isinstance(g, GatedBatchNormalization) for g in gate_layers(folded).values())
    assert set(gate_layers(folded)) == set(gate_layers(apart))
    for gated in (folded, apart):
        _set_logits(gated, _soft_logits)
    x = inputs_for(model, batch=4)
    y = np.arange(4) % CLASSES
    out_f, term_f, grads_f = _step(folded, x, y)
    out_a, term_a, grads_a = _step(apart, x, y)
    # the same function of the same weights: outputs, FiGS term and every gradient
    np.testing.assert_allclose(out_f, out_a, rtol=1e-5, atol=1e-6)
    assert term_f == pytest.approx(term_a, rel=1e-6)
    assert set(grads_f) == set(grads_a)
    for key in grads_f:
        np.testing.assert_allclose(grads_f[key], grads_a[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # the same moving statistics after the step, and the same learned structure
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            f, a = folded.get_layer(layer.name), apart.get_layer(layer.name)
            np.testing.assert_allclose(
                np.asarray(f.moving_mean), np.asarray(a.moving_mean), rtol=1e-5, atol=1e-7
            )
    s_f = LogisticSigmoidFlopsRegularizer(folded).structure()
    s_a = LogisticSigmoidFlopsRegularizer(apart).structure()
    assert {n: s.alive_channels for n, s in s_f.layers.items()} == {
        n: s.alive_channels for n, s in s_a.layers.items()
    }


def _round_trip_all_open(model: Any, gated: Any = None) -> None:
    gated = add_gating(model) if gated is None else gated
    _set_logits(gated, lambda name, n: np.full(n, 30.0))
    x = inputs_for(model)
    y = predict(model, x)
    np.testing.assert_allclose(predict(gated, x), y, rtol=1e-5, atol=1e-5)
    stripped, structure = remove_gating(gated)
    # remove_gating gives back a gate-free model computing the original function.
    assert not _gates(stripped)
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(predict(stripped, x), y, rtol=1e-5, atol=1e-5)
    # All gates open: the structure keeps every channel of every gated layer (and the
    # ungated output layer at full width).
    assert set(_gates(gated)) <= {f"{n}_gate" for n in structure.layers}
    assert all(s.alive == s.original for s in structure.layers.values())
    assert all(s.alive_channels == tuple(range(s.original)) for s in structure.layers.values())


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("name", list(SMALL))
def test_remove_gating_with_all_gates_open_restores_the_model(
    name: str, fold: bool, small_models: dict
) -> None:
    _round_trip_all_open(small_models[name], add_gating(small_models[name], fold=fold))


@pytest.mark.parametrize("name", slow_apps("MobileNetV2", "ResNet50"))
def test_application_gating_round_trip(name: str) -> None:
    app = application(name)
    before = _snapshot(app)
    gated = add_gating(app)
    assert set(_gates(gated)) == _expected_gated(app)
    _round_trip_all_open(app, gated)
    _assert_unchanged(app, before)


def _closed(name: str, n: int) -> np.ndarray:
    """Channels whose gate a test closes: 1 and 3, plus channel 0 of c2 / br2a / fc1."""
    closed = np.zeros(n, bool)
    closed[[1, 3]] = True
    if name in ("c2", "br2a", "fc1", "stem"):
        closed[0] = True
    return closed


def _soft_logits(name: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(len(name) * 100 + n)
    return np.where(_closed(name, n), -rng.uniform(0.5, 4.0, n), rng.uniform(0.5, 4.0, n))


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("keep_first", [True, False])
@pytest.mark.parametrize("name", ["plain", "inception", "dense_head"])
def test_remove_gating_drops_exactly_the_closed_channels(
    name: str, keep_first: bool, fold: bool, small_models: dict
) -> None:
    model = small_models[name]
    gated = add_gating(model, keep_first_channel_alive=keep_first, fold=fold)
    _set_logits(gated, _soft_logits)
    x = inputs_for(model)
    y_gated = predict(gated, x)
    stripped, structure = remove_gating(gated)
    gates = set(_gates(gated))
    for layer, s in structure.layers.items():
        if f"{layer}_gate" not in gates:
            # an ungated (output) layer stays whole
            assert s.alive == s.original
            continue
        closed = _closed(layer, s.original)
        if keep_first:
            closed[0] = False
        # A channel is dropped iff its logit is <= 0, except channel 0 when kept alive.
        assert s.alive_channels == tuple(np.flatnonzero(~closed))
        assert s.alive == s.original - closed.sum()
    # The gates' inference scales (sigmoid of open logits, 0 for closed, 1 for a kept channel 0)
    # are folded into the model: it computes what the gated model computes at inference.
    np.testing.assert_allclose(predict(stripped, x), y_gated, rtol=1e-5, atol=1e-6)
    pruned = apply_structure(stripped, structure, keep_weights=True)
    # Closed channels output exactly 0, so removing them keeps the gated model's outputs.
    np.testing.assert_allclose(predict(pruned, x), y_gated, rtol=1e-5, atol=1e-6)


def test_remove_gating_folds_into_the_kernel_without_bn() -> None:
    img = keras.Input((8, 8, 3))
    x = L.ReLU(name="k1_relu")(L.Conv2D(6, 3, padding="same", name="k1")(img))
    x = L.LeakyReLU(negative_slope=0.2, name="k2_act")(L.Conv2D(8, 3, name="k2")(x))
    model = keras.Model(img, _head(x), name="no_bn")
    rng = np.random.default_rng(4)
    for name in ("k1", "k2"):
        bias = model.get_layer(name).bias
        bias.assign(rng.normal(0.0, 0.3, bias.shape).astype(np.float32))
    gated = add_gating(model)
    assert _gate_input(gated, "k1_gate") == "k1_relu"
    _set_logits(gated, lambda name, n: np.where(np.arange(n) % 3 == 0, -2.0, 1.0))
    x = inputs_for(model)
    stripped, structure = remove_gating(gated)
    # Without a BN the inference scale goes into the kernel and bias (exact through a ReLU).
    np.testing.assert_allclose(predict(stripped, x), predict(gated, x), rtol=1e-5, atol=1e-6)
    assert structure.layers["k1"].alive_channels == (0, 1, 2, 4, 5)
    # Logits [-2, 1, 1, -2, 1, 1]: channel 0 kept at scale 1, open ones sigmoid(1), closed 0.
    open_scale = 1.0 / (1.0 + math.exp(-1.0))
    scale = np.array([1.0, open_scale, open_scale, 0.0, open_scale, open_scale])
    np.testing.assert_allclose(
        np.asarray(stripped.get_layer("k1").bias),
        np.asarray(model.get_layer("k1").bias) * scale,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(stripped.get_layer("k1").kernel),
        np.asarray(model.get_layer("k1").kernel) * scale,
        rtol=1e-6,
    )


def test_remove_gating_folds_into_a_separable_convs_pointwise_kernel() -> None:
    img = keras.Input((8, 8, 3))
    x = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, name="s1")(img)
    x = L.ReLU(name="s1_relu")(x)
    model = keras.Model(img, _head(L.Conv2D(4, 3, name="k2")(x)), name="separable")
    bias = model.get_layer("s1").bias
    bias.assign(np.random.default_rng(5).normal(0.0, 0.3, bias.shape).astype(np.float32))
    gated = add_gating(model)
    _set_logits(gated, lambda name, n: np.where(np.arange(n) % 3 == 0, -2.0, 1.0))
    x = inputs_for(model)
    stripped, structure = remove_gating(gated)
    # the scale goes on the output axis of the pointwise kernel and the bias, where the
    # separable conv's spec says its output channels are; the depthwise kernel is untouched
    np.testing.assert_allclose(predict(stripped, x), predict(gated, x), rtol=1e-5, atol=1e-6)
    old, new = model.get_layer("s1"), stripped.get_layer("s1")
    np.testing.assert_array_equal(
        np.asarray(new.depthwise_kernel), np.asarray(old.depthwise_kernel)
    )
    open_scale = 1.0 / (1.0 + math.exp(-1.0))
    scale = np.array([1.0, open_scale, open_scale, 0.0, open_scale, open_scale])
    np.testing.assert_allclose(
        np.asarray(new.pointwise_kernel), np.asarray(old.pointwise_kernel) * scale, rtol=1e-6
    )
    assert structure.layers["s1"].alive_channels == (0, 1, 2, 4, 5)


def test_logistic_sigmoid_regularizer_on_a_gated_model(small_models: dict) -> None:
    model = small_models["inception"]
    gated = add_gating(model)
    _set_logits(gated, lambda name, n: np.where(_closed(name, n), -30.0, 30.0))
    gated(inputs_for(model), training=True)  # draws this step's gate samples
    reg = LogisticSigmoidFlopsRegularizer(gated)
    learned = reg.structure()
    stripped, structure = remove_gating(gated)
    # The regularizer's structure names the seed's prunable layers and agrees with the gates.
    assert set(structure.layers) <= set(learned.layers)
    for layer, s in structure.layers.items():
        assert learned.layers[layer].alive_channels == s.alive_channels
    assert 0 < learned.learned_cost < learned.seed_cost
    check_structure(reg.graph, learned)
    assert len(channel_map(reg.graph, learned)) == len(reg.graph.ops)
    # Rebuilt without the gates, the pruned model costs the FLOPs the regularizer predicted.
    pruned = apply_structure(stripped, structure)
    assert model_cost(pruned, "flops") == pytest.approx(learned.learned_cost, rel=1e-9)
