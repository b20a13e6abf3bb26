"""Hopeless trials stopped early, for real: a local Ray, MLflow on loopback, tiny Keras trials."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from sweep.cli import main
from sweep.store import TAG_ROLE, TAG_STOPPED, TAG_STOPPED_REASON, TAG_TRIAL
from tests.sweep.test_adaptive_e2e import children, write_config

pytestmark = pytest.mark.slow


def test_hopeless_trials_are_stopped_early_and_tagged(mlflow_server, tmp_path):
    learn = 3  # a collapse stops a trial after 2 collapsed learn epochs in a row, before the last
    path = write_config(
        tmp_path,
        "hopeless",
        mlflow_server,
        trial={
            "model": "zoo:plain",  # no skip path: too strong a GroupLasso leaves nothing
            "model_width": 4,
            "dataset": "digits",
            "epochs": learn,
            "retrain_epochs": 1,
            "batch_size": 16,
            "export_every_steps": 10,
        },
        search="grid",
        budgets={},
        # GroupLasso far too strong (collapses), Gamma far too weak (nothing moves)
        strengths={
            "decades_below": 0,
            "decades_above": 0,
            "center": {"group_lasso": 1e5, "gamma": 1e-4},
        },
        baseline={"widths": []},
        early_stop="degenerate",
    )
    assert main(["run", str(path), "--verbose", "0"]) == 0
    client = MlflowClient(mlflow_server)
    runs = {r.data.tags[TAG_TRIAL]: r for r in children(mlflow_server, "hopeless")}
    collapsed, unmoved = runs["group_lasso-flops-m1e05-s0"], runs["gamma-flops-m0.0001-s0"]
    for run, word in ((collapsed, "collapsed"), (unmoved, "unmoved")):
        assert run.info.status == "KILLED"
        assert run.data.tags[TAG_STOPPED] == "degenerate"
        assert word in run.data.tags[TAG_STOPPED_REASON]
        learned = [m.step for m in client.get_metric_history(run.info.run_id, "learn/cost")]
        # stopped during structure learning, before its last epoch, never retrained
        assert learned and max(learned) < learn
        assert not client.get_metric_history(run.info.run_id, "retrain/accuracy")
        assert run.data.metrics["epochs_saved"] == learn - max(learned) + 1
    parent = [
        r
        for r in client.search_runs([collapsed.info.experiment_id])
        if r.data.tags.get(TAG_ROLE) == "parent"
    ][0]
    assert parent.data.metrics["early_stop/trials_stopped"] == 2
    assert parent.data.metrics["early_stop/epochs_saved"] == sum(
        r.data.metrics["epochs_saved"] for r in (collapsed, unmoved)
    )
    # a stopped trial is not run again when the sweep is
    assert main(["run", str(path), "--verbose", "0"]) == 0
    again = {r.data.tags[TAG_TRIAL]: r for r in children(mlflow_server, "hopeless")}
    assert again["gamma-flops-m0.0001-s0"].info.end_time == unmoved.info.end_time
