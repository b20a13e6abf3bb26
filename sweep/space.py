"""The search space: one entry per trial, strengths computed once on the driver.

Strength = multiplier / seed cost, with the seed cost of the seed model for each target, so the
grid is centred on 1 / (initial cost) as MorphNet advises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainers.config import TrialConfig
from trainers.data import BUILTIN_SHAPES, data_shape
from trainers.models import (
    build_model,
    check_agrees,
    check_input_size,
    file_shape,
    is_model_file,
    load_model_file,
)
from trainers.morphnet.widths import seed_cost
from trainers.streams import folder_classes

from .config import SweepConfig

BASELINE = "baseline"


@dataclass(frozen=True)
class TrialSpec:
    """One trial of the sweep: its stable id and the full TrialConfig dict."""

    trial_id: str
    algorithm: str  # "baseline" for the uniform-width baseline
    target: str
    seed: int
    multiplier: float | None
    strength: float | None
    width: float | None
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "algorithm": self.algorithm,
            "target": self.target,
            "seed": self.seed,
            "multiplier": self.multiplier,
            "strength": self.strength,
            "width": self.width,
            "config": self.config,
        }

    def params(self) -> dict[str, Any]:
        """What the trial's MLflow run records as params: its config and its place in the
        sweep (the width is a baseline's; None values are kept as "None")."""
        return {
            **self.config,
            "trial_id": self.trial_id,
            "algorithm": self.algorithm,
            "multiplier": self.multiplier,
            "width": self.width,
        }

    def entry(self, trials_dir: Any) -> dict[str, Any]:
        """The trial as Tune's config carries it to the worker (``sweep.worker.trainable``)."""
        return {
            "trial_id": self.trial_id,
            "output_dir": str(trials_dir / self.trial_id),
            "config": self.config,
        }


def seed_costs(config: SweepConfig) -> dict[str, float]:
    """Full-width cost of the seed model for each target (builds the model once, no training)."""
    from trainers.morphnet.keras3 import read_model  # Keras
    from trainers.trial import target_of

    base = TrialConfig.from_dict(dict(config.trial))
    graph, _ = read_model(seed_network(base))
    # the same definition a single trial divides its multiplier by
    return {t: seed_cost(graph, target_of(base.replace(target=t))) for t in config.targets}


def seed_network(base: TrialConfig) -> Any:
    """The sweep's seed network, made without opening the data where it can: a .keras file is
    loaded (and checked against the data's classes and, when known without reading it, its
    shape); a network to build takes the data's shape (``trainers.data.data_shape``).

    Raises:
        TrialConfigError: a seed file that does not fit the data, an unreadable file.
    """
    if not is_model_file(base.model):
        shape, classes = data_shape(base.dataset, base.seed, base.image_size)
        built = build_model(base.model, shape, classes, base.model_width, base.seed)
        check_input_size(base.model, built, shape)
        return built
    model = load_model_file(base.model)
    shape, classes = file_shape(model)
    if base.dataset in BUILTIN_SHAPES or base.image_size is not None:
        shape, classes = data_shape(base.dataset, base.seed, base.image_size)
    elif base.dataset.startswith("images:"):  # read at their own size: the trial checks it
        classes = folder_classes(base.dataset)
    check_agrees(base.model, model, base.dataset, shape, classes)
    check_input_size(base.model, model, shape)
    return model


def fmt_multiplier(x: float) -> str:
    """A multiplier as trial ids spell it (3 significant digits)."""
    return f"{x:.3g}".replace("+", "")


def strength_trial(
    config: SweepConfig,
    algorithm: str,
    target: str,
    seed: int,
    multiplier: float,
    costs: dict[str, float],
    budgets: tuple[float, ...] = (),
) -> TrialSpec:
    """The MorphNet trial at strength ``multiplier / seed cost`` of ``target``; given
    ``budgets`` (fractions of the seed's cost, the most wanted first), it retrains the
    structure its path left nearest the first it crossed (``trainers.budgets``)."""
    trial_id = f"{algorithm}-{target}-m{fmt_multiplier(multiplier)}-s{seed}"
    strength = multiplier / costs[target]
    trial = {
        **config.trial,
        "algorithm": algorithm,
        "target": target,
        "seed": seed,
        "strength": strength,
        "multiplier": multiplier,
    }
    if budgets:
        trial.update(budgets=list(budgets), budget_tolerance=config.budget_tolerance)
    return TrialSpec(trial_id, algorithm, target, seed, multiplier, strength, None, trial)


def baseline_trials(config: SweepConfig, target: str) -> list[TrialSpec]:
    """The uniform-width baseline of ``target``: every width x seed."""
    trials = []
    for width in config.baseline_widths:
        for seed in config.seeds:
            trial_id = f"{BASELINE}-{target}-w{fmt_multiplier(width)}-s{seed}"
            trial = {**config.trial, "target": target, "seed": seed, "baseline_width": width}
            trials.append(TrialSpec(trial_id, BASELINE, target, seed, None, None, width, trial))
    return trials


def build_trials(config: SweepConfig, costs: dict[str, float]) -> list[TrialSpec]:
    """Algorithms x targets x strengths x seeds, then the baseline widths x targets x seeds."""
    trials = []
    for target in config.targets:
        for algorithm in config.algorithms:
            for multiplier in config.strengths.multipliers(algorithm):
                for seed in config.seeds:
                    trials.append(
                        strength_trial(config, algorithm, target, seed, multiplier, costs)
                    )
        trials.extend(baseline_trials(config, target))
    return trials
