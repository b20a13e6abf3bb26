"""Pareto fronts of cost against accuracy over sweep results, with knee and constraint picks."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "NoTrialMeetsConstraint",
    "ParetoResult",
    "budget_report",
    "pareto_front",
    "parse_budget",
    "pick",
]

# Columns this module adds; recomputing on a table that already has them replaces them.
_ADDED = ("pareto", "rank", "knee")
# Distances to the chord are in normalized [0, 1] units; below this they are round-off, not shape.
_STRAIGHT = 1e-9


class NoTrialMeetsConstraint(ValueError):
    """No valid row satisfies the requested cost or accuracy constraint.

    Attributes:
        closest: Up to three valid rows nearest to meeting the constraint (by the violated
            quantity), best first. Empty when there are no valid rows at all.
    """

    def __init__(self, message: str, closest: pd.DataFrame) -> None:
        """Stores the message and the closest rows.

        Args:
            message: Human-readable explanation, already listing the closest rows.
            closest: The closest rows, best first.
        """
        super().__init__(message)
        self.closest = closest


@dataclass(frozen=True)
class ParetoResult:
    """Input rows annotated with their Pareto status.

    Attributes:
        table: The input rows, in input order, plus ``pareto`` (bool: on the front), ``rank``
            (int: non-dominated sorting layer, 0 is the front, -1 for rows with a missing or
            non-finite cost or accuracy) and ``knee`` (bool: exactly one front row per group).
        cost_column: Name of the cost column (minimized).
        accuracy_column: Name of the accuracy column (maximized).
        group_column: Column the fronts were computed within, or None for a single front.
    """

    table: pd.DataFrame
    cost_column: str
    accuracy_column: str
    group_column: str | None = None

    def front(self) -> pd.DataFrame:
        """Returns the front rows sorted by cost ascending (ties: higher accuracy first).

        Returns:
            The rows with ``pareto`` True; with groups, the fronts of all groups together.
        """
        front = self.table[self.table["pareto"]]
        # mergesort is stable, so equal points keep their input order
        return front.sort_values(
            [self.cost_column, self.accuracy_column], ascending=[True, False], kind="mergesort"
        )

    def valid(self) -> pd.DataFrame:
        """Returns the rows with a finite cost and accuracy (the trials that produced a point).

        Returns:
            The valid rows in input order.
        """
        return self.table[self.table["rank"] >= 0]


def _check_columns(df: pd.DataFrame, columns: Sequence[str | None]) -> None:
    """Raises ValueError naming the first missing column and the available ones."""
    available = [str(c) for c in df.columns]
    for column in columns:
        if column is not None and column not in df.columns:
            raise ValueError(f"column {column!r} not found; available columns: {available}")


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """Returns a column as floats (None becomes NaN); ValueError when it is not numeric."""
    try:
        values = pd.to_numeric(df[column], errors="raise")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {column!r} must be numeric: {exc}") from exc
    return np.asarray(values, dtype=float)


def _dominance(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """``out[i, j]`` is True when point i dominates point j (cost <=, accuracy >=, one strict)."""
    c_i, c_j = cost[:, None], cost[None, :]
    a_i, a_j = acc[:, None], acc[None, :]
    return (c_i <= c_j) & (a_i >= a_j) & ((c_i < c_j) | (a_i > a_j))


def _ranks(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Non-dominated sorting layers of finite points; -1 for invalid ones."""
    ranks = np.full(len(cost), -1, dtype=np.int64)
    valid = np.flatnonzero(np.isfinite(cost) & np.isfinite(acc))
    if valid.size == 0:
        return ranks
    dominates = _dominance(cost[valid], acc[valid])
    remaining = np.ones(valid.size, dtype=bool)
    layer = 0
    while remaining.any():
        # a point is in this layer when no still-unranked point dominates it
        dominated = (dominates & remaining[:, None]).any(axis=0)
        current = remaining & ~dominated
        ranks[valid[current]] = layer
        remaining &= ~current
        layer += 1
    return ranks


def _normalize(values: np.ndarray) -> np.ndarray:
    """Scales values to [0, 1]; all zeros when they are all equal."""
    span = values.max() - values.min()
    # a zero range means every front point agrees on this axis; it carries no information
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _knee_position(cost: np.ndarray, acc: np.ndarray) -> int:
    """Position (into the given front arrays) of the knee point.

    Args:
        cost: Costs of the front points, in input order.
        acc: Accuracies of the front points, in input order.

    Returns:
        Index of the point farthest from the line through the cheapest and the most accurate
        point after normalizing both axes to [0, 1]; the best-accuracy point (ties: lowest
        cost) when there are fewer than three points or no line to measure against.
    """
    # lexsort sorts by the last key first: accuracy descending, then cost ascending, then input order
    best = int(np.lexsort((np.arange(len(cost)), cost, -acc))[0])
    if len(cost) < 3:
        return best
    x, y = _normalize(cost), _normalize(acc)
    cheapest = int(np.lexsort((np.arange(len(cost)), -acc, cost))[0])
    dx, dy = x[best] - x[cheapest], y[best] - y[cheapest]
    length = math.hypot(dx, dy)
    if length == 0:
        return best
    distance = np.abs(dx * (y - y[cheapest]) - dy * (x - x[cheapest])) / length
    if distance.max() <= _STRAIGHT:
        # a straight front has no knee; fall back to the same rule as for tiny fronts
        return best
    # round-off must not decide between points that are equally far from the chord
    distance = np.where(distance >= distance.max() - _STRAIGHT, distance.max(), distance)
    # among equally distant points prefer the cheaper one, then input order, for determinism
    return int(np.lexsort((np.arange(len(cost)), cost, -distance))[0])


