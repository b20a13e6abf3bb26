"""Plain, frozen description of a network as MorphNet sees it: ops, their tensors and shapes.

A Keras layer lowers to one or more ops with the types the original TensorFlow-1 library saw
(``Conv2D``, ``BiasAdd``, ``Relu``, ``FusedBatchNormV3``, ``ConcatV2`` ...), so that grouping and
costs follow the original rules exactly. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

Shape = tuple[int | None, ...]

# Op types whose resources the cost functions count (spec §4).
CONV2D_OPS = ("Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative")
CONV3D_OPS = ("Conv3D",)
CONV_OPS = CONV2D_OPS + CONV3D_OPS
FLOP_OPS = CONV_OPS + ("MatMul",)
SUPPORTED_OPS = FLOP_OPS + (
    "Add",
    "AddV2",
    "AddN",
    "ConcatV2",
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
    "Mul",
    "Relu",
    "Relu6",
    "Sum",
)


@dataclass(frozen=True)
class TensorRef:
    """One input of an op: the output of another op (``producer`` index) or a constant."""

    shape: Shape
    producer: int | None = None

    @property
    def is_constant(self) -> bool:
        return self.producer is None

    @property
    def channels(self) -> int:
        return int(self.shape[-1]) if self.shape and self.shape[-1] is not None else 0


@dataclass(frozen=True)
class Op:
    """One op of the analysed network.

    Attributes:
        name: unique op name, ``<layer>/<OpType>`` (e.g. ``conv1/Conv2D``).
        type: the TensorFlow op type the original library would have seen.
        layer: name of the Keras layer the op belongs to.
        shape: static shape of the op's output, batch dimension first (``None``).
        inputs: activation inputs in order (kernels are not inputs; see ``kernel_shape``).
        kernel_shape: shape of the kernel for conv and matmul ops, else ``None``.
        attrs: extra facts a handler needs (``axis`` of a concat, depthwise ``multiplier``,
            ``weight`` holding the source parameter, ``reduce_dims`` for group lasso).
        dtype_bytes: bytes per element of the op's activations.
    """

    name: str
    type: str
    layer: str
    shape: Shape
    inputs: tuple[TensorRef, ...] = ()
    kernel_shape: tuple[int, ...] | None = None
    attrs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    dtype_bytes: int = 4

    @property
    def size(self) -> int:
        """Number of channels: the static last dimension of the output (0 for a scalar)."""
        if not self.shape or self.shape[-1] is None:
            return 0
        return int(self.shape[-1])

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.shape[1:-1])  # type: ignore[arg-type]


def payload(shape: Shape, dtype_bytes: int) -> float:
    """Bytes per (example, channel) of a tensor: product of ``shape[1:-1]`` times the dtype size."""
    return float(math.prod(int(d) for d in shape[1:-1] if d is not None) * dtype_bytes)


@dataclass(frozen=True)
class LayerInfo:
    """What the library needs to know about one Keras layer, without the layer itself."""

    name: str
    class_name: str
    ops: tuple[int, ...]
    prunable_op: int | None = None  # op whose output channels are the layer's width
    # how its output channels relate to its inputs' ("pass", "new" or "merge": its class's
    # LayerSpec.channels), for the rebuild logic that needs no Keras
    channels: str = "pass"


@dataclass(frozen=True)
class Graph:
    """A network as a list of ops in topological order plus its boundaries."""

    ops: tuple[Op, ...]
    layers: Mapping[str, LayerInfo]
    outputs: tuple[int, ...]
    inputs: tuple[int, ...]
    model_name: str = "model"

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {op.name: i for i, op in enumerate(self.ops)})
        consumers: list[list[int]] = [[] for _ in self.ops]
        for i, op in enumerate(self.ops):
            for ref in op.inputs:
                if ref.producer is not None and i not in consumers[ref.producer]:
                    consumers[ref.producer].append(i)
        object.__setattr__(self, "_consumers", tuple(tuple(c) for c in consumers))

    def index(self, op_name: str) -> int:
        return self._by_name[op_name]  # type: ignore[attr-defined,no-any-return]

    def consumers(self, i: int) -> tuple[int, ...]:
        return self._consumers[i]  # type: ignore[attr-defined,no-any-return]

    def resolve(self, names: Sequence[str], what: str) -> list[int]:
        """Op indices for a list of layer names or op names; unknown names raise."""
        from .errors import ConfigurationError

        found: list[int] = []
        for name in names:
            if name in self.layers:
                info = self.layers[name]
                found.extend(info.ops)
            elif name in self._by_name:  # type: ignore[attr-defined]
                found.append(self._by_name[name])  # type: ignore[attr-defined]
            else:
                known = ", ".join(sorted(self.layers)[:12])
                raise ConfigurationError(
                    f"{what} names {name!r}, which is not a layer of model "
                    f"{self.model_name!r}; use one of its layer names (e.g. {known}, ...)"
                )
        return list(dict.fromkeys(found))

    def last_op(self, layer: str) -> int:
        return self.layers[layer].ops[-1]
