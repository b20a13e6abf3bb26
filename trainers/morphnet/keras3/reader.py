"""Read a built Keras 3 model into the plain ``Graph`` the analysis works on.

Every layer call is lowered by its class's ``LayerSpec.read`` (see ``layers``) while ``walk``
visits the model's calls, inputs first; nested models are flattened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..errors import ModelNotBuiltError
from ..graph import Graph, LayerInfo, Op, TensorRef
from .backend import keras
from .layers import GraphBuilder, LayerHandler, LayerSpec, layer_specs, spec_of
from .walk import walk


def read_model(
    model: Any, layer_handlers: Mapping[type, LayerSpec | LayerHandler] | None = None
) -> tuple[Graph, Mapping[str, Any]]:
    """Lower a built functional or Sequential Keras model (nested models flattened) to a Graph.

    ``layer_handlers`` adds or replaces layer specs for this read (see ``register_layer``).

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
    specs = layer_specs(layer_handlers)
    b = GraphBuilder()
    channels: dict[str, str] = {}

    def visit(layer: Any, node: Any, values: list[TensorRef]) -> list[TensorRef]:
        spec = spec_of(layer, specs)
        channels.setdefault(layer.name, spec.channels.value)
        return spec.read(b, layer, node, values)

    inputs, outputs = walk(model, visit)
    _check_static_shapes(b.ops, model.name)
    layers = {
        name: LayerInfo(name, b.layer_class[name], tuple(ops), b.prunable.get(name), channels[name])
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
