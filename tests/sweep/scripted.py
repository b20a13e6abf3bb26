"""A scripted, deterministic trainable: a trial whose results are a given function of its strength.

It reports what a real trial reports (learn epochs with the predicted cost, then the retrained
result), so Ray Tune, the adaptive ``Searcher`` and the early-stop scheduler run for real while
the answer stays known. Used by ``test_adaptive_tune.py`` and the repeat check.
"""

from __future__ import annotations

import math
import time
from typing import Any

from trainers.records import LEARN, Epoch, Outcome

LEARN_EPOCHS = 3
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


def outcome(fraction: float, accuracy: float) -> Outcome:
    """A finished trial whose rebuilt model costs ``fraction`` of a seed costing 1000."""
    cost = 1000.0 * fraction
    return Outcome(
        seed_cost=1000.0, predicted_cost=cost, rebuilt_cost=cost, retrained_val_accuracy=accuracy
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
            predicted_fraction=1 - (1 - fraction) * share,
            collapsed=1.0 if fraction == 0.0 else 0.0,
            term_fraction=1 - 0.5 * share,
            val_accuracy=0.5,
        )
        tune.report(epoch_record.to_result())
    tune.report(outcome(fraction, accuracy(fraction)).to_result())
