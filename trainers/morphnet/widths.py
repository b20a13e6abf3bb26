"""Channel maps: which channels of the seed network every op keeps under a structure.

A *channel map* gives, for every op of the seed graph, the seed channel index of each channel the
rebuilt op will have (``-1`` for a fresh channel when a structure is expanded beyond the seed).
Widths follow from it (its length), so do the weights to keep (its indices) and the cost of the
rebuilt network (``structure_cost``), all without building a Keras model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .costs import Target, coefficients_table
from .errors import StructureError
from .graph import SUPPORTED_OPS, Graph, Op
from .grouping import BASE_HANDLERS, Role
from .structure import LayerStructure, Structure

ChannelMap = list[np.ndarray | None]


def _prunable_ids(layer: LayerStructure, original: int) -> np.ndarray:
    kept = np.array(sorted(layer.alive_channels)[: layer.alive], dtype=np.int64)
    if kept.size < min(layer.alive, original):  # structure without channel lists: keep the first
        kept = np.arange(min(layer.alive, original), dtype=np.int64)
    extra = max(layer.alive - kept.size, 0)
    return np.concatenate([kept, np.full(extra, -1, dtype=np.int64)])


def _first_known(graph: Graph, op: Op, ids: ChannelMap) -> np.ndarray | None:
    known: list[np.ndarray] = []
    for r in op.inputs:
        if r.producer is not None and graph.ops[r.producer].size == op.size:
            found = ids[r.producer]
            if found is not None:
                known.append(found)
    for other in known[1:]:
        if not np.array_equal(other, known[0]):
            raise StructureError(
                f"layer {op.layer!r} combines inputs that the structure prunes differently "
                f"({len(known[0])} vs {len(other)} channels); layers tied by an add or merge "
                f"must keep the same channels. Export the structure with a MorphNet regularizer "
                f"(which groups them) instead of editing widths by hand"
            )
    return known[0] if known else None


def _reshaped(graph: Graph, op: Op, source: np.ndarray) -> np.ndarray:
    producer = graph.ops[op.inputs[0].producer]  # type: ignore[index]
    full = np.arange(producer.size)
    if np.array_equal(source, full):
        return np.arange(op.size)
    if op.type == "Transpose":
        perm = op.attrs.get("perm")
        if perm is not None and perm[-1] == len(op.shape) - 1:  # type: ignore[index]
            return source  # the channel axis stays last
    elif op.size == producer.size:
        return source  # a reshape keeping the last axis keeps each position's channels
    positions = math.prod(producer.spatial)
    if len(op.shape) == 2 and op.size == positions * producer.size:
        # Flatten of channels-last maps (p, c) to p * C + c
        return (np.arange(positions)[:, None] * producer.size + source[None, :]).reshape(-1)
    raise StructureError(
        f"layer {op.layer!r} ({op.type}) reshapes pruned channels in a way morphsweep cannot "
        f"follow; keep the layers before it at full width (regularizer_blacklist) or use "
        f"GlobalAveragePooling instead of a reshape"
    )


def channel_map(graph: Graph, structure: Structure) -> ChannelMap:
    """Seed channel indices kept by every op of ``graph`` under ``structure`` (``None``: unused)."""
    ids: ChannelMap = [None] * len(graph.ops)
    for i, op in enumerate(graph.ops):
        info = graph.layers[op.layer]
        role = BASE_HANDLERS.get(op.type)
        if info.prunable_op == i and op.layer in structure.layers:
            ids[i] = _prunable_ids(structure.layers[op.layer], op.size)
        elif op.type in ("Conv2D", "Conv3D", "MatMul", "Conv2DBackpropInput", "Placeholder"):
            ids[i] = np.arange(op.size)
        elif op.type == "ConcatV2" and op.attrs.get("axis", -1) in (-1, len(op.shape) - 1):
            parts, offset = [], 0
            for ref in op.inputs:
                part = ids[ref.producer] if ref.producer is not None else None
                if part is None:
                    part = np.arange(ref.channels)
                parts.append(np.where(part >= 0, part + offset, -1))
                offset += ref.channels
            ids[i] = np.concatenate(parts)
        elif op.type == "DepthwiseConv2dNative":
            m = int(op.attrs.get("multiplier", 1))  # type: ignore[call-overload]
            source = ids[op.inputs[0].producer]  # type: ignore[index]
            assert source is not None
            ids[i] = np.where(
                np.repeat(source, m) >= 0,
                np.repeat(source, m) * m + np.tile(np.arange(m), source.size),
                -1,
            )
        elif role is not None and role.role in (Role.LEAF, Role.OUTPUT_NON_PASSTHROUGH):
            source = (
                ids[op.inputs[0].producer]
                if op.inputs and op.inputs[0].producer is not None
                else None
            )
            ids[i] = np.arange(op.size) if source is None else _reshaped(graph, op, source)
        elif op.inputs:
            ids[i] = _first_known(graph, op, ids)
    return ids


def check_structure(graph: Graph, structure: Structure) -> None:
    """Raise StructureError when ``structure`` was not made for ``graph``'s model."""
    from .structure import graph_fingerprint

    unknown = [n for n in structure.layers if n not in graph.layers]
    if unknown:
        raise StructureError(
            f"the structure names layers that model {graph.model_name!r} does not have: "
            f"{unknown[:5]}; it was exported for another model"
        )
    for name, layer in structure.layers.items():
        info = graph.layers[name]
        if info.prunable_op is None:
            raise StructureError(f"layer {name!r} ({info.class_name}) has no prunable width")
        size = graph.ops[info.prunable_op].size
        if layer.original != size:
            raise StructureError(
                f"layer {name!r} has {size} channels in this model but {layer.original} in the "
                f"structure; it was exported for another model"
            )
        if any(c < 0 or c >= size for c in layer.alive_channels):
            raise StructureError(f"layer {name!r} lists alive channels outside [0, {size})")
    if structure.fingerprint and structure.fingerprint != graph_fingerprint(graph):
        raise StructureError(
            f"the structure's model fingerprint {structure.fingerprint!r} does not match model "
            f"{graph.model_name!r} ({graph_fingerprint(graph)!r}); it was exported for a model "
            f"with other layers or input shape"
        )


