"""Benchmark: a structure-learning step against a plain Keras training step, side by side.

For each model (the zoo's small ResNet and keras.applications MobileNetV2, both at 32x32) it
times ``model.fit`` steps of a plain compiled Keras model and of the same model trained with a
MorphNet regularizer term in the loss (``trainers.trial`` StructureLearner), on the same data,
alternating rounds so both see the same machine load, and prints the ratio.

    .venv/bin/python tests/benchmarks/bench_train_step.py [--steps 30] [--rounds 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from trainers.config import TrialConfig  # noqa: E402
from trainers.models import build_model  # noqa: E402
from trainers.morphnet.tfkeras.compat import keras, tf  # noqa: E402
from trainers.trial import _learner_class, make_regularizer  # noqa: E402

MODELS = {"zoo ResNet": "zoo:resnet", "MobileNetV2": "keras.applications.MobileNetV2"}


def _dataset(batch: int, steps: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps).astype(np.int32)
    return (
        tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache().prefetch(tf.data.AUTOTUNE)
    )


def _compile(model: keras.Model) -> None:
    model.compile(
        jit_compile=False,  # as trials compile (XLA compilation does not pay off on CPUs)
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _time_epoch(model: keras.Model, data: tf.data.Dataset) -> float:
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return time.perf_counter() - start


def bench(
    name: str, spec: str, algorithm: str, steps: int, rounds: int, batch: int
) -> tuple[float, float]:
    data = _dataset(batch, steps)
    plain = build_model(spec, (32, 32, 3), 10, width=32, seed=0)
    learned_net = build_model(spec, (32, 32, 3), 10, width=32, seed=0)
    if algorithm == "logistic_sigmoid":
        from trainers.morphnet.tfkeras import add_gating

        # FiGS trains the gated network: the plain step trains the same gated network
        plain, learned_net = add_gating(plain), add_gating(learned_net)
    _compile(plain)
    config = TrialConfig(model=spec, algorithm=algorithm)
    regularizer = make_regularizer(learned_net, config)
    learner = _learner_class()(learned_net, regularizer, 1.0 / regularizer.seed_cost)
    _compile(learner)
    _time_epoch(plain, data.take(2))  # trace and warm up both
    _time_epoch(learner, data.take(2))
    plain_times, learn_times = [], []
    for _ in range(rounds):
        plain_times.append(_time_epoch(plain, data) / steps)
        learn_times.append(_time_epoch(learner, data) / steps)
    return float(np.median(plain_times)), float(np.median(learn_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--algorithms", default="gamma,group_lasso,logistic_sigmoid")
    args = parser.parse_args()
    print(f"batch {args.batch}, {args.steps} steps x {args.rounds} rounds (median), 32x32x3 inputs")
    print(f"{'model':<12} {'algorithm':<17} {'plain step':>11} {'MorphNet step':>14} {'ratio':>7}")
    for name, spec in MODELS.items():
        for algorithm in args.algorithms.split(","):
            plain, learn = bench(name, spec, algorithm, args.steps, args.rounds, args.batch)
            print(
                f"{name:<12} {algorithm:<17} {plain * 1e3:9.1f}ms {learn * 1e3:12.1f}ms {learn / plain:6.3f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
