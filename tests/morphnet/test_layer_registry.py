"""Every layer class the registry knows: reading, rebuilding and the width logic agree.

For each class (and for user layers registered with ``register_layer``) a tiny model puts one
instance after a prunable layer, and the test checks, without special cases per class:

- read: the graph records the class's channel behaviour; the layer is prunable exactly when its
  spec names a width key, and that key is the width the graph reads;
- apply vs read: rebuilt with ``keep_weights`` at a structure keeping channels {0, 2, 5} of
  six, the layer's output equals the seed's output at the channels the graph's channel map
  names (so each weight was sliced on the axes its spec declares), and the rebuilt model costs
  what ``structure_cost`` predicts;
- apply vs width logic: with the layer's producers pruned to zero channels, the rebuild fails
  exactly when ``needs_min_channels`` says it must, which is when the layer computes new
  channels (a layer that passes channels on vanishes with them, and a concat drops it).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from trainers.morphnet import (
    Channels,
    LayerSpec,
    PassThrough,
    StructureError,
    apply_structure,
    layer_specs,
    model_cost,
    read_model,
    register_layer,
)
from trainers.morphnet.costs import TARGETS
from trainers.morphnet.keras3 import GatedBatchNormalization, LogisticSigmoidGating
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.keras3.walk import functional_of
from trainers.morphnet.structure import LayerStructure
from trainers.morphnet.widths import (
    channel_map,
    needs_min_channels,
    seed_structure,
    structure_cost,
)

L = keras.layers
PASS, NEW, MERGE = Channels.PASS, Channels.NEW, Channels.MERGE
WIDTH = 6
KEPT = (0, 2, 5)
SIDE = 6


class ChannelScale(keras.layers.Layer):
    """A user layer: one learned scale per channel (channel j stays channel j)."""

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x: Any) -> Any:
        return x * self.scale


class WideDense(keras.layers.Dense):
    """A user subclass of Dense: registered with Dense's own spec."""


@dataclasses.dataclass(frozen=True)
class Case:
    rank: int  # spatial dims of the input: 0 (features), 1, 2 or 3
    make: Callable[[], Any]
    inputs: int = 1  # 2 for layers called on a list (merges, subtract, multiply)
    per_channel: bool = True  # output channel j depends on input channel j only
    # what the layer does to channels, stated here independently of the registry
    channels: Channels = Channels.PASS


def _conv(rank: int) -> Callable[[], Any]:
    cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
    return lambda: cls(WIDTH, 3, padding="same")


def _pools() -> dict[type, Case]:
    """Pooling, padding, cropping, upsampling and spatial dropout in 1, 2 and 3 dimensions."""
    args = {
        "MaxPooling": (2,),
        "AveragePooling": (2,),
        "GlobalAveragePooling": (),
        "GlobalMaxPooling": (),
        "ZeroPadding": (1,),
        "Cropping": (1,),
        "UpSampling": (2,),
        "SpatialDropout": (0.5,),
    }
    out: dict[type, Case] = {}
    for rank in (1, 2, 3):
        for stem, given in args.items():
            cls = getattr(L, f"{stem}{rank}D")
            out[cls] = Case(rank, functools.partial(cls, *given))
    return out


