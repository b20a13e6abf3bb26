"""Property: an exported structure predicts exactly the cost of the model its rebuild gives.

Every algorithm (Gamma, GroupLasso, LogisticSigmoid) x target (FLOPs, model size) on the test
zoo, the trainers' zoo and keras.applications networks, with random weights scaled per channel so
that a threshold kills many channels, whole layers (a concat branch, a residual branch, a chain
conv) and most of a dense layer. The rebuilt model is counted from its layer shapes by
``count_costs``, not by the library's cost code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.morphnet.test_apply import CLASSES, SMALL, count_costs, inputs_for, predict
from trainers.models import IMAGE_ZOO, build_model
from trainers.morphnet import (
    GammaFlopsRegularizer,
    GammaModelSizeRegularizer,
    GroupLassoFlopsRegularizer,
    GroupLassoModelSizeRegularizer,
    LogisticSigmoidFlopsRegularizer,
    LogisticSigmoidModelSizeRegularizer,
    Structure,
)
from trainers.morphnet.keras3 import add_gating, apply_structure, gate_layers
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.widths import needs_min_channels, rebuild_structure, structure_cost

L = keras.layers
THRESHOLD = 0.1
REGULARIZERS: dict[str, dict[str, Callable[..., Any]]] = {
    "gamma": {"flops": GammaFlopsRegularizer, "model_size": GammaModelSizeRegularizer},
    "group_lasso": {
        "flops": GroupLassoFlopsRegularizer,
        "model_size": GroupLassoModelSizeRegularizer,
    },
    "logistic_sigmoid": {
        "flops": LogisticSigmoidFlopsRegularizer,
        "model_size": LogisticSigmoidModelSizeRegularizer,
    },
}
# Whole layers killed on top of the random scales: a concat branch, a residual branch's first
# conv, a chain conv, and most of a dense layer (only 3 of its channels survive).
KILL = {"br3": 1.0, "b1a": 1.0, "fc1": 0.875, "s2b1_conv1": 1.0, "b2_expand": 1.0}


def _scales(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-channel scales in [0, 1): squares of uniforms, so about a third fall under 0.1."""
    scale = rng.uniform(0.0, 1.0, n) ** 2
    share = KILL.get(name)
    if share:
        scale[: int(round(share * n))] = 0.0
    return scale.astype(np.float32)


def _prunable_layers(model: Any) -> list[Any]:
    kinds = (L.Conv1D, L.Conv2D, L.Dense, L.SeparableConv2D, L.DepthwiseConv2D)
    return [layer for layer in model.layers if isinstance(layer, kinds)]


def scramble(model: Any, algorithm: str, seed: int) -> Any:
    """Random weights whose per-channel size decides which channels the threshold kills."""
    rng = np.random.default_rng(seed)
    if algorithm == "gamma":
        for layer in model.layers:
            if isinstance(layer, L.BatchNormalization) and layer.scale:
                owner = layer.name[: -len("_bn")] if layer.name.endswith("_bn") else layer.name
                layer.gamma.assign(_scales(owner, layer.gamma.shape[0], rng))
        return model
    if algorithm == "group_lasso":
        for layer in _prunable_layers(model):
            kernel = (
                layer.pointwise_kernel if isinstance(layer, L.SeparableConv2D) else layer.kernel
            )
            if isinstance(layer, L.DepthwiseConv2D):
                continue  # tied to its input's channels, not a source of its own
            values = rng.normal(size=tuple(kernel.shape)).astype(np.float32)
            axes = tuple(range(values.ndim - 1))
            values /= np.sqrt(np.mean(values**2, axis=axes, keepdims=True))  # RMS 1 per channel
            kernel.assign(values * _scales(layer.name, values.shape[-1], rng))
        return model
    gated = add_gating(model, seed=seed)
    for owner, gate in sorted(gate_layers(gated).items()):
        n = gate.mask_logits.shape[0]
        logits = rng.normal(0.0, 2.0, n).astype(np.float32)
        share = KILL.get(owner)
        if share:
            logits[: int(round(share * n))] = -10.0
        gate.mask_logits.assign(logits)
    return gated


def make_regularizer(model: Any, algorithm: str, target: str) -> Any:
    cls = REGULARIZERS[algorithm][target]
    if algorithm == "logistic_sigmoid":
        return cls(model, alive_threshold=0.5)
    return cls(model, THRESHOLD)


