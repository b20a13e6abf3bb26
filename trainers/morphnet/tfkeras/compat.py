"""The one place that decides how Keras and TensorFlow are imported."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras
    import tensorflow as tf
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    raise ImportError(
        "trainers.morphnet.tfkeras needs TensorFlow 2.21 and Keras 3: "
        "pip install 'tensorflow>=2.21,<2.22'"
    ) from exc

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"morphsweep needs the TensorFlow backend of Keras, but KERAS_BACKEND is "
        f"{keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"
    )

__all__ = ["keras", "tf"]