CASES: dict[type, Case] = {
    L.Conv1D: Case(1, _conv(1), channels=Channels.NEW),
    L.Conv2D: Case(2, _conv(2), channels=Channels.NEW),
    L.Conv3D: Case(3, _conv(3), channels=Channels.NEW),
    L.Conv1DTranspose: Case(1, lambda: L.Conv1DTranspose(WIDTH, 3, padding="same"), channels=NEW),
    L.Conv2DTranspose: Case(
        2, lambda: L.Conv2DTranspose(WIDTH, 3, strides=2, padding="same"), channels=NEW
    ),
    L.DepthwiseConv1D: Case(1, lambda: L.DepthwiseConv1D(3, padding="same", depth_multiplier=2)),
    L.DepthwiseConv2D: Case(2, lambda: L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)),
    L.SeparableConv1D: Case(
        1, lambda: L.SeparableConv1D(WIDTH, 3, padding="same", depth_multiplier=2), channels=NEW
    ),
    L.SeparableConv2D: Case(
        2, lambda: L.SeparableConv2D(WIDTH, 3, padding="same", depth_multiplier=2), channels=NEW
    ),
    L.Dense: Case(0, lambda: L.Dense(WIDTH, activation="relu"), channels=NEW),
    L.BatchNormalization: Case(2, L.BatchNormalization),
    L.Activation: Case(2, lambda: L.Activation("swish")),
    L.ReLU: Case(2, lambda: L.ReLU(max_value=6.0)),
    L.LeakyReLU: Case(2, L.LeakyReLU),
    L.PReLU: Case(2, L.PReLU),
    L.ELU: Case(2, L.ELU),
    L.Softmax: Case(2, L.Softmax, per_channel=False),
    L.Subtract: Case(2, L.Subtract, inputs=2),
    L.Multiply: Case(2, L.Multiply, inputs=2),
    L.Add: Case(2, L.Add, inputs=2, channels=MERGE),
    L.Maximum: Case(2, L.Maximum, inputs=2, channels=MERGE),
    L.Minimum: Case(2, L.Minimum, inputs=2, channels=MERGE),
    L.Average: Case(2, L.Average, inputs=2, channels=MERGE),
    L.Concatenate: Case(2, L.Concatenate, inputs=2, channels=MERGE),
    L.Rescaling: Case(2, lambda: L.Rescaling(0.5, offset=0.25)),
    L.Normalization: Case(2, L.Normalization),
    L.Flatten: Case(2, L.Flatten, per_channel=False, channels=NEW),
    L.Reshape: Case(2, lambda: L.Reshape((SIDE * SIDE, WIDTH)), per_channel=False, channels=NEW),
    L.RepeatVector: Case(0, lambda: L.RepeatVector(3)),
    # a permute may move the channel axis: new channels for the rebuild
    L.Permute: Case(2, lambda: L.Permute((2, 1, 3)), per_channel=False, channels=NEW),
    L.Resizing: Case(2, lambda: L.Resizing(4, 4)),
    L.CenterCrop: Case(2, lambda: L.CenterCrop(4, 4)),
    L.LayerNormalization: Case(2, L.LayerNormalization, per_channel=False),
    L.GroupNormalization: Case(2, lambda: L.GroupNormalization(groups=1), per_channel=False),
    L.UnitNormalization: Case(2, L.UnitNormalization, per_channel=False),
    L.Dropout: Case(2, lambda: L.Dropout(0.5)),
    L.GaussianNoise: Case(2, lambda: L.GaussianNoise(0.1)),
    L.GaussianDropout: Case(2, lambda: L.GaussianDropout(0.1)),
    L.AlphaDropout: Case(2, lambda: L.AlphaDropout(0.1)),
    L.ActivityRegularization: Case(2, L.ActivityRegularization),
    L.Identity: Case(2, L.Identity),
    # augmentations (trial.augment): identity at inference, a centre crop for RandomCrop
    L.RandomFlip: Case(2, lambda: L.RandomFlip("horizontal", seed=0)),
    L.RandomCrop: Case(2, lambda: L.RandomCrop(4, 4, seed=0)),
    L.RandomTranslation: Case(2, lambda: L.RandomTranslation(0.1, 0.1, seed=0)),
    L.RandomRotation: Case(2, lambda: L.RandomRotation(0.05, seed=0)),
    L.RandomZoom: Case(2, lambda: L.RandomZoom(0.1, seed=0)),
    L.RandomContrast: Case(2, lambda: L.RandomContrast(0.2, seed=0)),
    L.RandomBrightness: Case(2, lambda: L.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=0)),
    LogisticSigmoidGating: Case(2, LogisticSigmoidGating),
    GatedBatchNormalization: Case(2, GatedBatchNormalization),
    **_pools(),
}
USER_CASES: dict[type, Case] = {
    ChannelScale: Case(2, ChannelScale),
    WideDense: Case(0, lambda: WideDense(WIDTH), channels=NEW),
}


@pytest.fixture(scope="module", autouse=True)
def user_layers() -> Any:
    register_layer(ChannelScale, LayerSpec(PassThrough("Mul"), Channels.PASS))
    register_layer(WideDense, layer_specs()[L.Dense])
    yield
    from trainers.morphnet.keras3 import layers

    for cls in USER_CASES:
        layers._REGISTRY.pop(cls, None)


