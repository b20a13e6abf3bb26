"""Transforms of Keras models: rebuild at a learned structure, add and remove FiGS gates.

Every transform returns a new model and leaves its input untouched. Nested models are flattened
into one functional model with the same layer names and topology.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..costs import TARGETS, Target
from ..errors import ConfigurationError, StructureError
from ..graph import SUPPORTED_OPS
from ..structure import Structure
from ..widths import (
    channel_map,
    check_complete,
    check_structure,
    keep_full_width,
    layer_channel_maps,
    output_layers,
    raise_widths,
    widths_cost,
)
from .backend import keras
from .gating import GATE_OPTIONS, GatedBatchNormalization, LogisticSigmoidGating
from .layers import (
    Channels,
    LayerHandler,
    LayerSpec,
    WeightAxes,
    activation_name,
    layer_specs,
    spec_of,
)
from .reader import read_model
from .walk import all_layers, fill_in, functional_of, walk


class _Vanished:
    """Marker for the output of a layer pruned to zero channels."""


_GONE = _Vanished()
_KEPT = object()  # a traced layer output that still has channels


def rebuild(
    model: Any,
    clone_layer: Callable[[Any], Any],
    *,
    call_layer: Callable[[Any, Any, tuple, dict], Any] | None = None,
    name: str | None = None,
    trace_only: bool = False,
) -> Any:
    """A new functional model calling ``clone_layer(layer)`` in place of every layer.

    ``call_layer(new_layer, old_layer, args, kwargs)`` may change how a clone is called (drop
    vanished inputs, append a gate). Shared layers stay shared. With ``trace_only`` the calls
    are only traced (their results may be markers) and no model is built.
    """
    clones: dict[int, Any] = {}

    def visit(layer: Any, node: Any, values: list[Any]) -> list[Any]:
        args, kwargs = fill_in(node, values)
        if id(layer) not in clones:
            clones[id(layer)] = clone_layer(layer)
        new = clones[id(layer)]
        result = call_layer(new, layer, args, kwargs) if call_layer else new(*args, **kwargs)
        return list(result) if isinstance(result, list | tuple) else [result]

    functional = functional_of(model)
    inputs = [
        keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t._keras_history[0].name)
        for t in functional.inputs
    ]
    bound = {id(t): new for t, new in zip(functional.inputs, inputs, strict=True)}
    _, outputs = walk(model, visit, bound)
    if any(o is _GONE for o in outputs):
        raise StructureError(
            "the structure prunes every channel feeding a model output; rebuild with "
            "min_channels=1 or a smaller regularization strength"
        )
    if trace_only:
        return None
    single_in = len(inputs) == 1 and not isinstance(functional._inputs_struct, list | tuple)
    single_out = len(outputs) == 1 and not isinstance(functional._outputs_struct, list | tuple)
    return keras.Model(
        inputs[0] if single_in else inputs,
        outputs[0] if single_out else outputs,
        name=name or model.name,
    )


def _any_gone(args: tuple, kwargs: dict) -> bool:
    """Whether a call's arguments (lists of tensors included) hold a vanished tensor."""
    values = [*args, *kwargs.values()]
    return any(
        v is _GONE or (isinstance(v, list | tuple) and any(t is _GONE for t in v)) for v in values
    )


def _width_config(layer: Any, spec: LayerSpec, width: int) -> dict[str, Any]:
    if spec.width is None:
        raise StructureError(
            f"the structure gives layer {layer.name!r} ({type(layer).__name__}) a width, but its "
            f"LayerSpec names no width key; register it with LayerSpec(..., width='filters')"
        )
    config = layer.get_config()
    config[spec.width] = int(width)
    return config


def _as_structure(structure: Structure | Mapping[str, Any] | str | os.PathLike[str]) -> Structure:
    if isinstance(structure, Structure):
        return structure
    if isinstance(structure, Mapping):
        return Structure.from_dict(structure)
    return Structure.load(structure)