def _annotate(cost: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (rank, knee) arrays for one group of points."""
    ranks = _ranks(cost, acc)
    knee = np.zeros(len(cost), dtype=bool)
    front = np.flatnonzero(ranks == 0)
    if front.size:
        knee[front[_knee_position(cost[front], acc[front])]] = True
    return ranks, knee


def pareto_front(
    df: pd.DataFrame,
    cost: str = "cost",
    accuracy: str = "accuracy",
    group: str | None = None,
) -> ParetoResult:
    """Finds the rows that no other row beats on both cost (lower) and accuracy (higher).

    A row dominates another when its cost is <= and its accuracy >= with at least one strict;
    identical points therefore never dominate each other and are all on the front. Rows with a
    missing or non-finite cost or accuracy (failed trials) are never on the front, get rank -1
    and dominate nothing.

    Args:
        df: One row per trial.
        cost: Column to minimize.
        accuracy: Column to maximize.
        group: Optional column whose values get separate fronts, ranks and knees (costs of
            different targets are not comparable). Missing group values form their own group.

    Returns:
        A :class:`ParetoResult` whose table keeps the input index and order.

    Raises:
        ValueError: A column is missing, or cost/accuracy is not numeric.
    """
    _check_columns(df, [cost, accuracy, group])
    cost_values = _numeric(df, cost)
    acc_values = _numeric(df, accuracy)
    ranks = np.full(len(df), -1, dtype=np.int64)
    knee = np.zeros(len(df), dtype=bool)
    if group is None:
        ranks, knee = _annotate(cost_values, acc_values)
    else:
        # positional indices keep duplicate index labels and the input order intact
        positions = pd.Series(np.arange(len(df)))
        keys = df[group].reset_index(drop=True)
        for _, members in positions.groupby(keys, dropna=False, sort=False):
            idx = members.to_numpy()
            ranks[idx], knee[idx] = _annotate(cost_values[idx], acc_values[idx])
    table = df.drop(columns=[c for c in _ADDED if c in df.columns]).copy()
    table["pareto"] = ranks == 0
    table["rank"] = ranks
    table["knee"] = knee
    return ParetoResult(table=table, cost_column=cost, accuracy_column=accuracy, group_column=group)


def _group_rows(result: ParetoResult, group_value: Hashable | None) -> pd.DataFrame:
    """Returns the rows of ``result.table`` that ``pick`` may choose from."""
    table = result.table
    if result.group_column is None:
        if group_value is not None:
            raise ValueError("group_value given, but the front was computed without a group column")
        return table
    column = table[result.group_column]
    values = list(pd.unique(column))
    if group_value is None:
        if len(values) > 1:
            raise ValueError(
                f"the front was computed per {result.group_column!r}; pass group_value, one of "
                f"{values}"
            )
        return table
    rows = table[column == group_value]
    if rows.empty:
        raise ValueError(
            f"no rows with {result.group_column} == {group_value!r}; available values: {values}"
        )
    return rows


def _describe(rows: pd.DataFrame, cost: str, accuracy: str) -> str:
    """Formats the closest rows for a NoTrialMeetsConstraint message."""
    if rows.empty:
        return " (there are no rows with a finite cost and accuracy)"
    lines = [
        f"  {_name(label, row)}: {cost}={row[cost]:.6g}, {accuracy}={row[accuracy]:.6g}"
        for label, row in rows.iterrows()
    ]
    return f"; the {len(rows)} closest:\n" + "\n".join(lines)


def _name(label: Hashable, row: pd.Series) -> str:
    """A row as the user knows it: its trial id when the table has one."""
    trial = row.get("trial_id")
    return f"trial {trial}" if isinstance(trial, str) and trial else f"row {label!r}"


def _finite_number(name: str, value: float | None) -> float:
    """Returns ``value`` as a float; ValueError when it is NaN or infinite."""
    number = float("nan") if value is None else float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {value}")
    return number


def pick(
    result: ParetoResult,
    *,
    max_cost: float | None = None,
    min_accuracy: float | None = None,
    knee: bool = False,
    group_value: Hashable | None = None,
) -> pd.Series:
    """Picks one trial by exactly one criterion.

    Candidates are all rows with a finite cost and accuracy; the tie-breaks make the answer a
    front row.

    Args:
        result: Output of :func:`pareto_front`.
        max_cost: Return the most accurate row with cost <= max_cost (ties: lower cost).
        min_accuracy: Return the cheapest row with accuracy >= min_accuracy (ties: higher
            accuracy).
        knee: Return the knee row.
        group_value: Which group to pick from when the front was computed per group; may be
            omitted when there is only one group.

    Returns:
        The chosen row of ``result.table`` (its name is the row's index label).

    Raises:
        ValueError: Not exactly one criterion, a non-finite constraint, or a missing or unknown
            group_value.
        NoTrialMeetsConstraint: No valid row satisfies the constraint.
    """
    chosen = [max_cost is not None, min_accuracy is not None, bool(knee)]
    if sum(chosen) != 1:
        raise ValueError(
            f"pass exactly one of max_cost, min_accuracy or knee=True (got {sum(chosen)})"
        )
    cost, accuracy = result.cost_column, result.accuracy_column
    rows = _group_rows(result, group_value)
    valid = rows[rows["rank"] >= 0]
    where = "" if group_value is None else f" in {result.group_column} == {group_value!r}"

    def ordered(by: list[str], ascending: list[bool]) -> pd.DataFrame:
        # stable sort: among exact ties the earlier row wins
        return valid.sort_values(by, ascending=ascending, kind="mergesort")

    if knee:
        knees = valid[valid["knee"]]
        if knees.empty:
            raise NoTrialMeetsConstraint(
                f"no knee{where}: there are no rows with a finite {cost} and {accuracy}",
                valid.head(0),
            )
        return knees.iloc[0]
    if max_cost is not None:
        limit = _finite_number("max_cost", max_cost)
        candidates = ordered([accuracy, cost], [False, True])
        candidates = candidates[candidates[cost] <= limit]
        if candidates.empty:
            # the violated quantity is cost, so the cheapest rows are the closest
            closest = ordered([cost, accuracy], [True, False]).head(3)
            message = f"no trial{where} meets {cost} <= {limit:.6g}"
            raise NoTrialMeetsConstraint(message + _describe(closest, cost, accuracy), closest)
        return candidates.iloc[0]
    limit = _finite_number("min_accuracy", min_accuracy)
    candidates = ordered([cost, accuracy], [True, False])
    candidates = candidates[candidates[accuracy] >= limit]
    if candidates.empty:
        # the violated quantity is accuracy, so the most accurate rows are the closest
        closest = ordered([accuracy, cost], [False, True]).head(3)
        message = f"no trial{where} meets {accuracy} >= {limit:.6g}"
        raise NoTrialMeetsConstraint(message + _describe(closest, cost, accuracy), closest)
    return candidates.iloc[0]


BUDGET_COLUMNS = [
    "target",
    "budget",
    "budget_cost",
    "best_trial",
    "best_cost",
    "best_accuracy",
    "best_distance",
    "closest_trial",
    "closest_distance",
    "best_run_id",
]


def budget_report(
    table: pd.DataFrame,
    budgets: dict[str, list[float]],
    seed_costs: dict[str, float],
    *,
    cost: str = "cost",
    accuracy: str = "accuracy",
) -> pd.DataFrame:
    """Per target and budget: the most accurate trial within it, and the trial closest to it.

    A budget <= 1 is a fraction of the seed cost, else an absolute cost. Distances are relative:
    ``cost / budget - 1`` (negative: under the budget).

    Args:
        table: one row per trial with ``target``, ``trial_id``, cost and accuracy columns.
        budgets: the budgets of each target.
        seed_costs: the seed network's cost of each target.
    """
    rows = []
    for target, values in budgets.items():
        valid = table[(table["target"] == target)].dropna(subset=[cost, accuracy])
        for budget in values:
            limit = budget * seed_costs[target] if budget <= 1 else budget
            row: dict[str, object] = {"target": target, "budget": budget, "budget_cost": limit}
            within = valid[valid[cost] <= limit].sort_values(
                [accuracy, cost], ascending=[False, True], kind="mergesort"
            )
            if not within.empty:
                best = within.iloc[0]
                row |= {
                    "best_trial": best["trial_id"],
                    "best_cost": float(best[cost]),
                    "best_accuracy": float(best[accuracy]),
                    "best_distance": float(best[cost]) / limit - 1,
                    "best_run_id": best.get("run_id"),
                }
            if not valid.empty:
                distance = (valid[cost] / limit - 1).abs()
                closest = valid.loc[distance.idxmin()]
                row |= {
                    "closest_trial": closest["trial_id"],
                    "closest_distance": float(closest[cost]) / limit - 1,
                }
            rows.append(row)
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def parse_budget(text: str) -> tuple[str, float]:
    """``"flops=0.25"`` -> ("flops", 0.25); a clear error naming the bad part otherwise."""
    target, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not target or not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"--budget takes TARGET=VALUE with VALUE > 0 (a fraction of the seed cost <= 1, or "
            f"an absolute cost), e.g. --budget flops=0.25, but got {text!r}"
        )
    return target.strip(), number