def check_complete(
    graph: Graph, structure: Structure, exempt: set[str] | frozenset = frozenset()
) -> None:
    """Raise StructureError unless ``structure`` is whole as an export writes it: every prunable
    layer of ``graph``'s model there (but ``exempt``: the output layers, which keep their width
    and which a trial's structure leaves out), each alive count equal to its alive channels."""
    missing = [
        name
        for name, info in graph.layers.items()
        if info.prunable_op is not None and name not in structure.layers and name not in exempt
    ]
    if missing:
        raise StructureError(
            f"the structure lacks {len(missing)} prunable layer(s) of model {graph.model_name!r}: "
            f"{missing[:5]}; an exported structure lists every one (it was made for another "
            f"model or edited: export it again)"
        )
    for name, layer in structure.layers.items():
        if len(set(layer.alive_channels)) != layer.alive:
            raise StructureError(
                f"layer {name!r} has alive={layer.alive} but its alive_channels list "
                f"{len(set(layer.alive_channels))} distinct channels; the two must agree (export "
                f"the structure again)"
            )


def widths_cost(
    graph: Graph, target: Target, ids: ChannelMap, ops: Sequence[int] | None = None
) -> float:
    """Cost of the network whose ops have the widths of ``ids`` (all channels alive)."""
    chosen = [i for i in (ops if ops is not None else range(len(graph.ops)))]
    cost_ops = [i for i in chosen if graph.ops[i].type in SUPPORTED_OPS and ids[i] is not None]
    if not cost_ops:
        return 0.0

    def width(i: int) -> float:
        found = ids[i]
        return float(len(found)) if found is not None else float(graph.ops[i].size)

    a_out = np.array([width(i) for i in cost_ops])
    a_in = []
    for i in cost_ops:
        op = graph.ops[i]
        ref = op.inputs[0]
        if op.type == "ConcatV2":
            a_in.append(width(i))
        elif ref.producer is None:
            a_in.append(float(ref.channels))
        else:
            a_in.append(width(ref.producer))
    table = coefficients_table([graph.ops[i] for i in cost_ops])
    zeros = np.zeros(len(cost_ops))
    return float(np.sum(target.function(table, False, np.array(a_in), a_out, zeros, zeros, xp=np)))


