"""The adaptive search's use of trial paths (``retrain: budget``; ``adaptive.py`` uses these).

A trial given budgets retrains the structure its path left nearest the first it crossed
(``trainers.budgets``). The search pairs its initial trials with budgets (``paired``), aims at a
budget some path crossed while it retrained another by walking that path again a little stronger
(``rewalk``), and reports whether a budget was met mid-path (``mid_path``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainers.budgets import meets

from .space import fmt_multiplier

if TYPE_CHECKING:
    from .adaptive import Group, Point

# a budget some trial's path crossed while it retrained another is aimed at by re-walking the
# weakest such path, this much stronger (it crosses the budget again)
REWALK = 1.1


def rewalk(points: list[Point], fraction: float, tolerance: float, tried: set[str]) -> float | None:
    """log(multiplier) just stronger than the weakest trial whose path crossed a budget (it
    ended within or under its tolerance) while it retrained another (``points`` leaves out the
    trials that wanted this budget first: their paths jumped over it), the next weakest when
    that one was tried; None when there is none (aim by the secant instead)."""
    crossed = [
        p
        for p in points
        if p.end is not None
        and p.end <= fraction * (1 + tolerance)
        and not (p.cost_fraction and meets(p.cost_fraction, fraction, tolerance))
    ]
    for point in sorted(crossed, key=lambda p: p.multiplier):
        multiplier = point.multiplier * REWALK
        if fmt_multiplier(multiplier) not in tried:
            return math.log(multiplier)
    return None


def paired(group: Group, index: int) -> float | None:
    """The budget an initial trial prefers: the weakest (lowest multiplier) the largest budget,
    the strongest the smallest, the others spread between."""
    if not group.budgets:
        return None
    budgets = sorted((b.fraction for b in group.budgets), reverse=True)
    n = len(group.initial)
    order = sorted(range(n), key=lambda i: group.initial[i])
    rank = order.index(index)
    return budgets[round(rank * (len(budgets) - 1) / (n - 1)) if n > 1 else 0]


def mid_path(point: Point | None) -> bool | None:
    """Whether a trial retrained a structure from the middle of its path (not its final one)."""
    if point is None or point.cost_fraction is None or point.final_fraction is None:
        return None
    return not math.isclose(point.cost_fraction, point.final_fraction, rel_tol=1e-9)
