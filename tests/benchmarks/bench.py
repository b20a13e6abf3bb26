"""``make bench``: what MorphNet costs against what a user would run otherwise, side by side.

Every figure is a ratio of two things measured in the same process, interleaved round by round
so both see the same machine load (absolute times on a shared machine are noise); each ratio is
the median over rounds, with the lowest and highest round beside it.

- **train step**: a structure-learning step (task loss + strength x MorphNet term, its gradient
  and the optimizer update) over a plain Keras step of the same network, batch and optimizer,
  for each algorithm, on each Keras backend of ``--backends`` (TensorFlow and JAX; each in its
  own process, its rows' case named ``<model> [<backend>]``). FiGS is compared with the plain
  network without gates: the gates are part of what it costs.
- **term / forward** (TensorFlow): one evaluation of the regularizer term (and the term with its
  gradient) over one forward pass at the same batch, both compiled.
- **sweep**: the same 8 small trials on a local Ray with 1 and with 2 trials at once (1 CPU
  each): parallel efficiency ``T1 / (2 T2)``, T from the first trial's start to the last one's
  last report; and the time a trial spends outside training (the driver's view of the trial
  minus the time it spent in training steps and validation), of which the rest after the
  trial's own setup and exports is Ray's and tracking's.
- **demo**: ``make demo``'s sweep, its wall time against the sum of its trials' training times.
- **determinism**: the same trial (zoo ResNet width 16 on digits, Gamma) with
  ``deterministic: true`` (TensorFlow's op determinism, the default) over ``false``, each round
  a fresh process per variant, order alternating: its time per training step (learn and retrain
  steps and validation, ``train_seconds`` over the steps).

The table is printed and written to ``<out>/bench.csv``.

    .venv/bin/python tests/benchmarks/bench.py [--sections steps,sweep,demo] [--rounds 11]
                                               [--backends tensorflow,jax]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
# FiGS with every gate a layer after its activation (add_gating(fold=False)), for comparison
UNFOLDED = "logistic_sigmoid unfolded"
GOALS = {"gamma": 1.05, "logistic_sigmoid": 1.05, "group_lasso": 1.10}
# name -> (model spec, input side, width of the zoo models)
MODELS: dict[str, tuple[str, int]] = {
    "zoo ResNet@32": ("zoo:resnet", 32),
    "MobileNetV2@96": ("keras.applications.MobileNetV2", 96),
    "ResNet50@64": ("keras.applications.ResNet50", 64),
}
SECTIONS = ("steps", "sweep", "demo", "determinism")
EFFICIENCY_GOAL = 0.85
OVERHEAD_GOAL_S = 3.0


@dataclass
class Row:
    section: str
    case: str
    measure: str
    median: float
    low: float
    high: float
    rounds: int
    goal: str = ""
    met: str = ""
    unit: str = "x"

    def cells(self) -> list[str]:
        def f(v: float) -> str:
            return f"{v:.3f}" if self.unit == "x" else f"{v:.1f}"

        spread = f"{f(self.low)}-{f(self.high)}" if self.rounds > 1 else "(1 run)"
        return [
            self.section,
            self.case,
            self.measure,
            f(self.median) + ("x" if self.unit == "x" else f" {self.unit}"),
            spread,
            self.goal,
            self.met,
        ]


def _row(section: str, case: str, measure: str, values: list[float], **kw: Any) -> Row:
    v = np.asarray(values, dtype=float)
    return Row(
        section, case, measure, float(np.median(v)), float(v.min()), float(v.max()), v.size, **kw
    )


def _goal(row: Row, limit: float, below: bool = True) -> Row:
    row.goal = f"<= {limit:g}" if below else f">= {limit:g}"
    ok = row.median <= limit if below else row.median >= limit
    row.met = "yes" if ok else "NO"
    return row


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----- train step and term -------------------------------------------------------------------
def _data(side: int, batch: int, steps: int) -> Any:
    from trainers.data import Batches

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, side, side, 3)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps).astype(np.int32)
    # in memory already, fed as trials feed it: the same cost to every variant
    return Batches(x, y, batch).for_fit()


def _compile(model: Any) -> None:
    from trainers.morphnet.keras3.backend import BACKEND, keras
    from trainers.runtime import resolve_jit_compile

    model.compile(
        jit_compile=resolve_jit_compile(None, BACKEND),  # as trials compile
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def _networks(spec: str, side: int) -> dict[str, tuple[Any, Any]]:
    """name -> (trained model, regularizer or None): plain Keras and one learner per algorithm."""
    from trainers.config import TrialConfig
    from trainers.models import build_model
    from trainers.morphnet.keras3 import StructureLearner, add_gating
    from trainers.morphnet.keras3.backend import BACKEND
    from trainers.trial import make_regularizer

    shape = (side, side, 3)
    nets: dict[str, tuple[Any, Any]] = {"plain": (build_model(spec, shape, 10, 32, 0), None)}
    for variant in (*ALGORITHMS, UNFOLDED):
        algorithm = "logistic_sigmoid" if variant == UNFOLDED else variant
        network = build_model(spec, shape, 10, 32, 0)
        if algorithm == "logistic_sigmoid":
            # folded into the batch norms where it can be (the default), or every gate a layer
            # of its own after the activation: the pass over the activations the fold saves
            network = add_gating(
                network, seed=0, temperature=0.5, straight_through=True, fold=variant != UNFOLDED
            )
        config = TrialConfig(model=spec, algorithm=algorithm, backend=BACKEND)
        reg = make_regularizer(network, config)
        nets[variant] = (StructureLearner(network, reg, 1.0 / reg.seed_cost), reg)
    for model, _ in nets.values():
        _compile(model)
    return nets


def _interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Each function once per round; the order rotates between rounds, so that no variant is
    always the one that runs first (after a different one) in a round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def bench_steps(
    rounds: int, batch: int, round_seconds: float, models: list[str] | None = None
) -> list[Row]:
    from trainers.morphnet.keras3.backend import BACKEND, keras

    rows: list[Row] = []
    for name in models or list(MODELS):
        spec, side = MODELS[name]
        case = f"{name} [{BACKEND}]"
        _log(f"train step: building {name} (plain, {len(ALGORITHMS)} algorithms, FiGS unfolded)")
        nets = _networks(spec, side)
        warm = _data(side, batch, 1)
        for variant, (model, _) in nets.items():
            start = time.perf_counter()
            model.fit(warm, epochs=1, verbose=0, shuffle=False)  # trace and warm up
            _log(f"train step: {name} {variant} traced in {time.perf_counter() - start:.1f} s")
        # enough steps that one round of the slowest variant takes about round_seconds
        start = time.perf_counter()
        nets["group_lasso"][0].fit(warm, epochs=1, verbose=0, shuffle=False)
        per_step = time.perf_counter() - start
        steps = int(np.clip(np.ceil(round_seconds / max(per_step, 1e-3)), 1, 60))
        data = _data(side, batch, steps)
        _log(f"train step: {name}, {rounds} rounds x {steps} steps of batch {batch}")
        times = _interleaved(
            {
                k: (lambda m=m, d=data: m.fit(d, epochs=1, verbose=0, shuffle=False))
                for k, (m, _) in nets.items()
            },
            rounds,
        )
        for algorithm in ALGORITHMS:
            ratios = [a / p for a, p in zip(times[algorithm], times["plain"], strict=True)]
            row = _row("train step", case, f"{algorithm} / plain Keras", ratios)
            rows.append(_goal(row, GOALS[algorithm]))
        for over in ("plain", "logistic_sigmoid"):
            ratios = [u / o for u, o in zip(times[UNFOLDED], times[over], strict=True)]
            name = "plain Keras" if over == "plain" else "logistic_sigmoid (folded)"
            rows.append(_row("train step", case, f"{UNFOLDED} / {name}", ratios))
        ms = [t / steps * 1e3 for t in times["plain"]]
        rows.append(_row("train step", case, "plain Keras step", ms, unit="ms"))
        if BACKEND != "tensorflow":  # the term's own figures are TensorFlow's (tf.function)
            del nets
            keras.backend.clear_session()
            continue

        # the term alone and with its gradient, over one forward pass at the same batch
        import tensorflow as tf

        x = tf.constant(np.random.default_rng(1).normal(size=(batch, side, side, 3)), tf.float32)
        plain = nets["plain"][0]
        fns: dict[str, Callable[[], Any]] = {
            "forward": _compiled(lambda p=plain, x=x: p(x, training=False))
        }
        for algorithm in ALGORITHMS:
            learner, reg = nets[algorithm]
            fns[algorithm] = _compiled(reg.get_regularization_term)
            fns[f"{algorithm} grad"] = _compiled(_with_gradient(reg, learner.trainable_variables))
        for fn in fns.values():
            fn()
        times = _interleaved(fns, max(rounds * 4, 10))
        for algorithm in ALGORITHMS:
            for key, what in ((algorithm, "term"), (f"{algorithm} grad", "term + gradient")):
                ratios = [t / f for t, f in zip(times[key], times["forward"], strict=True)]
                rows.append(_row("term / forward", case, f"{algorithm} {what}", ratios))
        ms = [t * 1e3 for t in times["forward"]]
        rows.append(_row("term / forward", case, f"forward b={batch}", ms, unit="ms"))
        del nets, fns
        keras.backend.clear_session()
    return rows


def _compiled(fn: Callable[[], Any]) -> Callable[[], Any]:
    import tensorflow as tf

    compiled = tf.function(fn)

    def call() -> Any:
        out = compiled()
        return [np.asarray(o) for o in tf.nest.flatten(out)]  # waits for the result

    call.keep = fn  # type: ignore[attr-defined]  # tf.function holds bound methods weakly
    return call


def _with_gradient(reg: Any, variables: list[Any]) -> Callable[[], Any]:
    import tensorflow as tf

    def term_and_gradient() -> Any:
        with tf.GradientTape() as tape:
            term = reg.get_regularization_term()
        grads = [g for g in tape.gradient(term, variables) if g is not None]
        return [term] + [tf.reduce_sum(g[..., :1]) for g in grads]

    return term_and_gradient


# ----- sweeps --------------------------------------------------------------------------------
SWEEP_TRIAL = {
    "model": "zoo:resnet",
    "model_width": 8,
    "dataset": "digits",
    "epochs": 2,
    "retrain_epochs": 1,
    "batch_size": 64,
    "export_every_steps": 50,
}


def _run_sweep(config: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Run one sweep on a fresh local Ray; (its summary, each finished trial's time metrics)."""
    import ray
    from mlflow.tracking import MlflowClient

    from sweep.config import load_sweep_config
    from sweep.driver import run_sweep
    from sweep.store import TAG_ROLE

    sweep = load_sweep_config(config)
    summary = run_sweep(sweep, verbose=0)
    ray.shutdown()
    client = MlflowClient(sweep.resolved_tracking_uri)
    runs = client.search_runs(
        [summary["experiment_id"]], filter_string=f"tags.`{TAG_ROLE}` = 'trial'", max_results=500
    )
    trials = [
        {k: float(v) for k, v in r.data.metrics.items()}
        for r in runs
        if r.info.status == "FINISHED" and "time/wall_seconds" in r.data.metrics
    ]
    return summary, trials


