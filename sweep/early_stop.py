"""Early stopping of hopeless trials during structure learning; pure logic, no Ray.

``EarlyStopRule.check(epoch, ...)`` reads one epoch record (``trainers.records.Epoch``) of the learn phase and says
whether to stop the trial, and why:

- *collapsed*: for ``patience`` epochs in a row the learned structure leaves no path to the
  output (a dead layer on every path) or costs nothing: the strength is too high. One epoch is
  not enough: under Adam, kernel groups pushed to zero jitter around the threshold and revive;
- *unmoved*: after ``after`` of the learn epochs the predicted cost is still at least
  ``unmoved`` of the seed's and the regularization term is still at least ``term_unmoved`` of
  its value before learning: the strength is too low for anything to shrink (a falling term
  means the scales are on their way to the threshold, as Gamma's are for many epochs);
- *dominated* (only with ``dominated=True``): after ``after`` of the learn epochs another
  trial of the same target has ended its learn phase at no more cost and at least ``margin``
  more validation accuracy.

The Ray Tune scheduler in ``tune_search.py`` applies it to every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainers.records import LEARN, Epoch, finite

DEGENERATE = "degenerate"
DOMINATED = "dominated"


@dataclass(frozen=True)
class Stop:
    """A decision to stop: the kind (degenerate, dominated), why, and the epochs it saves."""

    kind: str
    reason: str
    epochs_saved: int


@dataclass
class EarlyStopRule:
    """Decides from learn-phase results whether a trial is hopeless.

    Args:
        after: share of the learn epochs before an unmoved or dominated trial may be stopped.
        unmoved: a cost fraction at or above this counts as not having moved from the seed.
        dominated: also stop trials dominated by another trial's learn-phase result.
        margin: the accuracy margin of domination.
    """

    after: float = 0.5
    unmoved: float = 0.98
    term_unmoved: float = 0.9
    dominated: bool = False
    margin: float = 0.05
    patience: int = 2
    learned: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    collapses: dict[str, int] = field(default_factory=dict)

    def check(
        self,
        record: Epoch,
        epochs: int,
        retrain_epochs: int,
        target: str = "",
        trial_id: str = "",
    ) -> Stop | None:
        """Stop or not, from one epoch (in order) of a trial with ``epochs`` learn epochs."""
        if record.phase != LEARN:
            return None
        epoch = record.epoch
        fraction = record.fraction
        saved = max(epochs - epoch, 0) + retrain_epochs
        if fraction is None:
            return None
        collapsed = record.is_collapsed
        self.collapses[trial_id] = self.collapses.get(trial_id, 0) + 1 if collapsed else 0
        if epoch >= epochs:
            return None  # the last epoch: nothing left to save in structure learning
        if self.collapses[trial_id] >= self.patience:
            return Stop(
                DEGENERATE,
                f"collapsed at learn epoch {epoch}/{epochs} ({self.patience} in a row): the "
                f"learned structure "
                f"({fraction:.1%} of the seed cost) cannot be rebuilt; the strength "
                f"{_strength(record)} is too high, try about 10x lower",
                saved,
            )
        if epoch < self.after * epochs:
            return None
        term = finite(record.term_fraction)
        if fraction >= self.unmoved and (term is None or term >= self.term_unmoved):
            return Stop(
                DEGENERATE,
                f"unmoved after learn epoch {epoch}/{epochs}: the cost is still "
                f"{fraction:.1%} of the seed's{_term(term)}; the strength {_strength(record)} is too low, "
                f"try 10x-100x higher",
                saved,
            )
        accuracy = finite(record.val_accuracy)
        if self.dominated and accuracy is not None:
            for cost, best in self.learned.get(target, []):
                if cost <= fraction and best >= accuracy + self.margin:
                    return Stop(
                        DOMINATED,
                        f"dominated at learn epoch {epoch}/{epochs}: {fraction:.1%} of the seed "
                        f"cost at validation accuracy {accuracy:.3f}, while another trial "
                        f"learned {cost:.1%} at {best:.3f}",
                        saved,
                    )
        return None

    def learned_result(self, target: str, fraction: float, accuracy: float) -> None:
        """A trial ended its learn phase at this cost fraction and validation accuracy."""
        self.learned.setdefault(target, []).append((fraction, accuracy))


def _term(term: float | None) -> str:
    return "" if term is None else f" and the regularization term {term:.0%} of its start"


def _strength(record: Epoch) -> str:
    value = finite(record.strength)
    return f"{value:.3g}" if value is not None else "in use"