def check(model: Any, algorithm: str) -> Structure:
    """Both targets: predicted cost == independent count of the rebuilt model, exactly."""
    # FiGS: the gates' inference masks (logit > 0) decide, as in a trial's final structure
    kwargs = {"inference": True} if algorithm == "logistic_sigmoid" else {}
    structures = {
        t: make_regularizer(model, algorithm, t).structure(**kwargs)
        for t in ("flops", "model_size")
    }
    structure = structures["flops"]
    # the same weights give the same widths whatever the target
    assert structures["model_size"].layers == structure.layers
    assert structure.cost_definition == "rebuild"
    new = apply_structure(model, structure, min_channels=structure.rebuild_min_channels)
    assert predict(new, inputs_for(model)).shape[-1] == model.output.shape[-1]
    flops, weights = count_costs(new)
    # the predicted cost is the rebuilt model's, counted from its layer shapes
    assert structure.learned_cost == flops
    assert structures["model_size"].learned_cost == weights
    # and the JSON says so: it round-trips with the rebuild's min_channels
    again = Structure.from_dict(structure.to_dict())
    assert (again.learned_cost, again.rebuild_min_channels, again.cost_definition) == (
        flops,
        structure.rebuild_min_channels,
        "rebuild",
    )
    return structure


def pruned(structure: Structure) -> float:
    alive = sum(s.alive for s in structure.layers.values())
    return 1 - alive / sum(s.original for s in structure.layers.values())


@pytest.mark.parametrize("algorithm", list(REGULARIZERS))
@pytest.mark.parametrize("name", list(SMALL))
def test_test_zoo(name: str, algorithm: str) -> None:
    structure = check(scramble(SMALL[name](), algorithm, seed=11), algorithm)
    # the weights really do kill many channels
    assert pruned(structure) >= 0.15


@pytest.mark.parametrize("algorithm", list(REGULARIZERS))
@pytest.mark.parametrize("name", list(IMAGE_ZOO))
def test_trainers_zoo(name: str, algorithm: str) -> None:
    model = build_model(f"zoo:{name}", (16, 16, 3), CLASSES, 8, seed=0)
    check(scramble(model, algorithm, seed=5), algorithm)


@functools.cache
def _application(name: str) -> Any:
    return getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=CLASSES)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", list(REGULARIZERS))
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_applications(name: str, algorithm: str) -> None:
    model = keras.models.clone_model(_application(name))
    check(scramble(model, algorithm, seed=3), algorithm)


def test_a_dense_head_mostly_dead_and_the_logits_at_full_width() -> None:
    model = scramble(SMALL["dense_head"](), "group_lasso", seed=2)
    structure = check(model, "group_lasso")
    # 3 of fc1's 24 channels survive; GroupLasso prunes logits too, but the rebuild (and so the
    # learned cost) keeps every class
    assert structure.layers["fc1"].alive <= 3
    assert structure.layers["head"].alive < CLASSES
    rebuilt = apply_structure(model, structure, min_channels=structure.rebuild_min_channels)
    assert rebuilt.get_layer("head").units == CLASSES
    # the original MorphNet get_cost() (logits pruned too) is kept beside it, and is lower
    assert structure.morphnet_cost is not None and structure.morphnet_cost < structure.learned_cost


def test_a_dead_chain_layer_is_counted_as_the_rebuild_keeps_it() -> None:
    model = scramble(SMALL["plain"](), "gamma", seed=4)
    model.get_layer("c2_bn").gamma.assign(np.zeros(12, np.float32))
    reg = GammaFlopsRegularizer(model, THRESHOLD)
    structure = reg.structure()
    # a chain conv pruned to zero cuts the network: the rebuild needs min_channels=1, and the
    # predicted cost counts that one channel
    assert structure.layers["c2"].alive == 0 and needs_min_channels(reg.graph, structure)
    assert structure.rebuild_min_channels == 1
    new = apply_structure(model, structure, min_channels=1)
    assert new.get_layer("c2").filters == 1
    assert structure.learned_cost == count_costs(new)[0]
    # asking for the cost at another min_channels is explicit
    assert structure_cost(reg.graph, structure, reg.target, min_channels=2) > structure.learned_cost


def test_a_dead_concat_branch_needs_no_min_channels() -> None:
    model = scramble(SMALL["inception"](), "gamma", seed=4)
    model.get_layer("br3_bn").gamma.assign(np.zeros(4, np.float32))
    structure = GammaFlopsRegularizer(model, THRESHOLD).structure()
    # the branch vanishes from the concat: no width raised, the branch costs nothing
    assert structure.layers["br3"].alive == 0 and structure.rebuild_min_channels == 0
    assert structure.learned_cost == count_costs(apply_structure(model, structure))[0]


@pytest.mark.parametrize("name", ["residual", "inception", "dense_head"])
def test_expand_to_budget_costs_what_its_rebuild_costs(name: str) -> None:
    from trainers.morphnet.widths import expand_to_budget

    model = scramble(SMALL[name](), "group_lasso", seed=9)
    reg = GroupLassoFlopsRegularizer(model, THRESHOLD)
    structure = reg.structure()
    budget = (structure.learned_cost + reg.seed_cost) / 2
    expanded, cost = expand_to_budget(reg.graph, structure, reg.target, budget)
    _, min_channels = rebuild_structure(reg.graph, expanded)
    new = apply_structure(model, expanded, min_channels=min_channels)
    # the cost expand_to_budget reports is the cost of the model it describes
    assert cost == count_costs(new)[0] <= budget
