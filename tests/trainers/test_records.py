"""The records a trial reports (trainers/records.py): names, round trips, the search's reading.

Every expected name and number here is written out by hand, not derived from the module.
"""

from __future__ import annotations

import math

import pytest

from trainers.records import (
    Epoch,
    Failure,
    Outcome,
    parse,
    search_point,
    search_point_from_metrics,
)

LEARN_RESULT = {
    "phase": "learn",
    "epoch": 3,
    "step": 24,
    "task_loss": 0.5,
    "regularization_loss": 0.25,
    "loss": 0.75,
    "accuracy": 0.8,
    "val_accuracy": 0.7,
    "val_loss": 0.9,
    "cost": 1200.0,
    "cost_name": "FLOPs",
    "cost_fraction": 0.6,
    "alive_fraction": 0.5,
    "strength": 1e-4,
    "predicted_cost": 1000.0,
    "predicted_fraction": 0.5,
    "collapsed": 0.0,
    "term_fraction": 0.4,
    "alive/conv1": 0.25,
    "alive/dense": 1.0,
}


def test_an_epoch_round_trips_through_a_report_and_ignores_tunes_keys():
    tune_result = {**LEARN_RESULT, "time_this_iter_s": 1.5, "pid": 42, "node_id": "abc"}
    epoch = Epoch.from_result(tune_result)
    assert epoch.alive == {"conv1": 0.25, "dense": 1.0}
    assert epoch.to_result() == LEARN_RESULT
    assert isinstance(parse(tune_result), Epoch)


def test_an_epochs_mlflow_names_are_phase_slash_field_and_alive_per_layer():
    metrics = Epoch.from_result(LEARN_RESULT).metrics()
    assert metrics == {
        "learn/step": 24.0,
        "learn/task_loss": 0.5,
        "learn/regularization_loss": 0.25,
        "learn/loss": 0.75,
        "learn/accuracy": 0.8,
        "learn/val_accuracy": 0.7,
        "learn/val_loss": 0.9,
        "learn/cost": 1200.0,
        "learn/cost_fraction": 0.6,
        "learn/alive_fraction": 0.5,
        "learn/strength": 1e-4,
        "learn/predicted_cost": 1000.0,
        "learn/predicted_fraction": 0.5,
        "learn/collapsed": 0.0,
        "learn/term_fraction": 0.4,
        "alive/conv1": 0.25,
        "alive/dense": 1.0,
    }
    retrain = Epoch(phase="retrain", epoch=1, step=5, loss=0.3, val_accuracy=float("nan"))
    # a NaN is not logged; the epoch itself is MLflow's step, not a metric
    assert retrain.metrics() == {"retrain/step": 5.0, "retrain/loss": 0.3}


def test_an_outcome_gives_its_fields_and_mlflows_comparison_names():
    outcome = Outcome(
        seed_cost=2000.0,
        predicted_cost=500.0,
        rebuilt_cost=500.0,
        retrained_val_accuracy=0.9,
        strength=2e-3,
        learned_val_accuracy=None,
        train_seconds=10.0,
        trial_seconds=12.0,
    )
    assert outcome.cost == 500.0 and outcome.accuracy == 0.9
    assert outcome.cost_fraction == 0.25  # 500 / 2000
    assert outcome.metrics("flops") == {
        "seed_cost": 2000.0,
        "predicted_cost": 500.0,
        "rebuilt_cost": 500.0,
        "retrained_val_accuracy": 0.9,
        "strength": 2e-3,
        "train_seconds": 10.0,
        "trial_seconds": 12.0,
        "cost_fraction": 0.25,
        "cost/flops": 500.0,
        "cost_fraction/flops": 0.25,
        "accuracy": 0.9,
    }
    result = outcome.to_result()
    assert result["phase"] == "done"
    assert parse({**result, "pid": 7}) == outcome
    # read back from a run's metrics; a run without the accuracy did not finish
    assert Outcome.from_metrics(outcome.metrics("flops")) == outcome
    assert Outcome.from_metrics({"seed_cost": 1.0, "rebuilt_cost": 1.0}) is None


def test_a_failure_keeps_its_reason():
    failure = parse({"phase": "failed", "failure_reason": "loss became nan"})
    assert failure == Failure("loss became nan")
    assert failure.to_result() == {"phase": "failed", "failure_reason": "loss became nan"}
    assert parse({"training_iteration": 1}) is None
    assert parse(None) is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # finished: the rebuilt model's share of the seed cost, and its accuracy
        (
            Outcome(
                seed_cost=4.0, predicted_cost=1.0, rebuilt_cost=1.0, retrained_val_accuracy=0.8
            ),
            (0.25, 0.8, 0.25),
        ),
        # retrained from its path: the retrained structure's cost, and where the path ended
        (
            Outcome(
                seed_cost=4.0,
                predicted_cost=1.0,
                rebuilt_cost=1.0,
                retrained_val_accuracy=0.8,
                final_cost=0.5,
                retrained_step=7,
                retrained_budget=0.25,
            ),
            (0.25, 0.8, 0.125),
        ),
        # stopped while learning: the structure's predicted share, no accuracy
        (
            Epoch(phase="learn", epoch=2, predicted_fraction=0.4, cost_fraction=0.7),
            (0.4, None, 0.4),
        ),
        # without a prediction, the regularizer's cost share
        (Epoch(phase="learn", epoch=2, cost_fraction=0.7), (0.7, None, 0.7)),
        # cut: nothing of the network is left, whatever the count says
        (Epoch(phase="learn", epoch=2, predicted_fraction=0.3, collapsed=1.0), (0.0, None, 0.0)),
        (Epoch(phase="retrain", epoch=1, val_accuracy=0.5), (None, None, None)),
        (Failure("x"), (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_search_point(record, expected):
    assert search_point(record) == expected


def test_search_point_from_a_runs_metrics():
    finished = {"seed_cost": 10.0, "predicted_cost": 5.0, "rebuilt_cost": 5.0}
    assert search_point_from_metrics({**finished, "retrained_val_accuracy": 0.6}) == (0.5, 0.6, 0.5)
    assert search_point_from_metrics({"learn/predicted_fraction": 0.3}) == (0.3, None, 0.3)
    assert search_point_from_metrics({"learn/predicted_fraction": 0.3, "learn/collapsed": 1.0}) == (
        0.0,
        None,
        0.0,
    )
    assert search_point_from_metrics({}) == (None, None, None)
    nan = Outcome(seed_cost=0.0, predicted_cost=0.0, rebuilt_cost=0.0, retrained_val_accuracy=0.1)
    assert math.isnan(nan.cost_fraction) and search_point(nan) == (None, 0.1, None)
