"""The adaptive strength search and the early-stop rule, with fake results (no Ray)."""

from __future__ import annotations

import math

import pytest

from sweep.adaptive import AIM_BELOW, BudgetSearch, Point, front_gaps, toward_budget
from sweep.config import load_sweep_config
from sweep.early_stop import DEGENERATE, DOMINATED, EarlyStopRule
from sweep.space import BASELINE, baseline_trials
from tests.sweep.scripted import retrained
from trainers.records import Epoch

SEED_COST = 1000.0


def config(**extra):
    data = {
        "name": "fake",
        "algorithms": ["gamma", "group_lasso"],
        "search": "adaptive",
        "budgets": {"flops": [0.25]},
        "max_trials": 8,
        "trial": {"dataset": "digits"},
        "baseline": {"widths": [0.5, 1.0]},
        # the search on final structures; retrain: budget (paths) has its own tests below
        "retrain": "final",
        **extra,
    }
    return load_sweep_config(data)


def cliff(midpoints, steepness=3.0, levels=200):
    """A monotone strength -> cost-fraction map with a cliff, quantized like channel counts."""

    def cost(algorithm, multiplier):
        f = 1 / (1 + (multiplier / midpoints[algorithm]) ** steepness)
        return round(f * levels) / levels

    return cost


def record(search, trial_id, cost, accuracy=lambda f: 0.5 + 0.4 * f):
    """The fake result of one trial: baselines cost width^2, collapsed runs have no accuracy; a
    trial given budgets retrains what its path (straight down to the final cost,
    ``scripted.retrained``) left nearest the first it crossed."""
    s = search.specs[trial_id]
    if s.algorithm == BASELINE:
        search.record(trial_id, s.width**2, accuracy(s.width**2))
        return
    f = cost(s.algorithm, s.multiplier)
    if f is None or not s.config.get("budgets"):
        search.record(trial_id, f, accuracy(f) if f is not None and f > 0.01 else None)
        return
    kept, _, _ = retrained(s.config, f)
    search.record(trial_id, kept, accuracy(kept) if kept > 0.01 else None, f)


def run(search, cost, accuracy=lambda f: 0.5 + 0.4 * f, limit=200, reverse=False):
    """Drive a search to the end: every pending trial gets its fake result when none is left."""
    for _ in range(limit):
        spec = search.next_suggestion()
        if spec is not None:
            continue
        if search.finished():
            return
        pending = search.pending()
        for trial_id in reversed(pending) if reverse else pending:
            record(search, trial_id, cost, accuracy)
    raise AssertionError("the search did not finish")


def make(cfg=None):
    cfg = cfg or config()
    return BudgetSearch(cfg, {"flops": SEED_COST}, baseline_trials(cfg, "flops"))


def test_toward_budget_steps_up_when_every_trial_is_too_expensive():
    points = [Point("a", 1.0, 0.9, 0.9)]
    x = toward_budget(points, 0.25)
    # one decade more strength, at most
    assert math.isclose(x, math.log(10.0))


def test_toward_budget_steps_down_when_every_trial_is_too_cheap():
    points = [Point("a", 10.0, 0.1, 0.9), Point("b", 100.0, 0.01, 0.5)]
    x = toward_budget(points, 0.25)
    assert x < math.log(10.0)
    assert x >= math.log(10.0) - math.log(10)  # no more than a decade past the last point


def test_toward_budget_secant_in_log_space_inside_the_bracket():
    # cost = m^-1 on log-log: the secant lands exactly at the budget
    points = [Point("a", 2.0, 0.5, 0.9), Point("b", 8.0, 0.125, 0.8)]
    x = toward_budget(points, 0.25)
    assert math.isclose(math.exp(x), 4.0, rel_tol=1e-9)


def test_toward_budget_bisects_next_to_a_collapsed_run():
    points = [Point("a", 2.0, 0.8, 0.9), Point("b", 8.0, 0.0, None)]
    x = toward_budget(points, 0.25)
    # a collapsed end says nothing about the slope: the midpoint in log strength
    assert math.isclose(math.exp(x), 4.0, rel_tol=1e-9)


def test_toward_budget_gives_up_on_a_bracket_too_narrow_to_split():
    points = [Point("a", 2.0, 0.3, 0.9), Point("b", 2.01, 0.2, 0.8)]
    assert toward_budget(points, 0.25) is None


