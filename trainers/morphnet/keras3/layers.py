"""Everything morphsweep knows about a Keras layer class, declared once per class.

A ``LayerSpec`` says how one call of the layer is read into the graph (its *layer handler*,
which lowers the call into the ops the original TensorFlow-1 library would have seen: ``Conv2D``
with a bias and ReLU becomes ``Conv2D``, ``BiasAdd`` and ``Relu``), how its output channels relate
to its input's (``Channels``), which config key sets its width when it is prunable, where its
weights keep their input and output channels (to slice them when a structure is applied, and to
fold a FiGS gate's scale into them), and whether a FiGS gate goes after it in a conv -> BN ->
activation chain. The registry is keyed by the exact class: an unknown class is an error that
names the layer and the fix, never a silent default. Users add their own classes with
``register_layer`` or per call with ``layer_handlers={...}``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from ..errors import UnsupportedLayerError
from ..graph import Op, Shape, TensorRef
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
class _OneOp:
    """A layer read as one op of type ``op_type`` on its inputs."""

    op_type: str

    def __call__(
        self, b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
    ) -> list[TensorRef]:
        return [b.add(layer, self.op_type, _out_shape(node), inputs)]


@dataclass(frozen=True)
class PassThrough(_OneOp):
    """A layer that keeps channel ``j`` as channel ``j`` (an elementwise op, a pooling)."""

    op_type: str = "Identity"


@dataclass(frozen=True)
class Leaf(_OneOp):
    """A layer that breaks channel correspondence (reshape, flatten): channels restart after it."""

    op_type: str = "Reshape"


@dataclass(frozen=True)
class NonPassThrough(_OneOp):
    """A layer whose output channels are not its input channels but which does not cost FLOPs."""

    op_type: str = "Transpose"


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


def lower_batch_norm(
    b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]
) -> list[TensorRef]:
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


def _permute(b: GraphBuilder, layer: Any, node: Any, inputs: list[TensorRef]) -> list[TensorRef]:
    perm = (0, *(int(d) for d in layer.dims))
    return [b.add(layer, "Transpose", _out_shape(node), inputs, perm=perm)]


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


# ----- the specs ------------------------------------------------------------------------------
class Channels(enum.Enum):
    """How a layer's output channels relate to its inputs' channels."""

    PASS = "pass"  # channel j stays channel j (elementwise, BN, pooling, depthwise, padding)
    NEW = "new"  # computes new channels from all of its input's (conv, dense, reshape, permute)
    MERGE = "merge"  # combines several inputs channel by channel (add, concat, maximum)


@dataclass(frozen=True)
class WeightAxes:
    """Where one weight of a layer keeps channels.

    Attributes:
        inputs: the axis indexed by the layer's input channels, or None.
        outputs: the axis indexed by the layer's output channels, or None.
        repeat: entries per input channel along ``inputs`` (a separable conv's pointwise kernel
            sees ``depth_multiplier`` depthwise channels per input channel).
    """

    inputs: int | None = None
    outputs: int | None = None
    repeat: int = 1


# (layer, weight name) -> where the weight keeps channels
WeightLayout = Callable[[Any, str], WeightAxes]


def channels_last_weights(layer: Any, name: str) -> WeightAxes:
    """Per-channel weights on the last axis (BN's gamma and beta, PReLU's alpha, a gate's logits)."""
    return WeightAxes(outputs=-1)


def kernel_weights(layer: Any, name: str) -> WeightAxes:
    """A conv or dense layer: kernel ``[..., in, out]``, bias ``[out]``."""
    return WeightAxes(inputs=-2, outputs=-1) if name == "kernel" else WeightAxes(outputs=0)


def transpose_weights(layer: Any, name: str) -> WeightAxes:
    """A transposed conv: kernel ``[..., out, in]``, bias ``[out]``."""
    return WeightAxes(inputs=-1, outputs=-2) if name == "kernel" else WeightAxes(outputs=0)


def depthwise_weights(layer: Any, name: str) -> WeightAxes:
    """A depthwise conv: kernel ``[..., in, multiplier]``, bias ``[in * multiplier]``."""
    return WeightAxes(inputs=-2) if name.endswith("kernel") else WeightAxes(outputs=0)


def separable_weights(layer: Any, name: str) -> WeightAxes:
    """A separable conv: depthwise ``[..., in, m]``, pointwise ``[..., in * m, out]``, bias."""
    if name == "depthwise_kernel":
        return WeightAxes(inputs=-2)
    if name == "pointwise_kernel":
        return WeightAxes(inputs=-2, outputs=-1, repeat=int(layer.depth_multiplier))
    return WeightAxes(outputs=0)


@dataclass(frozen=True)
class LayerSpec:
    """What morphsweep knows about one Keras layer class.

    Attributes:
        read: the layer handler, ``(builder, layer, node, inputs) -> [outputs]``.
        channels: how its output channels relate to its inputs' (``Channels``).
        width: the config key that sets its output width (``"filters"``, ``"units"``) when the
            layer is prunable, else None; the handler then marks the op giving that width.
        weights: where each of its weights keeps input and output channels.
        gate_chain: a per-channel layer (BN, an activation) after which a FiGS gate goes when it
            follows a prunable layer (conv -> BN -> ReLU -> gate).
        resize: ``(config, channels) -> config`` when a rebuild changes the number of channels
            reaching the layer and its config names it (a ``Reshape``'s target shape).
    """

    read: LayerHandler
    channels: Channels
    width: str | None = None
    weights: WeightLayout = channels_last_weights
    gate_chain: bool = False
    resize: Callable[[dict[str, Any], int], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not callable(self.read):
            raise TypeError(
                f"LayerSpec.read must be a layer handler, e.g. PassThrough(), not {self.read!r}"
            )
        if not isinstance(self.channels, Channels):
            raise TypeError(
                f"LayerSpec.channels must be a Channels member (Channels.PASS, "
                f"Channels.NEW or Channels.MERGE), not {self.channels!r}"
            )


def _reshape_resize(config: dict[str, Any], channels: int) -> dict[str, Any]:
    shape = tuple(config["target_shape"])
    if shape[-1] != channels:
        config["target_shape"] = shape[:-1] + (channels,)
    return config


@cache
def _builtin_specs() -> Mapping[type, LayerSpec]:
    from .gating import (
        GatedBatchNormalization,
        LogisticSigmoidGating,
        lower_gated_batch_norm,
        lower_gating,
    )

    L = keras.layers
    PASS, NEW, MERGE = Channels.PASS, Channels.NEW, Channels.MERGE
    conv = LayerSpec(_conv, NEW, width="filters", weights=kernel_weights)
    table: dict[type, LayerSpec] = {
        L.InputLayer: LayerSpec(_input_layer, PASS),
        L.Conv1D: conv,
        L.Conv2D: conv,
        L.Conv3D: conv,
        L.Conv1DTranspose: LayerSpec(_conv, NEW, width="filters", weights=transpose_weights),
        L.Conv2DTranspose: LayerSpec(_conv, NEW, width="filters", weights=transpose_weights),
        L.DepthwiseConv1D: LayerSpec(_depthwise, PASS, weights=depthwise_weights),
        L.DepthwiseConv2D: LayerSpec(_depthwise, PASS, weights=depthwise_weights),
        L.SeparableConv1D: LayerSpec(_separable, NEW, width="filters", weights=separable_weights),
        L.SeparableConv2D: LayerSpec(_separable, NEW, width="filters", weights=separable_weights),
        L.Dense: LayerSpec(_dense, NEW, width="units", weights=kernel_weights),
        L.BatchNormalization: LayerSpec(lower_batch_norm, PASS, gate_chain=True),
        GatedBatchNormalization: LayerSpec(lower_gated_batch_norm, PASS),
        L.Activation: LayerSpec(_activation_layer, PASS, gate_chain=True),
        L.ReLU: LayerSpec(_relu_layer, PASS, gate_chain=True),
        L.LeakyReLU: LayerSpec(PassThrough("LeakyRelu"), PASS, gate_chain=True),
        L.PReLU: LayerSpec(PassThrough("Prelu"), PASS, gate_chain=True),
        L.ELU: LayerSpec(PassThrough("Elu"), PASS, gate_chain=True),
        L.Softmax: LayerSpec(PassThrough("Softmax"), PASS),
        # a binary op cannot drop an input: with one gone, the rebuild drops it too
        L.Subtract: LayerSpec(_merge("Sub"), PASS),
        L.Multiply: LayerSpec(_merge("Mul"), PASS),
        L.Add: LayerSpec(_merge("AddV2"), MERGE),
        L.Maximum: LayerSpec(_merge("Maximum"), MERGE),
        L.Minimum: LayerSpec(_merge("Minimum"), MERGE),
        L.Average: LayerSpec(_average, MERGE),
        L.Concatenate: LayerSpec(_concat, MERGE),
        L.Rescaling: LayerSpec(_rescaling, PASS),
        L.Normalization: LayerSpec(_normalization, PASS),
        L.Flatten: LayerSpec(Leaf("Reshape"), NEW),
        L.Reshape: LayerSpec(Leaf("Reshape"), NEW, resize=_reshape_resize),
        # (batch, f) -> (batch, n, f): channel j stays channel j, but the original's Tile op
        # broke the grouping chain there
        L.RepeatVector: LayerSpec(Leaf("Tile"), PASS),
        L.Permute: LayerSpec(_permute, NEW),
        L.UpSampling2D: LayerSpec(_upsampling, PASS),
        L.UpSampling1D: LayerSpec(PassThrough("Repeat"), PASS),
        L.UpSampling3D: LayerSpec(PassThrough("Repeat"), PASS),
        L.Resizing: LayerSpec(PassThrough("ResizeBilinear"), PASS),
        L.LayerNormalization: LayerSpec(PassThrough("LayerNorm"), PASS),
        L.GroupNormalization: LayerSpec(PassThrough("GroupNorm"), PASS),
        L.UnitNormalization: LayerSpec(PassThrough("UnitNorm"), PASS),
        LogisticSigmoidGating: LayerSpec(lower_gating, PASS),
    }
    passing = {
        "MaxPool": (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D),
        "AvgPool": (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D),
        "Mean": (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D),
        "Max": (L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D),
        "Pad": (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D),
        # Cropping keeps channels; the original's StridedSlice made it a leaf (see README).
        "Crop": (L.Cropping1D, L.Cropping2D, L.Cropping3D, L.CenterCrop, L.RandomCrop),
        "Identity": (
            L.Dropout,
            L.SpatialDropout1D,
            L.SpatialDropout2D,
            L.SpatialDropout3D,
            L.GaussianNoise,
            L.GaussianDropout,
            L.AlphaDropout,
            L.ActivityRegularization,
            L.Identity,
            # augmentations: they change pixels while training, never the channels
            L.RandomFlip,
            L.RandomTranslation,
            L.RandomRotation,
            L.RandomZoom,
            L.RandomContrast,
            L.RandomBrightness,
        ),
    }
    for op_type, classes in passing.items():
        for cls in classes:
            table[cls] = LayerSpec(PassThrough(op_type), PASS)
    return MappingProxyType(table)


_REGISTRY: dict[type, LayerSpec] = {}


def as_spec(layer_class: type, spec: LayerSpec | LayerHandler) -> LayerSpec:
    """``spec`` itself, or the spec of a bare handler whose channel behaviour is known."""
    if isinstance(spec, LayerSpec):
        return spec
    if isinstance(spec, PassThrough):
        return LayerSpec(spec, Channels.PASS)
    if isinstance(spec, Leaf | NonPassThrough):
        return LayerSpec(spec, Channels.NEW)
    name = getattr(layer_class, "__name__", repr(layer_class))
    if callable(spec):
        raise TypeError(
            f"a custom handler for {name} needs its channel behaviour: pass "
            f"LayerSpec(handler, Channels.PASS) (channel j stays channel j), Channels.NEW "
            f"(new channels from all inputs) or Channels.MERGE (adds or concatenates inputs)"
        )
    raise TypeError(
        f"{name} needs a LayerSpec or a layer handler such as PassThrough(), Leaf() or "
        f"NonPassThrough(), but got {spec!r}"
    )


def register_layer(layer_class: type, spec: LayerSpec | LayerHandler) -> None:
    """Make a layer class known to every later analysis and rebuild.

    ``spec`` is a ``LayerSpec``, or one of the handlers ``PassThrough()`` (channel j stays
    channel j), ``Leaf()`` (channels restart: a reshape) or ``NonPassThrough()`` (new channels
    from all of the input's, at no cost: a transpose).
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer needs a layer class, but got {layer_class!r}")
    _REGISTRY[layer_class] = as_spec(layer_class, spec)


def layer_specs(
    overrides: Mapping[type, LayerSpec | LayerHandler] | None = None,
) -> dict[type, LayerSpec]:
    """The built-in specs, then the registered ones, then ``overrides`` (one analysis)."""
    table = dict(_builtin_specs())
    table.update(_REGISTRY)
    for cls, spec in (overrides or {}).items():
        table[cls] = as_spec(cls, spec)
    return table


def spec_of(layer: Any, specs: Mapping[type, LayerSpec]) -> LayerSpec:
    """The spec of ``layer``'s exact class, or an error naming the layer and the fix."""
    spec = specs.get(type(layer))
    if spec is None:
        cls = type(layer).__name__
        raise UnsupportedLayerError(
            f"layer {layer.name!r} has class {type(layer).__module__}.{cls}, which MorphNet does "
            f"not know. Register it: trainers.morphnet.register_layer({cls}, PassThrough()) if "
            f"it keeps channel j as channel j, Leaf() if it mixes channels, or pass "
            f"layer_handlers={{{cls}: ...}} to the regularizer"
        )
    return spec