def apply_structure(
    model: Any,
    structure: Structure | Mapping[str, Any] | str | os.PathLike[str],
    *,
    keep_weights: bool = False,
    min_channels: int = 0,
    keep_outputs: bool = True,
    layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
    complete: bool = False,
) -> Any:
    """A new model of the same topology with the widths of ``structure``.

    Args:
        model: the seed model the structure was learned on (built, functional or Sequential).
        structure: a ``Structure``, its dict, or the path of its JSON.
        keep_weights: copy the surviving channels' weights (else fresh initialization).
        min_channels: raise every width to at least this; with 0, a layer pruned to zero channels
            is removed when only merges (concat, add) consume it, and is an error otherwise.
        keep_outputs: keep layers whose channels are model outputs (the logits) at full width.
        complete: refuse a structure that lacks a prunable layer of the model (output layers
            aside), as a file a user brings should not.
    """
    structure = _as_structure(structure)
    specs = layer_specs(layer_handlers)
    graph, _ = read_model(model, specs)
    check_structure(graph, structure)
    if complete:
        check_complete(graph, structure, exempt=set(output_layers(graph)))
    if keep_outputs:
        structure = keep_full_width(structure, output_layers(graph))
    if min_channels:
        structure = raise_widths(structure, min_channels)
    ids = channel_map(graph, structure)
    maps = layer_channel_maps(graph, ids)
    widths = {n: structure.layers[n].alive for n in structure.layers}
    if keep_weights:
        fresh = [n for n, s in structure.layers.items() if s.alive > len(s.alive_channels)]
        if fresh:
            raise StructureError(
                f"keep_weights needs every kept channel to exist in the seed model, but "
                f"{fresh[:3]} are wider than their alive channels; use keep_weights=False"
            )

    def clone(layer: Any) -> Any:
        spec = specs[type(layer)]
        if layer.name in widths:
            if widths[layer.name] == 0:
                return _GONE
            return type(layer).from_config(_width_config(layer, spec, widths[layer.name]))
        config = layer.get_config()
        _, out_ids, _ = maps.get(layer.name, (None, None, -1))
        if spec.resize is not None and out_ids is not None:
            config = spec.resize(config, len(out_ids))
        return type(layer).from_config(config)

    def call(new: Any, old: Any, args: tuple, kwargs: dict) -> Any:
        if new is _GONE:
            return _GONE
        channels = specs[type(old)].channels
        if channels is Channels.MERGE:
            alive = [t for t in args[0] if t is not _GONE]
            if not alive:
                return _GONE
            if len(alive) == 1:
                return alive[0]
            return new(alive, *args[1:], **kwargs)
        if _any_gone(args, kwargs):
            if channels is Channels.PASS:
                return _GONE
            raise StructureError(
                f"layer {old.name!r} ({type(old).__name__}) would receive 0 channels: the "
                f"structure prunes everything before it and the network would be cut there. "
                f"Rebuild with min_channels=1, or blacklist that layer from regularization"
            )
        return new(*args, **kwargs)

    new_model = rebuild(model, clone, call_layer=call)
    if keep_weights:
        _copy_weights(model, new_model, maps, specs)
    return new_model


def cuts_network(
    model: Any,
    structure: Structure | Mapping[str, Any],
    layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
) -> bool:
    """Whether ``structure`` leaves no path from the inputs to an output (model outputs kept).

    A layer pruned to zero channels takes with it everything that only it feeds; merges (add,
    concat) drop a vanished input. A dead residual branch so leaves the skip path, which is a
    real, smaller network; a dead layer on every path cuts the network, whatever
    ``min_channels`` a rebuild would then keep.
    """
    structure = _as_structure(structure)
    specs = layer_specs(layer_handlers)
    graph, _ = read_model(model, specs)
    check_structure(graph, structure)
    structure = keep_full_width(structure, output_layers(graph))
    dead = {n for n, s in structure.layers.items() if s.alive == 0}
    if not dead:
        return False

    def clone(layer: Any) -> Any:
        return _GONE if layer.name in dead else layer

    def call(new: Any, old: Any, args: tuple, kwargs: dict) -> Any:
        if new is _GONE:
            return _GONE
        if specs[type(old)].channels is Channels.MERGE:
            alive = [t for t in args[0] if t is not _GONE]
            return _GONE if not alive else alive[0]
        if _any_gone(args, kwargs):
            return _GONE
        return _KEPT

    try:
        rebuild(model, clone, call_layer=call, trace_only=True)
    except StructureError:
        return True
    return False


