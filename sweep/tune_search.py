"""The adaptive search and early stopping, on Ray Tune's own APIs.

``AdaptiveSearcher`` is a ``ray.tune.search.Searcher`` over ``BudgetSearch`` (``adaptive.py``);
``EarlyStopScheduler`` is a FIFO ``TrialScheduler`` that stops hopeless trials with
``EarlyStopRule`` (``early_stop.py``). Both live on the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from trainers.config import TrialConfig
from trainers.records import LEARN, Epoch, finite, parse, search_point

from .adaptive import BudgetSearch
from .early_stop import EarlyStopRule, Stop
from .space import TrialSpec


class AdaptiveSearcher(Searcher):
    """Suggests trials from ``BudgetSearch``; its state is saved as JSON after every change.

    Args:
        search: the search (restored by the caller when the sweep ran before).
        state_path: where the state is kept between driver runs.
        entry: turns a TrialSpec into the trial's Tune config (id, output directory, config).
    """

    def __init__(self, search: BudgetSearch, state_path: Path, entry: Any) -> None:
        super().__init__()
        self.search = search
        self.state_path = Path(state_path)
        self.entry = entry
        self.tune_ids: dict[str, str] = {}
        # suggested before the driver stopped, with no result: run those first, as they were
        self.replay = list(search.pending())
        # sweep trial id -> the result an early stop was decided at (EarlyStopScheduler's): a
        # stopped trial may report once more before the stop reaches it, and what the search
        # records must not depend on that timing
        self.stop_results: dict[str, dict[str, Any]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
        if self.replay:
            spec = self.search.specs[self.replay.pop(0)]
        else:
            found = self.search.next_suggestion()
            if found is None:
                return Searcher.FINISHED if self.search.finished() else None  # type: ignore[return-value]
            spec = found
            self.search.save(self.state_path)
            if spec.multiplier is not None:
                group = self.search.group_of(spec)
                print(
                    f"adaptive search: {group.key} trial {len(group.suggested)}/"
                    f"{self.search.config.max_trials} at multiplier {spec.multiplier:.3g}",
                    flush=True,
                )
        self.tune_ids[trial_id] = spec.trial_id
        return self.entry(spec)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        sweep_id = self.tune_ids.get(trial_id) or (result or {}).get("config", {}).get("trial_id")
        if sweep_id is None:
            return
        result = self.stop_results.get(sweep_id, result)
        point = search_point(None if error else parse(result))
        self.search.record(sweep_id, *point)
        self.search.save(self.state_path)

    def save(self, checkpoint_path: str) -> None:
        self.search.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.search.restore(checkpoint_path)
        self.replay = list(self.search.pending())


class EarlyStopScheduler(FIFOScheduler):
    """Stops a trial whose structure learning is hopeless; remembers why and what it saved.

    Args:
        rule: the decision, per result.
        specs: the trials, by sweep trial id (epochs, retrain epochs, target); a callable for the
            adaptive search, whose trials appear as it suggests them.
    """

    def __init__(self, rule: EarlyStopRule, specs: Any) -> None:
        super().__init__()
        self.rule = rule
        self.specs = specs
        self.stopped: dict[str, Stop] = {}
        self.stop_results: dict[str, dict[str, Any]] = {}  # the result each stop was decided at
        self.defaults = TrialConfig()  # epochs a trial config leaves out

    def _spec(self, trial: Any) -> TrialSpec | None:
        found = self.specs(trial.config["trial_id"])
        return found if isinstance(found, TrialSpec) else None

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        spec = self._spec(trial)
        if spec is None or spec.strength is None:  # baselines learn nothing: never stopped
            return TrialScheduler.CONTINUE
        epochs = int(spec.config.get("epochs", self.defaults.epochs))
        retrain_epochs = int(spec.config.get("retrain_epochs", self.defaults.retrain_epochs))
        record = parse(result)
        if not isinstance(record, Epoch) or record.phase != LEARN:
            return TrialScheduler.CONTINUE
        if record.epoch >= epochs and record.fraction is not None:
            accuracy = finite(record.val_accuracy)
            if accuracy is not None:
                self.rule.learned_result(spec.target, record.fraction, accuracy)
        stop = self.rule.check(record, epochs, retrain_epochs, spec.target, spec.trial_id)
        if stop is None:
            return TrialScheduler.CONTINUE
        self.stopped[spec.trial_id] = stop
        self.stop_results[spec.trial_id] = dict(result)
        print(f"early stop: {spec.trial_id} {stop.reason}", flush=True)
        return TrialScheduler.STOP
