"""What a trial reports, defined once: the record of an epoch and of a finished trial.

A trial produces them (``trainers.trial``); a Ray worker sends them as Tune results; the sweep's
driver reads them back for tracking, the adaptive search and early stopping; the store reads the
finished ones back from MLflow; dashboards draw them. Every metric name the project logs derives
from the fields here, so a name is written once:

- an ``Epoch`` is logged at step = epoch as ``<phase>/<field>`` (``learn/cost``,
  ``retrain/val_accuracy``) and ``alive/<layer>``;
- an ``Outcome`` is logged as its fields (``rebuilt_cost``, ``retrained_val_accuracy``, ...) and,
  for MLflow's own run table and charts, as ``cost/<target>``, ``cost_fraction/<target>`` and
  ``accuracy``.

The strength, algorithm and target of a trial are its config's (``TrialConfig``); its cost is the
rebuilt model's (``Outcome.cost``) and its accuracy the retrained model's (``Outcome.accuracy``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

LEARN, RETRAIN, DONE, FAILED = "learn", "retrain", "done", "failed"
PHASE = "phase"  # the key of a result that says which record it is
ALIVE = "alive/"  # alive/<layer>: the share of the layer's channels alive

# the MLflow keys of MLflow's own run table and chart view, per target
COST_OF = "cost/{target}"
COST_FRACTION_OF = "cost_fraction/{target}"
ACCURACY = "accuracy"
PARETO_ACCURACY_OF = "pareto_accuracy/{target}"
EPOCHS_SAVED = "epochs_saved"  # on a trial stopped early: the epochs it did not run
# an outcome's numbers a sweep's results table keeps beside its cost and accuracy
SEED_COST, COST_FRACTION = "seed_cost", "cost_fraction"
SEED_ACCURACY = "seed_val_accuracy"  # a trained seed's, measured before learning


def finite(value: Any) -> float | None:
    """A number as float; None for NaN, infinities, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _numbers(record: Any, skip: tuple[str, ...] = ()) -> dict[str, float]:
    out = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name not in skip and finite(value) is not None:
            out[f.name] = float(value)
    return out


@dataclass(frozen=True)
class Epoch:
    """One epoch of a phase (learn or retrain), as the trial reports it.

    The losses and accuracies are Keras' for the epoch. The cost fields are the learn phase's
    only: the regularizer's cost now (``cost``, of the soft structure), the cost of the structure
    exported now as it would be rebuilt (``predicted_cost``) and whether that structure is cut
    (``collapsed``: 1.0 when no path reaches the output), the regularization term against its
    value before learning (``term_fraction``).
    """

    phase: str
    epoch: int
    step: int = 0
    task_loss: float | None = None
    regularization_loss: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    cost: float | None = None
    cost_name: str | None = None
    cost_fraction: float | None = None
    alive_fraction: float | None = None
    strength: float | None = None
    predicted_cost: float | None = None
    predicted_fraction: float | None = None
    collapsed: float | None = None
    term_fraction: float | None = None
    alive: dict[str, float] = field(default_factory=dict)

    # Keras' log keys an epoch takes over as they are
    KERAS_LOGS: ClassVar[tuple[str, ...]] = (
        "task_loss",
        "regularization_loss",
        "loss",
        "accuracy",
        "val_accuracy",
        "val_loss",
    )

    # what a console line of the epoch shows
    CONSOLE: ClassVar[tuple[str, ...]] = (
        "phase",
        "epoch",
        "task_loss",
        "regularization_loss",
        "cost",
        "alive_fraction",
        "accuracy",
        "val_accuracy",
    )

    def to_result(self) -> dict[str, Any]:
        """The flat dict a reporter sends and ``metrics.json``'s history keeps."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "alive"}
        data.update({f"{ALIVE}{name}": value for name, value in self.alive.items()})
        return data

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Epoch:
        """The epoch in a reporter's dict (keys it does not know, such as Tune's, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"alive"}
        known = {k: v for k, v in result.items() if k in names}
        alive = {k[len(ALIVE) :]: float(v) for k, v in result.items() if k.startswith(ALIVE)}
        known["epoch"] = int(known.get("epoch", 0))
        known["step"] = int(known.get("step", 0))
        return cls(**known, alive=alive)

    def metrics(self) -> dict[str, float]:
        """What MLflow gets at step = epoch: ``<phase>/<field>`` and ``alive/<layer>``."""
        numbers = _numbers(self, skip=("epoch",))
        out = {self.key(self.phase, name): value for name, value in numbers.items()}
        out.update({f"{ALIVE}{name}": float(v) for name, v in self.alive.items()})
        return out

    @staticmethod
    def key(phase: str, name: str) -> str:
        """The MLflow key of an epoch field: ``learn/cost``, ``retrain/val_accuracy``."""
        return f"{phase}/{name}"

    @property
    def fraction(self) -> float | None:
        """The share of the seed's cost the structure exported now would have."""
        return finite(
            self.predicted_fraction if self.predicted_fraction is not None else self.cost_fraction
        )

    @property
    def is_collapsed(self) -> bool:
        return bool(self.collapsed) or (self.fraction is not None and self.fraction <= 0)