def test_front_gaps_widest_first_and_only_on_the_front():
    points = [
        Point("a", 1.0, 0.9, 0.95),
        Point("b", 4.0, 0.5, 0.80),
        Point("c", 16.0, 0.05, 0.60),
        Point("d", 8.0, 0.6, 0.50),  # dominated by b: not a neighbour on the front
    ]
    gaps = front_gaps(points)
    # b-c spans 10x in cost, a-b under 2x: split b-c first, at the log-midpoint of 4 and 16
    assert math.isclose(math.exp(gaps[0]), 8.0) and math.isclose(math.exp(gaps[1]), 2.0)
    assert len(gaps) == 2


@pytest.mark.parametrize(
    "midpoints",
    [
        {"gamma": 20.0, "group_lasso": 150.0},  # budget between the initial grid points
        {"gamma": 0.05, "group_lasso": 5000.0},  # outside the grid: must extrapolate first
    ],
)
def test_search_meets_the_budget_within_max_trials(midpoints):
    search = make()
    run(search, cliff(midpoints))
    for row in search.summary():
        # every algorithm ends with a trial within 5% of the budget, in at most 8 trials
        assert row["met_by"], row
        assert row["trials_to_meet"] <= 8 and row["trials"] <= 8
        f = search.groups[f"{row['algorithm']}-flops-s0"].points[row["met_by"]].cost_fraction
        assert abs(f / 0.25 - 1) <= 0.05


def test_scarce_trials_go_to_the_budget_farthest_from_every_trial():
    # three budgets, 3 initial points + 3 adaptive ones: each adaptive trial goes toward the
    # unmet budget farthest (in log cost) from every trial so far, so the cheapest budget is not
    # starved while the ones next to the initial grid get refined
    budgets = [0.7, 0.45, 0.12]
    search = make(config(algorithms=["gamma"], budgets={"flops": budgets}, max_trials=6))
    group = search.groups["gamma-flops-s0"]
    cost = cliff({"gamma": 5.0}, steepness=2.0)  # initial grid at 99.5%, 73.5%, 2.5%
    aimed = 0
    for _ in range(20):
        spec = search.next_suggestion()
        if spec is None:
            if search.finished():
                break
            for trial_id in search.pending():
                record(search, trial_id, cost)
            continue
        if len(group.suggested) > 3 and spec.algorithm == "gamma":
            points = [p for p in group.points.values() if p.cost_fraction is not None]
            unmet = [b.fraction for b in group.budgets if not b.met_by]
            far = max(unmet, key=lambda f: min(abs(math.log(p.cost_fraction / f)) for p in points))
            step = math.exp(toward_budget(points, far))
            assert math.isclose(step, spec.multiplier, rel_tol=0.01), (far, spec.trial_id)
            aimed += 1
    assert aimed == 3
    # in the end every budget has a trial within a factor 1.6 of it
    costs = [p.cost_fraction for p in group.points.values()]
    assert all(min(abs(math.log(c / f)) for c in costs) < math.log(1.6) for f in budgets), costs


def test_absolute_budget_is_a_cost_not_a_fraction():
    search = make(config(budgets={"flops": [250.0]}))
    # 250 FLOPs of a 1000-FLOP seed is the fraction 0.25
    assert [b.fraction for b in search.groups["gamma-flops-s0"].budgets] == [0.25]


def test_baselines_first_then_the_initial_grid_then_one_adaptive_point_at_a_time():
    search = make(config(algorithms=["gamma"]))
    first = [search.next_suggestion().trial_id for _ in range(5)]
    assert first[:2] == ["baseline-flops-w0.5-s0", "baseline-flops-w1-s0"]
    # the adaptive initial grid is one point per decade around gamma's centre (3)
    assert first[2:] == ["gamma-flops-m0.3-s0", "gamma-flops-m3-s0", "gamma-flops-m30-s0"]
    # nothing more until the group's results are in
    assert search.next_suggestion() is None and not search.finished()


def test_suggestions_depend_on_results_not_on_their_order():
    cost = cliff({"gamma": 20.0, "group_lasso": 150.0})
    a, b = make(), make()
    run(a, cost)
    # b gets the same results, each batch in reverse order
    run(b, cost, reverse=True)
    assert {k: g.suggested for k, g in a.groups.items()} == {
        k: g.suggested for k, g in b.groups.items()
    }


