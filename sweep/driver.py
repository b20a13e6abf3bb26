"""The sweep's driver: plans the trials, runs them on Ray Tune, tracks them, publishes the front.

``run_sweep`` reads as the sweep's data flow: checks (``sweep.preflight``), the seed network's
cost per target (``sweep.space``), the trials to run (a grid, or the adaptive search's
suggestions), Tune running them in workers (``sweep.worker``) while ``sweep.callback`` writes
each result to MLflow, then the front computed from the store (``sweep.results``) and handed to
the publishers (``sweep.plugins``). Only the current Tune API is used: ``ray.tune.Tuner``,
``ray.tune.RunConfig`` / ``FailureConfig`` / ``CheckpointConfig``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainers.errors import TrialConfigError
from trainers.records import EPOCHS_SAVED, SweepTiming, search_point_from_metrics
from trainers.runtime import backend_env, current_backend, select_backend, setup_device

from .adaptive import BudgetSearch
from .callback import TrackingCallback
from .config import SweepConfig
from .early_stop import EarlyStopRule
from .plugins import Publisher, installed_publishers
from .preflight import preflight, reuse_workers
from .results import publish_pareto
from .space import TrialSpec, baseline_trials, build_trials, seed_costs
from .store import run_ended
from .tracking import SweepTracker
from .tune_search import AdaptiveSearcher, EarlyStopScheduler
from .worker import trainable

Times = dict[str, tuple[float, float, float]]  # trial id -> (start, last report, seconds training)


@dataclass
class Plan:
    """The trials of this run: a grid's that are not done yet, or the adaptive search."""

    todo: list[TrialSpec]
    search: BudgetSearch | None

    @property
    def specs(self) -> Mapping[str, TrialSpec]:
        return self.search.specs if self.search is not None else {s.trial_id: s for s in self.todo}

    def has_work(self) -> bool:
        return bool(self.todo) or (self.search is not None and not self.search.finished())


