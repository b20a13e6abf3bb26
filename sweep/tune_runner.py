"""Ray Tune orchestration: one function trainable per trial, the driver tracking to MLflow.

Only the current Tune API is used: ``ray.tune.Tuner``, ``tune.report``, ``tune.get_checkpoint``,
``ray.tune.Checkpoint`` and ``ray.tune.RunConfig`` / ``FailureConfig`` / ``CheckpointConfig``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import SweepConfig
from .space import TrialSpec, baseline_trials, build_trials, seed_costs
from .tracking import (
    TAG_NODE,
    TAG_NODE_IP,
    TAG_RESUMED,
    TAG_STOPPED,
    TAG_STOPPED_REASON,
    TAG_WORKER,
    SweepTracker,
    check_tracking,
    run_ended,
)

# What Tune adds to every result; the trial's own metrics are the rest.
TUNE_KEYS = {
    "time_this_iter_s",
    "time_total_s",
    "training_iteration",
    "pid",
    "hostname",
    "node_ip",
    "timestamp",
    "time_since_restore",
    "iterations_since_restore",
    "done",
    "date",
    "config",
    "experiment_tag",
    "trial_id",
    "checkpoint_dir_name",
    "should_checkpoint",
    "phase",
    "cost_name",
    "epoch",
}
FINAL_KEYS = (
    "retrained_val_accuracy",
    "learned_val_accuracy",
    "rebuilt_cost",
    "predicted_cost",
    "seed_cost",
    "cost_fraction",
    "strength",
    "train_seconds",
    "trial_seconds",
)


class ClusterUnavailable(RuntimeError):
    """The Ray cluster address does not answer."""


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail at once when a ``host:port`` Ray address does not accept connections."""
    host_port = (address or "").split("://", 1)[-1]
    if not host_port or address == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterUnavailable(
            f"cannot reach the Ray cluster at {address} ({exc}); start it (ray start --head) or "
            f"fix --address (leave it out to run on a local Ray)"
        ) from exc


class StorageUnavailable(RuntimeError):
    """The storage path (or the local tracking store's directory) cannot take the sweep's files."""


MIN_FREE_MB = 200  # a sweep's checkpoints, structures and queue need at least this much room


