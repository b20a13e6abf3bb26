"""What the MorphNet library computes on one Keras backend, written to files another process
compares (``test_backends.py``). Run as ``KERAS_BACKEND=<b> python backend_probe.py MODE DIR``.

Modes:
- ``seed``: build every case's seed network (random weights, gammas spread around the alive
  threshold) and a fixed batch, save them as ``<case>.keras`` and ``<case>.npz``.
- ``probe``: load each seed and, for every algorithm x target, record the regularization term,
  its gradient for every trainable variable, alive vectors, the structure JSON and the exact
  cost; for one regularizer per case, one optimizer step of ``StructureLearner.fit`` on the
  fixed batch (weights after it, saved as ``<case>.<backend>.step.keras``). FiGS gates get fixed
  log-odds and a fixed noise (the mask a step samples is then the same on every backend).
  On JAX, also a structure exported mid-epoch (after a sync) against one after the fit stops.
- ``restore``: load the other backend's stepped networks and record their term and cost.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# (case, model spec, input shape); zoo models at width 8, keras.applications at 32x32
CASES = [
    ("plain", "zoo:plain", (12, 12, 3)),
    ("resnet", "zoo:resnet", (12, 12, 3)),
    ("mobilenet", "zoo:mobilenet", (12, 12, 3)),
    ("inception", "zoo:inception", (12, 12, 3)),
    ("resnet1d", "zoo:resnet1d", (24, 2)),
    ("mobilenetv2", "keras.applications.MobileNetV2", (32, 32, 3)),
    ("resnet50", "keras.applications.ResNet50", (32, 32, 3)),
]
if os.environ.get("PROBE_CASES"):  # a subset, for a quick look by hand
    CASES = [c for c in CASES if c[0] in os.environ["PROBE_CASES"].split(",")]
ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
TARGETS = ("flops", "model_size", "latency")
CLASSES = 5
BATCH = 6


def _fixed_noise(shape, seed=None):  # noqa: ANN001 - replaces gating.logistic_noise
    """A fixed Logistic(0, 1) draw per channel, the same on every backend."""
    from trainers.morphnet.keras3.backend import ops

    n = int(np.prod([int(d) for d in shape]))
    values = np.random.default_rng(n).logistic(size=n).astype(np.float32).reshape(shape)
    return ops.convert_to_tensor(values)


def seed(out: Path) -> None:
    from trainers.models import build_model

    for case, spec, shape in CASES:
        model = build_model(spec, shape, CLASSES, 8, 0)
        # as built, for the optimizer step (well-conditioned: random gammas of both signs make
        # deep networks' first step explode, where float32 rounding alone parts backends)
        model.save(out / f"{case}.fresh.keras")
        rng = np.random.default_rng(len(case))
        for layer in model.layers:
            if type(layer).__name__ == "BatchNormalization" and layer.scale:
                n = int(layer.gamma.shape[0])
                # a third of the channels under the 0.01 thresholds, some just above
                gamma = rng.choice([0.003, 0.02, 0.5, 1.2], n).astype(np.float32)
                layer.gamma.assign(gamma * rng.choice([-1.0, 1.0], n))
        model.save(out / f"{case}.keras")
        x = rng.normal(size=(BATCH, *shape)).astype(np.float32)
        y = rng.integers(0, CLASSES, BATCH).astype(np.int32)
        np.savez(out / f"{case}.npz", x=x, y=y)


def _load(path: Path):  # noqa: ANN202
    from trainers.morphnet.keras3.backend import keras
    from trainers.morphnet.keras3.gating import CUSTOM_OBJECTS

    return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)


def _gated(model, case: str):  # noqa: ANN001, ANN202
    from trainers.morphnet.keras3 import ChannelGate, add_gating

    gated = add_gating(model, seed=0, temperature=0.5)
    rng = np.random.default_rng(100 + len(case))
    for layer in gated.layers:
        if isinstance(layer, ChannelGate):
            n = int(layer.mask_logits.shape[0])
            # gates from shut (P 0.02) to open (P 0.98), some near the 0.1 alive threshold
            layer.mask_logits.assign(rng.choice([-4.0, -2.3, -1.9, 0.5, 4.0], n).astype(np.float32))
    return gated


def _term_gradients(reg, variables) -> dict[str, np.ndarray]:  # noqa: ANN001
    from trainers.morphnet.keras3.backend import BACKEND, to_numpy

    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            term = reg.get_regularization_term()
        grads = tape.gradient(term, [v.value for v in variables])
    else:
        import jax
        from keras.src.backend.common.stateless_scope import StatelessScope

        def term_of(values):  # noqa: ANN001, ANN202
            with StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return reg.get_regularization_term()

        grads = jax.grad(term_of)([v.value for v in variables])
    return {
        v.path: (np.zeros(v.shape, np.float32) if g is None else to_numpy(g))
        for v, g in zip(variables, grads, strict=True)
    }


def _regularizer(network, algorithm: str, target: str):  # noqa: ANN001, ANN202
    from trainers.morphnet.keras3 import make_regularizer

    options = {"regularize_on_mask": False} if algorithm == "logistic_sigmoid" else {}
    return make_regularizer(network, algorithm, target, **options)


def _step(network, reg, x, y, out: Path, name: str):  # noqa: ANN001, ANN202
    """One SGD step of StructureLearner.fit on the batch, then the same step again from the same
    weights at strength 0: the weights after the first, and what the regularizer changed (the
    difference of the two), by path."""
    from trainers.morphnet.keras3 import StructureLearner
    from trainers.morphnet.keras3.backend import BACKEND, keras, to_numpy

    strength = 1.0 / reg.seed_cost
    learner = StructureLearner(network, reg, strength=strength)
    learner.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=BACKEND == "jax",
    )
    start = [to_numpy(v) for v in network.weights]
    history = learner.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    network.save(out / name)
    stepped = {v.path: to_numpy(v) for v in network.weights}
    for v, value in zip(network.weights, start, strict=True):
        v.assign(value)
    learner.strength = 0.0  # the same compiled step, without the MorphNet term
    learner.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    plain = {v.path: to_numpy(v) for v in network.weights}
    delta = {k: stepped[k] - plain[k] for k in stepped}
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    return stepped, delta, logs


def _record(reg) -> dict:  # noqa: ANN001
    return {
        "term": float(reg.get_regularization_term()),
        "cost": float(reg.get_cost()),
        "alive": {k: v.astype(int).tolist() for k, v in reg.alive_vectors().items()},
        "structure": reg.structure().to_dict(),
    }


def probe(out: Path) -> None:
    from trainers.morphnet.keras3 import gating
    from trainers.morphnet.keras3.backend import BACKEND, keras

    gating.logistic_noise = _fixed_noise
    results: dict = {}
    arrays: dict[str, np.ndarray] = {}
    for index, (case, _, _) in enumerate(CASES):
        started = time.perf_counter()
        batch = np.load(out / f"{case}.npz")
        x, y = batch["x"], batch["y"]
        for algorithm in ALGORITHMS:
            keras.utils.clear_session()
            network = _load(out / f"{case}.keras")
            if algorithm == "logistic_sigmoid":
                network = _gated(network, case)
            for target in TARGETS:
                reg = _regularizer(network, algorithm, target)
                key = f"{case}/{algorithm}/{target}"
                results[key] = _record(reg)
                for path, g in _term_gradients(reg, network.trainable_variables).items():
                    arrays[f"grad|{key}|{path}"] = g
            # one fit step per case, the algorithm rotating over the cases
            if algorithm == ALGORITHMS[index % 3]:
                keras.utils.clear_session()
                network = _load(out / f"{case}.fresh.keras")
                if algorithm == "logistic_sigmoid":
                    network = _gated(network, case)
                reg = _regularizer(network, algorithm, "flops")
                step_started = time.perf_counter()
                name = f"{case}.{BACKEND}.step.keras"
                weights, delta, logs = _step(network, reg, x, y, out, name)
                for path, w in weights.items():
                    arrays[f"step|{case}|{path}"] = w
                    arrays[f"delta|{case}|{path}"] = delta[path]
                # the term and cost of the weights after the step (the saved network)
                network = _load(out / name)
                reg = _regularizer(network, algorithm, "flops")
                results[f"{case}/step"] = {"algorithm": algorithm, "logs": logs, **_record(reg)}
                print(f"{case}: step {time.perf_counter() - step_started:.1f} s", file=sys.stderr)
        print(f"{case}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if BACKEND == "jax" and (out / "resnet.keras").is_file():
        results["mid_epoch"] = _mid_epoch(out)
    (out / f"probe.{BACKEND}.json").write_text(json.dumps(results))
    np.savez(out / f"probe.{BACKEND}.npz", **arrays)


def _mid_epoch(out: Path) -> dict:
    """JAX: a structure exported from a callback mid-epoch (after ``sync_weights``) against the
    one read after a fit stopped at the same step (``fit`` syncs when it ends)."""
    from trainers.morphnet.keras3 import StructureLearner
    from trainers.morphnet.keras3.backend import keras, sync_weights

    rng = np.random.default_rng(7)
    x = rng.normal(size=(4 * BATCH, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, CLASSES, 4 * BATCH).astype(np.int32)
    found: dict = {}

    def run(callback) -> dict:  # noqa: ANN001
        keras.utils.clear_session()
        network = _load(out / "resnet.keras")
        reg = _regularizer(network, "gamma", "flops")
        learner = StructureLearner(network, reg, strength=30.0 / reg.seed_cost)
        learner.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True,
        )
        callback.reg = reg
        learner.fit(
            x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[callback]
        )
        return _record(reg)

    class Export(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs=None) -> None:  # noqa: ANN001
            if batch == 1:
                sync_weights(self.model)
                found["exported"] = _record(self.reg)

    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs=None) -> None:  # noqa: ANN001
            if batch == 1:
                self.model.stop_training = True

    run(Export())
    found["stopped"] = run(Stop())
    return found


def restore(out: Path, other: str) -> None:
    from trainers.morphnet.keras3.backend import BACKEND

    results = {}
    for index, (case, _, _) in enumerate(CASES):
        algorithm = ALGORITHMS[index % 3]
        network = _load(out / f"{case}.{other}.step.keras")
        results[case] = _record(_regularizer(network, algorithm, "flops"))
    (out / f"restore.{BACKEND}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    if mode == "seed":
        seed(directory)
    elif mode == "probe":
        probe(directory)
    else:
        restore(directory, sys.argv[3])
