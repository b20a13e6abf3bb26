"""Small user-side functions the trainer loads by 'module:function'."""

from __future__ import annotations

import numpy as np

from trainers.morphnet.keras3.backend import keras


def tiny_dataset(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 4, 4, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    return x[:32], y[:32], x[32:], y[32:], 2


def tiny_model(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def nan_for_seed_1(seed: int = 0):
    """Learnable data, except for seed 1, whose images are NaN (a trial that must fail)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(96, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    if seed == 1:
        x[:] = np.nan
    return x[:64], y[:64], x[64:], y[64:], 2


# ----- models a user might bring that MorphNet cannot work on (tests/test_bad_inputs.py) -----
class _Subclassed(keras.Model):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = keras.layers.Conv2D(8, 3)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(num_classes)

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def subclassed_model(input_shape, num_classes):
    """A subclassed model: no functional graph to read."""
    model = _Subclassed(num_classes)
    model(np.zeros((1, *input_shape), np.float32))
    return model


def no_prunable_model(input_shape, num_classes):
    """Pooling straight into the logits: no channel MorphNet could remove."""
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


class Mystery(keras.layers.Layer):
    """A custom layer morphsweep has no handler for."""

    def call(self, x):
        return x * 2.0


def custom_layer_model(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = Mystery(name="mystery")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def flatten_dense_model(input_shape, num_classes):
    """Conv maps flattened into a Dense layer, then reshaped in a way no channel map follows."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def labels_out_of_range(seed: int = 0):
    """Two classes declared, labels up to 4."""
    x, y, xv, yv, _ = tiny_dataset(seed)
    y = y.copy()
    y[0] = 4
    return x, y, xv, yv, 2


def wrong_shapes(seed: int = 0):
    """More labels than images."""
    x, y, xv, yv, n = tiny_dataset(seed)
    return x, np.concatenate([y, y]), xv, yv, n


# ----- files a user might bring: seed networks and images (tests/test_bad_inputs.py) ----------
@keras.saving.register_keras_serializable(package="morphsweep_tests")
class SavedSubclassed(keras.Model):
    """A subclassed model Keras can save and load back (registered): still no graph to read."""

    def __init__(self, num_classes=2, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.conv = keras.layers.Conv2D(8, 3)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(num_classes)

    def call(self, x):
        return self.head(self.pool(self.conv(x)))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _saved(model) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(str(path))
        return path.read_bytes()


def tiny_model_file(keep=None) -> bytes:
    """``tiny_model`` for ``tiny_dataset`` (4x4x1, 2 classes), as a .keras file's bytes."""
    return _saved(tiny_model((4, 4, 1), 2))


def subclassed_model_file(keep=None) -> bytes:
    model = SavedSubclassed(2)
    model(np.zeros((1, 4, 4, 1), np.float32))
    return _saved(model)


def png(width: int, height: int | None = None, seed: int = 0):
    """A maker of one RGB PNG's bytes."""

    def make(keep=None) -> bytes:
        import io

        from PIL import Image

        pixels = np.random.default_rng(seed).integers(0, 255, (height or width, width, 3))
        out = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
        return out.getvalue()

    return make


class _Batches(keras.utils.PyDataset):
    """Ten batches of 8 learnable 6x6x1 images, made on the fly."""

    def __init__(self, seed: int, count: int = 10):
        super().__init__()
        self.seed, self.count = seed, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        x = rng.normal(size=(8, 6, 6, 1)).astype(np.float32)
        return x, (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)


def streaming_dataset(seed: int = 0):
    """A user's own streaming source: (train, val, num_classes) of PyDatasets."""
    return _Batches(seed), _Batches(seed + 100, count=2), 2
