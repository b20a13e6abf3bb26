"""Pareto front, ranks, knee and picks on hand-made data with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sweep.pareto import NoTrialMeetsConstraint, ParetoResult, pareto_front, pick

NAN = float("nan")


def frame(points: list[tuple[float, float]], **extra: list[object]) -> pd.DataFrame:
    """Builds a cost/accuracy frame indexed by trial names t0, t1, ...

    Args:
        points: (cost, accuracy) pairs.
        **extra: Additional columns, one value per point.

    Returns:
        The frame.
    """
    data: dict[str, list[object]] = {
        "cost": [c for c, _ in points],
        "accuracy": [a for _, a in points],
    }
    data.update(extra)
    return pd.DataFrame(data, index=[f"t{i}" for i in range(len(points))])


def mask(result: ParetoResult) -> list[bool]:
    """Returns the pareto column as plain bools."""
    return [bool(v) for v in result.table["pareto"]]


def brute_force_ranks(cost: np.ndarray, acc: np.ndarray) -> list[int]:
    """Reference non-dominated sorting written as directly as possible from the definition."""
    n = len(cost)
    valid = [i for i in range(n) if math.isfinite(cost[i]) and math.isfinite(acc[i])]
    ranks = [-1] * n
    remaining = set(valid)
    layer = 0
    while remaining:
        layer_members = {
            j
            for j in remaining
            if not any(
                cost[i] <= cost[j] and acc[i] >= acc[j] and (cost[i] < cost[j] or acc[i] > acc[j])
                for i in remaining
            )
        }
        for j in layer_members:
            ranks[j] = layer
        remaining -= layer_members
        layer += 1
    return ranks


# --- the front -----------------------------------------------------------------------------------


def test_dominated_points_are_off_the_front() -> None:
    df = frame([(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.9), (2.5, 0.65)])
    result = pareto_front(df)
    # t2 (3, .6) and t4 (2.5, .65) are beaten by t1 (2, .7): cheaper and more accurate
    assert mask(result) == [True, True, False, True, False]
    # t2 is also beaten by t4, so it sits one layer below t4
    assert result.table["rank"].tolist() == [0, 0, 2, 0, 1]
    assert result.front().index.tolist() == ["t0", "t1", "t3"]


def test_identical_points_are_all_on_the_front() -> None:
    result = pareto_front(frame([(1, 0.5), (1, 0.5), (2, 0.4)]))
    # equal points do not dominate each other; both beat the costlier, less accurate t2
    assert mask(result) == [True, True, False]
    # only one of the duplicates is the knee
    assert result.table["knee"].sum() == 1


def test_same_cost_higher_accuracy_dominates() -> None:
    result = pareto_front(frame([(1, 0.5), (1, 0.6)]))
    # equal cost, strictly higher accuracy: t1 dominates t0
    assert mask(result) == [False, True]


def test_same_accuracy_lower_cost_dominates() -> None:
    result = pareto_front(frame([(1, 0.5), (2, 0.5)]))
    # equal accuracy, strictly lower cost: t0 dominates t1
    assert mask(result) == [True, False]


def test_single_point_is_front_and_knee() -> None:
    result = pareto_front(frame([(3, 0.8)]))
    assert mask(result) == [True]
    assert result.table["rank"].tolist() == [0]
    assert result.table["knee"].tolist() == [True]


def test_all_points_equal() -> None:
    result = pareto_front(frame([(3, 0.8)] * 4))
    # nobody is strictly better anywhere, so everybody is on the front
    assert mask(result) == [True] * 4
    assert result.table["rank"].tolist() == [0] * 4
    # exactly one knee, the first in input order
    assert result.table["knee"].tolist() == [True, False, False, False]


def test_nan_rows_are_never_on_front_and_dominate_nothing() -> None:
    # t0 and t1 would dominate everything if their missing value were read as anything
    df = frame([(0.1, NAN), (NAN, 0.99), (2, 0.5), (3, 0.4), (math.inf, 1.0)])
    result = pareto_front(df)
    # failed trials (NaN or infinite) are invalid: rank -1, never on the front
    assert mask(result) == [False, False, True, False, False]
    assert result.table["rank"].tolist() == [-1, -1, 0, 1, -1]
    assert result.table["knee"].tolist() == [False, False, True, False, False]
    assert result.valid().index.tolist() == ["t2", "t3"]


def test_all_rows_invalid() -> None:
    result = pareto_front(frame([(NAN, 0.5), (1, NAN)]))
    assert mask(result) == [False, False]
    assert result.table["rank"].tolist() == [-1, -1]
    assert not result.table["knee"].any()
    assert result.front().empty


def test_empty_frame() -> None:
    result = pareto_front(frame([]))
    assert result.table.empty
    assert list(result.table.columns) == ["cost", "accuracy", "pareto", "rank", "knee"]


def test_groups_get_separate_fronts_and_keep_input_order() -> None:
    df = frame(
        [(10, 0.5), (1, 0.6), (20, 0.8), (2, 0.55), (15, 0.4)],
        target=["flops", "latency", "flops", "latency", "flops"],
    )
    # without groups, latency's (1, .6) would beat flops' (10, .5) although costs are not comparable
    assert mask(pareto_front(df)) == [False, True, True, False, False]
    result = pareto_front(df, group="target")
    # flops: (10, .5) and (20, .8) on the front, (15, .4) beaten; latency: (1, .6) beats (2, .55)
    assert mask(result) == [True, True, True, False, False]
    assert result.table.index.tolist() == df.index.tolist()
    assert result.table["target"].tolist() == df["target"].tolist()
    assert result.table["rank"].tolist() == [0, 0, 0, 1, 1]
    # one knee per group; with two front points it is the more accurate one
    assert result.table["knee"].tolist() == [False, True, True, False, False]
    assert result.group_column == "target"


def test_groups_with_duplicate_index_labels() -> None:
    df = pd.DataFrame(
        {"cost": [1.0, 2.0, 1.0], "accuracy": [0.5, 0.4, 0.9], "target": ["a", "a", "b"]},
        index=[0, 0, 0],
    )
    result = pareto_front(df, group="target")
    assert mask(result) == [True, False, True]


def test_three_layer_ranks() -> None:
    df = frame([(1, 0.6), (2, 0.8), (3, 0.9), (2, 0.5), (3, 0.7), (3, 0.4), (4, 0.6), (NAN, 0.1)])
    result = pareto_front(df)
    # rank k = front of what is left after removing ranks < k; invalid rows get -1
    assert result.table["rank"].tolist() == [0, 0, 0, 1, 1, 2, 2, -1]
    assert result.table["rank"].dtype == np.int64
    assert result.table["pareto"].dtype == bool


def test_ranks_match_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        # few distinct values so that ties are common
        cost = rng.integers(0, 6, size=25).astype(float)
        acc = rng.integers(0, 6, size=25).astype(float)
        cost[rng.random(25) < 0.1] = NAN
        result = pareto_front(pd.DataFrame({"cost": cost, "accuracy": acc}))
        assert result.table["rank"].tolist() == brute_force_ranks(cost, acc)


def test_front_is_sorted_by_cost() -> None:
    result = pareto_front(frame([(4, 0.9), (1, 0.5), (2, 0.7)]))
    assert result.front()["cost"].tolist() == [1, 2, 4]


def test_input_is_not_modified_and_recomputing_replaces_columns() -> None:
    df = frame([(1, 0.5), (2, 0.4)])
    before = df.copy()
    result = pareto_front(df)
    pd.testing.assert_frame_equal(df, before)
    # feeding an annotated table back in must not duplicate or keep stale columns
    again = pareto_front(result.table.iloc[[1]])
    assert list(again.table.columns) == ["cost", "accuracy", "pareto", "rank", "knee"]
    assert mask(again) == [True]


def test_custom_column_names() -> None:
    df = pd.DataFrame({"flops": [1.0, 2.0], "val_acc": [0.5, 0.4]})
    result = pareto_front(df, cost="flops", accuracy="val_acc")
    assert mask(result) == [True, False]
    assert (result.cost_column, result.accuracy_column) == ("flops", "val_acc")


# --- the knee ------------------------------------------------------------------------------------


def test_knee_on_l_shaped_front() -> None:
    # steep gain from t0 to t1, then almost flat: the corner is t1
    df = frame([(1, 0.10), (2, 0.88), (10, 0.90), (5, 0.89), (6, 0.5)])
    result = pareto_front(df)
    assert mask(result) == [True, True, True, True, False]
    # knee = front point farthest from the chord between cheapest and most accurate (normalized)
    assert result.table["knee"].tolist() == [False, True, False, False, False]


def test_knee_is_scale_invariant() -> None:
    df = frame([(1, 0.10), (2, 0.88), (10, 0.90), (5, 0.89)])
    scaled = df.assign(cost=df["cost"] * 1e9, accuracy=df["accuracy"] / 100)
    # both axes are normalized over the front, so units do not move the knee
    assert pareto_front(scaled).table["knee"].tolist() == [False, True, False, False]


def test_knee_with_two_points_is_the_more_accurate() -> None:
    result = pareto_front(frame([(1, 0.5), (2, 0.9), (3, 0.1)]))
    # fewer than three front points: pick the best accuracy
    assert result.table["knee"].tolist() == [False, True, False]


def test_knee_on_straight_front_falls_back_to_best_accuracy() -> None:
    result = pareto_front(frame([(1, 0.1), (2, 0.2), (3, 0.3)]))
    # every point lies on the chord (no corner), so use the small-front rule
    assert result.table["knee"].tolist() == [False, False, True]


# --- pick ----------------------------------------------------------------------------------------


@pytest.fixture
def sweep_result() -> ParetoResult:
    """Four valid trials (two with equal accuracy) and two failed ones."""
    df = frame([(1, 0.5), (2, 0.7), (3, 0.7), (4, 0.9), (NAN, 0.99), (0.5, NAN)])
    return pareto_front(df)


def test_pick_max_cost(sweep_result: ParetoResult) -> None:
    row = pick(sweep_result, max_cost=3.5)
    # most accurate within budget; equal accuracy (t1, t2) -> the cheaper t1
    assert row.name == "t1"
    assert (row["cost"], row["accuracy"]) == (2, 0.7)
    assert bool(row["pareto"])
    # the budget is inclusive
    assert pick(sweep_result, max_cost=4).name == "t3"


def test_pick_min_accuracy() -> None:
    result = pareto_front(frame([(1, 0.5), (2, 0.6), (2, 0.65), (3, 0.9)]))
    # cheapest reaching the accuracy; equal cost (t1, t2) -> the more accurate t2
    assert pick(result, min_accuracy=0.55).name == "t2"
    # the threshold is inclusive
    assert pick(result, min_accuracy=0.9).name == "t3"


def test_pick_min_accuracy_ignores_failed_trials(sweep_result: ParetoResult) -> None:
    # t4 has accuracy 0.99 but no cost, so it cannot be picked
    assert pick(sweep_result, min_accuracy=0.8).name == "t3"


def test_pick_knee() -> None:
    result = pareto_front(frame([(1, 0.10), (2, 0.88), (10, 0.90), (5, 0.89)]))
    assert pick(result, knee=True).name == "t1"


def test_pick_max_cost_nothing_meets(sweep_result: ParetoResult) -> None:
    with pytest.raises(NoTrialMeetsConstraint) as info:
        pick(sweep_result, max_cost=0.9)
    message = str(info.value)
    assert "no trial" in message and "cost <= 0.9" in message
    # closest by the violated quantity (cost): the three cheapest valid rows, cheapest first
    assert info.value.closest.index.tolist() == ["t0", "t1", "t2"]
    assert "'t0': cost=1, accuracy=0.5" in message
    # the failed t5 (cost 0.5, no accuracy) is not offered as close
    assert "t5" not in message
    assert isinstance(info.value, ValueError)


def test_pick_min_accuracy_nothing_meets() -> None:
    result = pareto_front(frame([(1, 0.5), (2, 0.6), (2, 0.65), (3, 0.9)]))
    with pytest.raises(NoTrialMeetsConstraint, match=r"accuracy >= 0\.95") as info:
        pick(result, min_accuracy=0.95)
    # closest by the violated quantity (accuracy): the three most accurate rows
    assert info.value.closest.index.tolist() == ["t3", "t2", "t1"]
    assert "'t3': cost=3, accuracy=0.9" in str(info.value)


def test_pick_with_no_valid_rows() -> None:
    result = pareto_front(frame([(NAN, 0.5)]))
    with pytest.raises(NoTrialMeetsConstraint, match="no rows with a finite") as info:
        pick(result, max_cost=10)
    assert info.value.closest.empty
    with pytest.raises(NoTrialMeetsConstraint):
        pick(result, knee=True)


def test_pick_is_always_on_the_front() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        df = pd.DataFrame(
            {"cost": rng.integers(1, 8, 30).astype(float), "accuracy": rng.integers(0, 8, 30) / 8}
        )
        result = pareto_front(df)
        # the tie-breaks make every answer non-dominated
        assert pick(result, max_cost=float(df["cost"].max()))["pareto"]
        assert pick(result, min_accuracy=float(df["accuracy"].min()))["pareto"]
        assert pick(result, knee=True)["pareto"]


def test_pick_needs_group_value_with_several_groups() -> None:
    df = frame([(10, 0.5), (1, 0.6), (20, 0.8)], target=["flops", "latency", "flops"])
    result = pareto_front(df, group="target")
    with pytest.raises(ValueError, match="group_value") as info:
        pick(result, knee=True)
    assert "flops" in str(info.value) and "latency" in str(info.value)
    # within a group, only that group's rows are candidates
    assert pick(result, max_cost=100, group_value="latency").name == "t1"
    assert pick(result, max_cost=100, group_value="flops").name == "t2"
    with pytest.raises(NoTrialMeetsConstraint, match="target == 'latency'"):
        pick(result, min_accuracy=0.7, group_value="latency")
    with pytest.raises(ValueError, match="available values"):
        pick(result, knee=True, group_value="params")


def test_pick_single_group_needs_no_group_value() -> None:
    result = pareto_front(frame([(1, 0.5), (2, 0.6)], target=["flops", "flops"]), group="target")
    assert pick(result, knee=True).name == "t1"


def test_pick_group_value_without_groups(sweep_result: ParetoResult) -> None:
    with pytest.raises(ValueError, match="without a group"):
        pick(sweep_result, knee=True, group_value="flops")


# --- bad input -----------------------------------------------------------------------------------


def test_missing_column_names_it_and_the_available_ones() -> None:
    df = frame([(1, 0.5)])
    with pytest.raises(ValueError, match="'val_accuracy'") as info:
        pareto_front(df, accuracy="val_accuracy")
    assert "cost" in str(info.value) and "accuracy" in str(info.value)
    with pytest.raises(ValueError, match="'target' not found"):
        pareto_front(df, group="target")


def test_non_numeric_column() -> None:
    with pytest.raises(ValueError, match="'cost' must be numeric"):
        pareto_front(pd.DataFrame({"cost": ["cheap"], "accuracy": [0.5]}))


@pytest.mark.parametrize(
    "criteria",
    [{}, {"knee": False}, {"max_cost": 1, "min_accuracy": 0.5}, {"max_cost": 1, "knee": True}],
)
def test_pick_needs_exactly_one_criterion(
    sweep_result: ParetoResult, criteria: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        pick(sweep_result, **criteria)  # type: ignore[arg-type]


def test_pick_rejects_non_finite_constraint(sweep_result: ParetoResult) -> None:
    with pytest.raises(ValueError, match="finite"):
        pick(sweep_result, max_cost=NAN)


def test_budget_report_best_within_and_closest_to_each_budget():
    from sweep.pareto import budget_report

    table = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e"],
            "target": ["flops", "flops", "flops", "flops", "model_size"],
            "cost": [230.0, 200.0, 260.0, 600.0, 10.0],
            "accuracy": [0.90, 0.93, 0.97, 0.99, 0.5],
        }
    )
    report = budget_report(table, {"flops": [0.25, 100.0]}, {"flops": 1000.0})
    quarter, absolute = report.iloc[0], report.iloc[1]
    # 0.25 of 1000 = 250: b is the most accurate at or under it; c (+4%) is the closest
    assert quarter["budget_cost"] == 250.0 and quarter["best_trial"] == "b"
    assert quarter["best_distance"] == pytest.approx(200 / 250 - 1)
    assert quarter["closest_trial"] == "c"
    assert quarter["closest_distance"] == pytest.approx(0.04)
    # 100 FLOPs is absolute: nothing fits, the cheapest (b) is the closest
    assert absolute["budget_cost"] == 100.0 and pd.isna(absolute["best_trial"])
    assert absolute["closest_trial"] == "b"


@pytest.mark.parametrize("text", ["flops", "flops=", "=0.2", "flops=-1", "flops=abc", "flops=nan"])
def test_parse_budget_rejects_bad_text(text):
    from sweep.pareto import parse_budget

    with pytest.raises(ValueError, match="TARGET=VALUE"):
        parse_budget(text)


def test_parse_budget():
    from sweep.pareto import parse_budget

    assert parse_budget("flops=0.25") == ("flops", 0.25)
    assert parse_budget("model_size=2e5") == ("model_size", 2e5)