def run_sweep(
    config: SweepConfig,
    *,
    address: str | None = None,
    verbose: int = 1,
    publishers: Sequence[Publisher] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a sweep: trials on Ray Tune, tracked to MLflow, Pareto front at the end.

    Args:
        config: the sweep.
        address: a Ray cluster's address (default: the config's, else a local Ray).
        verbose: Tune's verbosity (0 silent, 1 a status table, 2 the workers' output too).
        publishers: what draws the trials' and the sweep's figures (default: the installed
            ones, ``sweep.plugins.installed_publishers``).

    Returns:
        A summary: experiment and parent run ids, trials run/stopped, timing, the front's size
        and, for the adaptive search, its per-budget summary.
    """
    address = address or config.address
    preflight(config, address)
    _setup_driver(str(config.trial.get("backend", "tensorflow")))
    costs = seed_costs(config)  # before any run is made: a seed that cannot be costed leaves none
    tracker = SweepTracker(
        config.resolved_tracking_uri,
        config.name,
        config.artifact_root,
        queue_dir=tracking_queue_path(config),
    )
    tracker.log_sweep(config, costs)
    plan = _plan(config, costs, tracker)
    drawers = installed_publishers() if publishers is None else list(publishers)
    ran, times, started = 0, Times(), time.monotonic()
    if plan.has_work():
        ran, times = _tune(config, plan, tracker, address, verbose, drawers)
    timing = _timing(time.monotonic() - started, times)
    if times:
        tracker.log_parent_metrics(timing.metrics())
        print(
            f"{len(times)} trials finished in {timing.sweep_seconds:.0f} s; their training "
            f"took {timing.train_seconds:.0f} s in all ({timing.parallelism:.2f}x the "
            f"wall time), {timing.overhead_seconds_per_trial:.1f} s per trial outside training",
            flush=True,
        )
    summary = _publish(config, tracker, plan, drawers)
    return {**summary, "ran": ran, "timing": dataclasses.asdict(timing)}


def _publish(
    config: SweepConfig, tracker: SweepTracker, plan: Plan, publishers: Sequence[Publisher]
) -> dict[str, Any]:
    """The finished sweep, read once from the store: front, views, search and stops logged,
    publishers called, the parent run ended."""
    tracker.drain()  # the front is read back from MLflow: every result must be there
    store = tracker.store
    store.refresh()
    front = publish_pareto(tracker, store, config)
    tracker.set_chart_view(list(config.targets))
    summary: dict[str, Any] = {"results": 0}
    if front is not None:
        summary = {"results": len(front.table), "pareto": int(front.table["pareto"].sum())}
    if plan.search is not None:
        summary["search"] = plan.search.summary()
        tracker.log_search_summary(summary["search"])
    stopped, epochs_saved = tracker.log_early_stops(store)
    tracker.drain()
    for publisher in publishers:
        publisher.publish_sweep(tracker, store, config, front)
    tracker.finish_sweep()
    return {
        "experiment_id": tracker.experiment_id,
        "parent_run_id": tracker.parent_id,
        "trials": len(store.trial_runs()),
        "stopped": stopped,
        EPOCHS_SAVED: epochs_saved,
        **summary,
    }


def _plan(config: SweepConfig, costs: dict[str, float], tracker: SweepTracker) -> Plan:
    """What this run does, said on the console."""
    done = tracker.finished_trials()
    seed_text = ", ".join(f"{t}={c:.4g}" for t, c in costs.items())
    if config.search == "adaptive":
        print(
            f"sweep {config.name!r}: adaptive search, up to {config.max_trials} trials per "
            f"algorithm x target x seed ({len(done)} already finished), seed cost {seed_text}",
            flush=True,
        )
        return Plan([], _adaptive_search(config, costs, tracker))
    specs = build_trials(config, costs)
    print(
        f"sweep {config.name!r}: {len(specs)} trials "
        f"({len(done & {s.trial_id for s in specs})} already finished), seed cost {seed_text}",
        flush=True,
    )
    return Plan([s for s in specs if s.trial_id not in done], None)


def _setup_driver(backend: str) -> None:
    """The driver builds the seed network for its costs: on the trials' backend when Keras is not
    imported yet (a machine with JAX only never needs TensorFlow), else on the one it runs (the
    costs are computed from the graph and do not depend on it)."""
    try:
        select_backend(backend)
    except TrialConfigError:
        pass
    setup_device(current_backend() or backend)


def _timing(wall: float, times: Times) -> SweepTiming:
    """The sweep's wall time against its trials' training time (trials finished in this run)."""
    train = sum(t for _, _, t in times.values())
    overhead = [end - start - t for start, end, t in times.values()]
    span = (
        max(e for _, e, _ in times.values()) - min(s for s, _, _ in times.values())
        if times
        else 0.0
    )
    return SweepTiming(
        sweep_seconds=wall,
        trials_span_seconds=span,
        train_seconds=train,
        trials_finished=float(len(times)),
        parallelism=train / wall if wall > 0 else 0.0,
        overhead_seconds_per_trial=sum(overhead) / len(overhead) if overhead else 0.0,
    )


def _adaptive_search(
    config: SweepConfig, costs: dict[str, float], tracker: SweepTracker
) -> BudgetSearch:
    """The budget search, restored from its saved state and from what MLflow holds."""
    fixed = [s for t in config.targets for s in baseline_trials(config, t)]
    search = BudgetSearch(config, costs, fixed)
    path = search_state_path(config)
    if path.is_file():
        search.restore(path)
    # a trial that ended after the state was last written: its result is in MLflow
    for trial_id, run in tracker.children().items():
        if trial_id in search.specs and not search.known(trial_id) and run_ended(run):
            search.record(trial_id, *search_point_from_metrics(run.data.metrics))
    search.save(path)
    return search


def tracking_queue_path(config: SweepConfig) -> Path:
    """Where tracking writes wait while the tracking store is unreachable (``sweep.outbox``)."""
    return Path(config.resolved_storage_path) / config.name / "tracking_queue"


def search_state_path(config: SweepConfig) -> Path:
    """Where the adaptive search keeps its state between driver runs."""
    return Path(config.resolved_storage_path) / config.name / "adaptive_search.json"


def _init_ray(config: SweepConfig, address: str | None, verbose: int) -> None:
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=verbose > 1)
        return
    # workers start on the trials' Keras backend (each trial also selects it itself, which covers
    # clusters started elsewhere)
    env = backend_env(str(config.trial.get("backend", "tensorflow")))
    ray.init(include_dashboard=False, log_to_driver=verbose > 1, runtime_env={"env_vars": env})


def _tune(
    config: SweepConfig,
    plan: Plan,
    tracker: SweepTracker,
    address: str | None,
    verbose: int,
    publishers: Sequence[Publisher],
) -> tuple[int, Times]:
    """Run the plan's trials on Tune; returns how many ran and, per trial that finished in this
    run, (its start, its last report (``time.monotonic()``), seconds it spent training)."""
    # a checkpoint every epoch is by design; Tune's warning about it is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    _init_ray(config, address, verbose)
    Path(config.resolved_storage_path).mkdir(parents=True, exist_ok=True)
    scheduler = _scheduler(config, plan)
    tune_config, param_space, grid = _tune_config(config, plan, scheduler)
    stopped = scheduler.stopped if scheduler is not None else {}
    callback = TrackingCallback(tracker, plan.specs, stopped, publishers)
    function = tune.with_parameters(trainable, specs=grid, cpus=config.cpus_per_trial)
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
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
    return len(tuner.fit()), callback.times


def _scheduler(config: SweepConfig, plan: Plan) -> Any:
    """The early-stop scheduler, or None when early stopping is off."""
    if config.early_stop == "off":
        return None
    rule = EarlyStopRule(
        after=config.early_stop_after,
        dominated=config.early_stop == "dominated",
        margin=config.dominated_margin,
    )
    return EarlyStopScheduler(rule, plan.specs.get)


def _tune_config(
    config: SweepConfig, plan: Plan, scheduler: Any
) -> tuple[Any, dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Tune's config, its param space and the grid's trials by id (empty for the search).

    A finished trial's worker runs the next trial (no new process, no TensorFlow import per
    trial): its results equal a fresh worker's (tests/sweep/test_adaptive_twice.py compares
    them); MORPHSWEEP_REUSE_WORKERS=0 gives every trial a fresh worker.
    """
    entry = functools.partial(TrialSpec.entry, trials_dir=config.trials_dir())
    common = {
        "scheduler": scheduler,
        "max_concurrent_trials": config.max_concurrent,
        "reuse_actors": reuse_workers(),
    }
    if plan.search is None:
        grid = {s.trial_id: entry(s) for s in plan.todo}
        return tune.TuneConfig(**common), {"trial_id": tune.grid_search(list(grid))}, grid
    searcher = AdaptiveSearcher(plan.search, search_state_path(config), entry)
    if scheduler is not None:
        searcher.stop_results = scheduler.stop_results
    return tune.TuneConfig(search_alg=searcher, num_samples=-1, **common), None, {}
