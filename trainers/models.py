"""Seed models: a small zoo sized for digits, 32x32 images and 1-D sequences (MNIST-1D),
keras.applications, user code.

Zoo models put BatchNormalization(scale=True) after every conv (Gamma sources) and end in
GlobalAveragePooling2D + Dense, so every algorithm can analyse them and the predicted cost equals
the rebuilt model's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data import resolve_callable
from .errors import TrialConfigError

# Small datasets give few steps per epoch: faster moving statistics make validation meaningful.
BN_MOMENTUM = 0.9


def _keras() -> Any:
    from .morphnet.keras3.backend import keras

    return keras


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    L = _keras().layers
    x = L.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def _head(x: Any, num_classes: int) -> Any:
    L = _keras().layers
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return L.Dense(num_classes, name="logits")(x)


def plain_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> Any:
    """conv-BN-ReLU x 4 with one stride-2 step."""
    keras = _keras()
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, 1, "conv1")
    x = _conv_bn(x, width, 3, 1, "conv2")
    x = _conv_bn(x, 2 * width, 3, 2, "conv3")
    x = _conv_bn(x, 2 * width, 3, 1, "conv4")
    return keras.Model(inputs, _head(x, num_classes), name="plain")


def resnet(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> Any:
    """A stem and three residual stages (two basic blocks each, projection on stride)."""
    keras = _keras()
    inputs = keras.Input(input_shape, name="image")
    x = _residual_stages(_conv_bn(inputs, width, 3, 1, "stem"), width, _conv_bn, 3)
    return keras.Model(inputs, _head(x, num_classes), name="resnet")


def _residual_stages(x: Any, width: int, conv_bn: Callable[..., Any], kernel: int) -> Any:
    """Three stages (width, 2x, 4x; stride 1, 2, 2) of two basic blocks, projection on stride."""
    L = _keras().layers
    for stage, (filters, stride) in enumerate(((width, 1), (2 * width, 2), (4 * width, 2)), 1):
        for block in (1, 2):
            s = stride if block == 1 else 1
            name = f"s{stage}b{block}"
            y = conv_bn(x, filters, kernel, s, f"{name}_conv1")
            y = conv_bn(y, filters, kernel, 1, f"{name}_conv2", relu=False)
            if s != 1 or x.shape[-1] != filters:
                x = conv_bn(x, filters, 1, s, f"{name}_proj", relu=False)
            x = L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([x, y]))
    return x


def mobilenet(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> Any:
    """MobileNetV2-style inverted residuals: 1x1 expand, depthwise 3x3, 1x1 project."""
    keras, L = _keras(), _keras().layers
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, 1, "stem")
    blocks = ((width, 1), (width, 1), (2 * width, 2), (2 * width, 1))
    for i, (filters, stride) in enumerate(blocks, 1):
        y = _conv_bn(x, 4 * x.shape[-1], 1, 1, f"b{i}_expand")
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw")(y)
        y = L.ReLU(name=f"b{i}_dw_relu")(
            L.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_dw_bn")(y)
        )
        y = _conv_bn(y, filters, 1, 1, f"b{i}_project", relu=False)
        x = L.Add(name=f"b{i}_add")([x, y]) if stride == 1 and x.shape[-1] == filters else y
    return keras.Model(inputs, _head(x, num_classes), name="mobilenet")


def inception(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> Any:
    """Two inception modules: 1x1, 1x1-3x3 and pool-1x1 branches concatenated on channels."""
    keras, L = _keras(), _keras().layers
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, 1, "stem")
    for m, stride in ((1, 1), (2, 2)):
        b1 = _conv_bn(x, width, 1, stride, f"m{m}_b1")
        b2 = _conv_bn(_conv_bn(x, width // 2, 1, 1, f"m{m}_b2a"), width, 3, stride, f"m{m}_b2b")
        pool = L.MaxPooling2D(3, strides=stride, padding="same", name=f"m{m}_pool")(x)
        b3 = _conv_bn(pool, width // 2, 1, 1, f"m{m}_b3")
        x = L.Concatenate(name=f"m{m}_concat")([b1, b2, b3])
    return keras.Model(inputs, _head(x, num_classes), name="inception")


def _conv1d_bn(x: Any, filters: int, kernel: int, stride: int, name: str, relu: bool = True) -> Any:
    L = _keras().layers
    x = L.Conv1D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def resnet1d(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> Any:
    """The residual net for sequences ``(length, channels)``: a Conv1D stem and three stages of
    two basic blocks (kernel 5, projection on stride), global average pooling, a Dense head."""
    keras, L = _keras(), _keras().layers
    if len(input_shape) != 2:
        raise TrialConfigError(
            f"zoo:resnet1d takes sequences of shape (length, channels), but the data has "
            f"shape {tuple(input_shape)}; use an image model (zoo:resnet) for images"
        )
    inputs = keras.Input(input_shape, name="sequence")
    x = _residual_stages(_conv1d_bn(inputs, width, 5, 1, "stem"), width, _conv1d_bn, 5)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, L.Dense(num_classes, name="logits")(x), name="resnet1d")


# models for images (height, width, channels)
IMAGE_ZOO: dict[str, Callable[..., Any]] = {
    "plain": plain_cnn,
    "resnet": resnet,
    "mobilenet": mobilenet,
    "inception": inception,
}
# models for sequences (length, channels)
SEQUENCE_ZOO: dict[str, Callable[..., Any]] = {"resnet1d": resnet1d}
ZOO: dict[str, Callable[..., Any]] = {**IMAGE_ZOO, **SEQUENCE_ZOO}
MODELS = tuple(f"zoo:{n}" for n in ZOO) + (
    "<path>.keras",
    "keras.applications.<Name>",
    "<module>:<function>",
)


def is_model_file(spec: str) -> bool:
    """Whether the seed is a saved network (a ``.keras`` file) rather than one to build."""
    return spec.endswith(".keras")


def load_model_file(spec: str) -> Any:
    """The functional or Sequential network saved in ``spec``, with its trained weights.

    Raises:
        TrialConfigError: no such file, not a Keras model, a subclassed model, or an input
            without a fixed shape.
    """
    from .morphnet.errors import ModelNotBuiltError
    from .morphnet.keras3.gating import CUSTOM_OBJECTS
    from .morphnet.keras3.walk import functional_of

    path = Path(spec).expanduser()
    if not path.is_file():
        raise TrialConfigError(
            f"model file {spec!r} does not exist; give the path of a network saved with "
            f"model.save('<name>.keras')"
        )
    try:
        model = _keras().saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as exc:  # Keras raises many kinds for a file it cannot read
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "a subclassed model or a custom layer whose class is not importable here"
            if "locate" in reason or "custom" in reason.lower()
            else "a file saved with model.save('<name>.keras') by Keras 3"
        )
        raise TrialConfigError(
            f"model file {spec!r} is not a Keras model Keras can load ({reason[:200]}); give {hint}"
        ) from None
    try:
        functional_of(model)
    except ModelNotBuiltError as exc:
        raise TrialConfigError(f"model file {spec!r}: {exc}") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TrialConfigError(
            f"model file {spec!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            f"outputs; a seed network takes one input and gives one output (the class logits)"
        )
    if any(d is None for d in model.input_shape[1:]):
        raise TrialConfigError(
            f"model file {spec!r} takes inputs of shape {tuple(model.input_shape[1:])}, with a "
            f"size left open; MorphNet costs fixed shapes: save it with keras.Input(shape=...) "
            f"fully given"
        )
    return model


def file_shape(model: Any) -> tuple[tuple[int, ...], int]:
    """(example shape, classes) of a network loaded with ``load_model_file``."""
    return tuple(int(d) for d in model.input_shape[1:]), int(model.output_shape[-1])


def check_agrees(
    spec: str, model: Any, data_spec: str, shape: tuple[int, ...], classes: int
) -> None:
    """That a seed file takes the data's examples and gives its classes.

    Raises:
        TrialConfigError: naming both shapes (or class counts) and the fix.
    """
    model_shape, model_classes = file_shape(model)
    problems = []
    if tuple(shape) != model_shape:
        resizable = len(shape) == 3 and len(model_shape) == 3 and shape[2] == model_shape[2]
        fix = "set trial.image_size to the model's input size" if resizable else ""
        problems.append(
            f"the model takes inputs of shape {model_shape} but dataset {data_spec!r} has "
            f"examples of shape {tuple(shape)}" + (f" ({fix})" if fix else "")
        )
    if classes != model_classes:
        problems.append(
            f"the model gives {model_classes} classes but dataset {data_spec!r} has {classes}"
        )
    if problems:
        raise TrialConfigError(f"model file {spec!r} does not fit the data: {'; '.join(problems)}")


def reinitialized(model: Any, seed: int) -> Any:
    """The same network with fresh weights (``init: scratch``), drawn from ``seed``."""
    from .morphnet.keras3.backend import set_random_seed

    set_random_seed(seed)
    return _keras().models.clone_model(model)


def check_model_spec(spec: str) -> None:
    """Cheap validation of a model spec (before any data is loaded or training starts)."""
    if is_model_file(spec):
        if not Path(spec).expanduser().is_file():
            raise TrialConfigError(
                f"model file {spec!r} does not exist; give the path of a network saved with "
                f"model.save('<name>.keras')"
            )
    elif spec.startswith("zoo:"):
        if spec[4:] not in ZOO:
            raise TrialConfigError(f"model must be one of {MODELS}, but got model={spec!r}")
    elif spec.startswith("keras.applications."):
        name = spec.rsplit(".", 1)[1]
        if not callable(getattr(_keras().applications, name, None)):
            raise TrialConfigError(f"model {spec!r}: keras.applications has no model {name!r}")
    elif ":" in spec:
        resolve_callable(spec, "model")
    else:
        raise TrialConfigError(f"model must be one of {MODELS}, but got model={spec!r}")


def build_model(
    spec: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int = 32,
    seed: int | None = None,
) -> Any:
    """Build the seed model named by ``spec`` for this input shape and number of classes."""
    check_model_spec(spec)
    keras = _keras()
    if seed is not None:
        from .morphnet.keras3.backend import set_random_seed

        set_random_seed(seed)
    if spec.startswith("zoo:"):
        return ZOO[spec[4:]](tuple(input_shape), num_classes, width=width)
    if spec.startswith("keras.applications."):
        factory = getattr(keras.applications, spec.rsplit(".", 1)[1])
        return factory(
            weights=None,
            input_shape=tuple(input_shape),
            classes=num_classes,
            classifier_activation=None,
        )
    function = resolve_callable(spec, "model")
    try:
        model = function(input_shape=tuple(input_shape), num_classes=num_classes)
    except TypeError as exc:
        raise TrialConfigError(
            f"model function {spec!r} must take (input_shape, num_classes) and return a "
            f"keras.Model; calling it failed: {exc}"
        ) from exc
    if not isinstance(model, keras.Model):
        raise TrialConfigError(
            f"model function {spec!r} must return a keras.Model, got {type(model).__name__}"
        )
    return model


def total_stride(model: Any) -> int:
    """How many times over the network shrinks its input at most: the product of the strides
    (convolutions, pooling) along its most downsampling path, nested models included."""
    reached: dict[int, int] = {}
    for operation in getattr(model, "operations", getattr(model, "layers", [])):
        own = (
            total_stride(operation) if hasattr(operation, "operations") else _own_stride(operation)
        )
        for node in getattr(operation, "_inbound_nodes", []):
            before = max((reached.get(id(t), 1) for t in node.input_tensors), default=1)
            for tensor in node.output_tensors:
                reached[id(tensor)] = before * own
    return max(reached.values(), default=1)


def _own_stride(layer: Any) -> int:
    strides = getattr(layer, "strides", None)
    if strides is None:
        return 1
    values = strides if isinstance(strides, list | tuple) else (strides,)
    return max((int(s) for s in values), default=1)


def check_input_size(spec: str, model: Any, shape: tuple[int, ...]) -> None:
    """Refuse images smaller than the network's total stride (it would shrink them to nothing
    and train on padding).

    Raises:
        TrialConfigError: naming the image size, the stride and the fix.
    """
    if len(shape) != 3:  # not images
        return
    stride = total_stride(model)
    if min(shape[0], shape[1]) < stride:
        raise TrialConfigError(
            f"images of {shape[0]}x{shape[1]} are smaller than what model {spec!r} downsamples by "
            f"({stride}x: its strides multiplied along its deepest path); give image_size >= "
            f"{stride} or a shallower model"
        )