def bench_sweep(out: Path) -> list[Row]:
    rows: list[Row] = []
    spans: dict[int, float] = {}
    for concurrent in (1, 2):
        _log(f"sweep: 8 trials, {concurrent} at a time")
        work = out / f"sweep{concurrent}"
        shutil.rmtree(work, ignore_errors=True)
        summary, trials = _run_sweep(
            {
                "name": f"bench-sweep-{concurrent}",
                "trial": SWEEP_TRIAL,
                "algorithms": ["gamma", "group_lasso"],
                "targets": ["flops"],
                "strengths": {"decades_below": 1, "decades_above": 0.5, "points_per_decade": 2},
                "baseline": {"widths": []},
                "resources": {"cpus": 1},
                "max_concurrent": concurrent,
                "retries": 0,
                "early_stop": "off",
                "workdir": str(work),
            }
        )
        if len(trials) != 8:
            raise SystemExit(f"the bench sweep finished {len(trials)} trials of 8; see {work}")
        spans[concurrent] = summary["timing"]["trials_span_seconds"]
        overhead = [t["time/wall_seconds"] - t["train_seconds"] for t in trials]
        row = _row(
            "sweep",
            f"8 trials, {concurrent} at a time",
            "outside training per trial",
            overhead,
            unit="s",
        )
        rows.append(_goal(row, OVERHEAD_GOAL_S))
        outside = [t["trial_seconds"] - t["train_seconds"] for t in trials]
        rows.append(
            _row(
                "sweep",
                f"8 trials, {concurrent} at a time",
                "  of which inside the trial (setup, exports)",
                outside,
                unit="s",
            )
        )
        train = [t["train_seconds"] for t in trials]
        rows.append(
            _row(
                "sweep", f"8 trials, {concurrent} at a time", "training per trial", train, unit="s"
            )
        )
        rows.append(
            _row(
                "sweep",
                f"8 trials, {concurrent} at a time",
                "first start to last report",
                [spans[concurrent]],
                unit="s",
            )
        )
    efficiency = spans[1] / (2 * spans[2])
    rows.append(
        _goal(
            _row("sweep", "8 trials", "parallel efficiency T1 / (2 T2)", [efficiency]),
            EFFICIENCY_GOAL,
            below=False,
        )
    )
    return rows


