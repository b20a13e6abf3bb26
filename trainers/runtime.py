"""The process a trial runs in: which Keras backend, how the device is set up, how steps compile.

Keras reads ``KERAS_BACKEND`` once, when it is first imported; ``select_backend`` sets it before
that import (a Ray worker, ``morphsweep train``) or checks that the Keras already imported runs
the backend a config asks for. Nothing here imports TensorFlow unless the backend is TensorFlow.
"""

from __future__ import annotations

import os
import sys

from .errors import TrialConfigError
from .morphnet.algorithms import BACKENDS


def current_backend() -> str | None:
    """The backend of the Keras this process has imported, or None before the import."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "backend"):
        return None
    return str(keras.backend.backend())


def backend_env(backend: str) -> dict[str, str]:
    """The environment a process needs to run trials on ``backend``: Keras' backend and, for
    JAX, no GPU memory preallocated (trials that share a GPU each take what they need)."""
    env = {"KERAS_BACKEND": backend}
    if backend == "jax":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def select_backend(backend: str) -> None:
    """Run Keras on ``backend`` in this process (set before Keras is imported), or fail clearly.

    Raises:
        TrialConfigError: an unknown backend, or Keras already imported with another one.
    """
    if backend not in BACKENDS:
        raise TrialConfigError(
            f"backend must be one of {list(BACKENDS)}, but got backend={backend!r}"
        )
    for name, value in backend_env(backend).items():
        if name != "KERAS_BACKEND":
            os.environ.setdefault(name, value)
    running = current_backend()
    if running is None:
        os.environ["KERAS_BACKEND"] = backend
        return
    if running != backend:
        raise TrialConfigError(
            f"this process already runs Keras on {running!r}, but the trial asks for "
            f"backend={backend!r}; set KERAS_BACKEND={backend} before Keras is imported (or run "
            f"the trial with 'morphsweep train', which does), or set trial.backend: {running}"
        )


def setup_device(backend: str, cpus: float | None = None) -> None:
    """Threads and GPU memory for a trial's process, once per process.

    TensorFlow: GPU memory grown as needed (several trials may share a GPU) and, with ``cpus``,
    its thread pools sized to them. JAX: memory is not preallocated (``select_backend``).
    Settings TensorFlow refuses once it runs (a reused worker) are left as they are.
    """
    if backend != "tensorflow":
        return
    import tensorflow as tf

    try:
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        if cpus is not None:
            threads = max(1, int(cpus))
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # TensorFlow already runs with its settings
        pass


def resolve_jit_compile(jit_compile: bool | None, backend: str) -> bool:
    """``jit_compile`` for ``Model.compile``: None picks per backend.

    On TensorFlow, off (``tf.function`` graphs; XLA compiles cost more than they save in the short
    trials of a CPU sweep). On JAX, on: without it JAX runs every op eagerly, many times slower.
    """
    if jit_compile is None:
        return backend == "jax"
    return bool(jit_compile)


def set_determinism(seed: int, deterministic: bool = True) -> None:
    """Seed Python's, NumPy's and the backend's random draws; TensorFlow's op determinism on or off.

    Op determinism is a process-wide switch: a worker that runs several trials sets it for each
    (TensorFlow's public API can only turn it on; its config module turns it off too). JAX's
    compiled steps are deterministic on the CPU as they are.
    """
    from .morphnet.keras3.backend import BACKEND, set_random_seed

    set_random_seed(seed)
    if BACKEND != "tensorflow":
        return
    from tensorflow.python.framework import config as tf_config

    if deterministic:
        tf_config.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


__all__ = [
    "BACKENDS",
    "backend_env",
    "current_backend",
    "resolve_jit_compile",
    "select_backend",
    "set_determinism",
    "setup_device",
]
