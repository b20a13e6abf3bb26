"""The sweep's driver: plans the trials, runs them on Ray Tune, tracks them, publishes the front.

``run_sweep`` reads as the sweep's data flow: checks (``sweep.preflight``), the seed network's
cost per target (``sweep.space``), the trials to run (a grid, or the adaptive search's
suggestions), Tune running them in workers (``sweep.worker``) while ``sweep.callback`` writes
each result to MLflow, then the front computed from the store (``sweep.results``) and handed to
the publishers (``sweep.plugins``). Only the current Tune API is used: ``ray.tune.Tuner``,
``ray.tune.RunConfig`` / ``FailureConfig`` / ``CheckpointConfig``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainers.checkpoint import Checkpoint
from trainers.config import TrialConfig
from trainers.errors import TrialConfigError
from trainers.records import EPOCHS_SAVED, SweepTiming, search_point_from_metrics
from trainers.runtime import backend_env, current_backend, select_backend, setup_device

from .adaptive import BudgetSearch
from .callback import TrackingCallback
from .config import SweepConfig
from .early_stop import EarlyStopRule
from .plugins import Publisher, installed_publishers
from .preflight import ClusterUnavailable, preflight, reuse_workers
from .results import publish_pareto
from .space import TrialSpec, baseline_trials, build_trials, seed_costs
from .store import TAG_REASON, run_ended
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
    if config.search == "grid":  # a changed config is refused before any run is made
        check_checkpoints(config, build_trials(config, costs))
    _init_ray(config, address, verbose)
    check_resources(config)  # a trial no node can ever place fails now, not PENDING forever
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
        with _ended_on_failure(config, tracker, plan):
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


def check_checkpoints(config: SweepConfig, specs: Sequence[TrialSpec]) -> None:
    """Refuse a rerun whose trials would resume checkpoints another config wrote (the sweep's
    YAML changed, its name and workdir did not), naming the trial and the fields.

    Raises:
        TrialConfigError: before any run is made or trial started.
    """
    for spec in specs:
        out = config.trials_dir() / spec.trial_id
        if (out / "checkpoint" / "state.json").is_file():
            now = TrialConfig.from_dict({**spec.config, "output_dir": str(out), "verbose": 0})
            Checkpoint(out / "checkpoint").check_config(
                json.loads(json.dumps(now.to_dict(), default=str)),
                fresh=f"give the sweep another name or workdir, or remove {out} to start it fresh",
            )


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


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the message says what was kept and how to go on."""


@contextlib.contextmanager
def _ended_on_failure(config: SweepConfig, tracker: SweepTracker, plan: Plan) -> Iterator[None]:
    """A sweep that stops before its end leaves no RUNNING parent run: Ctrl-C marks it KILLED
    (its finished trials kept, the rest resumed by the same command), any other failure FAILED
    with the reason; what the tracking queue holds is written first."""
    try:
        yield
    except KeyboardInterrupt:
        ray.shutdown()  # the trials' workers, before the store is written
        for trial_id, run in tracker.children().items():
            if run.info.status == "RUNNING":
                tracker.finish(trial_id, "KILLED", "interrupted (Ctrl-C); resumes on a rerun")
        tracker.finish_sweep("KILLED")
        done = len(tracker.finished_trials())
        raise SweepInterrupted(
            f"{done} of {len(plan.specs)} trials of sweep {config.name!r} are finished and "
            f"tracked in {config.resolved_tracking_uri}; the others resume from their last "
            f"epoch when you rerun the same `morphsweep run` command"
        ) from None
    except BaseException as exc:
        tracker.set_tags(None, {TAG_REASON: f"{type(exc).__name__}: {exc}"[:500]})
        tracker.finish_sweep("FAILED")
        raise


def check_resources(config: SweepConfig) -> None:
    """Fail at once when no node of the cluster can ever give a trial what it asks for (a GPU on
    a cluster without one would leave every trial PENDING forever)."""
    wanted = {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_trial}
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for resource, amount in wanted.items():
        if amount <= 0:
            continue
        most = max((float(n.get("Resources", {}).get(resource, 0.0)) for n in nodes), default=0.0)
        if amount > most:
            totals = ", ".join(
                f"{n.get('NodeManagerAddress', '?')}: {n.get('Resources', {}).get(resource, 0):g}"
                for n in nodes
            )
            key = "gpus" if resource == "GPU" else "cpus"
            raise ClusterUnavailable(
                f"each trial asks for {amount:g} {resource}, but no node has that many (per node: "
                f"{totals or 'no nodes'}); lower resources.{key} or add a node that has them"
            )


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
    # Ctrl-C stops the sweep at once (KeyboardInterrupt, answered by _ended_on_failure): Tune's
    # own handler would print how to resume with Tuner.restore, which is not how a sweep resumes
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
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