@dataclass(frozen=True)
class Outcome:
    """A finished trial: the rebuilt model's cost and the retrained model's accuracy.

    ``predicted_cost`` is the exported structure's cost as the rebuild counts it (equal to
    ``rebuilt_cost`` unless the rebuild had to keep a channel the prediction did not);
    ``train_seconds`` is the time in training steps and evaluation, ``trial_seconds`` the whole
    trial's, over every run of it (a resumed trial).
    """

    seed_cost: float
    predicted_cost: float
    rebuilt_cost: float
    retrained_val_accuracy: float
    strength: float | None = None  # a uniform-width baseline learns nothing: 0 or none
    learned_val_accuracy: float | None = None
    seed_val_accuracy: float | None = None  # a trained seed's (a .keras file), before learning
    # a trial given budgets (``trainers.budgets``): the cost of its final structure (the end of
    # its path), the step of the export it retrained and the budget that export was kept for
    # (None: the final one)
    final_cost: float | None = None
    retrained_step: float | None = None
    retrained_budget: float | None = None
    train_seconds: float = 0.0
    trial_seconds: float = 0.0

    @property
    def cost(self) -> float:
        return self.rebuilt_cost

    @property
    def final_fraction(self) -> float:
        """The share of the seed's cost at the end of the path (the retrained one without)."""
        final = self.final_cost if self.final_cost is not None else self.predicted_cost
        return final / self.seed_cost if self.seed_cost else float("nan")

    @property
    def accuracy(self) -> float:
        return self.retrained_val_accuracy

    @property
    def cost_fraction(self) -> float:
        return self.rebuilt_cost / self.seed_cost if self.seed_cost else float("nan")

    def to_result(self) -> dict[str, Any]:
        """The flat dict a reporter sends (``phase: done``)."""
        return {PHASE: DONE, **self.fields()}

    def fields(self) -> dict[str, float]:
        """The numbers by field name, ``cost_fraction`` included: what MLflow gets at step 0."""
        return {**_numbers(self), COST_FRACTION: self.cost_fraction}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Outcome:
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{k: result[k] for k in names if k in result})

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, float]) -> Outcome | None:
        """The outcome in a trial run's MLflow metrics; None when the trial did not finish."""
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if any(name not in metrics for name in required):
            return None
        return cls.from_result(metrics)

    def metrics(self, target: str) -> dict[str, float]:
        """Every field, and what MLflow's run table and chart view compare across trials."""
        return {
            **self.fields(),
            COST_OF.format(target=target): self.cost,
            COST_FRACTION_OF.format(target=target): self.cost_fraction,
            ACCURACY: self.accuracy,
        }


@dataclass(frozen=True)
class Failure:
    """A trial that failed for a reason the user can act on (a NaN loss)."""

    reason: str

    def to_result(self) -> dict[str, Any]:
        return {PHASE: FAILED, "failure_reason": self.reason}

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Failure:
        return cls(str(result.get("failure_reason", "failed")))


Record = Epoch | Outcome | Failure


@dataclass(frozen=True)
class SweepTiming:
    """A sweep's wall time against its trials' training time (the trials finished in one run).

    ``trials_span_seconds`` runs from the first trial's start to the last one's last report: the
    sweep's time without starting Ray and publishing the front. Logged on the parent run as
    ``time/<field>``.
    """

    sweep_seconds: float
    trials_span_seconds: float
    train_seconds: float
    trials_finished: float
    parallelism: float
    overhead_seconds_per_trial: float

    def metrics(self) -> dict[str, float]:
        return {f"time/{name}": value for name, value in dataclasses.asdict(self).items()}


def parse(result: Mapping[str, Any] | None) -> Record | None:
    """The record in a reporter's dict (a Tune result), by its phase; None when it has none."""
    phase = (result or {}).get(PHASE)
    if phase in (LEARN, RETRAIN):
        return Epoch.from_result(result or {})
    if phase == DONE:
        return Outcome.from_result(result or {})
    if phase == FAILED:
        return Failure.from_result(result or {})
    return None


class SearchPoint(NamedTuple):
    """A trial's place for the budget search.

    ``cost_fraction`` is the retrained structure's share of the seed's cost (a budget is met on
    it), ``final_fraction`` the final structure's (the end of the trial's path: what its strength
    did), equal to it for a trial that retrained its final structure.
    """

    cost_fraction: float | None
    accuracy: float | None
    final_fraction: float | None


def search_point(record: Record | None) -> SearchPoint:
    """A trial's place for the budget search.

    A finished trial gives its rebuilt model's cost, its accuracy and its final structure's
    cost; one stopped during structure learning the cost predicted at that epoch and no accuracy
    (a collapsed one 0); a failed one nothing.
    """
    if isinstance(record, Outcome):
        return SearchPoint(
            finite(record.cost_fraction), finite(record.accuracy), finite(record.final_fraction)
        )
    if isinstance(record, Epoch) and record.phase == LEARN:
        fraction = 0.0 if record.collapsed else record.fraction
        return SearchPoint(fraction, None, fraction)
    return SearchPoint(None, None, None)


def search_point_from_metrics(metrics: Mapping[str, float]) -> SearchPoint:
    """``search_point`` of a trial run read back from MLflow (its last logged values)."""
    outcome = Outcome.from_metrics(metrics)
    if outcome is not None:
        return search_point(outcome)
    last: dict[str, Any] = {
        name: metrics[Epoch.key(LEARN, name)]
        for name in ("collapsed", "predicted_fraction", "cost_fraction")
        if Epoch.key(LEARN, name) in metrics
    }
    if not last:
        return SearchPoint(None, None, None)
    return search_point(Epoch(phase=LEARN, epoch=0, **last))