def _slice(value: np.ndarray, axis: int | None, ids: np.ndarray | None) -> np.ndarray:
    if axis is None or ids is None:
        return value
    if value.shape[axis] == len(ids) and np.array_equal(ids, np.arange(len(ids))):
        return value
    return np.take(value, ids, axis=axis)


def _copy_weights(
    old_model: Any, new_model: Any, maps: Mapping[str, Any], specs: Mapping[type, LayerSpec]
) -> None:
    old_layers = {layer.name: layer for layer in all_layers(old_model)}
    for new in all_layers(new_model):
        old = old_layers.get(new.name)
        if old is None or not old.weights:
            continue
        in_ids, out_ids, size = maps.get(new.name, (None, None, -1))
        spec = specs[type(old)]
        values = []
        for w_old, w_new in zip(old.weights, new.weights, strict=True):
            name = w_old.path.rsplit("/", 1)[-1]
            value = slice_weight(spec.weights(old, name), np.asarray(w_old), in_ids, out_ids, size)
            if tuple(value.shape) != tuple(w_new.shape):
                raise StructureError(
                    f"cannot carry weight {w_old.path} of layer {new.name!r} from shape "
                    f"{value.shape} to {tuple(w_new.shape)}; use keep_weights=False"
                )
            values.append(value)
        new.set_weights(values)


def slice_weight(
    axes: WeightAxes, value: np.ndarray, in_ids: Any, out_ids: Any, size: int
) -> np.ndarray:
    """The part of one weight that the kept input channels ``in_ids`` and output channels
    ``out_ids`` (of ``size`` before pruning) use, where ``axes`` says it keeps them."""
    if axes.inputs is not None and value.ndim >= 2 and in_ids is not None:
        m = axes.repeat
        ids = np.repeat(in_ids, m) * m + np.tile(np.arange(m), len(in_ids)) if m > 1 else in_ids
        value = _slice(value, axes.inputs, ids)
    if axes.outputs is not None and value.ndim >= 1 and value.shape[axes.outputs] == size:
        value = _slice(value, axes.outputs, out_ids)
    return value


def model_cost(model: Any, target: str | Target = "flops", layer_handlers: Any = None) -> float:
    """Full-width cost of a Keras model (every channel alive), over every op that costs."""
    target = TARGETS[target] if isinstance(target, str) else target
    graph, _ = read_model(model, layer_handlers)
    ids = [np.arange(op.size) for op in graph.ops]
    crawl = _reachable(graph)
    return widths_cost(
        graph, target, list(ids), [i for i in crawl if graph.ops[i].type in SUPPORTED_OPS]
    )


def _reachable(graph: Any) -> list[int]:
    seen: set[int] = set()
    stack = list(graph.outputs)
    while stack:
        i = stack.pop()
        if i in seen or i in graph.inputs:
            continue
        seen.add(i)
        stack.extend(r.producer for r in graph.ops[i].inputs if r.producer is not None)
    return sorted(seen)


