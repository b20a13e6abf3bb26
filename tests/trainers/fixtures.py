"""Small user-side functions the trainer loads by 'module:function'."""

from __future__ import annotations

import numpy as np

from trainers.morphnet.tfkeras.compat import keras


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
