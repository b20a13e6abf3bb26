"""The one place that decides how Keras is imported, and the few operations ``keras.ops`` lacks.

The library runs on Keras 3's TensorFlow backend (the default) and its JAX backend
(``KERAS_BACKEND=jax``). Everything else in this package goes through ``keras.ops``; what needs
a backend of its own (a fused norm on TensorFlow, the gate sample of the step being traced,
reading weights in the middle of a JAX ``fit``) is here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from ..algorithms import BACKENDS

try:
    import keras
    from keras import ops
except ImportError as exc:  # pragma: no cover - exercised only without the dependency
    raise ImportError(
        "trainers.morphnet.keras3 needs Keras 3 and a backend: pip install morphsweep "
        "(TensorFlow) or pip install 'morphsweep[jax]' and KERAS_BACKEND=jax"
    ) from exc

BACKEND = keras.backend.backend()
if BACKEND not in BACKENDS:
    raise ImportError(
        f"morphsweep runs on Keras' {' or '.join(BACKENDS)} backend, but KERAS_BACKEND is "
        f"{BACKEND!r}; set KERAS_BACKEND=tensorflow (the default) or KERAS_BACKEND=jax"
    )


def f32(x: Any) -> Any:
    """``x`` as a float32 tensor (variables read as their current value)."""
    x = ops.convert_to_tensor(x)
    return x if keras.backend.standardize_dtype(x.dtype) == "float32" else ops.cast(x, "float32")


def channel_norm(w: Any, axes: Sequence[int]) -> Any:
    """``sqrt(mean w^2)`` over ``axes`` (every axis but the output channels).

    ``keras.ops.norm`` takes at most two axes; kernels have up to five. On TensorFlow the fused
    Euclidean-norm reduction reads the kernel once, with no temporary of its size; XLA fuses
    square, sum and root on JAX. Divided by ``sqrt(n)`` rounded to float32: a kernel of equal
    weights gives exactly that weight.
    """
    count = math.prod(int(w.shape[a]) for a in axes)
    root_n = ops.cast(math.sqrt(float(max(count, 1))), "float32")
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.math.reduce_euclidean_norm(w, axis=list(axes)) / root_n
    return ops.sqrt(ops.sum(ops.square(w), axis=tuple(axes))) / root_n


def straight_through(hard: Any, soft: Any) -> Any:
    """Forward ``hard`` exactly, backward the gradient of ``soft``.

    ``hard`` is added to ``soft - soft``, which is exactly zero, so the forward value is the hard
    sample bit for bit; only ``soft`` carries a gradient.
    """
    return ops.stop_gradient(hard) + (soft - ops.stop_gradient(soft))


def keeps_step_tensors() -> bool:
    """Whether a layer may keep a tensor of its call on itself: TensorFlow yes; JAX no (a tracer
    kept past its trace leaks), its step values live in Keras' stateless scope (``step_value``)."""
    return BACKEND == "tensorflow"


def in_current_step(tensor: Any) -> bool:
    """Whether a tensor kept from a layer call belongs to the computation running now: an eager
    tensor outside any graph, or a symbolic one of the graph being traced (TensorFlow only)."""
    if BACKEND != "tensorflow" or tensor is None:
        return False
    import tensorflow as tf

    if tf.executing_eagerly():
        return not hasattr(tensor, "graph")
    return getattr(tensor, "graph", None) is tf.compat.v1.get_default_graph()


def step_value(variable: Any) -> Any:
    """A variable's value in the step running now.

    Inside a JAX step (Keras' stateless scope) this is the value the step assigned, with its
    gradient path (the FiGS gate sample assigned by the layer's call and read by the
    regularizer in ``compute_loss``); elsewhere, the variable's current value.
    """
    if BACKEND == "jax":
        from keras.src.backend.common.stateless_scope import (
            get_stateless_scope,
            in_stateless_scope,
        )

        if in_stateless_scope():
            value = get_stateless_scope().get_current_value(variable)
            if value is not None:
                return value
    return ops.convert_to_tensor(variable)


def sync_weights(model: Any) -> None:
    """Write a JAX ``fit``'s running state back into ``model``'s variables.

    During a JAX ``fit`` the variables are stale (purged) until the epoch ends; a callback that
    reads weights mid-epoch (the periodic structure export) calls this first. Nothing to do on
    TensorFlow.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without importing TensorFlow on another backend.

    Keras' own seeds TensorFlow whenever it is installed, importing it (seconds, and a GPU
    machine with JAX only may lack it); this seeds Python, NumPy and Keras' global seed
    generator, and TensorFlow only when it is the backend.
    """
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    seed = int(seed)
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.random.set_seed(seed)


def to_numpy(x: Any) -> Any:
    return ops.convert_to_numpy(x)


__all__ = [
    "BACKEND",
    "BACKENDS",
    "channel_norm",
    "f32",
    "in_current_step",
    "keeps_step_tensors",
    "keras",
    "ops",
    "set_random_seed",
    "step_value",
    "straight_through",
    "sync_weights",
    "to_numpy",
]
