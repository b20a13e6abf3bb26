"""Read a built Keras 3 model into the plain ``Graph`` the analysis works on.

Each Keras layer class has a *layer handler* that lowers one call of the layer into the ops the
original TensorFlow-1 library would have seen (``Conv2D`` with a bias and ReLU becomes
``Conv2D``, ``BiasAdd`` and ``Relu``). The registry is keyed by the exact class: an unknown class
is an error that names the layer and the fix, never a silent default. Users add their own classes
with ``register_layer`` or per call with ``read_model(model, layer_handlers={...})``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ModelNotBuiltError, UnsupportedLayerError
from ..graph import Graph, LayerInfo, Op, Shape, TensorRef
from .backend import keras

_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


class GraphBuilder:
    """Collects ops while a model is read; handed to layer handlers."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.layer_ops: dict[str, list[int]] = {}
        self.layer_class: dict[str, str] = {}
        self.prunable: dict[str, int] = {}
        self.objects: dict[str, Any] = {}
        self._names: set[str] = set()

    def add(
        self,
        layer: Any,
        op_type: str,
        shape: Shape,
        inputs: Sequence[TensorRef],
        *,
        suffix: str | None = None,
        kernel_shape: Sequence[int] | None = None,
        prunable: bool = False,
        **attrs: object,
    ) -> TensorRef:
        """Append one op of ``layer`` and return a reference to its output."""
        base = f"{layer.name}/{suffix or op_type}"
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        dtype = getattr(layer, "compute_dtype", "float32") or "float32"
        op = Op(
            name=name,
            type=op_type,
            layer=layer.name,
            shape=tuple(shape),
            inputs=tuple(inputs),
            kernel_shape=tuple(int(d) for d in kernel_shape) if kernel_shape is not None else None,
            attrs=MappingProxyType(dict(attrs)),
            dtype_bytes=_DTYPE_BYTES.get(str(dtype), 4),
        )
        index = len(self.ops)
        self.ops.append(op)
        self.layer_ops.setdefault(layer.name, []).append(index)
        self.layer_class.setdefault(layer.name, type(layer).__name__)
        self.objects.setdefault(layer.name, layer)
        if prunable:
            self.prunable.setdefault(layer.name, index)
        return TensorRef(op.shape, index)

    def chain(
        self, layer: Any, op_type: str, shape: Shape, inputs: Sequence[TensorRef]
    ) -> TensorRef:
        """A merge of n inputs as n-1 binary ops, like ``x0 + x1 + x2`` in TensorFlow."""
        out = inputs[0]
        for ref in inputs[1:]:
            out = self.add(layer, op_type, shape, (out, ref))
        return out

    def activation(self, layer: Any, function: Any, x: TensorRef) -> TensorRef:
        """Append the ops of a Keras activation function applied to ``x``."""
        name = activation_name(function)
        if name not in ACTIVATION_OPS:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({type(layer).__name__}) uses activation {name!r}, which "
                f"morphsweep cannot cost; known: {sorted(ACTIVATION_OPS)}. Register it with "
                f"trainers.morphnet.register_activation({name!r}, ['<TF op type>', ...])"
            )
        for op_type in ACTIVATION_OPS[name]:
            if op_type == "Mul":  # x * f(x), as in swish
                x = self.add(layer, "Mul", x.shape, (x, first_input(self, x)))
            else:
                x = self.add(layer, op_type, x.shape, (x,))
        return x


def first_input(builder: GraphBuilder, ref: TensorRef) -> TensorRef:
    """The tensor an elementwise activation op was applied to (for ``x * sigmoid(x)``)."""
    assert ref.producer is not None
    return builder.ops[ref.producer].inputs[0]


# Ops each activation lowers to; "Mul" multiplies the result with the activation's input.
ACTIVATION_OPS: dict[str, tuple[str, ...]] = {
    "linear": (),
    "relu": ("Relu",),
    "relu6": ("Relu6",),
    "sigmoid": ("Sigmoid",),
    "hard_sigmoid": ("HardSigmoid",),
    "tanh": ("Tanh",),
    "softmax": ("Softmax",),
    "log_softmax": ("LogSoftmax",),
    "elu": ("Elu",),
    "selu": ("Selu",),
    "softplus": ("Softplus",),
    "softsign": ("Softsign",),
    "exponential": ("Exp",),
    "leaky_relu": ("LeakyRelu",),
    "gelu": ("Gelu",),
    "silu": ("Sigmoid", "Mul"),
    "swish": ("Sigmoid", "Mul"),
    "hard_silu": ("HardSigmoid", "Mul"),
    "hard_swish": ("HardSigmoid", "Mul"),
    "mish": ("Softplus", "Tanh", "Mul"),
}


