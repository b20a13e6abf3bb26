"""Datasets for a trial, all offline: scikit-learn's digits, synthetic images, user arrays or code.

``load_dataset(spec)`` returns a ``Dataset`` of numpy arrays; ``Dataset.pipelines`` turns it into
batched, prefetched ``tf.data`` pipelines.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TrialConfigError


@dataclass(frozen=True)
class Dataset:
    """Train and validation arrays, channels-last images with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int
    name: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def resized(self, size: int | None) -> Dataset:
        """The same data with images resized to ``size`` x ``size`` (None: unchanged)."""
        if size is None or self.x_train.ndim != 4 or self.x_train.shape[1:3] == (size, size):
            return self
        import tensorflow as tf

        def resize(x: np.ndarray) -> np.ndarray:
            return np.asarray(tf.image.resize(x, (size, size)), dtype=np.float32)

        return Dataset(
            resize(self.x_train),
            self.y_train,
            resize(self.x_val),
            self.y_val,
            self.num_classes,
            self.name,
        )

    def pipelines(self, batch_size: int, seed: int) -> tuple[Any, Any]:
        """(shuffled, batched, prefetched training set; batched validation set)."""
        import tensorflow as tf

        train = tf.data.Dataset.from_tensor_slices((self.x_train, self.y_train))
        train = train.shuffle(len(self.x_train), seed=seed, reshuffle_each_iteration=True)
        val = tf.data.Dataset.from_tensor_slices((self.x_val, self.y_val))
        return (
            train.batch(batch_size).prefetch(tf.data.AUTOTUNE),
            val.batch(batch_size).prefetch(tf.data.AUTOTUNE),
        )


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(round(len(x) * fraction)))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def digits(seed: int = 0, validation_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    return Dataset(*_split(x, y, validation_fraction, seed), num_classes=10, name="digits")


def synthetic(
    seed: int = 0, samples: int = 512, size: int = 16, channels: int = 3, classes: int = 4
) -> Dataset:
    """Generated images: a class-specific smooth pattern plus noise; learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(classes, size, size, channels)).astype(np.float32)
    kernel = np.ones(3) / 3
    for axis in (1, 2):
        patterns = np.apply_along_axis(
            lambda v: np.convolve(v, kernel, mode="same"), axis, patterns
        )
    y = rng.integers(0, classes, samples).astype(np.int32)
    x = patterns[y] + 0.5 * rng.normal(size=(samples, size, size, channels)).astype(np.float32)
    return Dataset(
        *_split(x.astype(np.float32), y, 0.25, seed), num_classes=classes, name="synthetic"
    )


def from_npz(path: str, seed: int = 0) -> Dataset:
    """Arrays from an .npz with ``x_train, y_train, x_val, y_val`` (or ``x, y``, split 80/20)."""
    file = Path(path)
    if not file.is_file():
        raise TrialConfigError(
            f"dataset file {path!r} does not exist; give an existing .npz path as 'npz:<path>'"
        )
    arrays = np.load(file)
    keys = set(arrays.files)
    if {"x_train", "y_train", "x_val", "y_val"} <= keys:
        parts = [arrays[k] for k in ("x_train", "y_train", "x_val", "y_val")]
    elif {"x", "y"} <= keys:
        parts = list(_split(arrays["x"], arrays["y"], 0.2, seed))
    else:
        raise TrialConfigError(
            f"dataset file {path!r} has arrays {sorted(keys)}; it needs x_train, y_train, x_val, "
            f"y_val (or x and y)"
        )
    x_train, y_train, x_val, y_val = parts
    if x_train.ndim == 3:
        x_train, x_val = x_train[..., None], x_val[..., None]
    classes = int(max(y_train.max(), y_val.max())) + 1
    return Dataset(
        x_train.astype(np.float32),
        y_train.astype(np.int32),
        x_val.astype(np.float32),
        y_val.astype(np.int32),
        classes,
        file.stem,
    )


def from_function(spec: str, seed: int = 0) -> Dataset:
    """``module:function`` returning a Dataset or (x_train, y_train, x_val, y_val[, classes])."""
    function = resolve_callable(spec, "dataset")
    result = function(seed=seed)
    if isinstance(result, Dataset):
        return result
    if isinstance(result, tuple) and len(result) in (4, 5):
        x_train, y_train, x_val, y_val = (np.asarray(a) for a in result[:4])
        classes = int(result[4]) if len(result) == 5 else int(max(y_train.max(), y_val.max())) + 1
        return Dataset(
            x_train.astype(np.float32),
            y_train.astype(np.int32),
            x_val.astype(np.float32),
            y_val.astype(np.int32),
            classes,
            spec,
        )
    raise TrialConfigError(
        f"dataset function {spec!r} must return a trainers.data.Dataset or a tuple "
        f"(x_train, y_train, x_val, y_val[, num_classes]), but returned {type(result).__name__}"
    )


def resolve_callable(spec: str, what: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrialConfigError(
            f"{what} {spec!r}: cannot import module {module_name!r} ({exc})"
        ) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise TrialConfigError(f"{what} {spec!r}: module {module_name!r} has no function {attr!r}")
    return function


DATASETS = ("digits", "synthetic", "npz:<path>", "<module>:<function>")


def check_dataset_spec(spec: str) -> None:
    """Cheap validation of a dataset spec (before any training starts)."""
    if spec in ("digits", "synthetic"):
        return
    if spec.startswith("npz:"):
        if not Path(spec[4:]).is_file():
            raise TrialConfigError(
                f"dataset: file {spec[4:]!r} does not exist; use 'npz:<existing .npz path>'"
            )
        return
    if ":" in spec:
        resolve_callable(spec, "dataset")
        return
    raise TrialConfigError(f"dataset must be one of {DATASETS}, but got dataset={spec!r}")


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    check_dataset_spec(spec)
    if spec == "digits":
        return digits(seed)
    if spec == "synthetic":
        return synthetic(seed)
    if spec.startswith("npz:"):
        return from_npz(spec[4:], seed)
    return from_function(spec, seed)
