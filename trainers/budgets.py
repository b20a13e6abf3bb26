"""Budgets along a trial's path: the exported structure nearest each budget, as the cost falls.

A MorphNet trial is not one point: the structure it would export gets cheaper as channels die,
so it passes through a whole range of costs on its way to the final one. ``BudgetPath`` watches
that path for a trial given budgets (cost fractions of the seed's, the most wanted first) and
keeps, per budget, the exported structure nearest it within the tolerance: the nearest from
below when the path has one there, else the nearest from above. The trial then retrains the
structure kept for the most wanted budget its path landed in (``chosen``) instead of its final
one.

Checking a structure's cost takes a few tens of milliseconds, so the path is not checked every
step: far from every budget, a check is due after half the steps the cost would take to reach
the nearest window at the rate it moved since the last check (at most ``MAX_INTERVAL``
steps; Gamma's cost, under Adam, can fall off a cliff in a few steps after a flat start);
inside a window, every step. Pure logic: the trial's learning phase
(``trainers.phases``) computes the costs and writes the structures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_INTERVAL = 4  # steps: the longest wait between two checks of the path


@dataclass(frozen=True)
class Candidate:
    """An exported structure kept for a budget: where on the path, its cost, its file."""

    budget: float
    step: int
    fraction: float
    file: str


@dataclass
class BudgetPath:
    """The budgets a trial may retrain at, the candidates kept for them, the path checked."""

    budgets: tuple[float, ...]
    tolerance: float
    candidates: dict[str, Candidate] = field(default_factory=dict)  # by budget, as str
    points: list[tuple[int, float]] = field(default_factory=list)  # (step, fraction) checked
    next_check: int = 0  # the step the next check is due at

    # ----- the path ------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether the structure's cost should be checked after ``step``."""
        return bool(self.budgets) and step >= self.next_check

    def within(self, budget: float, fraction: float) -> bool:
        return meets(fraction, budget, self.tolerance)

    def check(self, step: int, fraction: float) -> list[float]:
        """Record the cost at ``step``; the budgets it would be a better candidate for.

        The caller writes the structure then, and ``keep``s it for those budgets.
        """
        previous = self.points[-1] if self.points else None
        self.points.append((step, fraction))
        self.next_check = step + self._interval(fraction, previous, step)
        return [b for b in self.budgets if self._better(b, fraction)]

    def keep(self, budgets: Iterable[float], step: int, fraction: float, file: str) -> None:
        for budget in budgets:
            self.candidates[_key(budget)] = Candidate(budget, step, fraction, file)

    def forget(self, file: str) -> None:
        """Drop the candidates written to ``file`` (written over since)."""
        self.candidates = {k: c for k, c in self.candidates.items() if c.file != file}

    def _better(self, budget: float, fraction: float) -> bool:
        if fraction <= 0 or not self.within(budget, fraction):
            return False
        held = self.candidates.get(_key(budget))
        return held is None or _rank(budget, fraction) < _rank(budget, held.fraction)

    def _interval(self, fraction: float, previous: tuple[int, float] | None, step: int) -> int:
        if fraction <= 0:
            return MAX_INTERVAL
        # how far (in log cost) the nearest window is: channels revive too, so the path may
        # come back up to a budget it passed
        width = math.log(1 + self.tolerance)
        gap = min(abs(math.log(fraction / b)) for b in self.budgets) - width
        if gap <= 0:  # inside a window: every step
            return 1
        rate = 0.0  # how fast log(cost) moved per step since the last check
        if previous is not None and previous[1] > 0 and step > previous[0]:
            rate = abs(math.log(previous[1] / fraction)) / (step - previous[0])
        if rate == 0:
            return MAX_INTERVAL
        return max(1, min(MAX_INTERVAL, int(0.5 * gap / rate)))

    # ----- the choice ----------------------------------------------------------------------
    def chosen(self) -> Candidate | None:
        """The candidate of the most wanted budget (the order given) the path kept one for; None:
        retrain the final structure."""
        for budget in self.budgets:
            found = self.candidates.get(_key(budget))
            if found is not None:
                return found
        return None

    # ----- state ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetPath:
        return cls(
            budgets=tuple(float(b) for b in data["budgets"]),
            tolerance=float(data["tolerance"]),
            candidates={k: Candidate(**c) for k, c in data.get("candidates", {}).items()},
            points=[(int(s), float(f)) for s, f in data.get("points", [])],
            next_check=int(data.get("next_check", 0)),
        )

    @classmethod
    def of(cls, budgets: Iterable[float], tolerance: float, saved: Any = None) -> BudgetPath:
        """The path of a trial with these budgets: the saved one when it has the same budgets
        (a resumed trial), else a fresh one."""
        fresh = cls(tuple(float(b) for b in budgets), float(tolerance))
        if isinstance(saved, dict) and saved.get("budgets") is not None:
            restored = cls.from_dict(saved)
            if restored.budgets == fresh.budgets and restored.tolerance == fresh.tolerance:
                return restored
        return fresh


def meets(fraction: float, budget: float, tolerance: float) -> bool:
    """Whether a cost meets a budget: within the tolerance, relative (the one definition the
    trial and the adaptive search share)."""
    return abs(fraction / budget - 1) <= tolerance


def _key(budget: float) -> str:
    return repr(float(budget))


def _rank(budget: float, fraction: float) -> tuple[bool, float]:
    """Smaller is better: at or below the budget first, then nearer (in log cost)."""
    return fraction > budget, abs(math.log(fraction / budget))
