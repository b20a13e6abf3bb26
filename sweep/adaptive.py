"""Budget-driven strength search: where to put the next trial, from the results so far.

Pure logic, no Ray: ``BudgetSearch`` holds every suggestion made and every result received, and
``next_suggestion()`` says what to run next. The Ray Tune ``Searcher`` in ``tune_search.py`` only
translates Tune's calls into these.

Per (algorithm, target, seed) *group* the search works on x = log(multiplier) and
y = log(cost fraction) of each trial's final structure, the map MorphNet makes monotone
(decreasing) in practice. A trial's structure gets cheaper as it learns, so its path crosses every
cost between the seed's and its final one; with ``retrain: budget`` a trial is given
budgets, and retrains the structure its path left nearest the first it crossed
(``trainers.budgets``): a budget is met when any trial retrained a structure within tolerance of
it, and an aimed trial aims its final cost ``AIM_BELOW`` under the budget, so that its path
crosses it. With ``retrain: final`` every trial retrains its final structure and aims at the
budget itself.


1. a small initial log grid around the algorithm's centre (multiplier / seed cost), its weakest
   trial given the largest budget first, its strongest the smallest;
2. toward one budget at a time, the unmet one farthest (in log cost) from every trial so far, so
   that when trials are scarce each budget gets its first aimed trial before any gets a second:
   secant between the points bracketing it (clamped inside the bracket; bisection when an end is
   more than 4x off the budget), or a step of at most ``MAX_STEP`` decades past the last point
   while it is not bracketed; a budget is *met* when a trial's cost is within ``tolerance``
   (relative) of it; with paths, a budget a trial's path crossed while it retrained another is
   aimed at by the weakest such strength, ``REWALK`` stronger, first;
3. once every budget is met (or cannot be refined further), the widest gap, in log cost, between
   neighbours on the group's cost-accuracy front.

A group proposes one adaptive point at a time and only when none of its trials is pending, so its
suggestions depend on its results alone, not on the order trials finish in: a restarted driver
that restores the state (or reads the same results back) makes the same suggestions.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers.budgets import meets

from .paths import mid_path, paired, rewalk
from .space import BASELINE, TrialSpec, fmt_multiplier, strength_trial

MAX_STEP = 1.0  # decades: the farthest an unbracketed step goes past the last point
MIN_STEP = 0.25  # decades: the shortest
MIN_WIDTH = math.log(1.02)  # a bracket narrower than 2% in multiplier cannot be refined
SECANT_RANGE = math.log(4)  # the secant is used when both ends are within 4x of the budget
FLOOR = 1e-4  # cost fraction standing for a collapsed (zero-cost) network on the log scale
# retrain: budget: an aimed trial's final cost, as a share of the budget it is aimed at (its path
# crosses the budget on the way there, a secant's error of 20% either way included)
AIM_BELOW = 0.8

SCHEMA = 2  # 1: before paths (no final fractions, no budgets per trial); still read


@dataclass
class Point:
    """One finished trial of a group, as the search sees it."""

    trial_id: str
    multiplier: float
    cost_fraction: float | None  # retrained; None: the trial failed before reporting a cost
    accuracy: float | None  # retrained accuracy; None when the trial was stopped early
    final_fraction: float | None = None  # the final structure's: the end of the trial's path

    @property
    def end(self) -> float | None:
        """Where the trial's path ended: what its strength did."""
        return self.final_fraction if self.final_fraction is not None else self.cost_fraction


@dataclass
class BudgetStatus:
    """Progress of one group toward one budget (a cost fraction of the seed's)."""

    fraction: float
    met_by: str | None = None  # the first trial within tolerance
    trials_to_meet: int | None = None  # how many of the group's trials it took
    stalled: bool = False  # the bracket became too narrow to refine


@dataclass
class Group:
    """The search of one (algorithm, target, seed)."""

    algorithm: str
    target: str
    seed: int
    initial: list[float]
    budgets: list[BudgetStatus]
    suggested: list[str] = field(default_factory=list)  # trial ids, in order
    multipliers: dict[str, float] = field(default_factory=dict)  # of each suggested trial
    aims: dict[str, list[float]] = field(default_factory=dict)  # each trial's budgets, in order
    points: dict[str, Point] = field(default_factory=dict)
    done: bool = False

    @property
    def key(self) -> str:
        return f"{self.algorithm}-{self.target}-s{self.seed}"

    def pending(self) -> list[str]:
        return [t for t in self.suggested if t not in self.points]


