"""The benchmark datasets made by code (MNIST-1D, procedural shapes) and the 1-D zoo model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainers.data import load_dataset
from trainers.errors import TrialConfigError
from trainers.models import build_model
from trainers.morphnet import GammaFlopsRegularizer, GroupLassoFlopsRegularizer
from trainers.morphnet.keras3 import apply_structure, model_cost
from trainers.morphnet.keras3.backend import keras


def test_mnist1d_shapes_labels_and_determinism_by_seed():
    state = np.random.get_state()
    a, b, other = load_dataset("mnist1d", 0), load_dataset("mnist1d", 0), load_dataset("mnist1d", 1)
    # the generator does not leave numpy's global random state changed
    assert np.array_equal(np.random.get_state()[1], state[1])
    # 5000 sequences of 40 points, 20% for validation, 10 classes
    assert a.x_train.shape == (4000, 40, 1) and a.x_val.shape == (1000, 40, 1)
    assert a.input_shape == (40, 1) and a.num_classes == 10
    assert set(np.unique(a.y_train)) == set(range(10)) and a.x_train.dtype == np.float32
    # the same seed gives the same split, another seed another split of the same sequences
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_val, other.x_val)
    both = np.concatenate([a.x_train, a.x_val]).reshape(5000, -1)
    again = np.concatenate([other.x_train, other.x_val]).reshape(5000, -1)
    assert np.array_equal(np.sort(both, axis=0), np.sort(again, axis=0))


def test_shapes32_images_labels_and_determinism():
    a, b = load_dataset("shapes32", 0), load_dataset("shapes32", 0)
    assert a.x_train.shape == (2400, 32, 32, 3) and a.x_val.shape == (600, 32, 32, 3)
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1 and a.num_classes == 10
    assert set(np.unique(a.y_train)) == set(range(10))
    assert np.array_equal(a.x_train, b.x_train)
    # classes are balanced within a few percent and the images are not all alike
    counts = np.bincount(a.y_train, minlength=10)
    assert counts.min() > 0.7 * counts.mean()
    assert a.x_train.reshape(len(a.x_train), -1).std(axis=0).mean() > 0.1


def test_resnet1d_builds_for_sequences_and_refuses_images():
    model = build_model("zoo:resnet1d", (40, 1), 10, width=8, seed=0)
    assert model.output.shape == (None, 10)
    assert sum(isinstance(layer, keras.layers.Conv1D) for layer in model.layers) == 15
    with pytest.raises(TrialConfigError, match=r"zoo:resnet1d takes sequences.*\(32, 32, 3\)"):
        build_model("zoo:resnet1d", (32, 32, 3), 10)


def _conv1d_flops(model) -> int:
    """2 * output length * kernel * in * out per Conv1D, 2 * in * out per Dense."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv1D):
            k = layer.kernel.shape
            total += 2 * int(layer.output.shape[1]) * k[0] * k[1] * k[2]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return total


@pytest.mark.parametrize("algorithm", ["gamma", "group_lasso"])
def test_resnet1d_structure_export_and_rebuild_cost_what_they_predict(algorithm):
    model = build_model("zoo:resnet1d", (40, 1), 10, width=8, seed=0)
    rng = np.random.default_rng(0)
    if algorithm == "gamma":
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.gamma.assign(rng.uniform(0, 1, layer.gamma.shape[0]).astype(np.float32) ** 2)
        reg = GammaFlopsRegularizer(model, 0.1)
    else:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv1D):
                scale = rng.uniform(0, 1, layer.kernel.shape[-1]).astype(np.float32) ** 2
                layer.kernel.assign(np.asarray(layer.kernel) * scale)
        reg = GroupLassoFlopsRegularizer(model, 0.02)
    structure = reg.structure()
    assert any(s.alive < s.original for s in structure.layers.values())
    small = apply_structure(model, structure, min_channels=structure.rebuild_min_channels)
    x = np.random.default_rng(1).normal(size=(2, 40, 1)).astype(np.float32)
    assert np.asarray(small(x)).shape == (2, 10)
    # predicted = rebuilt, by the library's count and by one from the layer shapes
    assert structure.learned_cost == model_cost(small, reg.target) == _conv1d_flops(small)
    assert _conv1d_flops(model) == reg.seed_cost
