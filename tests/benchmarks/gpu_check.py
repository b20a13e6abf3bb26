"""GPU check: MorphNet train-step throughput on ResNet50, and a fractional-GPU sweep's efficiency.

Two parts, each in its own process (the sweep's trials then share a GPU that no benchmark holds
memory on), each with a time limit, so that the check ends within 8 minutes on one NVIDIA GPU:

- **steps**: a train step of ``keras.applications.ResNet50`` (weights=None) at 224x224, batch 64,
  plain Keras against the same network trained with a MorphNet term in the loss
  (``trainers.morphnet.StructureLearner`` with GammaFlops, GroupLassoFlops and LogisticSigmoid/FiGS,
  built as the CPU step benchmark builds them; FiGS against the network without gates, which are
  part of its cost), in float32, then in mixed_float16. Every model of a precision is timed once
  per round, one after the other, so all see the same load; images/s is the median over rounds.
- **sweep**: 4 trials at ``gpus: 0.25`` each on a local Ray with a local MLflow SQLite store in a
  temporary directory, then the same 4 trials with ``max_concurrent: 1``; the parallel
  efficiency is T1 / (4 x T4), T from the first trial's start to the last trial's last report.

``--dry-run`` runs the same code at tiny sizes on the CPU, for the test suite: the zoo's small
ResNet at 32x32, batch 4, 2 steps (building and tracing ResNet50's step 8 times takes about 10
minutes on 2 cores: ``--dry-run --model keras.applications.ResNet50`` does it), and a 2-trial
sweep at ``gpus: 0``. The table is printed and written to ``<out>/gpu_check.csv``. The exit
status is 2 when no NVIDIA GPU is visible (without ``--dry-run``), 1 when a part failed or ran out
of time (the table then holds what was measured).

    tests/benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--parts steps,sweep] [--model SPEC]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = 2  # the exit status when no NVIDIA GPU is visible
ALGORITHMS = {
    "gamma": "GammaFlops",
    "group_lasso": "GroupLassoFlops",
    "logistic_sigmoid": "LogisticSigmoidFlops (FiGS)",
}
PRECISIONS = ("float32", "mixed_float16")
FIELDS = ("section", "case", "precision", "value", "unit", "vs_plain", "vs_float32")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each part runs: the real check, or the CPU dry run."""

    model: str
    image: int
    batch: int
    steps: int
    rounds: int
    trials: int
    gpus_per_trial: float
    trial: dict[str, Any]
    steps_limit_s: int
    sweep_limit_s: int


GPU = Sizes(
    model="keras.applications.ResNet50",
    image=224,
    batch=64,
    steps=20,
    rounds=3,
    trials=4,
    gpus_per_trial=0.25,
    # small trials: most of a trial is starting TensorFlow and tracing its steps, which is what
    # 4 trials sharing one GPU (and the CPUs feeding it) must overlap
    trial={
        "model": "zoo:resnet",
        "model_width": 16,
        "dataset": "shapes32",
        "epochs": 2,
        "retrain_epochs": 1,
        "batch_size": 64,
        "export_every_steps": 0,
    },
    # with the GPU probe, under 8 minutes in all; the step part ends its rounds in time
    steps_limit_s=240,
    sweep_limit_s=210,
)
DRY = Sizes(
    model="zoo:plain",
    image=32,
    batch=4,
    steps=2,
    rounds=1,
    trials=2,
    gpus_per_trial=0.0,
    trial={
        "model": "zoo:plain",
        "model_width": 4,
        "dataset": "synthetic",
        "epochs": 1,
        "retrain_epochs": 1,
        "batch_size": 32,
        "export_every_steps": 0,
    },
    steps_limit_s=900,
    sweep_limit_s=600,
)


