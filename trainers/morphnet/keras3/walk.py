"""The one walk over a Keras functional model's call graph, nested models flattened.

Reading a model into a ``Graph`` and rebuilding it at a learned structure both visit every layer
call once, inputs first; this module is that walk, written once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ModelNotBuiltError
from .backend import keras

# visit(layer, node, inputs) -> outputs: one call of a (non-model) layer; ``inputs`` are the
# values of ``node.input_tensors`` in order.
Visit = Callable[[Any, Any, list[Any]], Sequence[Any]]


def functional_of(model: Any) -> Any:
    """The functional model behind ``model`` (a Sequential's inner one), or a clear error."""
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


def all_layers(model: Any) -> list[Any]:
    """Every layer of ``model`` with nested models replaced by their layers, in order."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(all_layers(layer))
        else:
            out.append(layer)
    return out


def walk(
    model: Any, visit: Visit, bound: Mapping[int, Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """Call ``visit`` once per layer call reaching ``model``'s outputs, inputs before users.

    ``bound`` maps ``id`` of the model's input tensors to values given instead of visiting their
    ``InputLayer``. A nested model's inputs are bound to the values reaching it, so its layers
    are visited as if they were the outer model's (once per call of the nested model).

    Returns:
        The values of the model's inputs and of its outputs.
    """
    done: dict[tuple[int, int], list[Any]] = {}
    contexts = [0]

    def tensor(t: Any, scope: Mapping[int, Any], ctx: int) -> Any:
        if id(t) in scope:
            return scope[id(t)]
        layer, node_index, tensor_index = t._keras_history
        return node(layer, layer._inbound_nodes[node_index], scope, ctx)[tensor_index]

    def node(layer: Any, n: Any, scope: Mapping[int, Any], ctx: int) -> list[Any]:
        key = (ctx, id(n))
        if key in done:
            return done[key]
        values = [tensor(t, scope, ctx) for t in n.input_tensors]
        if isinstance(layer, keras.Model):
            inner = functional_of(layer)
            contexts[0] += 1
            inner_scope = {id(t): v for t, v in zip(inner.inputs, values, strict=False)}
            outs = [tensor(t, inner_scope, contexts[0]) for t in inner.outputs]
        else:
            outs = list(visit(layer, n, values))
        done[key] = outs
        return outs

    functional = functional_of(model)
    scope = dict(bound or {})
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        inputs = [tensor(t, scope, 0) for t in functional.inputs]
        outputs = [tensor(t, scope, 0) for t in functional.outputs]
    finally:
        sys.setrecursionlimit(limit)
    return inputs, outputs


def fill_in(node: Any, values: list[Any]) -> tuple[tuple, dict]:
    """The positional and keyword arguments of ``node``'s call with ``values`` for its inputs."""
    by_id = {id(t): v for t, v in zip(node.input_tensors, values, strict=True)}
    args, kwargs = node.arguments.fill_in(by_id)
    return tuple(args), dict(kwargs)
