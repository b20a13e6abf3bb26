"""Small Keras models reproducing the reference networks of spec §7, one per topology quirk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trainers.morphnet.keras3.backend import keras

L = keras.layers


def slim_conv(x, n, k, stride=1, name="conv", bn=True, relu=True):
    """slim's conv: no bias, BatchNorm(scale=True), ReLU; SAME padding."""
    x = L.Conv2D(n, k, strides=stride, padding="same", use_bias=not bn, name=name)(x)
    if bn:
        x = L.BatchNormalization(name=f"{name}_bn")(x)
    if relu:
        x = L.ReLU(name=f"{name}_relu")(x)
    return x


def set_gammas(model, gammas: Mapping[str, Sequence[float]]) -> None:
    for name, values in gammas.items():
        model.get_layer(f"{name}_bn").gamma.assign(np.asarray(values, np.float32))


# Case 1 gammas.
CASE1_GAMMAS = {
    "conv1": [0.8] * 7 + [0.2] * 6,
    "conv2": [-0.7] * 11 + [0.1] * 12,
    "conv3": [0.6] * 10 + [-0.3] * 19,
    "conv4": [-0.5] * 17 + [-0.4] * 14,
}


def two_conv_concat_two_heads(with_conv5=False):
    """Case 1: image 17x19x3 -> conv1 (13, 7x5), conv2 (23, 1x1) -> concat -> conv3, conv4."""
    img = keras.Input((17, 19, 3), name="image")
    c1 = slim_conv(img, 13, (7, 5), name="conv1")
    c2 = slim_conv(img, 23, 1, name="conv2")
    cat = L.Concatenate(name="concat")([c1, c2])
    c3 = slim_conv(cat, 29, 3, 2, name="conv3")
    c4 = slim_conv(cat, 31, 1, name="conv4")
    outputs = [c3, c4]
    if with_conv5:
        outputs.append(L.Conv2D(11, 1, padding="same", use_bias=False, name="conv5")(c3))
    model = keras.Model(img, outputs, name="case1")
    set_gammas(model, CASE1_GAMMAS)
    return model
