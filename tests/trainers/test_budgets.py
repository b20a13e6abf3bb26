"""Budgets along a trial's path (``trainers.budgets``): scripted cost curves, then real trials."""

from __future__ import annotations

import json
import math

import pytest

from trainers.budgets import MAX_INTERVAL, BudgetPath
from trainers.morphnet import Structure
from trainers.morphnet.keras3 import model_cost
from trainers.morphnet.keras3.backend import keras
from trainers.phases import FINAL_STRUCTURE
from trainers.reporting import RecordingReporter
from trainers.trial import run_trial

from .test_trial import CrashAfter, config


def walk(path, curve, steps):
    """Drive ``path`` as a trial's learning does: check when due, keep what it asks for."""
    checked = []
    for step in range(1, steps + 1):
        if path.due(step):
            fraction = curve(step)
            checked.append(step)
            wanted = path.check(step, fraction)
            path.keep(wanted, step, fraction, f"structure_{step}.json")
    return checked


def linear(step):
    return max(0.0, 1.0 - 0.01 * step)  # 1% of the seed's cost per step


def test_keeps_the_nearest_from_below_within_the_tolerance_for_each_budget():
    path = BudgetPath((0.5, 0.255), 0.05)
    walk(path, linear, 100)
    # the windows are [0.475, 0.525] and [0.242, 0.268]: every step is checked inside them, so
    # the structures kept are those at exactly 0.50 (step 50) and at 0.25 (step 75)
    assert path.candidates["0.5"].step == 50
    assert path.candidates["0.255"].step == 75
    assert path.candidates["0.255"].fraction == pytest.approx(0.25)
    assert path.chosen() is not None and path.chosen().budget == 0.5  # the first budget wins


def test_above_the_budget_only_when_nothing_below_is_within_tolerance():
    path = BudgetPath((0.5,), 0.05)
    for step, fraction in enumerate([0.52, 0.51, 0.46], start=1):
        path.keep(path.check(step, fraction), step, fraction, f"s{step}")
    # 0.46 is 8% under: outside; 0.51 beats 0.52 (both above, nearer)
    assert path.candidates["0.5"].fraction == 0.51
    path.keep(path.check(4, 0.49), 4, 0.49, "s4")
    assert path.candidates["0.5"].fraction == 0.49  # below beats above, even if farther
    assert path.check(5, 0.505) == []  # above never replaces below
    assert path.check(6, 0.495) == [0.5]  # a nearer one from below does


def test_checks_are_sparse_far_from_every_budget_and_dense_near_one():
    path = BudgetPath((0.5,), 0.05)
    checked = walk(path, linear, 60)
    gaps = [b - a for a, b in zip(checked, checked[1:], strict=False)]
    # from 1.0 the window is ~0.64 away in log cost at 0.01 per step: long waits first (at most
    # MAX_INTERVAL), then every step from the window's edge on
    assert max(gaps) == MAX_INTERVAL
    near = [s for s in checked if 0.47 <= linear(s) <= 0.53]
    assert near == list(range(near[0], near[-1] + 1)) and len(near) >= 5
    assert len(checked) < 45  # far fewer checks than steps
    # a flat path (Gamma's, before its cliff) is checked every MAX_INTERVAL steps
    flat = BudgetPath((0.5,), 0.05)
    assert walk(flat, lambda s: 1.0, 20) == [1, 5, 9, 13, 17]


def test_a_cliff_that_jumps_over_a_window_leaves_that_budget_to_the_next():
    def cliff(step):
        return 1.0 if step < 10 else (0.6 if step < 11 else 0.2)

    path = BudgetPath((0.4, 0.2), 0.05)
    walk(path, cliff, 20)
    assert "0.4" not in path.candidates  # 0.6 -> 0.2 in one step: nothing near 0.4
    # flat until step 10: checked at 1, 5, 9, then 13, already at 0.2
    assert path.chosen().budget == 0.2 and path.chosen().step == 13


def test_a_path_that_comes_back_up_is_followed_there():
    # channels revive: the cost falls past the budget's window, then rises through it
    curve = {
        **{s: 1.0 - 0.05 * s for s in range(1, 12)},
        **{s: 0.3 + 0.02 * (s - 11) for s in range(12, 30)},
    }
    path = BudgetPath((0.4,), 0.05)
    walk(path, curve.__getitem__, 29)
    assert path.candidates["0.4"].step == 16 and path.candidates["0.4"].fraction == pytest.approx(
        0.4
    )