def _log_fraction(point: Point) -> float:
    """log of where the trial's path ended (its final structure's cost)."""
    assert point.end is not None
    return math.log(max(point.end, FLOOR))


def _log_cost(point: Point) -> float:
    """log of the retrained structure's cost."""
    assert point.cost_fraction is not None
    return math.log(max(point.cost_fraction, FLOOR))


def next_multiplier(
    group: Group, tolerance: float, aim: float = 1.0
) -> tuple[float, float | None] | None:
    """The multiplier a group should try next and the budget it is aimed at (None: a front gap),
    or None when it has nothing left to try. ``aim`` < 1: paths count (``AIM_BELOW``)."""
    points = [p for p in group.points.values() if p.end is not None]
    if not points:
        return None
    tried = {fmt_multiplier(p.multiplier) for p in group.points.values()}
    for budget in group.budgets:
        _mark_met(group, budget, tolerance)
    open_budgets = [b for b in group.budgets if not (b.met_by or b.stalled)]
    paths = aim < 1
    for budget in sorted(
        open_budgets, key=lambda b: -_distance(points, b.fraction, tolerance, paths)
    ):
        x = None
        if paths:
            failed = {t for t, aims in group.aims.items() if aims[:1] == [budget.fraction]}
            others = [p for p in points if p.trial_id not in failed]
            x = rewalk(others, budget.fraction, tolerance, tried)
        if x is None:
            x = toward_budget(points, budget.fraction * aim)
        if x is None or fmt_multiplier(math.exp(x)) in tried:
            budget.stalled = True
            continue
        return math.exp(x), budget.fraction
    for x in front_gaps([p for p in points if p.cost_fraction is not None]):
        if fmt_multiplier(math.exp(x)) not in tried:
            return math.exp(x), None
    return None


def _distance(points: list[Point], fraction: float, tolerance: float, paths: bool) -> float:
    """How far, in log cost, the nearest trial is from a budget (sorted() keeps ties in order).

    With ``paths``, a trial whose path crossed the budget (it ended at or under it) is at
    distance 0: any trial aimed under it will cross it again.
    """
    target = math.log(fraction)
    if paths:
        top = math.log(fraction * (1 + tolerance))
        return min(max(0.0, _log_fraction(p) - top) for p in points)
    return min(abs(_log_fraction(p) - target) for p in points)


def _mark_met(group: Group, budget: BudgetStatus, tolerance: float) -> None:
    if budget.met_by:
        return
    for trial_id in group.suggested:
        point = group.points.get(trial_id)
        if point and point.cost_fraction is not None:
            if meets(point.cost_fraction, budget.fraction, tolerance):
                budget.met_by = trial_id
                budget.trials_to_meet = group.suggested.index(trial_id) + 1
                return


def toward_budget(points: list[Point], fraction: float) -> float | None:
    """log(multiplier) of the next trial toward ``fraction`` (cost falls as strength grows)."""
    target = math.log(fraction)
    xs = sorted(points, key=lambda p: p.multiplier)
    above = [p for p in xs if _log_fraction(p) > target]  # too expensive: need more strength
    below = [p for p in xs if _log_fraction(p) <= target]
    if above and below:
        lo = max(above, key=lambda p: p.multiplier)  # the strongest still above the budget
        hi = min(below, key=lambda p: p.multiplier)  # the weakest already below it
        x0, x1 = math.log(lo.multiplier), math.log(hi.multiplier)
        y0, y1 = _log_fraction(lo), _log_fraction(hi)
        left, right = min(x0, x1), max(x0, x1)
        if right - left < MIN_WIDTH:
            return None
        if max(abs(y0 - target), abs(y1 - target)) > SECANT_RANGE or y1 == y0:
            # an end far from the budget (a collapsed run, the cliff Gamma's cost falls off
            # under Adam): the line through it says little about the middle, so bisect
            return (x0 + x1) / 2
        x = x0 + (target - y0) * (x1 - x0) / (y1 - y0)
        # safeguarded secant: stay well inside the bracket (a flat or noisy map falls back
        # toward bisection instead of re-trying an end point)
        margin = 0.15 * (right - left)
        return min(max(x, left + margin), right - margin)
    ten = math.log(10)
    if above:  # every trial is too expensive: step up in strength
        ordered, direction = xs[::-1], 1.0
    else:  # every trial is below the budget: step down
        ordered, direction = xs, -1.0
    edge = ordered[0]
    step = MAX_STEP * ten
    if len(ordered) >= 2:
        other = ordered[1]
        dx = math.log(edge.multiplier) - math.log(other.multiplier)
        dy = _log_fraction(edge) - _log_fraction(other)
        if dx and dy / dx < 0:  # a usable (decreasing) slope: extrapolate along it
            step = abs((target - _log_fraction(edge)) * dx / dy)
    step = min(max(step, MIN_STEP * ten), MAX_STEP * ten)
    return math.log(edge.multiplier) + direction * step


