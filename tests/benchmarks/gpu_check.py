"""GPU check: MorphNet's train step against plain Keras on ResNet50, one trial end to end, and
the throughput of trials sharing one GPU, on Keras' JAX backend (``--backend tensorflow`` also
runs it where TensorFlow is installed; JAX needs no TensorFlow, and Ray and MLflow only for the
sweep part).

Three parts, each in its own process with a time limit, so that the check ends within 6 minutes
on one NVIDIA GPU, compiles included:

- **steps**: a train step of ``keras.applications.ResNet50`` (weights=None) at 224x224, batch
  128, plain Keras against the same network trained with a MorphNet term in the loss
  (``trainers.morphnet.StructureLearner`` with GammaFlops, GroupLassoFlops and LogisticSigmoid/
  FiGS; FiGS against the network without gates, which are part of its cost), in float32, then in
  mixed_bfloat16. Every model of a precision is timed once per round, one after the other, so
  all see the same load; images/s is the median over rounds.
- **trial**: one short trial (learn, export, rebuild, retrain) on the GPU, with its structure.
- **sweep** (when Ray and MLflow are installed): k = 1, 4, 8 trials at once, each with 1/k of
  the GPU, on a local Ray with a local MLflow SQLite store in a temporary directory; the
  aggregate throughput is k trials over the span from the first trial's start to the last
  trial's last report, and its ratio to one trial alone.

``--dry-run`` runs the same code at tiny sizes on the CPU, for the test suite (the zoo's plain
CNN at 32x32, batch 4, 2 steps; a one-epoch trial; k = 1, 2 trials at ``gpus: 0``). The table
is printed and written to ``<out>/gpu_check.csv``. The exit status is 2 when no NVIDIA GPU is
visible to the backend (without ``--dry-run``), 1 when a part failed or ran out of time (the
table then holds what was measured).

    tests/benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--parts steps,trial,sweep]
                                  [--model SPEC] [--backend jax|tensorflow]
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
PRECISIONS = ("float32", "mixed_bfloat16")
PARTS = ("steps", "trial", "sweep")
FIELDS = ("section", "case", "precision", "value", "unit", "vs_plain", "vs_float32", "vs_one")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each part runs: the real check, or the CPU dry run."""

    model: str
    image: int
    batch: int
    steps: int
    rounds: int
    concurrency: tuple[int, ...]
    gpu: bool
    trial: dict[str, Any]
    limits_s: dict[str, int]