# ----- the step benchmark (its own process) ------------------------------------------------------
@contextlib.contextmanager
def _policy(name: str) -> Any:
    from trainers.morphnet.keras3.backend import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _build_case(algorithm: str | None, sizes: Sizes) -> Any:
    """The network, compiled plain (algorithm None) or as a StructureLearner with that algorithm."""
    from trainers.config import TrialConfig
    from trainers.models import build_model
    from trainers.morphnet.keras3 import StructureLearner, add_gating
    from trainers.morphnet.keras3.backend import keras
    from trainers.trial import make_regularizer

    # no seed: setting one (tf.random.set_seed) makes every step traced so far trace again
    model = build_model(sizes.model, (sizes.image, sizes.image, 3), 1000, width=8)
    if algorithm is not None:
        if algorithm == "logistic_sigmoid":
            model = add_gating(model, seed=0)
        regularizer = make_regularizer(model, TrialConfig(model=sizes.model, algorithm=algorithm))
        model = StructureLearner(model, regularizer, 1.0 / regularizer.seed_cost)
    model.compile(
        jit_compile=False,  # as trials compile
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _time_steps(model: Any, data: Any, steps: int) -> float:
    """Seconds per train step over one ``fit`` epoch of ``steps`` batches."""
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return (time.perf_counter() - started) / steps


def _build_cases(precision: str, sizes: Sizes, data: Any) -> dict[str, Any]:
    """Plain and each MorphNet algorithm under ``precision``, each traced and warmed up."""
    from trainers.morphnet.keras3.backend import keras

    keras.utils.set_random_seed(0)  # here, before any step is traced
    cases = {}
    for algorithm in (None, *ALGORITHMS):
        name = algorithm or "plain"
        started = time.perf_counter()
        with _policy(precision):
            model = _build_case(algorithm, sizes)
            # trace, and let the GPU warm up: on this very dataset, since another one (even
            # data.take(n)) would trace the step again inside the first timed round
            _time_steps(model, data, sizes.steps)
        took = time.perf_counter() - started
        print(f"  built and traced {name} ({precision}) in {took:.0f} s", flush=True)
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        if scaled != (precision == "mixed_float16"):
            raise RuntimeError(f"{name} ({precision}): loss scaling is {scaled}")
        cases[name] = model
    return cases


def step_part(sizes: Sizes, out: Path, deadline: float) -> None:
    """Time every case, one precision after the other, in rounds; rewrite ``out`` (JSON) after
    each round. A precision's rounds stop early when another would leave too little time before
    ``deadline`` (``time.monotonic()``) to build and time the next precision."""
    import gc

    import numpy as np
    import tensorflow as tf

    from trainers.morphnet.keras3.backend import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(sizes.batch, sizes.image, sizes.image, 3)).astype(np.float32)
    y = rng.integers(0, 1000, sizes.batch).astype(np.int32)
    data = tf.data.Dataset.from_tensors((x, y)).repeat(sizes.steps).prefetch(tf.data.AUTOTUNE)
    results: list[dict[str, Any]] = []
    for index, precision in enumerate(PRECISIONS):
        started = time.monotonic()
        cases = _build_cases(precision, sizes, data)
        # the next precision needs about as long again to build (none after the last)
        reserve = (time.monotonic() - started) if index + 1 < len(PRECISIONS) else 0.0
        times: dict[str, list[float]] = {name: [] for name in cases}
        for done in range(1, sizes.rounds + 1):
            round_started = time.monotonic()
            for name, model in cases.items():  # in turn, so all see the same load
                times[name].append(_time_steps(model, data, sizes.steps))
            measured = [
                {"case": name, "precision": precision, "images_per_s": sizes.batch / median}
                for name, median in ((n, statistics.median(v)) for n, v in times.items())
            ]
            out.write_text(json.dumps(results + measured))
            left = deadline - reserve - time.monotonic()
            if done < sizes.rounds and time.monotonic() - round_started > left:
                print(f"  {precision}: {done} of {sizes.rounds} rounds, no time for more")
                break
        results += measured
        del cases, model
        keras.backend.clear_session()  # the next precision's models get the memory
        gc.collect()


