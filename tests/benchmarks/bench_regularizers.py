"""Benchmark MorphNet regularizers on keras.applications networks (weights=None).

For each network it reports the number of ops the library analyses, the time to analyse the
model and build each regularizer (GammaFlops, GroupLassoFlops, GammaLatency P100), and the time
of one ``get_regularization_term()`` evaluation inside a ``tf.function``, next to one forward pass
of the model at batch 1 (also inside a ``tf.function``) measured in the same process. Model
construction is timed separately and is not part of "build".

    .venv/bin/python tests/benchmarks/bench_regularizers.py [--models ResNet50,MobileNetV2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainers.morphnet import (  # noqa: E402
    GammaFlopsRegularizer,
    GammaLatencyRegularizer,
    GroupLassoFlopsRegularizer,
    NoSourceError,
    read_model,
)

A = keras.applications
APPLICATIONS: dict[str, Callable[..., Any]] = {
    "ResNet50": A.ResNet50,
    "MobileNetV2": A.MobileNetV2,
    "InceptionV3": A.InceptionV3,
    "DenseNet121": A.DenseNet121,
    "EfficientNetB0": A.EfficientNetB0,
    "Xception": A.Xception,
    "NASNetMobile": A.NASNetMobile,
}
REGULARIZERS: dict[str, Callable[[Any], Any]] = {
    "GammaFlops": lambda model: GammaFlopsRegularizer(model, gamma_threshold=1e-2),
    "GroupLassoFlops": lambda model: GroupLassoFlopsRegularizer(model, threshold=1e-2),
    "GammaLatency P100": lambda model: GammaLatencyRegularizer(
        model, gamma_threshold=1e-2, hardware="P100"
    ),
}


@dataclass
class Row:
    model: str
    ops: int
    model_build_s: float
    forward_ms: float
    regularizer: str
    build_s: float | None = None
    term_ms: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.term_ms is None else self.term_ms / self.forward_ms


def time_side_by_side(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Mean seconds per call of each compiled function, calls interleaved round-robin.

    Each function is called once first (the trace, not timed); interleaving the timed calls
    exposes every function to the same machine load.
    """
    for fn in fns:
        fn()
    totals = [0.0] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn().numpy()  # .numpy() waits for the result
            totals[k] += time.perf_counter() - start
    return [t / repeats for t in totals]


def bench_model(name: str, size: int, repeats: int) -> list[Row]:
    start = time.perf_counter()
    model = APPLICATIONS[name](weights=None, input_shape=(size, size, 3))
    model_build_s = time.perf_counter() - start

    x = tf.zeros((1, size, size, 3))
    forward = tf.function(lambda: model(x, training=False))
    forward()  # trace once, so that the no-source rows below can report a forward time too

    graph, _ = read_model(model)  # the ops every regularizer analyses (untimed)
    ops = len(graph.ops)
    rows: list[Row] = []
    for reg_name, make in REGULARIZERS.items():
        start = time.perf_counter()
        try:
            reg = make(model)
        except NoSourceError:
            (forward_s,) = time_side_by_side([forward], repeats)
            rows.append(Row(name, ops, model_build_s, forward_s * 1e3, reg_name))
            continue
        build_s = time.perf_counter() - start
        term = tf.function(reg.get_regularization_term)
        forward_s, term_s = time_side_by_side([forward, term], repeats)
        rows.append(Row(name, ops, model_build_s, forward_s * 1e3, reg_name, build_s, term_s * 1e3))
    keras.backend.clear_session()
    return rows


def warm_up() -> None:
    """Pay the library's and TensorFlow's one-off first-use costs outside the measurements."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, keras.layers.ReLU()(x))
    for make in REGULARIZERS.values():
        reg = make(model)  # keep a reference: tf.function holds bound methods' self weakly
        tf.function(reg.get_regularization_term)().numpy()
    keras.backend.clear_session()


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a (no sources)" if value is None else f"{value:{spec}}{unit}"


def print_table(rows: list[Row]) -> None:
    header = (
        "model",
        "ops",
        "model build",
        "regularizer",
        "analyse+build",
        "forward b=1",
        "term / call",
        "term / forward",
    )
    table = [header]
    last = None
    for r in rows:
        first = r.model != last
        last = r.model
        table.append(
            (
                r.model if first else "",
                str(r.ops) if first else "",
                f"{r.model_build_s:.2f} s" if first else "",
                r.regularizer,
                _fmt(r.build_s, ".3f", " s"),
                f"{r.forward_ms:.2f} ms",
                _fmt(r.term_ms, ".3f", " ms") if r.build_s is not None else "n/a",
                _fmt(r.ratio, ".3f", "x") if r.build_s is not None else "n/a",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for k, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default=",".join(APPLICATIONS),
        help=f"comma-separated subset of {','.join(APPLICATIONS)} (default: all)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--size", type=int, default=224, help="square input side (default 224)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in APPLICATIONS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(APPLICATIONS)}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, "
        f"GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    )
    print(
        f"input {args.size}x{args.size}x3, batch 1, weights=None; times are means over "
        f"{args.repeats} calls after one warm-up (trace) call, inside tf.function\n"
    )
    warm_up()
    rows: list[Row] = []
    for name in names:
        rows.extend(bench_model(name, args.size, args.repeats))
        print(f"[done {name}]", file=sys.stderr, flush=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