GPU = Sizes(
    model="keras.applications.ResNet50",
    image=224,
    batch=128,
    steps=20,
    rounds=3,
    concurrency=(1, 4, 8),
    gpu=True,
    # small trials: much of a trial is starting the process and compiling its steps, which is
    # what trials sharing one GPU (and the CPUs feeding it) must overlap
    trial={
        "model": "zoo:resnet",
        "model_width": 16,
        "dataset": "shapes32",
        "epochs": 2,
        "retrain_epochs": 1,
        "batch_size": 64,
        "export_every_steps": 20,
    },
    # with the GPU probe, under 6 minutes in all; the step part ends its rounds in time
    limits_s={"steps": 150, "trial": 60, "sweep": 140},
)
DRY = Sizes(
    model="zoo:plain",
    image=32,
    batch=4,
    steps=2,
    rounds=1,
    concurrency=(1, 2),
    gpu=False,
    trial={
        "model": "zoo:plain",
        "model_width": 4,
        "dataset": "synthetic",
        "epochs": 1,
        "retrain_epochs": 1,
        "batch_size": 32,
        "export_every_steps": 4,
    },
    limits_s={"steps": 900, "trial": 300, "sweep": 600},
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
    from trainers.morphnet.keras3.backend import BACKEND, keras
    from trainers.runtime import resolve_jit_compile
    from trainers.trial import make_regularizer

    # no seed: setting one (tf.random.set_seed) makes every step traced so far trace again
    model = build_model(sizes.model, (sizes.image, sizes.image, 3), 1000, width=8)
    if algorithm is not None:
        if algorithm == "logistic_sigmoid":
            model = add_gating(model, seed=0)
        trial = TrialConfig(model=sizes.model, algorithm=algorithm, backend=BACKEND)
        regularizer = make_regularizer(model, trial)
        model = StructureLearner(model, regularizer, 1.0 / regularizer.seed_cost)
    model.compile(
        jit_compile=resolve_jit_compile(None, BACKEND),  # as trials compile
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _time_steps(model: Any, data: Any, steps: int) -> float:
    """Seconds per train step over one ``fit`` epoch of ``steps`` batches."""
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / steps


def _build_cases(precision: str, sizes: Sizes, data: Any) -> dict[str, Any]:
    """Plain and each MorphNet algorithm under ``precision``, each traced and warmed up."""
    from trainers.morphnet.keras3.backend import keras, set_random_seed

    set_random_seed(0)  # here, before any step is traced
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

    from trainers.morphnet.keras3.backend import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(sizes.batch, sizes.image, sizes.image, 3)).astype(np.float32)
    y = rng.integers(0, 1000, sizes.batch).astype(np.int32)

    class SameBatch(keras.utils.PyDataset):  # type: ignore[misc,name-defined]
        """The one batch, ``sizes.steps`` times an epoch (on every backend)."""

        def __len__(self) -> int:
            return sizes.steps

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            return x, y

    data = SameBatch()
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


# ----- one trial (its own process) --------------------------------------------------------------
def trial_part(sizes: Sizes, out: Path, deadline: float) -> None:
    """One trial end to end on the process's backend: learn, export, rebuild, retrain."""
    from trainers.config import TrialConfig
    from trainers.reporting import ConsoleReporter
    from trainers.runtime import current_backend
    from trainers.trial import run_trial

    with tempfile.TemporaryDirectory(prefix="morphsweep-gpu-check-") as tmp:
        config = TrialConfig.from_dict(
            {
                **sizes.trial,
                "backend": current_backend() or os.environ.get("KERAS_BACKEND", "jax"),
                "multiplier": 30.0,
                "output_dir": tmp,
                "verbose": 0,
            }
        )
        started = time.perf_counter()
        result = run_trial(config, ConsoleReporter(stream=open(os.devnull, "w")), resume=False)
        seconds = time.perf_counter() - started
        structure = json.loads(Path(result.structure_path).read_text())
        exports = len(list((Path(tmp) / "structures").glob("structure_*.json")))
    widths = {name: layer["alive"] for name, layer in structure["layers"].items()}
    print(f"  trial structure ({exports} exports): {json.dumps(widths)}", flush=True)
    out.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "train_seconds": result.train_seconds,
                "cost_fraction": result.rebuilt_cost / result.seed_cost,
                "accuracy": result.retrained_val_accuracy,
                "exports": exports,
            }
        )
    )


