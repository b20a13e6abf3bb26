"""What the figures show, computed (sweep/charts.py): every expected value worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sweep.charts import TrialHistory, curve_panels, front_chart, widths
from sweep.pareto import pareto_front
from trainers.records import Epoch


def rows():
    return pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e", "f"],
            "algorithm": ["gamma", "gamma", "gamma", "baseline", "baseline", "group_lasso"],
            "cost": [1e5, 5e5, 3e5, 2e6, 2e5, float("nan")],
            "accuracy": [0.8, 0.9, 0.7, 0.95, 0.75, 0.99],
            "url": ["http://m/a", "javascript:x", "", "http://m/d", "http://m/e", "http://m/f"],
        }
    )


def test_a_front_chart_orders_series_and_marks_the_front():
    chart = front_chart(pareto_front(rows()), link_column="url", hover_columns=("trial_id",))
    # the baseline last; the trial without a cost is no point
    assert [s.label for s in chart.series] == ["gamma", "baseline"]
    gamma, baseline = chart.series
    assert [p.trial for p in gamma.points] == ["a", "b", "c"]
    # gamma's own front: a (1e5, 0.8) and b (5e5, 0.9); c is beaten by a
    assert gamma.fronts == (((1e5, 5e5), (0.8, 0.9)),)
    # the baseline is a curve in cost order, no front line of its own
    assert [p.trial for p in baseline.points] == ["e", "d"] and baseline.fronts == ()
    # the sweep's front: a, b, d (e at 2e5 / 0.75 is beaten by a)
    assert sorted(p.trial for p in chart.front) == ["a", "b", "d"]
    # costs 1e5 to 2e6 span more than a decade
    assert chart.log_x
    # links that could run script are dropped; the hover names the series, trial, cost, accuracy
    assert {p.trial: p.link for p in gamma.points} == {"a": "http://m/a", "b": "", "c": ""}
    assert gamma.points[0].hover == (
        "algorithm: gamma",
        "trial_id: a",
        "cost: 100000",
        "accuracy: 0.8",
        "rank: 0 (Pareto front)",
    )
    # the table: the front cheapest first
    assert [cells[0] for cells, _ in chart.rows] == ["gamma", "gamma", "baseline"]
    assert chart.caption == "Pareto front (3 trials), cheapest first"


def test_a_front_chart_names_a_missing_column():
    with pytest.raises(ValueError, match="'method' not found"):
        front_chart(pareto_front(rows()), series="method")


def test_curve_panels_keep_finite_points_in_epoch_order():
    history = TrialHistory("t", {"learn/cost": [(2, 50.0), (1, 1000.0), (3, math.nan)]})
    (cost, accuracy) = curve_panels([history], (("learn/cost", "c"), ("learn/val_accuracy", "a")))
    assert cost.lines[0].xs == (1.0, 2.0) and cost.lines[0].ys == (1000.0, 50.0)
    # 1000 to 50 is more than a decade: a log axis; a panel without data has no line
    assert cost.log and accuracy.lines == ()
    assert cost.lines[0].hover == ("trial: t", "learn/cost at epoch 2: 50")


def test_a_history_from_epoch_records():
    epochs = [
        Epoch(phase="learn", epoch=1, cost=10.0, val_accuracy=0.5),
        Epoch(phase="retrain", epoch=1, val_accuracy=0.7),
    ]
    history = TrialHistory.of_epochs("t", epochs, ["learn/cost", "retrain/val_accuracy"])
    assert history.metrics == {"learn/cost": [(1.0, 10.0)], "retrain/val_accuracy": [(1.0, 0.7)]}


def test_widths_of_a_structure():
    structure = {
        "layers": {"conv": {"alive": 3, "original": 12, "class": "Conv2D"}},
        "cost": {"name": "FLOPs", "seed": 1e6, "learned": 2.5e5},
    }
    shown = widths(structure)
    assert [(layer.name, layer.alive, layer.original) for layer in shown.layers] == [
        ("conv", 3, 12)
    ]
    assert shown.layers[0].hover == "conv (Conv2D): 3 of 12 channels (25%)"
    assert shown.cost == "FLOPs: seed 1e6 \u2192 learned 250000 (25.0% of the seed)"
    with pytest.raises(ValueError, match="integer 'alive'"):
        widths({"layers": {"conv": {"alive": "x"}}})