def register_activation(name: str, op_types: Sequence[str]) -> None:
    """Teach the reader an activation function: the TF op types it lowers to, in order."""
    ACTIVATION_OPS[name] = tuple(op_types)


def activation_name(function: Any) -> str:
    if function is None:
        return "linear"
    if isinstance(function, str):
        return function
    return str(getattr(function, "__name__", type(function).__name__))


LayerHandler = Callable[[GraphBuilder, Any, Any, list[TensorRef]], list[TensorRef]]


@dataclass(frozen=True)
class PassThrough:
    """A layer that keeps channel ``j`` as channel ``j`` (an elementwise op, a pooling)."""

    op_type: str = "Identity"

    def __call__(
        self, b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
    ) -> list[TensorRef]:
        return [b.add(layer, self.op_type, _out_shape(node), inputs)]


@dataclass(frozen=True)
class Leaf:
    """A layer that breaks channel correspondence (reshape, flatten): channels restart after it."""

    op_type: str = "Reshape"

    def __call__(
        self, b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
    ) -> list[TensorRef]:
        return [b.add(layer, self.op_type, _out_shape(node), inputs)]


@dataclass(frozen=True)
class NonPassThrough:
    """A layer whose output channels are not its input channels but which does not cost FLOPs."""

    op_type: str = "Transpose"

    def __call__(
        self, b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
    ) -> list[TensorRef]:
        return [b.add(layer, self.op_type, _out_shape(node), inputs)]


def _out_shape(node: Any, i: int = 0) -> Shape:
    return tuple(node.output_tensors[i].shape)


def _conv(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    if getattr(layer, "groups", 1) != 1:
        raise UnsupportedLayerError(
            f"layer {layer.name!r} is a grouped convolution (groups={layer.groups}); MorphNet's "
            f"bilinear costs assume groups=1. Use groups=1 or a DepthwiseConv2D"
        )
    _check_channels_last(layer)
    kernel = tuple(layer.kernel.shape)
    rank = len(kernel)
    transpose = isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose))
    if transpose:
        op_type, suffix = "Conv2DBackpropInput", "conv2d_transpose"
        reduce_dims = tuple(d for d in range(rank) if d != rank - 2)
    else:
        op_type = "Conv3D" if rank == 5 else "Conv2D"
        suffix = op_type
        reduce_dims = tuple(range(rank - 1))
    x = b.add(
        layer,
        op_type,
        _out_shape(node),
        inputs[:1],
        suffix=suffix,
        kernel_shape=kernel,
        prunable=True,
        weight="kernel",
        reduce_dims=reduce_dims,
    )
    return [_bias_and_activation(b, layer, x)]


def _bias_and_activation(b: GraphBuilder, layer: Any, x: TensorRef) -> TensorRef:
    if getattr(layer, "use_bias", False):
        x = b.add(layer, "BiasAdd", x.shape, (x, TensorRef((x.shape[-1],))))
    return b.activation(layer, getattr(layer, "activation", None), x)