def _source(rank: int, name: str) -> Any:
    """A prunable layer of WIDTH channels feeding the layer under test."""
    if rank == 0:
        return L.Dense(WIDTH, name=name)
    return {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank](WIDTH, 3, padding="same", name=name)


def _input(rank: int) -> Any:
    return keras.Input(shape=(SIDE,) * rank + (3,) if rank else (5,), name="x")


def _under_test(case: Case, x: Any, names: tuple[str, ...], layer_name: str) -> Any:
    feeds = [_source(case.rank, n)(x) for n in names[: case.inputs]]
    layer = case.make()
    layer.name = layer_name  # type: ignore[misc]
    return layer(feeds if case.inputs > 1 else feeds[0])


def single(case: Case) -> Any:
    """x -> src (6 channels) -> layer -> Dense head (kept at full width)."""
    x = _input(case.rank)
    y = _under_test(case, x, ("src", "other"), "under_test")
    return keras.Model(x, L.Dense(3, name="head")(y), name="single")


def randomize(model: Any, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.path or w.path.endswith("count"):
                values.append(rng.uniform(0.5, 1.5, shape).astype(w.dtype))
            else:
                values.append(rng.normal(0.0, 0.5, shape).astype(w.dtype))
        layer.set_weights(values)


def _zero_inputs(layer: Any, dropped: np.ndarray) -> None:
    """Zero the layer's weights on its input-channel axis at ``dropped`` input channels, so
    pruning those channels upstream does not change its output."""
    spec = layer_specs()[type(layer)]
    values = []
    for w in layer.weights:
        value = np.asarray(w).copy()
        axes = spec.weights(layer, w.path.rsplit("/", 1)[-1])
        if axes.inputs is not None and value.ndim >= 2:
            m = axes.repeat
            ids = np.concatenate([np.arange(c * m, c * m + m) for c in dropped])
            index = [slice(None)] * value.ndim
            index[axes.inputs] = ids
            value[tuple(index)] = 0.0
        values.append(value)
    layer.set_weights(values)


def keep(structure: Any, names: list[str], channels: tuple[int, ...]) -> Any:
    layers = dict(structure.layers)
    for name in names:
        s = layers[name]
        layers[name] = LayerStructure(len(channels), s.original, channels, s.layer_class, s.op_name)
    return dataclasses.replace(structure, layers=layers)


ALL = {**CASES, **USER_CASES}


def test_every_registered_class_has_a_case() -> None:
    known = set(layer_specs()) - {L.InputLayer}
    assert known - set(ALL) == set(), "add a Case for every class the registry knows"
    assert set(ALL) - known == set()


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_read_apply_and_widths_agree(cls: type) -> None:
    case = ALL[cls]
    spec = layer_specs()[cls]
    model = single(case)
    randomize(model)
    graph, _ = read_model(model)
    info = graph.layers["under_test"]

    # the declaration is what the layer does; the graph records it
    assert spec.channels is case.channels
    assert info.channels == spec.channels.value
    if case.per_channel and case.channels is not Channels.NEW:
        _check_channel_j_stays_j(model.get_layer("under_test"))
    assert (info.prunable_op is not None) == (spec.width is not None)
    if spec.width is not None:
        assert (
            graph.ops[info.prunable_op].size
            == model.get_layer("under_test").get_config()[spec.width]
        )
    assert (spec.channels is Channels.MERGE) <= (case.inputs > 1)

    # apply vs read: keep channels KEPT of every pruned layer. With the dropped channels' paths
    # zeroed (the layer's own inputs where it computes new channels, the head's rows of the
    # layer's dropped outputs), the rebuilt model computes what the seed does, and the layer's
    # output is the seed's at the channels the graph maps.
    pruned = [n for n in ("src", "other", "under_test") if n in seed_structure(graph).layers]
    structure = keep(seed_structure(graph), pruned, KEPT)
    ids = channel_map(graph, structure)[info.ops[-1]]
    if spec.channels is Channels.NEW:
        _zero_inputs(model.get_layer("under_test"), np.setdiff1d(np.arange(WIDTH), KEPT))
    if ids is not None:
        _zero_inputs(model.get_layer("head"), np.setdiff1d(np.arange(info_size(graph, info)), ids))
    new = apply_structure(model, structure, keep_weights=True)
    flops = TARGETS["flops"]
    assert model_cost(new, flops) == pytest.approx(structure_cost(graph, structure, flops))
    probe = np.random.default_rng(1).normal(size=(2, *model.input_shape[1:])).astype("float32")
    if case.per_channel or spec.channels is Channels.NEW:
        np.testing.assert_allclose(new(probe), model(probe), rtol=1e-4, atol=1e-5)
    inner = functional_of(model)
    seed_out = np.asarray(keras.Model(inner.inputs, model.get_layer("under_test").output)(probe))
    new_out = np.asarray(keras.Model(new.inputs, new.get_layer("under_test").output)(probe))
    if ids is not None:
        seed_out = np.take(seed_out, ids, axis=-1)
    assert new_out.shape == seed_out.shape
    if case.per_channel:
        np.testing.assert_allclose(new_out, seed_out, rtol=1e-4, atol=1e-5)


def _check_channel_j_stays_j(layer: Any) -> None:
    """Perturbing input channel k changes only the output channels made from k."""
    node = layer._inbound_nodes[0]
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(2, *t.shape[1:])).astype("float32") for t in node.input_tensors]
    m = int(getattr(layer, "depth_multiplier", 1))
    # at inference: an augmentation layer called as it is draws a new transform every call
    mode = {"training": False} if "training" in inspect.signature(layer.call).parameters else {}
    base = np.asarray(layer(xs if len(xs) > 1 else xs[0], **mode))
    touched = 0
    for k in range(xs[0].shape[-1]):
        moved = [x.copy() for x in xs]
        moved[0][..., k] += 1.0
        out = np.asarray(layer(moved if len(xs) > 1 else moved[0], **mode))
        diff = np.abs(out - base).reshape(-1, out.shape[-1]).max(axis=0)
        changed = set(np.flatnonzero(diff > 1e-6).tolist())
        assert changed <= set(range(k * m, k * m + m)), (k, changed)
        touched += bool(changed)
    assert touched > 0