def bench_demo(out: Path) -> list[Row]:
    import yaml

    _log("demo: make demo's sweep (sweep/examples/sweep_digits.yaml)")
    config = yaml.safe_load((ROOT / "sweep/examples/sweep_digits.yaml").read_text())
    work = out / "demo"
    shutil.rmtree(work, ignore_errors=True)
    config.update({"name": "bench-demo", "workdir": str(work)})
    summary, trials = _run_sweep(config)
    timing = summary["timing"]
    case = f"demo, {len(trials)} trials, {config['max_concurrent']} at a time"
    train = sum(t["train_seconds"] for t in trials)
    return [
        _row("demo", case, "wall time (driver)", [timing["sweep_seconds"]], unit="s"),
        _row("demo", case, "sum of trials' training", [train], unit="s"),
        _row("demo", case, "training / wall", [train / timing["sweep_seconds"]]),
        _row(
            "demo",
            case,
            "outside training per trial",
            [t["time/wall_seconds"] - t["train_seconds"] for t in trials],
            unit="s",
        ),
    ]


# ----- determinism ----------------------------------------------------------------------------
DETERMINISM_TRIAL = {
    "model": "zoo:resnet",
    "model_width": 16,
    "dataset": "digits",
    "algorithm": "gamma",
    "multiplier": 5.0,
    "epochs": 2,
    "retrain_epochs": 1,
    "batch_size": 32,
    "export_every_steps": 1000,
    "verbose": 0,
}
DETERMINISM_ROUNDS = 3
_ONE_TRIAL = """
import json, sys
from trainers.config import TrialConfig
from trainers.trial import run_trial
r = run_trial(TrialConfig.from_dict(json.loads(sys.argv[1])), resume=False)
print(json.dumps({"train_seconds": r.train_seconds, "steps": len(r.history)}))
"""