def structure_cost(
    graph: Graph,
    structure: Structure,
    target: Target,
    ops: Sequence[int] | None = None,
    keep_outputs: bool = True,
    min_channels: int | None = None,
) -> float:
    """Cost of the model ``graph`` rebuilt at the widths of ``structure``: *the* cost of a
    structure, the one the structure JSON, the trial and the sweep report.

    It is the cost of the model ``rebuild_structure`` describes: output layers (the logits) at
    full width (unless ``keep_outputs`` is False), and, where ``apply_structure`` cannot rebuild
    a layer pruned to zero (``needs_min_channels``), every layer raised to one channel as the
    rebuild then must (``min_channels`` overrides that choice).
    """
    rebuilt, _ = rebuild_structure(graph, structure, min_channels, keep_outputs=keep_outputs)
    return widths_cost(graph, target, channel_map(graph, rebuilt), ops)


def needs_min_channels(graph: Graph, structure: Structure) -> bool:
    """Whether ``apply_structure(model, structure)`` must raise widths to rebuild the model.

    A layer pruned to zero channels vanishes with what only passes its channels on (BN,
    activations, pooling, depthwise convs); a merge drops a vanished input. The rebuild is
    impossible as is when a vanished tensor reaches a layer that computes new channels from it
    (a conv, a dense layer, a reshape) or a model output: the network would be cut there.
    """
    dead = {n for n, s in structure.layers.items() if s.alive == 0}
    if not dead:
        return False
    gone = [False] * len(graph.ops)
    for i, op in enumerate(graph.ops):
        if op.layer in dead:
            gone[i] = True
            continue
        inputs = [gone[r.producer] for r in op.inputs if r.producer is not None]
        if not any(inputs):
            continue
        producers_inside = all(
            graph.ops[r.producer].layer == op.layer for r in op.inputs if r.producer is not None
        )
        channels = graph.layers[op.layer].channels
        if channels == "merge" and not producers_inside:
            gone[i] = all(inputs)
        elif channels == "new" and not producers_inside:
            return True
        else:
            gone[i] = True
    return any(gone[i] for i in graph.outputs)


def raise_widths(structure: Structure, min_channels: int) -> Structure:
    """Every layer at least ``min_channels`` wide (at most its original width); kept channels
    first, then the lowest-numbered others."""
    layers = {}
    for name, s in structure.layers.items():
        width = min(max(s.alive, min_channels), s.original)
        channels = tuple(sorted(s.alive_channels)) or tuple(range(s.alive))
        extra = [c for c in range(s.original) if c not in channels][: width - len(channels)]
        layers[name] = LayerStructure(
            width, s.original, tuple(sorted(channels + tuple(extra))), s.layer_class, s.op_name
        )
    return dataclasses.replace(structure, layers=layers)


def rebuild_structure(
    graph: Graph,
    structure: Structure,
    min_channels: int | None = None,
    *,
    keep_outputs: bool = True,
) -> tuple[Structure, int]:
    """The widths ``apply_structure`` builds for ``structure``, and the ``min_channels`` it needs.

    Output layers are left out (rebuilt at full width); with ``min_channels`` None it is 0 when
    the structure can be rebuilt as is, else 1 (``needs_min_channels``).
    """
    if keep_outputs:
        structure = keep_full_width(structure, output_layers(graph))
    if min_channels is None:
        min_channels = 1 if needs_min_channels(graph, structure) else 0
    if min_channels:
        structure = raise_widths(structure, min_channels)
    return structure, min_channels


def output_layers(graph: Graph) -> set[str]:
    """Prunable layers whose channels are model outputs (logits), through channel-keeping ops."""
    found: set[str] = set()
    stack = list(graph.outputs)
    seen: set[int] = set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        op = graph.ops[i]
        info = graph.layers[op.layer]
        if info.prunable_op == i:
            found.add(op.layer)
            continue
        role = BASE_HANDLERS.get(op.type)
        if role is not None and role.role is not Role.GROUPING:
            continue  # concat, depthwise, reshape: the output is not one layer's channels
        stack.extend(
            r.producer
            for r in op.inputs
            if r.producer is not None and graph.ops[r.producer].size == op.size
        )
    return found


def keep_full_width(structure: Structure, names: set[str]) -> Structure:
    """``structure`` without the named layers, so they are rebuilt at full width."""
    if not names & set(structure.layers):
        return structure
    return dataclasses.replace(
        structure, layers={n: s for n, s in structure.layers.items() if n not in names}
    )


