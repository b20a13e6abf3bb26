"""Augmentation and normalization declared in a trial's config, as Keras preprocessing layers at
the front of the seed network.

``trial.augment: [flip, crop, ...]`` and ``trial.normalize: true`` become layers placed between
the network's input and its first layer (``prepend``), so the seed, structure learning, the
retrained small network and the uniform baseline all see them alike, and the saved models
carry them: the augmentation layers act while training only (identity at inference), the
normalization always. MorphNet counts them as channel-preserving layers. What they are (the
augmentations, the normalization's mean and variance) is recorded in the structure JSON
(``extra.preprocessing``), from which ``morphsweep apply`` puts the same layers in front of the
seed it rebuilds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import TrialConfigError

# each augmentation: what it does to a training image (identity at inference)
AUGMENTATIONS = {
    "flip": "a horizontal flip, half the time",
    "crop": "a random crop of the image padded by 1/8 of its size on each side (zeros)",
    "translate": "a shift by up to 1/8 of the size each way (edges repeated)",
    "rotate": "a rotation by up to 18 degrees",
    "zoom": "a zoom in or out by up to 10%",
    "contrast": "a contrast change by up to 20%",
    "brightness": "a brightness change by up to 0.2 (of the [0, 1] range)",
}
NORMALIZE_EXAMPLES = 2048  # how many training examples the mean and variance are taken from


@dataclass(frozen=True)
class Preprocessing:
    """The layers in front of the network: augmentations in order, then the normalization
    (per channel, by the training data's mean and variance) when it has them."""

    augment: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    variance: tuple[float, ...] | None = None

    @property
    def empty(self) -> bool:
        return not self.augment and self.mean is None

    def to_dict(self) -> dict[str, Any]:
        return {"augment": list(self.augment), "mean": self.mean, "variance": self.variance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Preprocessing:
        data = data or {}
        mean, variance = data.get("mean"), data.get("variance")
        return cls(
            tuple(data.get("augment", ())),
            None if mean is None else tuple(float(v) for v in mean),
            None if variance is None else tuple(float(v) for v in variance),
        )

    def layers(self, input_shape: Sequence[int], seed: int = 0) -> list[Any]:
        """The Keras layers, named ``augment_<name>`` and ``normalize``."""
        from .morphnet.keras3.backend import keras

        L = keras.layers
        if self.augment and len(input_shape) != 3:
            raise TrialConfigError(
                f"trial.augment {list(self.augment)} transforms images (height, width, "
                f"channels), but the examples have shape {tuple(input_shape)}; remove augment"
            )
        out: list[Any] = []
        for i, name in enumerate(self.augment):
            s, prefix = seed + i, f"augment_{name}"
            if name == "flip":
                out.append(L.RandomFlip("horizontal", seed=s, name=prefix))
            elif name == "crop":
                h, w = int(input_shape[0]), int(input_shape[1])
                pad = (max(1, h // 8), max(1, w // 8))
                out.append(L.ZeroPadding2D(pad, name=f"{prefix}_pad"))
                out.append(L.RandomCrop(h, w, seed=s, name=prefix))
            elif name == "translate":
                out.append(L.RandomTranslation(0.125, 0.125, seed=s, name=prefix))
            elif name == "rotate":
                out.append(L.RandomRotation(0.05, seed=s, name=prefix))
            elif name == "zoom":
                out.append(L.RandomZoom(0.1, seed=s, name=prefix))
            elif name == "contrast":
                out.append(L.RandomContrast(0.2, seed=s, name=prefix))
            elif name == "brightness":
                out.append(L.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=s, name=prefix))
        if self.mean is not None and self.variance is not None:
            out.append(L.Normalization(mean=self.mean, variance=self.variance, name="normalize"))
        return out


def check_augment(augment: Sequence[str]) -> list[str]:
    """What is wrong with an augment list: unknown names, repeats."""
    problems = []
    unknown = [a for a in augment if a not in AUGMENTATIONS]
    if unknown:
        problems.append(f"augment has unknown {unknown}; choose from {sorted(AUGMENTATIONS)}")
    repeated = sorted({a for a in augment if list(augment).count(a) > 1})
    if repeated:
        problems.append(f"augment lists {repeated} more than once; give each augmentation once")
    return problems


def preprocessing_for(augment: Sequence[str], normalize: bool, train: Any) -> Preprocessing:
    """The trial's preprocessing: ``augment`` as given, the normalization's statistics from up
    to ``NORMALIZE_EXAMPLES`` training examples (read batch by batch, never the whole set)."""
    if not normalize:
        return Preprocessing(tuple(augment))
    total, squares, values, examples = 0.0, 0.0, 0, 0
    for index in range(len(train)):
        batch = np.asarray(train.batch(index)[0], np.float64)
        x = batch.reshape(-1, batch.shape[-1])  # a row per pixel (or step), a column per channel
        total, squares, values = total + x.sum(0), squares + (x**2).sum(0), values + len(x)
        examples += len(batch)
        if examples >= NORMALIZE_EXAMPLES:
            break
    mean = np.asarray(total) / values
    variance = np.maximum(np.asarray(squares) / values - mean**2, 1e-12)
    return Preprocessing(tuple(augment), tuple(mean.tolist()), tuple(variance.tolist()))


def prepend(model: Any, preprocessing: Preprocessing, seed: int = 0) -> Any:
    """``model`` with the preprocessing layers between its input and its first layers; the
    network's own layers are the same objects (their weights are shared, not copied)."""
    if preprocessing.empty:
        return model
    from .morphnet.keras3.backend import keras
    from .morphnet.keras3.walk import fill_in, functional_of, walk

    functional = functional_of(model)
    (given,) = functional.inputs
    shape = tuple(given.shape)
    inputs = keras.Input(batch_shape=shape, dtype=given.dtype, name=given._keras_history[0].name)
    x = inputs
    for layer in preprocessing.layers(shape[1:], seed):
        x = layer(x)

    def visit(layer: Any, node: Any, values: list[Any]) -> list[Any]:
        args, kwargs = fill_in(node, values)
        result = layer(*args, **kwargs)
        return list(result) if isinstance(result, list | tuple) else [result]

    _, outputs = walk(model, visit, {id(given): x})
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)