def _depthwise(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    _check_channels_last(layer)
    kernel = tuple(layer.kernel.shape)
    x = b.add(
        layer,
        "DepthwiseConv2dNative",
        _out_shape(node),
        inputs[:1],
        suffix="depthwise",
        kernel_shape=kernel,
        multiplier=int(layer.depth_multiplier),
    )
    return [_bias_and_activation(b, layer, x)]


def _separable(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    _check_channels_last(layer)
    dw_kernel = tuple(layer.depthwise_kernel.shape)
    pw_kernel = tuple(layer.pointwise_kernel.shape)
    out = _out_shape(node)
    mid = out[:-1] + (pw_kernel[-2],)
    x = b.add(
        layer,
        "DepthwiseConv2dNative",
        mid,
        inputs[:1],
        suffix="depthwise",
        kernel_shape=dw_kernel,
        multiplier=int(layer.depth_multiplier),
    )
    x = b.add(
        layer,
        "Conv2D",
        out,
        (x,),
        suffix="separable_conv2d",
        kernel_shape=pw_kernel,
        prunable=True,
        weight="pointwise_kernel",
        reduce_dims=tuple(range(len(pw_kernel) - 1)),
    )
    return [_bias_and_activation(b, layer, x)]


def _dense(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    kernel = tuple(layer.kernel.shape)
    x = b.add(
        layer,
        "MatMul",
        _out_shape(node),
        inputs[:1],
        kernel_shape=kernel,
        prunable=True,
        weight="kernel",
        reduce_dims=(0,),
    )
    return [_bias_and_activation(b, layer, x)]


def _batch_norm(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    rank = len(inputs[0].shape)
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if axis not in (-1, rank - 1, [-1], (-1,), (rank - 1,)):
        raise UnsupportedLayerError(
            f"layer {layer.name!r} normalizes axis {layer.axis}; MorphNet works on channels-last "
            f"tensors only. Use BatchNormalization(axis=-1) with data_format='channels_last'"
        )
    return [
        b.add(
            layer,
            "FusedBatchNormV3",
            _out_shape(node),
            inputs[:1],
            weight="gamma",
            not_source=not layer.scale,
        )
    ]


def _activation_layer(
    b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
) -> list[TensorRef]:
    if activation_name(layer.activation) == "linear":
        return [b.add(layer, "Identity", _out_shape(node), inputs)]
    return [b.activation(layer, layer.activation, inputs[0])]


def _relu_layer(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    shape = _out_shape(node)
    slope = float(getattr(layer, "negative_slope", 0.0) or 0.0)
    max_value = getattr(layer, "max_value", None)
    if slope:
        return [b.add(layer, "LeakyRelu", shape, inputs)]
    if max_value is not None and float(max_value) == 6.0:
        return [b.add(layer, "Relu6", shape, inputs)]
    x = b.add(layer, "Relu", shape, inputs)
    if max_value is not None:
        x = b.add(layer, "Minimum", shape, (x, TensorRef(())))
    return [x]


def _merge(op_type: str) -> LayerHandler:
    def lower(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
        return [b.chain(layer, op_type, _out_shape(node), inputs)]

    return lower


def _average(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    shape = _out_shape(node)
    x = b.chain(layer, "AddV2", shape, inputs)
    return [b.add(layer, "RealDiv", shape, (x, TensorRef(())))]


def _concat(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    shape = _out_shape(node)
    axis = layer.axis % len(shape)
    return [b.add(layer, "ConcatV2", shape, inputs, axis=axis)]


def _rescaling(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    shape = _out_shape(node)
    x = b.add(layer, "Mul", shape, (inputs[0], TensorRef(_const_shape(layer.scale))))
    return [b.add(layer, "AddV2", shape, (x, TensorRef(_const_shape(layer.offset))))]


def _const_shape(value: Any) -> Shape:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return tuple(shape)
    if isinstance(value, list | tuple):
        return (len(value),)
    return ()


def _normalization(
    b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
) -> list[TensorRef]:
    shape = _out_shape(node)
    stat = (1,) * (len(shape) - 1) + (shape[-1],)
    x = b.add(layer, "Sub", shape, (inputs[0], TensorRef(stat)))
    return [b.add(layer, "RealDiv", shape, (x, TensorRef(stat)))]


def _upsampling(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    kind = (
        "ResizeBilinear"
        if getattr(layer, "interpolation", "nearest") == "bilinear"
        else ("ResizeNearestNeighbor")
    )
    return [b.add(layer, kind, _out_shape(node), inputs)]


def _input_layer(
    b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
) -> list[TensorRef]:
    return [b.add(layer, "Placeholder", _out_shape(node), ())]


def _check_channels_last(layer: Any) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(
            f"layer {layer.name!r} uses data_format={layer.data_format!r}; MorphNet works on "
            f"channels-last tensors only. Rebuild the model with data_format='channels_last'"
        )


def _default_handlers() -> dict[type, LayerHandler]:
    L = keras.layers
    table: dict[type, LayerHandler] = {
        L.InputLayer: _input_layer,
        L.Conv1D: _conv,
        L.Conv2D: _conv,
        L.Conv3D: _conv,
        L.Conv1DTranspose: _conv,
        L.Conv2DTranspose: _conv,
        L.DepthwiseConv1D: _depthwise,
        L.DepthwiseConv2D: _depthwise,
        L.SeparableConv1D: _separable,
        L.SeparableConv2D: _separable,
        L.Dense: _dense,
        L.BatchNormalization: _batch_norm,
        L.Activation: _activation_layer,
        L.ReLU: _relu_layer,
        L.LeakyReLU: PassThrough("LeakyRelu"),
        L.PReLU: PassThrough("Prelu"),
        L.ELU: PassThrough("Elu"),
        L.Softmax: PassThrough("Softmax"),
        L.Add: _merge("AddV2"),
        L.Subtract: _merge("Sub"),
        L.Multiply: _merge("Mul"),
        L.Maximum: _merge("Maximum"),
        L.Minimum: _merge("Minimum"),
        L.Average: _average,
        L.Concatenate: _concat,
        L.Rescaling: _rescaling,
        L.Normalization: _normalization,
        L.Flatten: Leaf("Reshape"),
        L.Reshape: Leaf("Reshape"),
        L.RepeatVector: Leaf("Tile"),
        L.Permute: NonPassThrough("Transpose"),
        L.UpSampling2D: _upsampling,
        L.UpSampling1D: PassThrough("Repeat"),
        L.UpSampling3D: PassThrough("Repeat"),
        L.Resizing: PassThrough("ResizeBilinear"),
        L.LayerNormalization: PassThrough("LayerNorm"),
        L.GroupNormalization: PassThrough("GroupNorm"),
        L.UnitNormalization: PassThrough("UnitNorm"),
    }
    for cls in (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D):
        table[cls] = PassThrough("MaxPool")
    for cls in (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D):
        table[cls] = PassThrough("AvgPool")
    for cls in (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D):
        table[cls] = PassThrough("Mean")
    for cls in (L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D):
        table[cls] = PassThrough("Max")
    for cls in (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D):
        table[cls] = PassThrough("Pad")
    # Cropping keeps channels; the original's StridedSlice made it a leaf (see README).
    for cls in (L.Cropping1D, L.Cropping2D, L.Cropping3D, L.CenterCrop):
        table[cls] = PassThrough("Crop")
    for cls in (
        L.Dropout,
        L.SpatialDropout1D,
        L.SpatialDropout2D,
        L.SpatialDropout3D,
        L.GaussianNoise,
        L.GaussianDropout,
        L.AlphaDropout,
        L.ActivityRegularization,
        L.Identity,
    ):
        table[cls] = PassThrough("Identity")
    from .gating import LogisticSigmoidGating, lower_gating

    table[LogisticSigmoidGating] = lower_gating
    return table


_REGISTRY: dict[type, LayerHandler] = {}


def register_layer(layer_class: type, handler: LayerHandler) -> None:
    """Make a layer class known to every later analysis.

    ``handler`` is ``PassThrough()``, ``Leaf()``, ``NonPassThrough()``, another registered
    class's handler, or any callable ``(builder, layer, node, inputs) -> [outputs]``.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer needs a layer class, but got {layer_class!r}")
    if not callable(handler):
        raise TypeError(f"handler must be callable, e.g. PassThrough(), but got {handler!r}")
    _REGISTRY[layer_class] = handler


def layer_handlers(
    overrides: Mapping[type, LayerHandler] | None = None,
) -> dict[type, LayerHandler]:
    """A fresh copy of the handler registry with ``overrides`` applied (per analysis)."""
    table = _default_handlers()
    table.update(_REGISTRY)
    if overrides:
        table.update(overrides)
    return table


def _is_model(layer: Any) -> bool:
    return isinstance(layer, keras.Model)


def _functional_of(model: Any) -> Any:
    if isinstance(model, keras.Sequential):
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise ModelNotBuiltError(
                f"Sequential model {model.name!r} is not built; start it with keras.Input(shape=...) "
                f"or call model.build(input_shape) before analysing it"
            )
        return inner
    from keras.src.models.functional import Functional

    if not isinstance(model, Functional):
        raise ModelNotBuiltError(
            f"model {model.name!r} is a subclassed keras.Model ({type(model).__name__}); MorphNet "
            f"needs the layer graph, so build it with the functional API or keras.Sequential"
        )
    return model


@dataclass
class _Context:
    bound: dict[int, TensorRef] = field(default_factory=dict)
    key: int = 0


class _Reader:
    def __init__(self, handlers: Mapping[type, LayerHandler]) -> None:
        self.handlers = handlers
        self.builder = GraphBuilder()
        self.done: dict[tuple[int, int], list[TensorRef]] = {}
        self.contexts = 0

    def tensor(self, t: Any, ctx: _Context) -> TensorRef:
        if id(t) in ctx.bound:
            return ctx.bound[id(t)]
        layer, node_index, tensor_index = t._keras_history
        return self.node(layer, layer._inbound_nodes[node_index], ctx)[tensor_index]

    def node(self, layer: Any, node: Any, ctx: _Context) -> list[TensorRef]:
        key = (ctx.key, id(node))
        if key in self.done:
            return self.done[key]
        inputs = [self.tensor(t, ctx) for t in node.input_tensors]
        if _is_model(layer):
            inner = _functional_of(layer)
            self.contexts += 1
            inner_ctx = _Context(
                {id(t): ref for t, ref in zip(inner.inputs, inputs, strict=False)}, self.contexts
            )
            outs = [self.tensor(t, inner_ctx) for t in inner.outputs]
        else:
            handler = self.handlers.get(type(layer))
            if handler is None:
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} has class {type(layer).__module__}.{type(layer).__name__}, "
                    f"which MorphNet does not know. Register it: "
                    f"trainers.morphnet.register_layer({type(layer).__name__}, PassThrough()) if it "
                    f"keeps channel j as channel j, Leaf() if it mixes channels, or pass "
                    f"layer_handlers={{{type(layer).__name__}: ...}} to the regularizer"
                )
            outs = handler(self.builder, layer, node, inputs)
        self.done[key] = outs
        return outs


def read_model(
    model: Any, layer_handlers_override: Mapping[type, LayerHandler] | None = None
) -> tuple[Graph, Mapping[str, Any]]:
    """Lower a built functional or Sequential Keras model (nested models flattened) to a Graph.

    Returns:
        The graph, and the Keras layer objects by name (for reading weights).
    """
    if not isinstance(model, keras.Model):
        raise ModelNotBuiltError(
            f"expected a built keras.Model, but got {type(model).__name__}; build a functional or "
            f"Sequential model first"
        )
    if not model.built:
        raise ModelNotBuiltError(
            f"model {model.name!r} is not built; give it an input shape (keras.Input) or call "
            f"model.build(input_shape) first"
        )
    functional = _functional_of(model)
    reader = _Reader(layer_handlers(layer_handlers_override))
    ctx = _Context()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        inputs = [reader.tensor(t, ctx) for t in functional.inputs]
        outputs = [reader.tensor(t, ctx) for t in functional.outputs]
    finally:
        sys.setrecursionlimit(limit)
    b = reader.builder
    _check_static_shapes(b.ops, model.name)
    layers = {
        name: LayerInfo(name, b.layer_class[name], tuple(ops), b.prunable.get(name))
        for name, ops in b.layer_ops.items()
    }
    graph = Graph(
        ops=tuple(b.ops),
        layers=MappingProxyType(layers),
        outputs=tuple(r.producer for r in outputs if r.producer is not None),
        inputs=tuple(r.producer for r in inputs if r.producer is not None),
        model_name=model.name,
    )
    return graph, MappingProxyType(b.objects)


def _check_static_shapes(ops: Sequence[Op], model_name: str) -> None:
    for op in ops:
        if any(d is None for d in op.shape[1:]):
            raise ModelNotBuiltError(
                f"layer {op.layer!r} of model {model_name!r} has output shape {op.shape} with an "
                f"unknown size; MorphNet costs need static shapes. Build the model with a fixed "
                f"input size, e.g. keras.Input(shape=(224, 224, 3))"
            )
        if op.kernel_shape is not None and math.prod(op.kernel_shape) == 0:
            raise ModelNotBuiltError(f"layer {op.layer!r} has an empty kernel {op.kernel_shape}")
