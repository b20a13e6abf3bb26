"""Network regularizers: the user-facing objects (algorithm x target), spec §1 and §4.

A network regularizer reads a built Keras model once (``read_model``), groups its channels
(``grouping.analyze``) and precomputes index arrays. ``get_regularization_term()`` then evaluates a few
vectorized gathers over the current weights with ``keras.ops`` (float32, on the device, cheap
enough to run inside every compiled training step on either backend); ``get_cost()`` reads the
alive vectors and computes the exact cost on the host in float64.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..costs import TARGETS, Target, coefficients_table, latency_target
from ..costs.coefficients import OpCoefficients
from ..errors import ConfigurationError, UnsupportedLayerError
from ..graph import SUPPORTED_OPS
from ..grouping import ChannelGroups, analyze, handlers_for
from ..structure import LayerStructure, Structure, graph_fingerprint
from ..widths import rebuild_structure, structure_cost
from .backend import f32, ops, to_numpy
from .layers import LayerHandler, LayerSpec
from .op_regularizers import (
    GammaL1Regularizer,
    GroupLassoRegularizer,
    OpRegularizer,
    ProbGatingRegularizer,
)
from .reader import read_model


class _Ops:
    """The array namespace the resource functions need, for tensors of either backend."""

    where = staticmethod(ops.where)
    maximum = staticmethod(ops.maximum)


class _Vectors(OpRegularizer):
    def __init__(self, reg: Any, alive: Any) -> None:
        self._regularization_vector = reg
        self._alive_vector = alive


def _number(name: str, value: Any, low: float = 0.0, high: float | None = None) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and value >= low and (high is None or value <= high):
        return float(value)
    bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    raise ConfigurationError(f"{name} must be a number {bound}, but got {name}={value!r}")


def _names(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"{name} must be a list of layer names, but got {name}={value!r}; e.g. [{value!r}]"
        )
    return list(value)


class NetworkRegularizer:
    """MorphNet's regularizer for one algorithm and one cost target on a built Keras model.

    Use ``total_loss = task_loss + strength * reg.get_regularization_term()`` in the training
    step; ``reg.get_cost()`` is the cost the network would have if pruned now.
    """

    name = "NetworkRegularizer"
    algorithm = ""

    def __init__(
        self,
        model: Any,
        *,
        target: Target,
        regularizer_decorator: Callable[..., OpRegularizer] | None = None,
        decorator_parameters: Mapping[str, Any] | None = None,
        input_boundary: Sequence[str] | None = None,
        output_boundary: Sequence[str] | None = None,
        force_group: Sequence[str] | None = None,
        regularizer_blacklist: Sequence[str] | None = None,
        layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
        conv3d: bool = True,
    ) -> None:
        if regularizer_decorator is not None and not callable(regularizer_decorator):
            raise ConfigurationError(
                f"regularizer_decorator must be a callable (an OpRegularizer wrapper class), "
                f"but got {regularizer_decorator!r}"
            )
        if decorator_parameters is not None and not isinstance(decorator_parameters, Mapping):
            raise ConfigurationError(
                f"decorator_parameters must be a dict of keyword arguments, but got "
                f"{decorator_parameters!r}"
            )
        inputs = _names("input_boundary", input_boundary)
        outputs = _names("output_boundary", output_boundary)
        self.target = target
        self.cost_name = target.cost_name
        self._decorator = regularizer_decorator
        self._decorator_parameters = dict(decorator_parameters or {})
        self.model = model
        self.graph, self._layers = read_model(model, layer_handlers)
        graph = self.graph
        out_ops = None
        if outputs:
            graph.resolve(outputs, "output_boundary")
            out_ops = [graph.last_op(n) if n in graph.layers else graph.index(n) for n in outputs]
        in_ops = graph.resolve(inputs, "input_boundary") if inputs is not None else None
        handlers = handlers_for(self.algorithm, conv3d=conv3d)
        self.groups: ChannelGroups = analyze(
            graph,
            handlers,
            output_boundary=out_ops,
            input_boundary=in_ops,
            force_group=force_group,
            regularizer_blacklist=regularizer_blacklist,
            algorithm_name=type(self).__name__,
        )
        if not conv3d:
            conv3d_ops = [
                graph.ops[i].layer for i in self.groups.crawl if graph.ops[i].type == "Conv3D"
            ]
            if conv3d_ops:
                raise UnsupportedLayerError(
                    f"{type(self).__name__} does not support Conv3D layers ({conv3d_ops[0]!r}), "
                    f"as in the original; use the GroupLasso FLOPs or model-size regularizer"
                )
        self._prepare_costs()
        self._prepare_groups()
        # with every channel alive, over the same ops get_cost() sums
        self.seed_cost = float(self._cost_values(np, self._seed_counts())[self._default_mask].sum())

    # ----- construction -------------------------------------------------------------------
    def _prepare_groups(self) -> None:
        g = self.groups
        members = g.group_sources
        width = max((len(m) for m in members), default=1)
        total = g.source_offsets[-1] + self.graph.ops[g.sources[-1]].size if g.sources else 0
        index = np.full((len(members), width), total, dtype=np.int64)
        for k, m in enumerate(members):
            index[k, : len(m)] = m
        self._group_index_np = index
        self._multi = width > 1
        self._multi_rows_np = np.array([len(m) > 1 for m in members], dtype=bool)

    def _prepare_costs(self) -> None:
        graph, g = self.graph, self.groups
        cost_ops = [i for i, op in enumerate(graph.ops) if op.type in SUPPORTED_OPS]
        self._cost_ops = cost_ops
        self._cost_pos = {op: k for k, op in enumerate(cost_ops)}
        self._default_mask = np.array([i in g.touched for i in cost_ops], dtype=bool)
        tensors: dict[tuple[str, int], int] = {}
        static: list[float] = []
        unique: dict[bytes, int] = {}
        umap: list[int] = []
        flat: list[np.ndarray] = []
        seg: list[np.ndarray] = []

        def tensor(key: tuple[str, int], ids: np.ndarray) -> int:
            if key in tensors:
                return tensors[key]
            tensors[key] = len(static)
            static.append(float(np.count_nonzero(ids < 0)))
            live = ids[ids >= 0]
            if live.size:
                u = unique.setdefault(live.tobytes(), len(unique))
                if u == len(flat):
                    flat.append(live)
                    seg.append(np.full(live.size, u, dtype=np.int64))
                umap.append(u)
            else:
                umap.append(-1)
            return tensors[key]

        in_t, out_t = [], []
        for i in cost_ops:
            op = graph.ops[i]
            out_t.append(tensor(("op", i), g.channel_group[i]))
            if op.type == "ConcatV2":
                in_t.append(out_t[-1])
                continue
            ref = op.inputs[0]
            if ref.producer is None:
                in_t.append(tensor(("const", i), np.full(ref.channels, -1, dtype=np.int64)))
            else:
                in_t.append(tensor(("op", ref.producer), g.channel_group[ref.producer]))
        n_unique = len(flat)
        self._n_unique = n_unique
        self._umap_np = np.array([u if u >= 0 else n_unique for u in umap], dtype=np.int64)
        self._flat_ids_np = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        self._flat_seg_np = np.concatenate(seg) if seg else np.zeros(0, np.int64)
        self._static_np = np.array(static, dtype=np.float64)
        self._in_t_np, self._out_t_np = np.array(in_t, np.int64), np.array(out_t, np.int64)
        self._sizes_np = np.array(
            [float(np.asarray(ids).size) for ids in self._tensor_ids(tensors)], dtype=np.float64
        )
        table = coefficients_table([graph.ops[i] for i in cost_ops])
        self._coeffs_np = table
        self._coeffs32_np = OpCoefficients(
            **{k: np.asarray(v, np.float32) for k, v in vars(table).items()}
        )

    def _tensor_ids(self, tensors: Mapping[tuple[str, int], int]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0)] * len(tensors)
        for (kind, i), t in tensors.items():
            if kind == "op":
                out[t] = self.groups.channel_group[i]
            else:
                out[t] = np.zeros(self.graph.ops[i].inputs[0].channels)
        return out

    def _seed_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        a = self._sizes_np
        zeros = np.zeros(len(self._cost_ops))
        return a[self._in_t_np], a[self._out_t_np], zeros, zeros

    # ----- sources and groups -------------------------------------------------------------
    def _source_regularizer(self, op_index: int) -> OpRegularizer:
        raise NotImplementedError

    def _combine(self, regs: Sequence[OpRegularizer], reg: Any, alive: Any) -> tuple[Any, Any]:
        index = self._group_index_np
        single_reg = ops.take(reg, index[:, 0], axis=0)
        single_alive = ops.take(alive, index[:, 0], axis=0)
        if not self._multi:
            return single_reg, single_alive
        alive_pad = ops.concatenate([alive, ops.zeros((1,), "bool")], 0)
        grouped_alive = ops.any(ops.take(alive_pad, index, axis=0), axis=1)
        if self.algorithm == "logistic_sigmoid":
            if not all(getattr(r, "is_probabilistic", False) for r in regs):
                raise ConfigurationError(
                    "ProbabilisticGroupingRegularizer needs probabilistic members; the "
                    "regularizer_decorator must keep is_probabilistic = True on what it returns"
                )
            pad = ops.concatenate([reg, ops.zeros((1,), "float32")], 0)
            grouped = 1.0 - ops.prod(1.0 - ops.take(pad, index, axis=0), axis=1)
        else:
            lowest = ops.full((1,), np.finfo(np.float32).min, "float32")
            pad = ops.concatenate([reg, lowest], 0)
            grouped = ops.max(ops.take(pad, index, axis=0), axis=1)
        rows = self._multi_rows_np
        return ops.where(rows, grouped, single_reg), ops.where(rows, grouped_alive, single_alive)

    def group_vectors(self) -> tuple[Any, Any]:
        """(regularization vector, alive vector) of every channel group, in group order."""
        regs = []
        for s in self.groups.sources:
            r = self._source_regularizer(s)
            if self._decorator is not None:
                r = self._decorator(r, **self._decorator_parameters) or r
            regs.append(r)
        reg = ops.concatenate([f32(r.regularization_vector) for r in regs], 0)
        alive = ops.concatenate([ops.cast(r.alive_vector, "bool") for r in regs], 0)
        return self._combine(regs, reg, alive)

    def get_regularizer(self, op_or_layer: str) -> OpRegularizer | None:
        """The op regularizer of an op (or a layer's channel op), or None when unregularized."""
        i = self._op_index(op_or_layer)
        ids = self.groups.channel_group[i]
        if not np.any(ids >= 0):
            return None
        reg, alive = self.group_vectors()
        safe, has = np.maximum(ids, 0), ids >= 0
        return _Vectors(
            ops.where(has, ops.take(reg, safe, axis=0), 0.0),
            ops.where(has, ops.take(alive, safe, axis=0), True),
        )

    def _op_index(self, name: str) -> int:
        info = self.graph.layers.get(name)
        if info is not None:
            return info.prunable_op if info.prunable_op is not None else info.ops[-1]
        return self.graph.resolve([name], "op")[0]

    # ----- costs ---------------------------------------------------------------------------
    def _term_counts(self) -> tuple[Any, Any, Any, Any]:
        """Alive and regularization counts of every costed op's input and output tensor, as
        float32 tensors on the device (the differentiable side)."""
        reg, alive = self.group_vectors()
        n = self._n_unique
        alive_f = ops.cast(alive, "float32")

        def per_tensor(values: Any) -> Any:
            summed = ops.segment_sum(
                ops.take(values, self._flat_ids_np, axis=0), self._flat_seg_np, num_segments=n
            )
            return ops.take(ops.concatenate([summed, ops.zeros((1,), "float32")], 0), self._umap_np)

        a_t = ops.convert_to_tensor(self._static_np.astype(np.float32)) + per_tensor(alive_f)
        r_t = per_tensor(reg)
        take = ops.take
        return (
            take(a_t, self._in_t_np),
            take(a_t, self._out_t_np),
            take(r_t, self._in_t_np),
            take(r_t, self._out_t_np),
        )

    def _alive_counts(self, alive: np.ndarray) -> tuple[Any, Any, Any, Any]:
        """The alive counts of the same tensors from an alive vector, exactly, on the host."""
        summed = np.bincount(
            self._flat_seg_np,
            weights=alive[self._flat_ids_np].astype(np.float64),
            minlength=self._n_unique,
        )
        a_t = self._static_np + np.append(summed, 0.0)[self._umap_np]
        zeros = np.zeros(len(self._cost_ops))
        return a_t[self._in_t_np], a_t[self._out_t_np], zeros, zeros

    def _host_costs(self) -> np.ndarray:
        _, alive = self.group_vectors()
        counts = self._alive_counts(to_numpy(alive).astype(bool))
        return np.asarray(self._cost_values(np, counts), dtype=np.float64)

    def _cost_values(self, xp: Any, counts: Sequence[Any], reg: bool = False) -> Any:
        if xp is np:
            coeffs = self._coeffs_np
        else:
            coeffs = OpCoefficients(
                **{k: ops.convert_to_tensor(v) for k, v in vars(self._coeffs32_np).items()}
            )
        return self.target.function(coeffs, reg, *counts, xp=xp)

    def _selection(self, names: Sequence[str] | None) -> np.ndarray:
        if not names:  # None or empty: every op of the regularized network, as in the original
            return self._default_mask
        wanted = set(self.graph.resolve(list(names), "ops"))
        return np.array([i in wanted for i in self._cost_ops], dtype=bool)

    def get_regularization_term(self, names: Sequence[str] | None = None) -> Any:
        """Differentiable float32 scalar to add, times a strength, to the training loss.

        Args:
            names: layer or op names to restrict the sum to; None (or empty) means all.
        """
        values = self._cost_values(_Ops, self._term_counts(), reg=True)
        return ops.sum(ops.where(self._selection(names), values, 0.0))

    def get_cost(self, names: Sequence[str] | None = None) -> float:
        """Cost of the network pruned to its alive channels, exactly (float64, on the host)."""
        return float(self._host_costs()[self._selection(names)].sum())

    def cost_per_op(self) -> dict[str, float]:
        """Current cost of every costed op of the regularized network, by op name."""
        values = self._host_costs()
        return {
            self.graph.ops[i].name: float(v)
            for i, v, keep in zip(self._cost_ops, values, self._default_mask, strict=True)
            if keep
        }

    # ----- structure -----------------------------------------------------------------------
    def alive_vectors(self) -> dict[str, np.ndarray]:
        """Alive channels of every prunable layer (by Keras layer name), as booleans."""
        _, alive = self.group_vectors()
        alive_np = to_numpy(alive)
        out = {}
        for name, info in self.graph.layers.items():
            if info.prunable_op is None:
                continue
            ids = self.groups.channel_group[info.prunable_op]
            out[name] = np.where(ids >= 0, alive_np[np.maximum(ids, 0)], True).astype(bool)
        return out

    def structure(self, step: int | None = None) -> Structure:
        """The learned structure now: alive widths of every prunable layer, seed and learned cost.

        The alive counts are the groups' alive vectors, as the original exporter writes them
        (output layers included); the learned cost is the cost of the model ``apply_structure``
        rebuilds (``widths.structure_cost``: output layers at full width, one channel in dead
        layers when the rebuild needs it), and the original MorphNet ``get_cost()`` is kept
        beside it as ``morphnet_cost``.
        """
        layers = {}
        for name, alive in self.alive_vectors().items():
            info = self.graph.layers[name]
            op = self.graph.ops[info.prunable_op]  # type: ignore[index]
            layers[name] = LayerStructure(
                alive=int(alive.sum()),
                original=int(alive.size),
                alive_channels=tuple(int(k) for k in np.flatnonzero(alive)),
                layer_class=info.class_name,
                op_name=op.name,
            )
        structure = Structure(
            layers=layers,
            cost_name=self.cost_name,
            seed_cost=self.seed_cost,
            regularizer=self.name,
            model_name=self.graph.model_name,
            fingerprint=graph_fingerprint(self.graph),
            step=step,
        )
        _, min_channels = rebuild_structure(self.graph, structure)
        return dataclasses.replace(
            structure,
            learned_cost=structure_cost(self.graph, structure, self.target),
            cost_definition="rebuild",
            rebuild_min_channels=min_channels,
            morphnet_cost=float(self.get_cost()),
        )

    @property
    def source_ops(self) -> list[str]:
        """Names of the ops whose parameters are regularized (BN, conv, gating ops)."""
        return [self.graph.ops[i].name for i in self.groups.sources]


# ----- algorithm families --------------------------------------------------------------------
class GammaNetworkRegularizer(NetworkRegularizer):
    algorithm = "gamma"

    def __init__(
        self,
        model: Any,
        gamma_threshold: float,
        regularizer_decorator: Any = None,
        decorator_parameters: Mapping[str, Any] | None = None,
        input_boundary: Sequence[str] | None = None,
        force_group: Sequence[str] | None = None,
        regularizer_blacklist: Sequence[str] | None = None,
        *,
        output_boundary: Sequence[str] | None = None,
        layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
        target: Target | None = None,
    ) -> None:
        self.gamma_threshold = _number("gamma_threshold", gamma_threshold)
        super().__init__(
            model,
            target=target or TARGETS[self._target_key],
            regularizer_decorator=regularizer_decorator,
            decorator_parameters=decorator_parameters,
            input_boundary=input_boundary,
            output_boundary=output_boundary,
            force_group=force_group,
            regularizer_blacklist=regularizer_blacklist,
            layer_handlers=layer_handlers,
        )

    _target_key = "flops"

    def _source_regularizer(self, op_index: int) -> OpRegularizer:
        layer = self._layers[self.graph.ops[op_index].layer]
        return GammaL1Regularizer(layer.gamma, self.gamma_threshold)


class GroupLassoNetworkRegularizer(NetworkRegularizer):
    algorithm = "group_lasso"
    _target_key = "flops"
    _conv3d = True

    def __init__(
        self,
        model: Any,
        threshold: float,
        l1_fraction: float = 0,
        regularizer_decorator: Any = None,
        decorator_parameters: Mapping[str, Any] | None = None,
        input_boundary: Sequence[str] | None = None,
        force_group: Sequence[str] | None = None,
        regularizer_blacklist: Sequence[str] | None = None,
        *,
        output_boundary: Sequence[str] | None = None,
        layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
        target: Target | None = None,
    ) -> None:
        self.threshold = _number("threshold", threshold)
        self.l1_fraction = _number("l1_fraction", l1_fraction, 0.0, 1.0)
        super().__init__(
            model,
            target=target or TARGETS[self._target_key],
            regularizer_decorator=regularizer_decorator,
            decorator_parameters=decorator_parameters,
            input_boundary=input_boundary,
            output_boundary=output_boundary,
            force_group=force_group,
            regularizer_blacklist=regularizer_blacklist,
            layer_handlers=layer_handlers,
            conv3d=self._conv3d,
        )

    def _source_regularizer(self, op_index: int) -> OpRegularizer:
        op = self.graph.ops[op_index]
        layer = self._layers[op.layer]
        kernel = getattr(layer, str(op.attrs["weight"]))
        reduce_dims: tuple[int, ...] = tuple(op.attrs["reduce_dims"])  # type: ignore[arg-type]
        return GroupLassoRegularizer(kernel, reduce_dims, self.threshold, self.l1_fraction)


class LogisticSigmoidNetworkRegularizer(NetworkRegularizer):
    algorithm = "logistic_sigmoid"
    _target_key = "flops"

    def __init__(
        self,
        model: Any,
        regularize_on_mask: bool = True,
        alive_threshold: float = 0.1,
        mask_as_alive_vector: bool = True,
        regularizer_decorator: Any = None,
        decorator_parameters: Mapping[str, Any] | None = None,
        input_boundary: Sequence[str] | None = None,
        force_group: Sequence[str] | None = None,
        regularizer_blacklist: Sequence[str] | None = None,
        *,
        output_boundary: Sequence[str] | None = None,
        layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None,
        target: Target | None = None,
    ) -> None:
        self.regularize_on_mask = bool(regularize_on_mask)
        self.alive_threshold = _number("alive_threshold", alive_threshold, 0.0, 1.0)
        self.mask_as_alive_vector = bool(mask_as_alive_vector)
        super().__init__(
            model,
            target=target or TARGETS[self._target_key],
            regularizer_decorator=regularizer_decorator,
            decorator_parameters=decorator_parameters,
            input_boundary=input_boundary,
            output_boundary=output_boundary,
            force_group=force_group,
            regularizer_blacklist=regularizer_blacklist,
            layer_handlers=layer_handlers,
        )

    _inference = False

    def structure(self, step: int | None = None, *, inference: bool = False) -> Structure:
        """The learned structure; with ``inference`` the gates' inference masks (logit > 0)
        decide what is alive instead of the last training sample (groups still OR their gates).
        """
        self._inference = inference
        try:
            return super().structure(step)
        finally:
            self._inference = False

    def _source_regularizer(self, op_index: int) -> OpRegularizer:
        layer = self._layers[self.graph.ops[op_index].layer]
        logits = f32(layer.mask_logits)
        mask = ops.cast(logits > 0, "float32") if self._inference else layer.sampled_mask()
        reg = ProbGatingRegularizer(
            logits,
            mask,
            regularize_on_mask=self.regularize_on_mask,
            alive_threshold=self.alive_threshold,
            mask_as_alive_vector=self.mask_as_alive_vector or self._inference,
        )
        if layer.keep_first_channel_alive:
            # Channel 0 is always open in the forward pass, so it is alive in the cost too.
            first = np.arange(int(reg.alive_vector.shape[0])) == 0
            reg._alive_vector = ops.logical_or(reg.alive_vector, first)
        return reg


class GammaFlopsRegularizer(GammaNetworkRegularizer):
    name = "GammaFlops"


class GammaModelSizeRegularizer(GammaNetworkRegularizer):
    name = "GammaModelSize"
    _target_key = "model_size"


class GammaActivationRegularizer(GammaNetworkRegularizer):
    name = "GammaActivationCount"
    _target_key = "activations"


class GammaLatencyRegularizer(GammaNetworkRegularizer):
    """``GammaLatencyRegularizer(model, gamma_threshold, hardware, batch_size=1, ...)``."""

    name = "Latency"

    def __init__(
        self,
        model: Any,
        gamma_threshold: float,
        hardware: str,
        batch_size: int = 1,
        *args: Any,
        **kw: Any,
    ) -> None:
        _number("gamma_threshold", gamma_threshold)
        super().__init__(
            model, gamma_threshold, *args, target=latency_target(hardware, batch_size), **kw
        )


class GroupLassoFlopsRegularizer(GroupLassoNetworkRegularizer):
    name = "GroupLassoFlops"


class GroupLassoModelSizeRegularizer(GroupLassoNetworkRegularizer):
    name = "GroupLassoModelSize"
    _target_key = "model_size"


class GroupLassoActivationRegularizer(GroupLassoNetworkRegularizer):
    name = "GroupLassoActivationCount"
    _target_key = "activations"
    _conv3d = False


class GroupLassoLatencyRegularizer(GroupLassoNetworkRegularizer):
    """``GroupLassoLatencyRegularizer(model, threshold, hardware, batch_size=1, l1_fraction=0, ...)``."""

    name = "Latency"

    def __init__(
        self,
        model: Any,
        threshold: float,
        hardware: str,
        batch_size: int = 1,
        l1_fraction: float = 0,
        *args: Any,
        **kw: Any,
    ) -> None:
        _number("threshold", threshold)
        super().__init__(
            model, threshold, l1_fraction, *args, target=latency_target(hardware, batch_size), **kw
        )


class LogisticSigmoidFlopsRegularizer(LogisticSigmoidNetworkRegularizer):
    name = "LogisticSigmoidFlops"


class LogisticSigmoidModelSizeRegularizer(LogisticSigmoidNetworkRegularizer):
    name = "LogisticSigmoidModelSize"
    _target_key = "model_size"


class LogisticSigmoidLatencyRegularizer(LogisticSigmoidNetworkRegularizer):
    """``LogisticSigmoidLatencyRegularizer(model, hardware, batch_size=1, regularize_on_mask=True, ...)``."""

    name = "LogisticSigmoidLatency"

    def __init__(
        self, model: Any, hardware: str, batch_size: int = 1, *args: Any, **kw: Any
    ) -> None:
        super().__init__(model, *args, target=latency_target(hardware, batch_size), **kw)


REGULARIZERS: dict[tuple[str, str], type[NetworkRegularizer]] = {
    ("gamma", "flops"): GammaFlopsRegularizer,
    ("gamma", "model_size"): GammaModelSizeRegularizer,
    ("gamma", "latency"): GammaLatencyRegularizer,
    ("gamma", "activations"): GammaActivationRegularizer,
    ("group_lasso", "flops"): GroupLassoFlopsRegularizer,
    ("group_lasso", "model_size"): GroupLassoModelSizeRegularizer,
    ("group_lasso", "latency"): GroupLassoLatencyRegularizer,
    ("group_lasso", "activations"): GroupLassoActivationRegularizer,
    ("logistic_sigmoid", "flops"): LogisticSigmoidFlopsRegularizer,
    ("logistic_sigmoid", "model_size"): LogisticSigmoidModelSizeRegularizer,
    ("logistic_sigmoid", "latency"): LogisticSigmoidLatencyRegularizer,
}

# the regularizer of each algorithm for any target (a Target given to its constructor)
FAMILIES: dict[str, type[NetworkRegularizer]] = {
    "gamma": GammaNetworkRegularizer,
    "group_lasso": GroupLassoNetworkRegularizer,
    "logistic_sigmoid": LogisticSigmoidNetworkRegularizer,
}