def info_size(graph: Any, info: Any) -> int:
    return graph.ops[info.ops[-1]].size


@pytest.mark.parametrize("cls", list(ALL), ids=lambda c: c.__name__)
def test_dead_producer_rebuild_fails_exactly_when_widths_say(cls: type) -> None:
    case = ALL[cls]
    spec = layer_specs()[cls]
    x = _input(case.rank)
    # a twin on a second path: when the layer vanishes with its inputs, a concat drops it
    a = _under_test(case, x, ("src", "other"), "under_test")
    b = _under_test(case, x, ("twin_src", "twin_other"), "twin")
    model = keras.Model(x, L.Dense(3, name="head")(L.Concatenate(name="join")([a, b])))
    graph, _ = read_model(model)
    structure = keep(seed_structure(graph), ["src", "other"][: case.inputs], ())
    must_raise = needs_min_channels(graph, structure)
    # the width logic's answer follows from the declared channel behaviour alone
    assert must_raise == (spec.channels is Channels.NEW)
    if must_raise:
        with pytest.raises(StructureError, match="min_channels"):
            apply_structure(model, structure)
    else:
        new = apply_structure(model, structure)
        assert "src" not in {layer.name for layer in new.layers}
        assert new(np.zeros((1, *model.input_shape[1:]), "float32")).shape[-1] == 3


def test_a_permute_moving_pruned_channels_is_refused_clearly() -> None:
    x = _input(2)
    y = L.Permute((3, 1, 2), name="under_test")(_source(2, "src")(x))
    model = keras.Model(x, L.Dense(3, name="head")(y))
    graph, _ = read_model(model)
    structure = keep(seed_structure(graph), ["src"], KEPT)
    with pytest.raises(StructureError, match=r"'under_test' \(Transpose\).*regularizer_blacklist"):
        apply_structure(model, structure, keep_weights=True)
    # at full width the channels it moves are all there: nothing to follow
    assert apply_structure(model, seed_structure(graph)).output.shape == model.output.shape