def seed_cost(graph: Graph, target: Target) -> float:
    """The seed network's cost for ``target``: the exact cost of its full-width structure.

    The one definition the strength multiplier divides by (``strength = multiplier / seed
    cost``), in a sweep's driver and in a single trial alike; it counts every op of the network
    (a regularizer's own ``seed_cost`` counts only the ops its groups reach).
    """
    return structure_cost(graph, seed_structure(graph), target)


def seed_structure(graph: Graph) -> Structure:
    """The structure that keeps every channel of every prunable layer but the output layers.

    Output layers (the logits) are left out: a structure never changes the number of outputs.
    """
    layers = {}
    fixed = output_layers(graph)
    for name, info in graph.layers.items():
        if info.prunable_op is not None and name not in fixed:
            op = graph.ops[info.prunable_op]
            layers[name] = LayerStructure(
                op.size, op.size, tuple(range(op.size)), info.class_name, op.name
            )
    from .structure import graph_fingerprint

    return Structure(
        layers=layers, model_name=graph.model_name, fingerprint=graph_fingerprint(graph)
    )


def scale_structure(structure: Structure, multiplier: float, min_channels: int = 1) -> Structure:
    """Every layer's width times ``multiplier`` (rounded, at least ``min_channels`` unless 0).

    Widths may exceed the seed's when expanding (MorphNet's optional uniform expansion); the
    channels kept are the first of the structure's alive channels, extra channels are new.
    """
    if not math.isfinite(multiplier) or multiplier <= 0:
        raise StructureError(f"width multiplier must be > 0, but got {multiplier!r}")
    layers: dict[str, LayerStructure] = {}
    for name, layer in structure.layers.items():
        width = int(round(layer.alive * multiplier))
        if layer.alive > 0:
            width = max(width, min_channels)
        kept = tuple(sorted(layer.alive_channels)[: min(width, layer.alive)])
        layers[name] = LayerStructure(width, layer.original, kept, layer.layer_class, layer.op_name)
    # the learned cost of the scaled structure is not known until it is costed
    return dataclasses.replace(
        structure,
        layers=layers,
        learned_cost=0.0,
        extra={**structure.extra, "width_multiplier": multiplier},
    )


def expand_to_budget(
    graph: Graph,
    structure: Structure,
    target: Target,
    budget: float,
    *,
    max_multiplier: float = 16.0,
    tolerance: float = 1e-3,
) -> tuple[Structure, float]:
    """The largest uniform scaling of ``structure`` whose cost stays within ``budget``.

    Returns:
        (scaled structure, its cost). The search is a bisection on the multiplier.
    """
    if not budget > 0:
        raise StructureError(f"budget must be > 0, but got budget={budget!r}")
    # apply_structure keeps the output layers (logits) at full width: never scale or cost them
    structure = keep_full_width(structure, output_layers(graph))

    def cost(m: float) -> float:
        return structure_cost(graph, scale_structure(structure, m), target)

    if cost(1e-6) > budget:
        raise StructureError(
            f"even the narrowest version of this structure costs {cost(1e-6):.4g} > budget "
            f"{budget:.4g} {target.cost_name}; raise the budget"
        )
    lo, hi = 1e-6, 1.0
    while cost(hi) <= budget and hi < max_multiplier:
        lo, hi = hi, min(hi * 2, max_multiplier)
    if cost(hi) <= budget:
        lo = hi
    while hi - lo > tolerance * lo:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
    best = scale_structure(structure, lo)
    return best, structure_cost(graph, best, target)


def layer_channel_maps(
    graph: Graph, ids: ChannelMap
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None, int]]:
    """Per Keras layer: (input channel map, output channel map, seed output width)."""
    out = {}
    for name, info in graph.layers.items():
        in_ids = None
        for k in info.ops:
            producers = [r.producer for r in graph.ops[k].inputs if r.producer is not None]
            producers = [p for p in producers if p not in info.ops]
            if producers:
                in_ids = ids[producers[0]]
                break
        last = graph.ops[info.ops[-1]]
        out[name] = (in_ids, ids[info.ops[-1]], last.size)
    return out


def mapping_is_identity(ids: np.ndarray | None, size: int) -> bool:
    return ids is None or (len(ids) == size and bool(np.all(ids == np.arange(size))))


def prunable_widths(graph: Graph, ids: ChannelMap) -> Mapping[str, int]:
    return {
        name: len(ids[info.prunable_op])  # type: ignore[arg-type]
        for name, info in graph.layers.items()
        if info.prunable_op is not None and ids[info.prunable_op] is not None
    }