# ----- the sweep (its own process) ---------------------------------------------------------------
def _sweep_config(sizes: Sizes, name: str, workdir: Path, concurrent: int) -> Any:
    from sweep.config import load_sweep_config

    cpus = 1 if sizes.gpus_per_trial == 0 else max(1, min(4, (os.cpu_count() or 4) // 4))
    return load_sweep_config(
        {
            "name": name,
            "trial": sizes.trial,
            "algorithms": ["gamma"],
            "targets": ["flops"],
            # one strength, one trial per seed: every trial does the same work
            "strengths": {"decades_below": 0, "decades_above": 0, "points_per_decade": 1},
            "seeds": list(range(sizes.trials)),
            "baseline": {"widths": []},
            "resources": {"cpus": cpus, "gpus": sizes.gpus_per_trial},
            "max_concurrent": concurrent,
            "retries": 0,
            "early_stop": "off",
            "workdir": str(workdir),
        }
    )


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def sweep_part(sizes: Sizes, out: Path, deadline: float) -> None:
    """Run the sweep at full concurrency, then one trial at a time, writing the times to ``out``
    after each (the driver enforces the deadline: it stops this process with SIGTERM)."""
    import ray

    from sweep.tune_runner import run_sweep

    # stopped for time, the finally below still shuts Ray down and removes the stores
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="morphsweep-gpu-check-"))
    results: dict[str, Any] = {"trials": sizes.trials, "gpus_per_trial": sizes.gpus_per_trial}
    try:
        for concurrent in (sizes.trials, 1):
            config = _sweep_config(sizes, f"gpu-check-c{concurrent}", workdir, concurrent)
            started = time.perf_counter()
            summary = run_sweep(config, verbose=0)
            wall = time.perf_counter() - started
            if summary["ran"] != sizes.trials:
                raise RuntimeError(f"{summary['ran']} of {sizes.trials} trials ran: {summary}")
            span = float(summary.get("timing", {}).get("trials_span_seconds") or 0.0)
            # the trials' span leaves out starting Ray and publishing the front; without it
            # (no trial reported its training time) the sweep's wall time stands in
            results[f"c{concurrent}"] = {"seconds": span or wall, "wall_seconds": wall}
            out.write_text(json.dumps(results))
            print(f"  {sizes.trials} trials, max_concurrent {concurrent}: {span or wall:.1f} s")
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