def front_gaps(points: list[Point]) -> list[float]:
    """Midpoints (log multiplier) of the group's front neighbours, widest cost gap first."""
    scored = [p for p in points if p.accuracy is not None and p.cost_fraction is not None]
    # the multiplier breaks exact ties: the front does not depend on the order results came in
    scored.sort(key=lambda p: (p.cost_fraction or 0.0, -(p.accuracy or 0.0), p.multiplier))
    front: list[Point] = []
    for p in scored:  # by rising cost, a point is on the front when it beats every cheaper one
        if not front or (p.accuracy or 0.0) > (front[-1].accuracy or 0.0):
            front.append(p)
    gaps = []
    for a, b in zip(front, front[1:], strict=False):
        width = _log_cost(b) - _log_cost(a)
        middle = (math.log(a.multiplier) + math.log(b.multiplier)) / 2
        gaps.append((width, middle))
    return [x for _, x in sorted(gaps, key=lambda g: (-g[0], g[1]))]


class BudgetSearch:
    """Every group's search, plus the fixed trials (baselines) run first.

    Args:
        config: the sweep config (algorithms, targets, seeds, budgets, max_trials, tolerance).
        costs: the seed cost of each target.
        fixed: trials to run as they are (the uniform-width baselines).
    """

    def __init__(self, config: Any, costs: dict[str, float], fixed: list[TrialSpec]) -> None:
        self.config = config
        self.costs = costs
        self.fixed = list(fixed)
        self.fixed_done: set[str] = set()
        self.groups: dict[str, Group] = {}
        for target in config.targets:
            fractions = [b / costs[target] for b in config.budget_costs(target, costs[target])]
            for algorithm in config.algorithms:
                for seed in config.seeds:
                    group = Group(
                        algorithm,
                        target,
                        seed,
                        config.strengths.multipliers(algorithm),
                        [BudgetStatus(f) for f in fractions],
                    )
                    self.groups[group.key] = group
        self.specs: dict[str, TrialSpec] = {s.trial_id: s for s in self.fixed}
        self.order: list[str] = []  # every suggestion, in the order made

    # ----- suggestions --------------------------------------------------------------------
    def next_suggestion(self) -> TrialSpec | None:
        """The next trial to run, or None when nothing can be suggested until a result arrives."""
        for spec in self.fixed:
            if spec.trial_id not in self.order:
                return self._suggest(spec)
        for group in self.groups.values():
            found = self._from_group(group)
            if found is not None:
                return found
        return None

    def finished(self) -> bool:
        """Nothing is pending and no group has anything left to try (after a None suggestion)."""
        fixed = all(s.trial_id in self.order for s in self.fixed)
        return fixed and not self.pending() and all(g.done for g in self.groups.values())

    @property
    def paths(self) -> bool:
        """Whether trials retrain from their paths (``retrain: budget``)."""
        return bool(self.config.retrain == "budget")

    def _from_group(self, group: Group) -> TrialSpec | None:
        if group.done:
            return None
        for index, multiplier in enumerate(group.initial):
            trial_id = self._spec(group, multiplier).trial_id
            if trial_id not in group.suggested:
                budgets = self._budgets(group, paired(group, index))
                return self._suggest(self._spec(group, multiplier, budgets), group)
        if group.pending():
            return None
        if len(group.suggested) >= self.config.max_trials:
            group.done = True
            return None
        aim = AIM_BELOW if self.paths else 1.0
        proposed = next_multiplier(group, self.config.budget_tolerance, aim)
        if proposed is None:
            group.done = True
            return None
        # the id spells 3 significant digits: the multiplier is exactly what the id says
        multiplier = float(fmt_multiplier(proposed[0]))
        budgets = self._budgets(group, proposed[1])
        return self._suggest(self._spec(group, multiplier, budgets), group)

    def _budgets(self, group: Group, first: float | None) -> tuple[float, ...]:
        """What a trial may retrain at: ``first``, then the other unmet budgets by nearness to
        it (none for a trial aimed at no budget, or with ``retrain: final``)."""
        if not self.paths or first is None:
            return ()
        unmet = [b.fraction for b in group.budgets if not b.met_by and b.fraction != first]
        unmet.sort(key=lambda f: (abs(math.log(f / first)), f))
        return tuple(f for f in [first, *unmet] if f <= 1)

    def _spec(self, group: Group, multiplier: float, budgets: tuple[float, ...] = ()) -> TrialSpec:
        return strength_trial(
            self.config, group.algorithm, group.target, group.seed, multiplier, self.costs, budgets
        )

    def _suggest(self, spec: TrialSpec, group: Group | None = None) -> TrialSpec:
        self.specs[spec.trial_id] = spec
        self.order.append(spec.trial_id)
        if group is not None:
            group.suggested.append(spec.trial_id)
            group.multipliers[spec.trial_id] = float(spec.multiplier or 0.0)
            group.aims[spec.trial_id] = list(spec.config.get("budgets", []))
        return spec

    # ----- results ------------------------------------------------------------------------
    def record(
        self,
        trial_id: str,
        cost_fraction: float | None,
        accuracy: float | None,
        final_fraction: float | None = None,
    ) -> None:
        """A trial ended: its (rebuilt, else last predicted) cost fraction, its accuracy and its
        final structure's cost fraction (``records.SearchPoint``)."""
        spec = self.specs.get(trial_id)
        if spec is None:
            return
        if spec.algorithm == BASELINE:
            self.fixed_done.add(trial_id)
            return
        group = self.group_of(spec)
        group.points[trial_id] = Point(
            trial_id, float(spec.multiplier or 0.0), cost_fraction, accuracy, final_fraction
        )
        for budget in group.budgets:
            _mark_met(group, budget, self.config.budget_tolerance)

    def group_of(self, spec: TrialSpec) -> Group:
        """The group a MorphNet trial belongs to."""
        return self.groups[f"{spec.algorithm}-{spec.target}-s{spec.seed}"]

    def known(self, trial_id: str) -> bool:
        return trial_id in self.fixed_done or any(
            trial_id in g.points for g in self.groups.values()
        )

    def pending(self) -> list[str]:
        """Suggested trials with no result yet (re-run first after a restart)."""
        done = self.fixed_done | {t for g in self.groups.values() for t in g.points}
        return [t for t in self.order if t not in done]

    # ----- state --------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "order": list(self.order),
            "fixed_done": sorted(self.fixed_done),
            "groups": {k: asdict(g) for k, g in self.groups.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("schema") not in (1, SCHEMA):
            raise ValueError(
                f"adaptive search state has schema {state.get('schema')!r}, not {SCHEMA}"
            )
        self.order = list(state["order"])
        self.fixed_done = set(state["fixed_done"])
        for key, saved in state["groups"].items():
            group = self.groups.get(key)
            if group is None:
                continue  # the config no longer has that algorithm / target / seed
            group.suggested = list(saved["suggested"])
            group.multipliers = {t: float(m) for t, m in saved["multipliers"].items()}
            group.points = {t: Point(**p) for t, p in saved["points"].items()}
            group.aims = {t: list(b) for t, b in saved.get("aims", {}).items()}
            # budgets come from the config; met / stalled / done are worked out again from the
            # points, the same way, so a changed budget or max_trials takes effect on resume
            for trial_id in group.suggested:
                budgets = tuple(group.aims.get(trial_id, ()))
                self.specs[trial_id] = self._spec(group, group.multipliers[trial_id], budgets)

    def save(self, path: str | Path) -> None:
        """Write the state as JSON, atomically (a killed driver leaves the old file whole)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.get_state(), indent=1))
        tmp.replace(path)

    def restore(self, path: str | Path) -> None:
        self.set_state(json.loads(Path(path).read_text()))

    # ----- report -------------------------------------------------------------------------
    def summary(self) -> list[dict[str, Any]]:
        """Per group and budget: the trial that met it, how many trials it took, or why not."""
        rows = []
        for group in self.groups.values():
            for budget in group.budgets:
                rows.append(
                    {
                        "algorithm": group.algorithm,
                        "target": group.target,
                        "seed": group.seed,
                        "budget_fraction": budget.fraction,
                        "met_by": budget.met_by,
                        "trials_to_meet": budget.trials_to_meet,
                        "mid_path": mid_path(group.points.get(budget.met_by or "")),
                        "trials": len(group.suggested),
                        "stalled": budget.stalled,
                    }
                )
        return rows