def bench_determinism(out: Path, rounds: int = DETERMINISM_ROUNDS) -> list[Row]:
    import json
    import subprocess

    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for deterministic in (True, False) if r % 2 == 0 else (False, True):
            _log(f"determinism: round {r + 1}/{rounds}, deterministic={deterministic}")
            trial = {
                **DETERMINISM_TRIAL,
                "deterministic": deterministic,
                "output_dir": str(out / "determinism" / f"{r}-{deterministic}"),
            }
            shutil.rmtree(trial["output_dir"], ignore_errors=True)
            done = subprocess.run(
                [sys.executable, "-c", _ONE_TRIAL, json.dumps(trial)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if done.returncode != 0:
                raise SystemExit(f"the determinism trial failed:\n{done.stderr[-2000:]}")
            times[deterministic].append(
                json.loads(done.stdout.strip().splitlines()[-1])["train_seconds"]
            )
    case = "zoo ResNet w16 digits, Gamma, 2 + 1 epochs"
    ratios = [a / b for a, b in zip(times[True], times[False], strict=True)]
    return [
        _row("determinism", case, "op determinism on / off, training time", ratios),
        _row("determinism", case, "training time, determinism on", times[True], unit="s"),
    ]


def steps_on(backend: str, args: argparse.Namespace, models: list[str]) -> list[Row]:
    """The train-step section on another Keras backend, in its own process (a process's backend
    is fixed when Keras is imported); its rows read back from the CSV it writes."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(Path(__file__).resolve()), "--sections", "steps"]
        command += ["--backends", backend, "--rounds", str(args.rounds), "--batch", str(args.batch)]
        command += ["--round-seconds", str(args.round_seconds), "--models", ",".join(models)]
        command += ["--out", tmp]
        env = {**os.environ, "KERAS_BACKEND": backend}
        _log(f"train step: on {backend}, in its own process")
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        return read_csv(Path(tmp) / "bench.csv")


def read_csv(path: Path) -> list[Row]:
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            rows.append(
                Row(
                    r["section"],
                    r["case"],
                    r["measure"],
                    float(r["median"]),
                    float(r["min"]),
                    float(r["max"]),
                    int(r["rounds"]),
                    r["goal"],
                    r["met"],
                    r["unit"],
                )
            )
    return rows


# ----- table ---------------------------------------------------------------------------------
HEADER = ["section", "case", "measure", "median", "spread (min-max)", "goal", "met"]


def print_table(rows: list[Row]) -> None:
    table = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    for k, line in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["section", "case", "measure", "unit", "median", "min", "max", "rounds", "goal", "met"]
        )
        for r in rows:
            w.writerow(
                [
                    r.section,
                    r.case,
                    r.measure,
                    r.unit,
                    f"{r.median:.6g}",
                    f"{r.low:.6g}",
                    f"{r.high:.6g}",
                    r.rounds,
                    r.goal,
                    r.met,
                ]
            )
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    # many short rounds rather than a few long ones: on a shared machine a step's time jumps
    # between levels up to 2x apart for seconds at a time, and the median of many paired
    # rounds is what such a jump moves least
    parser.add_argument(
        "--rounds", type=int, default=11, help="rounds per train-step ratio (default 11)"
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="batch of the train-step and term figures"
    )
    parser.add_argument(
        "--round-seconds",
        type=float,
        default=0.5,
        help="about how long one round of one variant runs (at least one step; default 0.5)",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated subset of the train-step models ({','.join(MODELS)})",
    )
    parser.add_argument(
        "--backends",
        default="tensorflow,jax",
        help="Keras backends of the train-step section (default tensorflow,jax)",
    )
    parser.add_argument(
        "--out", default="morphsweep_runs/bench", help="where bench.csv and the sweeps go"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        parser.error(f"--models {args.models!r}: choose from {list(MODELS)}")
    if args.rounds < 2:
        parser.error(f"--rounds must be >= 2 (a median and a spread), but got {args.rounds}")
    if args.batch < 1 or args.round_seconds <= 0:
        parser.error("--batch must be >= 1 and --round-seconds > 0")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or set(backends) - {"tensorflow", "jax"}:
        parser.error(f"--backends {args.backends!r}: choose from tensorflow, jax")
    out = Path(args.out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=out).close()
    except OSError as exc:
        parser.error(f"--out {out} is not a writable directory ({exc.strerror}); choose another")

    from trainers.morphnet.keras3.backend import BACKEND, keras

    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(2)
    print(
        f"morphsweep bench: Keras {keras.__version__} on {BACKEND}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs",
        flush=True,
    )
    started = time.monotonic()
    rows: list[Row] = []
    if "steps" in sections:
        for backend in backends:
            if backend == BACKEND:
                rows += bench_steps(args.rounds, args.batch, args.round_seconds, models)
            else:
                rows += steps_on(backend, args, models)
            write_csv(rows, out / "bench.csv")  # nothing measured is lost if a later part fails
    if "sweep" in sections:
        rows += bench_sweep(out)
        write_csv(rows, out / "bench.csv")
    if "demo" in sections:
        rows += bench_demo(out)
        write_csv(rows, out / "bench.csv")
    if "determinism" in sections:
        rows += bench_determinism(out)
    write_csv(rows, out / "bench.csv")
    print()
    print_table(rows)
    print(
        f"\nwritten to {out / 'bench.csv'}; the bench took {(time.monotonic() - started) / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