# ----- the driver: the GPU probe, the parts in subprocesses, the table ---------------------------
def gpu_missing() -> str | None:
    """Why no NVIDIA GPU is visible (one line), or None when TensorFlow lists one."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi is not installed"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return "nvidia-smi lists no GPU"
    code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    probe = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if probe.returncode != 0 or probe.stdout.split()[-1:] in ([], ["0"]):
        return "TensorFlow lists no GPU device (check CUDA_VISIBLE_DEVICES and the CUDA libraries)"
    return None


def _run_part(part: str, args: argparse.Namespace, limit: int, out: Path) -> str | None:
    """Run one part in its own process; None when it finished, else what went wrong."""
    command = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--json", str(out)]
    command += ["--limit", str(limit)]
    command += ["--dry-run"] if args.dry_run else []
    command += ["--model", args.model] if args.model else []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    if part == "sweep":
        # the sweep's driver builds the seed model for its costs: it must not take the memory
        # the trials sharing the GPU need (TensorFlow maps nearly all of it by default)
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    print(f"{part}: running (limit {limit} s)", flush=True)
    started = time.perf_counter()
    # a session of its own: on timeout the part and what it started (Ray) are stopped together
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        status = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        return f"timed out after {limit} s"
    print(f"{part}: {time.perf_counter() - started:.0f} s", flush=True)
    return None if status == 0 else f"failed with exit status {status}"


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the part's process group (its own cleanup runs), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _row(case: str, precision: str, value: float, unit: str, **ratios: Any) -> dict[str, Any]:
    section = "step" if unit == "images/s" else "sweep"
    row = {"section": section, "case": case, "precision": precision, "value": round(value, 3)}
    return {**row, "unit": unit, "vs_plain": "", "vs_float32": "", **ratios}


def table_rows(steps: list[dict[str, Any]], sweep: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per measurement; a step's ratios are to plain Keras in the same precision and to
    the same case in float32."""
    speed = {(r["case"], r["precision"]): r["images_per_s"] for r in steps}
    rows = []
    for (case, precision), value in speed.items():
        plain, float32 = speed.get(("plain", precision)), speed.get((case, "float32"))
        label = "plain Keras" if case == "plain" else f"MorphNet {ALGORITHMS[case]}"
        ratios = {
            "vs_plain": round(value / plain, 3) if plain else "",
            "vs_float32": round(value / float32, 3) if float32 else "",
        }
        rows.append(_row(label, precision, value, "images/s", **ratios))
    if sweep is None:
        return rows
    n, gpus = int(sweep["trials"]), sweep["gpus_per_trial"]
    for concurrent in (n, 1):
        if f"c{concurrent}" in sweep:
            case = f"{n} trials, max_concurrent {concurrent}, gpus {gpus:g} each"
            rows.append(_row(case, "float32", sweep[f"c{concurrent}"]["seconds"], "s"))
    if f"c{n}" in sweep and "c1" in sweep:
        efficiency = sweep["c1"]["seconds"] / (n * sweep[f"c{n}"]["seconds"])
        rows.append(_row(f"parallel efficiency T1/({n}*T{n})", "", efficiency, ""))
    return rows


def print_table(rows: list[dict[str, Any]], problems: list[str]) -> None:
    widths = {f: max([len(f), *(len(str(r[f])) for r in rows)]) for f in FIELDS}
    print(" ".join(f.ljust(widths[f]) for f in FIELDS))
    for row in rows:
        print(" ".join(str(row[f]).ljust(widths[f]) for f in FIELDS))
    for problem in problems:
        print(f"PROBLEM: {problem}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, on the CPU")
    parser.add_argument("--out", default="morphsweep_runs/bench", help="where gpu_check.csv goes")
    parser.add_argument("--parts", default="steps,sweep", help="steps, sweep, or both")
    parser.add_argument("--model", help="the step part's network (default ResNet50)")
    parser.add_argument("--part", choices=("steps", "sweep"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, default=1e9, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    sizes = DRY if args.dry_run else GPU
    if args.model:
        sizes = dataclasses.replace(sizes, model=args.model)
    if args.part:  # inside a part's own process
        deadline = time.monotonic() + args.limit - 15
        (step_part if args.part == "steps" else sweep_part)(sizes, Path(args.json), deadline)
        return 0
    parts = [p for p in args.parts.split(",") if p]
    if not parts or set(parts) - {"steps", "sweep"}:
        parser.error(f"--parts must name steps, sweep or both, but got --parts={args.parts!r}")
    why = None if args.dry_run else gpu_missing()
    if why:
        message = f"no NVIDIA GPU visible ({why}); run it on a GPU machine, or pass --dry-run"
        print(f"gpu_check: {message}", file=sys.stderr)
        return NO_GPU
    problems: list[str] = []
    steps: list[dict[str, Any]] = []
    sweep: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            result = Path(tmp) / f"{part}.json"
            limit = sizes.steps_limit_s if part == "steps" else sizes.sweep_limit_s
            problem = _run_part(part, args, limit, result)
            if problem:
                problems.append(f"{part} {problem}")
            if result.is_file():  # what a part measured before it failed or ran out of time
                if part == "steps":
                    steps = json.loads(result.read_text())
                else:
                    sweep = json.loads(result.read_text())
    rows = table_rows(steps, sweep)
    print_table(rows, problems)
    path = Path(args.out) / "gpu_check.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"written to {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