def test_zero_cost_is_never_a_candidate_and_the_state_round_trips():
    path = BudgetPath((0.02,), 0.9)
    assert path.check(1, 0.0) == []
    path.keep(path.check(2, 0.01), 2, 0.01, "a.json")
    again = BudgetPath.of((0.02,), 0.9, json.loads(json.dumps(path.to_dict())))
    assert again == path
    # other budgets (a changed config): the saved path is not theirs
    assert BudgetPath.of((0.03,), 0.9, path.to_dict()).candidates == {}
    again.forget("a.json")
    assert again.chosen() is None


# ----- real trials ----------------------------------------------------------------------------
def _state(tmp_path):
    return json.loads((tmp_path / "trial" / "checkpoint" / "state.json").read_text())


# strong enough that a small plain network shrinks within a few steps, then collapses
SHRINKS = dict(multiplier=100.0, learning_rate=0.1, threshold=0.5)


def test_a_trial_retrains_the_structure_its_path_left_nearest_the_budget(tmp_path):
    # a window from 5% to 95% of the seed's cost: any path that shrinks at all crosses it
    cfg = config(tmp_path, epochs=4, budgets=[0.5], budget_tolerance=0.9, **SHRINKS)
    reporter = RecordingReporter()
    result = run_trial(cfg, reporter)
    path = BudgetPath.from_dict(_state(tmp_path)["budget_path"])
    structure = Structure.load(result.structure_path)
    final = Structure.load(tmp_path / "trial" / FINAL_STRUCTURE)
    # the final structure went under the budget; the structure retrained is the path's nearest
    # to it from below, an earlier export
    assert final.learned_cost / result.seed_cost < 0.5
    below = [(s, f) for s, f in path.points if 0.05 <= f <= 0.5]
    step, fraction = max(below, key=lambda p: (p[1], -p[0]))
    assert result.retrained_budget == 0.5 and result.retrained_step == structure.step == step
    assert structure.step < final.step
    assert result.rebuilt_cost / result.seed_cost == pytest.approx(fraction, rel=1e-9)
    model = keras.models.load_model(result.model_path)
    assert model_cost(model, "flops") == pytest.approx(result.rebuilt_cost)
    # the final structure is kept beside it, and the outcome says both
    assert result.final_cost == final.learned_cost == structure.extra["final_cost"]
    assert structure.extra["budget"] == 0.5 and structure.extra["final_step"] == final.step
    done = reporter.metrics[-1]
    assert done["retrained_step"] == step and done["final_cost"] == final.learned_cost
    assert (str(tmp_path / "trial" / FINAL_STRUCTURE), "final structure") in reporter.artifacts
    assert any(p.endswith(f"structure_{step}.json") for p, _ in reporter.artifacts)
    # it collapsed after crossing the budget: learning ended there, the rest would be wasted
    learn = [m for m in reporter.metrics if m["phase"] == "learn"]
    assert learn[-1]["collapsed"] == 1.0 and len(learn) < 4
    assert any("structure learning ended after epoch" in w for w in reporter.warnings)
    assert not any("collapsed to" in w for w in reporter.warnings)  # the retrained one did not


def test_no_budget_crossed_retrains_the_final_structure(tmp_path):
    # 1% of the seed's cost within 1%: a path that shrinks by a few channels never gets there
    cfg = config(tmp_path, multiplier=3.0, budgets=[0.01], budget_tolerance=0.01)
    result = run_trial(cfg, RecordingReporter())
    structure = Structure.load(result.structure_path)
    assert result.retrained_budget is None and structure.extra["budget"] is None
    assert result.final_cost == structure.learned_cost == result.predicted_cost
    assert not (tmp_path / "trial" / FINAL_STRUCTURE).exists()


def test_without_budgets_nothing_of_the_path_is_recorded(tmp_path):
    result = run_trial(config(tmp_path, multiplier=30.0), RecordingReporter())
    assert result.final_cost is None and result.retrained_step is None
    assert "budget_path" not in _state(tmp_path)
    assert "budget" not in Structure.load(result.structure_path).extra


def test_a_resumed_trial_keeps_its_path(tmp_path):
    cfg = config(tmp_path, epochs=3, budgets=[0.5], budget_tolerance=0.9, **SHRINKS)
    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, CrashAfter(1))  # after learn epoch 1
    saved = BudgetPath.from_dict(_state(tmp_path)["budget_path"])
    result = run_trial(cfg, RecordingReporter())
    resumed = BudgetPath.from_dict(_state(tmp_path)["budget_path"])
    # the first run's checks are still there, the second's follow them
    assert resumed.points[: len(saved.points)] == saved.points
    assert len(resumed.points) > len(saved.points)
    assert math.isclose(
        result.rebuilt_cost / result.seed_cost,
        resumed.candidates["0.5"].fraction,
        rel_tol=1e-9,
    )