# ----- FiGS gates ------------------------------------------------------------------------------
def _consumers(layers: list[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for layer in layers:
        for n in layer._inbound_nodes:
            for t in n.input_tensors:
                found.setdefault(t._keras_history[0].name, []).append(layer)
    return found


def _gate_chains(model: Any) -> dict[str, list[Any]]:
    """For each prunable layer not producing an output: its chain, the layer and the per-channel
    layers (BN, activations) that alone consume it one after the other."""
    specs = layer_specs()
    layers = all_layers(model)
    consumers = _consumers(layers)
    outputs = {t._keras_history[0].name for t in functional_of(model).outputs}
    chains = {}
    for layer in layers:
        spec = specs.get(type(layer))
        if spec is None or spec.width is None or layer.name in outputs:
            continue
        chain = [layer]
        while (
            len(consumers.get(chain[-1].name, [])) == 1
            and getattr(specs.get(type(consumers[chain[-1].name][0])), "gate_chain", False)
            and chain[-1].name not in outputs
        ):
            chain.append(consumers[chain[-1].name][0])
        chains[layer.name] = chain
    return chains


def _positively_homogeneous(layer: Any) -> bool:
    """Whether ``f(a * x) == a * f(x)`` for every a >= 0: a gate commutes with the layer."""
    L = keras.layers
    if isinstance(layer, L.ReLU):
        return layer.max_value is None and not float(layer.threshold or 0.0)
    if isinstance(layer, L.LeakyReLU | L.PReLU):
        return True
    if isinstance(layer, L.Activation):
        return activation_name(layer.activation) in ("relu", "linear", "leaky_relu")
    return False


def _foldable_batch_norm(chain: list[Any]) -> Any:
    """The batch norm of ``chain`` a gate can fold into exactly: the last plain channels-last
    BatchNormalization with only positively homogeneous layers after it; else None."""
    for i in range(len(chain) - 1, 0, -1):
        layer = chain[i]
        if type(layer) is keras.layers.BatchNormalization:
            plain = layer.axis in (-1, [-1], len(layer.input.shape) - 1) and not (
                layer.renorm or layer.synchronized
            )
            return layer if plain else None
        if not _positively_homogeneous(layer):
            return None
    return None


def add_gating(model: Any, *, fold: bool = True, **gate_kwargs: Any) -> Any:
    """A copy of ``model`` with a FiGS gate on every prunable layer's channels.

    The gate goes at the end of the layer's chain of per-channel layers (conv -> BN -> ReLU ->
    gate), as a ``LogisticSigmoidGating`` named ``<layer>_gate``. With ``fold`` (the default),
    where the chain has a BatchNormalization followed only by positively homogeneous layers
    (ReLU, LeakyReLU, PReLU, linear), the gate is folded into that batch norm instead: it
    becomes a ``GatedBatchNormalization`` of the same name, which scales gamma and beta by the
    gate, the same function (``relu(m * y) = m * relu(y)`` for m >= 0) and gradients without a
    pass over the activations. Layers producing a model output get no gate. Weights are copied
    from ``model``; ``gate_kwargs`` are the gates' options (see ``ChannelGate``).
    """
    unknown = set(gate_kwargs) - set(GATE_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"add_gating got unknown gate options {sorted(unknown)}; known: {list(GATE_OPTIONS)}"
        )
    points: dict[str, str] = {}  # where a LogisticSigmoidGating goes -> its layer
    folded: set[str] = set()  # batch norms that become gated
    for owner, chain in _gate_chains(model).items():
        bn = _foldable_batch_norm(chain) if fold else None
        if bn is not None:
            folded.add(bn.name)
        else:
            points[chain[-1].name] = owner
    gates: dict[str, Any] = {}

    def clone(layer: Any) -> Any:
        if layer.name in folded:
            return GatedBatchNormalization(**layer.get_config(), **gate_kwargs)
        return layer.__class__.from_config(layer.get_config())

    def call(new: Any, old: Any, args: tuple, kwargs: dict) -> Any:
        out = new(*args, **kwargs)
        if old.name in points:
            owner = points[old.name]
            gate = gates.setdefault(
                owner, LogisticSigmoidGating(name=f"{owner}_gate", **gate_kwargs)
            )
            out = gate(out)
        return out

    new_model = rebuild(model, clone, call_layer=call)
    _copy_named_weights(model, new_model)
    return new_model


def _copy_named_weights(source: Any, target: Any) -> None:
    """Each layer of ``target`` takes the weights of ``source``'s layer of the same name, weight
    by weight name (a gated batch norm and its plain one share gamma, beta and the moving
    statistics; the gate's own weights stay as initialized)."""
    old = {layer.name: layer for layer in all_layers(source)}
    for layer in all_layers(target):
        if layer.name not in old or not old[layer.name].weights:
            continue
        given = {w.path.rsplit("/", 1)[-1]: w for w in old[layer.name].weights}
        for w in layer.weights:
            name = w.path.rsplit("/", 1)[-1]
            if name in given:
                w.assign(np.asarray(given[name]))


def gate_layers(model: Any) -> dict[str, Any]:
    """The FiGS gates of a gated model by the prunable layer each gates: its
    ``LogisticSigmoidGating`` layers and its ``GatedBatchNormalization`` layers."""
    layers = all_layers(model)
    by_name = {layer.name: layer for layer in layers}
    found = {}
    for layer in layers:
        if isinstance(layer, LogisticSigmoidGating) and layer.name.endswith("_gate"):
            owner = layer.name[: -len("_gate")]
            if owner in by_name:
                found[owner] = layer
        elif isinstance(layer, GatedBatchNormalization):
            owner = _chain_owner(layer)
            if owner is not None:
                found[owner] = layer
    return found


def _chain_owner(layer: Any) -> str | None:
    """The prunable layer whose per-channel chain ``layer`` is on, walking back one input at a
    time; None when the chain starts elsewhere."""
    specs = layer_specs()
    while True:
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            return None
        layer = nodes[0].input_tensors[0]._keras_history[0]
        spec = specs.get(type(layer))
        if spec is not None and spec.width is not None:
            return str(layer.name)
        if spec is None or not (spec.gate_chain or isinstance(layer, GatedBatchNormalization)):
            return None


def remove_gating(model: Any) -> tuple[Any, Structure]:
    """Strip the gates; returns the un-gated model and the structure their inference masks give.

    A gate's open channels are those with logit > 0 (plus channel 0 when it keeps the first
    channel alive); the structure prunes the rest. The soft inference scale sigmoid(logit) of
    open channels is folded into the preceding BatchNormalization (gamma, beta) or, with no BN,
    into the layer's kernel and bias when only ReLU-like activations lie between. A
    ``GatedBatchNormalization`` becomes the plain batch norm with that scale in its gamma, beta.
    """
    gates = gate_layers(model)

    def clone(layer: Any) -> Any:
        if isinstance(layer, LogisticSigmoidGating):
            return layer
        config = layer.get_config()
        if isinstance(layer, GatedBatchNormalization):
            for key in layer.gate_config():
                config.pop(key)
            return keras.layers.BatchNormalization.from_config(config)
        return layer.__class__.from_config(config)

    def call(new: Any, old: Any, args: tuple, kwargs: dict) -> Any:
        if isinstance(old, LogisticSigmoidGating):
            return args[0]
        return new(*args, **kwargs)

    stripped = rebuild(model, clone, call_layer=call)
    _copy_named_weights(model, stripped)
    stripped_layers = {layer.name: layer for layer in all_layers(stripped)}
    for owner, gate in gates.items():
        if gate.soft_mask_for_inference:
            logits = np.asarray(gate.mask_logits).astype(np.float64)
            scale = 1.0 / (1.0 + np.exp(-logits)) * (logits > 0)
            if gate.keep_first_channel_alive:
                scale[0] = 1.0  # the gate passes channel 0 unscaled: max(mask, one_hot(0))
            if isinstance(gate, GatedBatchNormalization):
                _scale_batch_norm(stripped_layers[gate.name], scale)
            else:
                _fold_scale(stripped, owner, scale)
    from .network_regularizers import LogisticSigmoidFlopsRegularizer

    # gates tied by an add are ORed, as the regularizer groups them
    structure = LogisticSigmoidFlopsRegularizer(model).structure(inference=True)
    structure = Structure(
        layers=structure.layers, model_name=structure.model_name, fingerprint=structure.fingerprint
    )
    return stripped, structure


def _scale_batch_norm(bn: Any, scale: np.ndarray) -> None:
    """Multiply a batch norm's output channels by ``scale`` (gamma and beta; with no gamma,
    ``scale`` cannot be folded and the closed channels are left to the structure)."""
    if bn.scale:
        bn.gamma.assign(np.asarray(bn.gamma) * scale)
    if bn.center:
        bn.beta.assign(np.asarray(bn.beta) * scale)


def _fold_scale(model: Any, owner: str, scale: np.ndarray) -> None:
    """Multiply the output channels of layer ``owner`` by ``scale``: through the BN it feeds,
    or in its own weights (where its spec says each weight keeps its output channels)."""
    layers = all_layers(model)
    layer = next(layer for layer in layers if layer.name == owner)
    nxt = _consumers(layers).get(owner, [])
    if len(nxt) == 1 and isinstance(nxt[0], keras.layers.BatchNormalization) and nxt[0].scale:
        _scale_batch_norm(nxt[0], scale)
        return
    spec = spec_of(layer, layer_specs())
    values = []
    for weight in layer.weights:
        value = np.asarray(weight)
        axis = spec.weights(layer, weight.path.rsplit("/", 1)[-1]).outputs
        if axis is not None and value.shape[axis] == len(scale):
            shape = [1] * value.ndim
            shape[axis] = len(scale)
            value = value * scale.reshape(shape)
        values.append(value)
    layer.set_weights(values)