def check_storage(config: SweepConfig) -> None:
    """Fail before any trial when a directory the sweep writes to is not writable or full."""
    import errno
    import shutil
    import tempfile

    min_free = float(os.environ.get("MORPHSWEEP_MIN_FREE_MB", MIN_FREE_MB))
    places = [("storage_path", Path(config.resolved_storage_path))]
    if not config.tracking_uri:
        places.append(("workdir (the local MLflow store)", config.root))
    for what, path in places:
        fix = (
            f"set {what.split()[0]} to a writable directory with room"
            if what == "storage_path"
            else "set workdir to a writable directory with room, or give a tracking_uri"
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
            # a real write: permissions, read-only mounts and a full disk all show up here
            with tempfile.NamedTemporaryFile(dir=path, prefix=".morphsweep-probe-") as probe:
                probe.write(b"\0" * 65536)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
            raise StorageUnavailable(
                f"cannot write to the {what} {path} ({reason}); {fix}"
            ) from exc
        free_mb = shutil.disk_usage(path).free / 2**20
        if free_mb < min_free:
            raise StorageUnavailable(
                f"the {what} {path} has only {free_mb:.0f} MB free (a sweep needs at least "
                f"{min_free:.0f} MB for checkpoints and structures); free some space or {fix}"
            )


# ----- inside a trial (a Ray worker) -------------------------------------------------------------
_TRIALS_IN_PROCESS = 0  # trials this worker process has begun


def _setup_worker(backend: str, cpus: float) -> None:
    """The worker process for one trial: its Keras backend, threads = its CPUs, GPU memory taken
    as needed (``trainers.runtime``).

    Tune reuses a finished trial's worker for the next trial (``reuse_actors``): the backend is
    then imported and set up already (its settings cannot change once it runs, and every trial of
    a sweep asks for the same backend and resources), and Keras' state is cleared instead, so
    layer names and graphs start afresh as in a new process.
    """
    from trainers.runtime import select_backend, setup_device

    select_backend(backend)
    setup_device(backend, cpus)
    global _TRIALS_IN_PROCESS
    if _TRIALS_IN_PROCESS:  # a fresh worker is left exactly as it starts
        from trainers.morphnet.keras3.backend import keras

        keras.backend.clear_session()
    _TRIALS_IN_PROCESS += 1


class BadEnvironment(ValueError):
    """A MORPHSWEEP_* environment variable has a value the sweep cannot use."""


def reuse_workers() -> bool:
    """MORPHSWEEP_REUSE_WORKERS: "1" (the default) or "0"; anything else is refused."""
    value = os.environ.get("MORPHSWEEP_REUSE_WORKERS", "1").strip()
    if value not in ("0", "1"):
        raise BadEnvironment(
            f"MORPHSWEEP_REUSE_WORKERS={value!r}: set it to 1 (a finished trial's worker runs the "
            "next trial, the default) or 0 (a fresh worker per trial)"
        )
    return value == "1"


class TuneReporter:
    """The trainer's reporter inside Tune: each epoch becomes ``tune.report`` with a checkpoint."""

    def __init__(
        self, output_dir: Path, resumed: dict[str, Any] | None = None, entered: float = 0.0
    ) -> None:
        import ray

        self.output_dir = output_dir
        # when the worker began this trial (time.time()), sent once: the driver's start-up figure
        self.entered: float | None = entered or None
        self.latest_structure: str | None = None
        # a trial resumed from its checkpoint (a retried worker, a restarted driver) sends the
        # epochs it had done with its first report: one lost with the old worker is logged too
        self.resumed = resumed
        # the node a trial runs on (several nodes may share one IP address)
        self.node_id = ray.get_runtime_context().get_node_id()

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        from ray import tune

        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp)
            if checkpoint and Path(checkpoint).is_dir():
                shutil.copytree(checkpoint, bundle / "checkpoint")
            for name in ("structure.json", "metrics.json"):
                if (self.output_dir / name).is_file():
                    shutil.copy2(self.output_dir / name, bundle / name)
            if self.latest_structure:
                (bundle / "structures").mkdir()
                shutil.copy2(self.latest_structure, bundle / "structures")
            (bundle / "report.json").write_text(json.dumps(metrics, default=str))
            extra: dict[str, Any] = {"node_id": self.node_id, "reported_at": time.time()}
            if self.entered is not None:
                extra["entered_at"], self.entered = self.entered, None
            if self.resumed is not None:
                extra["resumed_from"] = f"{self.resumed['phase']} epoch {self.resumed['epoch']}"
                extra["replay"] = json.dumps(self.resumed.get("history", []), default=float)
                self.resumed = None
            tune.report({**metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(tmp))

    def artifact(self, path: str, kind: str) -> None:
        if kind == "structure" and "/structures/" in path:
            self.latest_structure = path

    def warn(self, message: str) -> None:
        print(f"WARNING: {message}", flush=True)


def trainable(config: dict[str, Any], specs: dict[str, dict[str, Any]], cpus: float = 1.0) -> None:
    """One trial: restore from Tune's checkpoint if any, run it, report a failure reason."""
    from ray import tune

    from trainers.config import TrialConfig
    from trainers.errors import TrialFailed
    from trainers.trial import run_trial

    entered = time.time()
    # a grid sweep passes every trial up front; the adaptive search puts it in the config
    spec = specs.get(config["trial_id"]) or config
    _setup_worker(str(spec["config"].get("backend", "tensorflow")), cpus)
    output_dir = Path(spec["output_dir"])
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None and not (output_dir / "checkpoint" / "state.json").is_file():
        with checkpoint.as_directory() as directory:
            source = Path(directory)
            if (source / "checkpoint").is_dir():
                shutil.copytree(
                    source / "checkpoint", output_dir / "checkpoint", dirs_exist_ok=True
                )
            if (source / "structure.json").is_file():
                shutil.copy2(source / "structure.json", output_dir / "structure.json")
    state_file = output_dir / "checkpoint" / "state.json"
    resumed = json.loads(state_file.read_text()) if state_file.is_file() else None
    trial = TrialConfig.from_dict({**spec["config"], "output_dir": str(output_dir), "verbose": 0})
    try:
        run_trial(trial, TuneReporter(output_dir, resumed, entered))
    except TrialFailed as exc:
        tune.report({"phase": "failed", "failure_reason": str(exc)})


# ----- on the driver -----------------------------------------------------------------------------
def _setup_driver(backend: str) -> None:
    """The driver builds the seed network for its costs: on the trials' backend when Keras is not
    imported yet (a machine with JAX only never needs TensorFlow), else on the one it runs (the
    costs are computed from the graph and do not depend on it)."""
    from trainers.errors import TrialConfigError
    from trainers.runtime import current_backend, select_backend, setup_device

    try:
        select_backend(backend)
    except TrialConfigError:
        pass
    setup_device(current_backend() or backend)


def _tracking_callback(
    tracker: SweepTracker, specs: dict[str, TrialSpec], scheduler: Any = None
) -> Any:
    from ray import tune

    class TrackingCallback(tune.Callback):
        """Single writer: turns Tune events into MLflow runs, metrics, artifacts and statuses."""

        def __init__(self) -> None:
            self.failures: dict[str, str] = {}
            self.nodes: dict[str, str] = {}
            self.started: dict[str, float] = {}
            # trial id -> (start, last report: time.monotonic(); seconds training), this run
            self.times: dict[str, tuple[float, float, float]] = {}
            self.started_at: dict[str, float] = {}
            # seconds from the driver starting a trial to its worker beginning it
            self.startup: dict[str, float] = {}

        def _id(self, trial: Any) -> str:
            return str(trial.config["trial_id"])

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            spec = specs[self._id(trial)]
            params = {
                **spec.config,
                "trial_id": spec.trial_id,
                "algorithm": spec.algorithm,
                "multiplier": spec.multiplier,
                "width": spec.width,
            }
            tracker.start(spec.trial_id, params)
            self.started[spec.trial_id] = time.monotonic()
            self.started_at[spec.trial_id] = time.time()

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            trial_id, phase = self._id(trial), result.get("phase")
            if "entered_at" in result and trial_id in self.started_at:
                self.startup[trial_id] = float(result["entered_at"]) - self.started_at[trial_id]
            if "resumed_from" in result:
                # a resumed trial's first report, whatever its phase (it may already be done):
                # the epochs it had saved, one of which may never have reached this driver
                tracker.set_tags(trial_id, {TAG_RESUMED: str(result["resumed_from"])})
                for past in json.loads(result.get("replay") or "[]"):
                    _log_epoch(tracker, trial_id, past)
            if phase == "failed":
                self.failures[trial_id] = str(result.get("failure_reason", "failed"))
            elif phase == "done":
                final = {k: result[k] for k in FINAL_KEYS if k in result}
                # what MLflow's own run table and chart view plot across runs, no artifact opened
                target = specs[trial_id].target
                for key, name in (
                    ("rebuilt_cost", f"cost/{target}"),
                    ("cost_fraction", f"cost_fraction/{target}"),
                    ("retrained_val_accuracy", "accuracy"),
                ):
                    if key in result:
                        final[name] = result[key]
                if trial_id in self.started and "train_seconds" in result:
                    # the trial as the driver saw it (worker start, Ray, tracking included)
                    now = time.monotonic()
                    wall = now - self.started[trial_id]
                    self.times[trial_id] = (
                        self.started[trial_id],
                        now,
                        float(result["train_seconds"]),
                    )
                    final["time/wall_seconds"] = wall
                    final["time/overhead_seconds"] = wall - float(result["train_seconds"])
                    if "reported_at" in result:
                        # how long the report took to reach this callback
                        final["time/report_lag_seconds"] = time.time() - float(
                            result["reported_at"]
                        )
                    if trial_id in self.startup:
                        final["time/startup_seconds"] = self.startup[trial_id]
                tracker.log_metrics(trial_id, final, step=0)
            elif phase in ("learn", "retrain"):
                if trial_id not in self.nodes:
                    self.nodes[trial_id] = str(result.get("node_id", ""))
                    tracker.set_tags(
                        trial_id,
                        {
                            TAG_NODE: self.nodes[trial_id],
                            TAG_NODE_IP: str(result.get("node_ip", "")),
                            # the worker process (one runs several trials in turn)
                            TAG_WORKER: str(result.get("pid", "")),
                        },
                    )
                _log_epoch(tracker, trial_id, result)

        def on_checkpoint(
            self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
        ) -> None:
            trial_id = self._id(trial)
            with checkpoint.as_directory() as directory:
                source = Path(directory)
                for path in sorted((source / "structures").glob("*.json")):
                    tracker.log_artifact(trial_id, path, "structures")
                report = (
                    json.loads((source / "report.json").read_text())
                    if (source / "report.json").is_file()
                    else {}
                )
                if report.get("phase") == "done":
                    for name in ("structure.json", "metrics.json"):
                        if (source / name).is_file():
                            tracker.log_artifact(trial_id, source / name)
                    _log_trial_figures(tracker, trial_id, source)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            trial_id = self._id(trial)
            reason = self.failures.pop(trial_id, None)
            stop = scheduler.stopped.get(trial_id) if scheduler is not None else None
            if stop is not None and not reason:
                # stopped during structure learning: KILLED, with the kind and the reason
                tracker.set_tags(
                    trial_id, {TAG_STOPPED: stop.kind, TAG_STOPPED_REASON: stop.reason}
                )
                tracker.log_metrics(trial_id, {"epochs_saved": stop.epochs_saved}, step=0)
                tracker.finish(trial_id, "KILLED")
                return
            tracker.finish(trial_id, "FAILED" if reason else "FINISHED", reason)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            tracker.finish(self._id(trial), "FAILED", _error_text(trial))

    return TrackingCallback()


def _log_trial_figures(tracker: SweepTracker, trial_id: str, source: Path) -> None:
    """The trial's layer widths and training curves as PNG figures on its child run."""
    from dashboards.trials import TrialHistory, layer_widths_png, training_curves_png

    if (source / "structure.json").is_file():
        structure = json.loads((source / "structure.json").read_text())
        figure = layer_widths_png(structure, None, title=f"{trial_id}: learned vs seed width")
        tracker.log_figure(trial_id, figure, "figures/layer_widths.png")
    if (source / "metrics.json").is_file():
        history = json.loads((source / "metrics.json").read_text()).get("history", [])
        series: dict[str, list[tuple[float, float]]] = {}
        for epoch in history:
            for key in ("cost", "val_accuracy"):
                if isinstance(epoch.get(key), int | float):
                    series.setdefault(f"{epoch['phase']}/{key}", []).append(
                        (float(epoch["epoch"]), float(epoch[key]))
                    )
        if series:
            figure = training_curves_png(
                [TrialHistory(trial_id, series)], None, title=f"{trial_id}: training curves"
            )
            tracker.log_figure(trial_id, figure, "figures/training_curves.png")


def _log_epoch(tracker: SweepTracker, trial_id: str, result: dict[str, Any]) -> None:
    """learn/cost, retrain/accuracy ... at step = epoch; alive/<layer> keep their names."""
    phase = result.get("phase")
    if phase not in ("learn", "retrain"):
        return
    metrics = {
        k if k.startswith("alive/") else f"{phase}/{k}": v
        for k, v in result.items()
        if k not in TUNE_KEYS and k not in ("replay", "resumed_from", "entered_at", "reported_at")
    }
    tracker.log_metrics(trial_id, metrics, step=int(result.get("epoch", 0)))


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        return "\n".join(lines[-3:])
    return "the trial process failed (see the Ray logs)"


def run_sweep(
    config: SweepConfig, *, address: str | None = None, verbose: int = 1
) -> dict[str, Any]:
    """Run (or resume) a sweep: trials on Ray Tune, tracked to MLflow, Pareto front at the end.

    Returns:
        A summary: experiment and parent run ids, trials run/skipped, the results table path.
    """
    address = address or config.address
    reuse_workers()  # a bad MORPHSWEEP_REUSE_WORKERS is refused before anything else
    check_storage(config)
    check_tracking(config.resolved_tracking_uri)
    check_address(address)
    tracker = SweepTracker(
        config.resolved_tracking_uri,
        config.name,
        config.artifact_root,
        queue_dir=tracking_queue_path(config),
    )
    _setup_driver(str(config.trial.get("backend", "tensorflow")))
    costs = seed_costs(config)
    tracker.log_sweep(config, costs)
    done = tracker.finished_trials()
    seed_text = ", ".join(f"{t}={c:.4g}" for t, c in costs.items())
    search = None
    if config.search == "adaptive":
        search = _adaptive_search(config, costs, tracker)
        todo: list[TrialSpec] = []
        print(
            f"sweep {config.name!r}: adaptive search, up to {config.max_trials} trials per "
            f"algorithm x target x seed ({len(done)} already finished), seed cost {seed_text}",
            flush=True,
        )
    else:
        specs = build_trials(config, costs)
        todo = [s for s in specs if s.trial_id not in done]
        print(
            f"sweep {config.name!r}: {len(specs)} trials "
            f"({len(done & {s.trial_id for s in specs})} already finished), seed cost {seed_text}",
            flush=True,
        )
    ran: int = 0
    times: dict[str, tuple[float, float, float]] = {}
    started = time.monotonic()
    if todo or (search is not None and not search.finished()):
        ran, times = _tune(config, todo, tracker, address, verbose, search)
    timing = _timing(time.monotonic() - started, times)
    if times:
        tracker.log_parent_metrics({f"time/{k}": v for k, v in timing.items()})
        print(
            f"{len(times)} trials finished in {timing['sweep_seconds']:.0f} s; their training "
            f"took {timing['train_seconds']:.0f} s in all ({timing['parallelism']:.2f}x the "
            f"wall time), {timing['overhead_seconds_per_trial']:.1f} s per trial outside training",
            flush=True,
        )
    from .results import publish_pareto

    tracker.drain()  # the front is read back from MLflow: every result must be there
    summary = publish_pareto(tracker, config)
    tracker.set_chart_view(list(config.targets))
    if search is not None:
        summary["search"] = search.summary()
        tracker.log_search_summary(summary["search"])
    stopped, epochs_saved = tracker.log_early_stops()
    from dashboards.page import publish_dashboard

    tracker.drain()
    publish_dashboard(tracker)
    tracker.finish_sweep()
    trials = len(tracker.children())
    return {
        "experiment_id": tracker.experiment_id,
        "parent_run_id": tracker.parent_id,
        "trials": trials,
        "ran": ran,
        "stopped": stopped,
        "epochs_saved": epochs_saved,
        "timing": timing,
        **summary,
    }


def _timing(wall: float, times: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    """The sweep's wall time against its trials' training time (trials finished in this run).

    ``trials_span_seconds`` runs from the first trial's start to the last one's last report: the
    sweep's time without starting Ray and publishing the front.
    """
    train = sum(t for _, _, t in times.values())
    overhead = [end - start - t for start, end, t in times.values()]
    span = (
        max(e for _, e, _ in times.values()) - min(s for s, _, _ in times.values())
        if times
        else 0.0
    )
    return {
        "sweep_seconds": wall,
        "trials_span_seconds": span,
        "train_seconds": train,
        "trials_finished": float(len(times)),
        "parallelism": train / wall if wall > 0 else 0.0,
        "overhead_seconds_per_trial": sum(overhead) / len(overhead) if overhead else 0.0,
    }


def _adaptive_search(config: SweepConfig, costs: dict[str, float], tracker: SweepTracker) -> Any:
    """The budget search, restored from its saved state and from what MLflow holds."""
    from .adaptive import BudgetSearch

    fixed = [s for t in config.targets for s in baseline_trials(config, t)]
    search = BudgetSearch(config, costs, fixed)
    path = search_state_path(config)
    if path.is_file():
        search.restore(path)
    # a trial that ended after the state was last written: its result is in MLflow
    for trial_id, run in tracker.children().items():
        if trial_id in search.specs and not search.known(trial_id) and run_ended(run):
            metrics = run.data.metrics
            if metrics.get("cost_fraction") is not None:
                cost = metrics.get("cost_fraction")
            elif metrics.get("learn/collapsed"):
                cost = 0.0
            else:
                cost = metrics.get("learn/predicted_fraction")
            search.record(trial_id, cost, metrics.get("retrained_val_accuracy"))
    search.save(path)
    return search


def tracking_queue_path(config: SweepConfig) -> Path:
    """Where tracking writes wait while the tracking store is unreachable (``sweep.outbox``)."""
    return Path(config.resolved_storage_path) / config.name / "tracking_queue"


def search_state_path(config: SweepConfig) -> Path:
    """Where the adaptive search keeps its state between driver runs."""
    return Path(config.resolved_storage_path) / config.name / "adaptive_search.json"


def _tune(
    config: SweepConfig,
    todo: list[TrialSpec],
    tracker: SweepTracker,
    address: str | None,
    verbose: int,
    search: Any = None,
) -> tuple[int, dict[str, tuple[float, float, float]]]:
    """Run the trials on Tune; returns how many ran and, per trial that finished in this run,
    (its start, its last report (``time.monotonic()``), seconds it spent training)."""
    # a checkpoint every epoch is by design; Tune's warning about it is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune

    from .early_stop import EarlyStopRule
    from .tune_search import AdaptiveSearcher, EarlyStopScheduler

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=verbose > 1)
        else:
            # workers start on the trials' Keras backend (each trial also selects it itself, which
            # covers clusters started elsewhere)
            from trainers.runtime import backend_env

            env = backend_env(str(config.trial.get("backend", "tensorflow")))
            ray.init(
                include_dashboard=False,
                log_to_driver=verbose > 1,
                runtime_env={"env_vars": env},
            )
    trials_dir = config.trials_dir()
    # Every path is absolute; run from the storage path, which outlives a job's working_dir
    # (Ray may delete that when the last trial using it ends, under the driver's feet).
    Path(config.resolved_storage_path).mkdir(parents=True, exist_ok=True)
    try:
        previous: str | None = os.getcwd()
    except FileNotFoundError:  # inside a Ray job whose working_dir was already cleaned up
        previous = None
    os.chdir(config.resolved_storage_path)

    def entry(s: TrialSpec) -> dict[str, Any]:
        return {
            "trial_id": s.trial_id,
            "output_dir": str(trials_dir / s.trial_id),
            "config": s.config,
        }

    specs: dict[str, TrialSpec] = (
        search.specs if search is not None else {s.trial_id: s for s in todo}
    )
    scheduler = None
    if config.early_stop != "off":
        rule = EarlyStopRule(
            after=config.early_stop_after,
            dominated=config.early_stop == "dominated",
            margin=config.dominated_margin,
        )
        scheduler = EarlyStopScheduler(rule, specs.get)
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    # a finished trial's worker runs the next trial (no new process, no TensorFlow import per
    # trial): its results equal a fresh worker's (tests/sweep/test_adaptive_twice.py compares
    # them); MORPHSWEEP_REUSE_WORKERS=0 gives every trial a fresh worker
    reuse = reuse_workers()
    if search is not None:
        space: dict[str, Any] = {}
        searcher = AdaptiveSearcher(search, search_state_path(config), entry)
        if scheduler is not None:
            searcher.stop_results = scheduler.stop_results
        tune_config = tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            scheduler=scheduler,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=reuse,
        )
        param_space = None
    else:
        space = {s.trial_id: entry(s) for s in todo}
        tune_config = tune.TuneConfig(
            scheduler=scheduler,
            max_concurrent_trials=config.max_concurrent,
            reuse_actors=reuse,
        )
        param_space = {"trial_id": tune.grid_search(list(space))}
    callback = _tracking_callback(tracker, specs, scheduler)
    function = tune.with_parameters(trainable, specs=space, cpus=config.cpus_per_trial)
    tuner = tune.Tuner(
        tune.with_resources(function, resources),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=config.resolved_storage_path,
            failure_config=tune.FailureConfig(max_failures=config.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[callback],
            verbose=verbose,
        ),
    )
    try:
        grid = tuner.fit()
    finally:
        if previous is not None and Path(previous).is_dir():
            os.chdir(previous)
    return len(grid), callback.times


__all__ = ["build_trials", "run_sweep", "trainable"]