def test_saved_state_restores_pending_trials_and_the_same_next_suggestions(tmp_path):
    cost = cliff({"gamma": 20.0, "group_lasso": 150.0})
    reference = make()
    run(reference, cost)
    # a driver that stops after 12 suggestions, with some of them pending
    first = make()
    while len(first.order) < 12:
        if first.next_suggestion() is None:
            record(first, first.pending()[0], cost)
    pending = first.pending()
    first.save(tmp_path / "state.json")
    second = make()
    second.restore(tmp_path / "state.json")
    # the pending trials come back as they were, with the same strengths
    assert second.pending() == pending
    assert all(second.specs[t] == first.specs[t] for t in pending)
    run(second, cost)
    # and the search goes on exactly as an uninterrupted one
    assert {k: g.suggested for k, g in second.groups.items()} == {
        k: g.suggested for k, g in reference.groups.items()
    }


def test_max_trials_caps_each_group():
    search = make(config(max_trials=4, budget_tolerance=0.001))
    run(search, cliff({"gamma": 20.0, "group_lasso": 150.0}))
    assert all(len(g.suggested) == 4 for g in search.groups.values())


def test_failed_trials_do_not_stall_the_search():
    cost = cliff({"gamma": 20.0, "group_lasso": 150.0})

    def failing(algorithm, multiplier):
        return None if multiplier == 3.0 else cost(algorithm, multiplier)

    search = make()
    run(search, failing)
    assert all(row["met_by"] for row in search.summary())


# ----- paths (retrain: budget) -------------------------------------------------------------------
THREE = [0.705, 0.47, 0.235]


def paths(**extra):
    return config(**{"retrain": "budget", "budgets": {"flops": THREE}, "max_trials": 5, **extra})


def met(search):
    return sum(bool(row["met_by"]) for row in search.summary())


@pytest.mark.parametrize(
    "midpoints",
    [
        {"gamma": 3.0, "group_lasso": 100.0},  # the grid's middle point near 50%
        {"gamma": 20.0, "group_lasso": 150.0},
        {"gamma": 0.5, "group_lasso": 1000.0},
    ],
)
@pytest.mark.parametrize("steepness", [3.0, 8.0])
def test_paths_meet_every_budget_in_five_trials_where_final_structures_do_not(midpoints, steepness):
    cost = cliff(midpoints, steepness=steepness)
    before, after = make(paths(retrain="final")), make(paths())
    run(before, cost)
    run(after, cost)
    # three budgets per algorithm, at most 5 trials each: every one met from the paths
    assert met(after) == 6, after.summary()
    assert met(after) >= met(before)
    for row in after.summary():
        group = after.groups[f"{row['algorithm']}-flops-s0"]
        assert row["trials"] <= 5 and row["trials_to_meet"] <= 5
        point = group.points[row["met_by"]]
        assert abs(point.cost_fraction / row["budget_fraction"] - 1) <= 0.05
        # met by the structure retrained, on a path that ended at or under it
        assert point.final_fraction <= point.cost_fraction


def test_paths_beat_final_structures_on_a_steep_cliff():
    # a cliff 8x steeper than it is wide: the final structures jump over 47% and 23.5%
    cost = cliff({"gamma": 20.0, "group_lasso": 150.0}, steepness=8.0)
    before, after = make(paths(retrain="final")), make(paths())
    run(before, cost)
    run(after, cost)
    assert met(before) < met(after) == 6


def test_the_initial_grid_pairs_its_weakest_trial_with_the_largest_budget():
    search = make(paths(algorithms=["gamma"]))
    for _ in range(5):
        search.next_suggestion()
    group = search.groups["gamma-flops-s0"]
    # multipliers 0.3, 3, 30: each first wants its own budget, then the others by nearness
    assert [group.aims[t] for t in group.suggested] == [
        [0.705, 0.47, 0.235],
        [0.47, 0.705, 0.235],
        [0.235, 0.47, 0.705],
    ]
    spec = search.specs[group.suggested[1]]
    assert spec.config["budgets"] == [0.47, 0.705, 0.235]
    assert spec.config["budget_tolerance"] == 0.05


def test_an_aimed_trial_aims_its_final_cost_under_the_budget():
    search = make(paths(algorithms=["gamma"], budgets={"flops": [0.1]}))
    group = search.groups["gamma-flops-s0"]
    cost = cliff({"gamma": 5.0}, steepness=2.0)  # the grid's finals: 99.5%, 73.5%, 2.5%
    for _ in range(10):  # the baselines and the grid, and their results
        if search.next_suggestion() is None:
            if len(group.suggested) > 3:
                break
            for trial_id in search.pending():
                record(search, trial_id, cost)
    # the strongest grid trial ended at 2.5%; its path passed 10% +- 5% between two steps
    # (1 - 0.0325 s is 0.105 at s = 27.5 and 0.095 at s = 27.8), so nothing was kept for it:
    # the search does not walk that path again but aims the secant's final cost under 10%
    strongest = group.points[group.suggested[2]]
    assert strongest.final_fraction == 0.025 and strongest.cost_fraction == 0.025
    aimed = search.specs[group.suggested[3]]
    points = [group.points[t] for t in group.suggested[:3]]
    expected = math.exp(toward_budget(points, 0.1 * AIM_BELOW))
    assert math.isclose(aimed.multiplier, expected, rel_tol=0.01)
    assert aimed.config["budgets"] == [0.1]