# ----- the sweep (its own process) ---------------------------------------------------------------
def _sweep_config(sizes: Sizes, name: str, workdir: Path, concurrent: int, backend: str) -> Any:
    from sweep.config import load_sweep_config

    cpus = max(1, min(4, (os.cpu_count() or 4) // max(concurrent, 1))) if sizes.gpu else 1
    return load_sweep_config(
        {
            "name": name,
            "trial": {**sizes.trial, "backend": backend},
            "algorithms": ["gamma"],
            "targets": ["flops"],
            # one strength, one trial per seed: every trial does the same work
            "strengths": {"decades_below": 0, "decades_above": 0, "points_per_decade": 1},
            "seeds": list(range(concurrent)),
            "baseline": {"widths": []},
            "resources": {"cpus": cpus, "gpus": round(1.0 / concurrent, 4) if sizes.gpu else 0},
            "max_concurrent": concurrent,
            "retries": 0,
            "early_stop": "off",
            "workdir": str(workdir),
        }
    )


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def sweep_missing() -> str | None:
    """What the sweep part lacks (Ray or MLflow), or None."""
    import importlib.util

    missing = [m for m in ("ray", "mlflow") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def sweep_part(sizes: Sizes, out: Path, deadline: float) -> None:
    """Run k trials at once for each k, writing the times to ``out`` after each (the driver
    enforces the deadline: it stops this process with SIGTERM)."""
    import ray

    from sweep.driver import run_sweep

    backend = os.environ.get("KERAS_BACKEND", "jax")
    # stopped for time, the finally below still shuts Ray down and removes the stores
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="morphsweep-gpu-check-"))
    results: dict[str, Any] = {"gpu": sizes.gpu}
    try:
        for k in sizes.concurrency:
            config = _sweep_config(sizes, f"gpu-check-k{k}", workdir, k, backend)
            started = time.perf_counter()
            summary = run_sweep(config, verbose=0)
            wall = time.perf_counter() - started
            if summary["ran"] != k:
                raise RuntimeError(f"{summary['ran']} of {k} trials ran: {summary}")
            span = float(summary.get("timing", {}).get("trials_span_seconds") or 0.0)
            # the trials' span leaves out starting Ray and publishing the front; without it
            # (no trial reported its training time) the sweep's wall time stands in
            results[f"k{k}"] = {"seconds": span or wall, "wall_seconds": wall}
            out.write_text(json.dumps(results))
            print(f"  {k} trials at once: {span or wall:.1f} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


# ----- the driver: the GPU probe, the parts in subprocesses, the table ---------------------------
def gpu_missing(backend: str) -> str | None:
    """Why no NVIDIA GPU is visible to ``backend`` (one line), or None when it lists one."""
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi is not installed"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    if listed.returncode != 0 or "GPU" not in listed.stdout:
        return "nvidia-smi lists no GPU"
    if backend == "jax":
        code = (
            "import jax\ntry:\n    print(len(jax.devices('gpu')))\n"
            "except RuntimeError:\n    print(0)"
        )
    else:
        code = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    probe = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if probe.returncode != 0 or probe.stdout.split()[-1:] in ([], ["0"]):
        return f"{backend} lists no GPU device (check CUDA_VISIBLE_DEVICES and its CUDA libraries)"
    return None


def _run_part(part: str, args: argparse.Namespace, limit: int, out: Path) -> str | None:
    """Run one part in its own process; None when it finished, else what went wrong."""
    command = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--json", str(out)]
    command += ["--limit", str(limit)]
    command += ["--dry-run"] if args.dry_run else []
    command += ["--model", args.model] if args.model else []
    env = {
        **os.environ,
        "KERAS_BACKEND": args.backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
    }
    if part != "steps":
        # the sweep's driver builds the seed model for its costs, and trials share the GPU:
        # none may take the memory the others need (both backends map most of it by default)
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
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
    section = {"images/s": "step", "trials/min": "sweep"}.get(unit, "trial")
    row = {"section": section, "case": case, "precision": precision, "value": round(value, 3)}
    return {**row, "unit": unit, "vs_plain": "", "vs_float32": "", "vs_one": "", **ratios}


def table_rows(
    steps: list[dict[str, Any]],
    sweep: dict[str, Any] | None,
    trial: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per measurement; a step's ratios are to plain Keras in the same precision and to
    the same case in float32; k trials' throughput is also given against one trial alone."""
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
    if trial is not None:
        rows.append(_row("one trial end to end", "float32", trial["seconds"], "s"))
        rows.append(_row("one trial: rebuilt cost / seed cost", "", trial["cost_fraction"], ""))
        rows.append(_row("one trial: retrained val accuracy", "", trial["accuracy"], ""))
    if sweep is None:
        return rows
    ks = sorted(int(key[1:]) for key in sweep if key.startswith("k") and key[1:].isdigit())
    one = ks[0] == 1 and 60.0 / sweep["k1"]["seconds"] if ks else None
    for k in ks:
        throughput = 60.0 * k / sweep[f"k{k}"]["seconds"]
        share = f"gpus {1 / k:.3g} each" if sweep.get("gpu") else "CPU"
        ratio = {"vs_one": round(throughput / one, 3)} if one else {}
        rows.append(
            _row(f"{k} trials at once, {share}", "float32", throughput, "trials/min", **ratio)
        )
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
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="a comma-separated choice of steps, trial, sweep"
    )
    parser.add_argument("--model", help="the step part's network (default ResNet50)")
    parser.add_argument(
        "--backend", choices=("jax", "tensorflow"), default="jax", help="Keras backend (jax)"
    )
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
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
        run = {"steps": step_part, "trial": trial_part, "sweep": sweep_part}[args.part]
        run(sizes, Path(args.json), deadline)
        return 0
    parts = [p for p in args.parts.split(",") if p]
    if not parts or set(parts) - set(PARTS):
        parser.error(
            f"--parts must name some of {', '.join(PARTS)}, but got --parts={args.parts!r}"
        )
    why = None if args.dry_run else gpu_missing(args.backend)
    if why:
        message = f"no NVIDIA GPU visible ({why}); run it on a GPU machine, or pass --dry-run"
        print(f"gpu_check: {message}", file=sys.stderr)
        return NO_GPU
    problems: list[str] = []
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            if part == "sweep" and sweep_missing():
                print(f"sweep: skipped ({sweep_missing()})", flush=True)
                continue
            result = Path(tmp) / f"{part}.json"
            problem = _run_part(part, args, sizes.limits_s[part], result)
            if problem:
                problems.append(f"{part} {problem}")
            if result.is_file():  # what a part measured before it failed or ran out of time
                found[part] = json.loads(result.read_text())
    rows = table_rows(found.get("steps", []), found.get("sweep"), found.get("trial"))
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
