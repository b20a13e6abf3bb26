"""A scripted, deterministic trainable: a trial whose results are a given function of its strength.

It reports what a real trial reports (learn epochs with the predicted cost, then the retrained
result), so Ray Tune, the adaptive ``Searcher`` and the early-stop scheduler run for real while
the answer stays known. Used by ``test_adaptive_tune.py`` and the repeat check.
"""

from __future__ import annotations

import math
import time
from typing import Any

from trainers.budgets import BudgetPath
from trainers.records import LEARN, Epoch, Outcome

LEARN_EPOCHS = 3
STEPS_PER_EPOCH = 10
# group_lasso collapses (nothing of the network is left) from this multiplier up
COLLAPSE_AT = {"group_lasso": 1000.0}
# the first point of each algorithm's initial grid (the adaptive search's defaults)
FIRST = {"gamma": 0.3, "group_lasso": 10.0}


def cost_fraction(algorithm: str, multiplier: float) -> float:
    """0.8 at the first grid point, halved per decade of strength: log-linear in log strength."""
    if multiplier >= COLLAPSE_AT.get(algorithm, math.inf):
        return 0.0
    return 0.8 * (multiplier / FIRST[algorithm]) ** -math.log10(2)


def accuracy(fraction: float) -> float:
    return 0.5 + 0.4 * fraction


def path_fraction(final: float, step: int) -> float:
    """The cost of the structure exported at ``step``: from the seed's, straight down to the
    final one at the last learn step."""
    last = LEARN_EPOCHS * STEPS_PER_EPOCH
    return final if step >= last else 1 - (1 - final) * step / last


def retrained(trial: dict[str, Any], final: float) -> tuple[float, int | None, float | None]:
    """What a trial given budgets retrains (``trainers.budgets`` on the scripted path): the
    cost fraction, the step and the budget of that export; the final one without budgets."""
    if not trial.get("budgets"):
        return final, None, None
    path = BudgetPath(tuple(trial["budgets"]), float(trial["budget_tolerance"]))
    last = LEARN_EPOCHS * STEPS_PER_EPOCH
    for step in range(1, last + 1):
        if path.due(step) or step == last:  # the final structure is always a path point
            fraction = path_fraction(final, step)
            path.keep(path.check(step, fraction), step, fraction, f"structure_{step}.json")
    chosen = path.chosen()
    if chosen is None:
        return final, last, None
    return chosen.fraction, chosen.step, chosen.budget


def outcome(
    fraction: float,
    accuracy: float,
    final: float | None = None,
    step: int | None = None,
    budget: float | None = None,
) -> Outcome:
    """A finished trial whose rebuilt model costs ``fraction`` of a seed costing 1000 (and,
    given budgets, whose final structure cost ``final``, the retrained one exported at
    ``step`` for ``budget``)."""
    cost = 1000.0 * fraction
    return Outcome(
        seed_cost=1000.0,
        predicted_cost=cost,
        rebuilt_cost=cost,
        retrained_val_accuracy=accuracy,
        final_cost=None if final is None else 1000.0 * final,
        retrained_step=step,
        retrained_budget=budget,
    )


def scripted(config: dict[str, Any], delay: Any = None) -> None:
    """Tune trainable: ``config`` as the adaptive search's entry makes it."""
    from ray import tune

    trial = config["config"]
    if trial.get("baseline_width") is not None:
        width = float(trial["baseline_width"])
        tune.report(outcome(width**2, 0.6).to_result())
        return
    algorithm, multiplier = trial["algorithm"], float(trial["multiplier"])
    fraction = cost_fraction(algorithm, multiplier)
    for epoch in range(1, LEARN_EPOCHS + 1):
        if delay is not None:
            time.sleep(delay(algorithm, multiplier))
        share = epoch / LEARN_EPOCHS  # the cost falls toward its end during learning
        epoch_record = Epoch(
            phase=LEARN,
            epoch=epoch,
            strength=float(trial["strength"]),
            predicted_fraction=path_fraction(fraction, epoch * STEPS_PER_EPOCH),
            collapsed=1.0 if fraction == 0.0 else 0.0,
            term_fraction=1 - 0.5 * share,
            val_accuracy=0.5,
        )
        tune.report(epoch_record.to_result())
    cost, step, budget = retrained(trial, fraction)
    final = fraction if trial.get("budgets") else None
    tune.report(outcome(cost, accuracy(cost), final, step, budget).to_result())