def test_a_restored_search_gives_each_pending_trial_its_budgets_again(tmp_path):
    cost = cliff({"gamma": 20.0, "group_lasso": 150.0})
    first = make(paths())
    while len(first.order) < 12:
        if first.next_suggestion() is None:
            record(first, first.pending()[0], cost)
    first.save(tmp_path / "state.json")
    second = make(paths())
    second.restore(tmp_path / "state.json")
    assert second.pending() == first.pending()
    assert all(second.specs[t] == first.specs[t] for t in first.order)
    assert any(second.specs[t].config.get("budgets") for t in second.pending())


def test_a_state_saved_before_paths_is_still_read(tmp_path):
    search = make(paths())
    for _ in range(8):
        search.next_suggestion()
    state = search.get_state()
    state["schema"] = 1
    for group in state["groups"].values():
        group.pop("aims")
        for point in group["points"].values():
            point.pop("final_fraction")
    again = make(paths())
    again.set_state(state)
    assert again.order == search.order and again.pending() == search.pending()


# ----- early stopping ---------------------------------------------------------------------------
def learn(epoch, fraction, term=1.0, accuracy=0.5, collapsed=0.0):
    return Epoch(
        phase="learn",
        epoch=epoch,
        predicted_fraction=fraction,
        term_fraction=term,
        val_accuracy=accuracy,
        collapsed=collapsed,
        strength=0.01,
    )


def test_a_collapse_two_epochs_in_a_row_stops_and_counts_the_epochs_saved():
    rule = EarlyStopRule()
    # one collapsed epoch may revive (a group jittering at the threshold): go on
    assert rule.check(learn(1, 0.2, collapsed=1.0), 10, 5, trial_id="t") is None
    assert rule.check(learn(2, 0.3), 10, 5, trial_id="t") is None
    assert rule.check(learn(3, 0.0), 10, 5, trial_id="t") is None
    stop = rule.check(learn(4, 0.1, collapsed=1.0), epochs=10, retrain_epochs=5, trial_id="t")
    assert stop.kind == DEGENERATE and "collapsed" in stop.reason and "lower" in stop.reason
    # 6 learn epochs left + 5 retrain epochs
    assert stop.epochs_saved == 11
    # another trial's count is its own
    assert rule.check(learn(1, 0.0), 10, 5, trial_id="u") is None


def test_an_unmoved_run_stops_only_after_the_share_of_epochs():
    rule = EarlyStopRule(after=0.5)
    assert rule.check(learn(4, 1.0), 10, 5) is None
    stop = rule.check(learn(5, 1.0), 10, 5)
    assert stop.kind == DEGENERATE and "unmoved" in stop.reason and "higher" in stop.reason


def test_a_falling_term_is_moving_even_at_full_cost():
    # Gamma's scales shrink for epochs before the first crosses the threshold
    assert EarlyStopRule().check(learn(6, 1.0, term=0.5), 10, 5) is None


def test_the_last_epoch_and_the_retrain_phase_are_never_stopped():
    rule = EarlyStopRule()
    assert rule.check(learn(10, 1.0), 10, 5) is None
    assert rule.check(Epoch(phase="retrain", epoch=1, cost_fraction=1.0), 10, 5) is None


def test_dominated_only_when_asked_and_by_the_margin():
    result = learn(6, 0.5, term=0.4, accuracy=0.80)
    plain = EarlyStopRule()
    plain.learned_result("flops", 0.4, 0.95)
    assert plain.check(result, 10, 5, "flops") is None
    rule = EarlyStopRule(dominated=True, margin=0.05)
    rule.learned_result("flops", 0.4, 0.84)  # cheaper but within the margin: not dominated
    rule.learned_result("model_size", 0.1, 0.99)  # another target never counts
    assert rule.check(result, 10, 5, "flops") is None
    rule.learned_result("flops", 0.45, 0.86)
    stop = rule.check(result, 10, 5, "flops")
    assert stop.kind == DOMINATED and "0.860" in stop.reason
