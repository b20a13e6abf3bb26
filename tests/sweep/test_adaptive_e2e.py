"""Budget-driven sweeps for real: local Ray, an MLflow server on loopback, real Keras trials.

These tests check mechanisms, on tiny trials: an adaptive sweep killed (SIGKILL of the driver)
midway and run again leaves one run per suggestion and makes the suggestions an uninterrupted
search would (the same sweep run twice: test_adaptive_twice.py; hopeless trials stopped early:
test_early_stop_e2e.py; each module a unit ``pytest -n 2 --dist loadscope`` can run alongside
the others). Whether the search *lands* budgets on real
training is a quality figure, measured by ``make quality-budget`` (tests/benchmarks/budget_search.py)
and reported in the README, not asserted on a noisy training run here. The search's answers on
a known cost curve are tested in test_adaptive_tune.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweep.adaptive import BudgetSearch
from sweep.cli import main
from sweep.config import load_sweep_config
from sweep.space import BASELINE, baseline_trials
from sweep.store import TAG_ROLE, TAG_TRIAL, results_table
from tests.sweep.test_sweep_e2e import sweep_yaml

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 0.25
MAX_TRIALS = 4

pytestmark = pytest.mark.slow


def write_config(tmp_path, name, uri, model="zoo:plain", **extra):
    """A tiny adaptive sweep toward 25% of the seed's FLOPs, early stop on: Gamma and
    GroupLasso, 3 initial strengths and one aimed trial each, and one baseline. The plain CNN:
    the search, its kill and resume and its determinism are the same on any network, and it
    traces in a third of the ResNet's time."""
    adaptive = {
        "trial": {
            "model": model,
            "model_width": 4,
            "dataset": "digits",
            "epochs": 2,
            "retrain_epochs": 1,
            "batch_size": 64,
            "export_every_steps": 10,
        },
        "search": "adaptive",
        "strengths": None,  # the adaptive search's own initial grid
        "budgets": {"flops": [BUDGET]},
        "max_trials": MAX_TRIALS,
        "budget_tolerance": 0.05,
        "baseline": {"widths": [0.5]},
        "early_stop": "degenerate",
    }
    return sweep_yaml(tmp_path, name, uri, **{**adaptive, **extra})


def children(uri, name):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get(TAG_ROLE) == "trial"]


@pytest.fixture(scope="module")
def resumed_sweep(mlflow_server, tmp_path_factory):
    """An adaptive sweep whose driver is SIGKILLed once 4 trials have ended, then run again."""
    tmp = tmp_path_factory.mktemp("adaptive")
    path = write_config(tmp, "budget", mlflow_server)
    config = load_sweep_config(path)
    state = Path(config.resolved_storage_path) / "budget" / "adaptive_search.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "sweep.cli", "run", str(path), "--verbose", "0"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = None
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        time.sleep(1.0)
        runs = children(mlflow_server, "budget")
        ended = {r.data.tags[TAG_TRIAL]: r.info.end_time for r in runs if r.info.end_time}
        if len(ended) >= 4 and any(r.info.status == "RUNNING" for r in runs):
            os.killpg(process.pid, signal.SIGKILL)
            # what the search had suggested when the driver died
            killed = {"ended": ended, "state": json.loads(state.read_text())}
            shutil.copy(state, tmp / "state_at_kill.json")
            break
    process.wait(timeout=60)
    assert killed, "the sweep ended before it could be killed midway"
    done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "uri": mlflow_server,
        "config": config,
        "killed": killed,
        "state": json.loads(state.read_text()),
        "stdout": done.stdout,
    }


def test_the_summary_reports_each_budget_search(resumed_sweep):
    table = results_table(resumed_sweep["uri"], "budget")
    for algorithm in ("gamma", "group_lasso"):
        assert len(table[table["algorithm"] == algorithm]) <= MAX_TRIALS
        # met or not (a quality figure, see make quality-budget), the run says how it went
        assert f"adaptive {algorithm}/flops seed 0:" in resumed_sweep["stdout"]


def test_no_child_run_is_duplicated_and_finished_trials_did_not_run_again(resumed_sweep):
    uri, state = resumed_sweep["uri"], resumed_sweep["state"]
    runs = children(uri, "budget")
    ids = [r.data.tags[TAG_TRIAL] for r in runs]
    assert len(ids) == len(set(ids))
    # every suggestion has exactly one run, and every run was suggested
    assert sorted(ids) == sorted(state["order"])
    for run in runs:
        tid = run.data.tags[TAG_TRIAL]
        assert run.info.status in ("FINISHED", "KILLED"), (tid, run.info.status)
        if tid in resumed_sweep["killed"]["ended"]:
            # ended before the kill: not run again
            assert run.info.end_time == resumed_sweep["killed"]["ended"][tid]


def test_the_resumed_search_made_the_suggestions_it_would_have_made(resumed_sweep):
    state, at_kill = resumed_sweep["state"], resumed_sweep["killed"]["state"]
    for key, group in at_kill["groups"].items():
        # what was suggested before the kill was kept (pending trials ran as they were)
        final = state["groups"][key]["suggested"]
        assert final[: len(group["suggested"])] == group["suggested"], key
    # replayed from the results alone, an uninterrupted search suggests the same trials
    config = resumed_sweep["config"]
    seed_cost = results_table(resumed_sweep["uri"], "budget")["seed_cost"].dropna().iloc[0]
    replay = BudgetSearch(config, {"flops": seed_cost}, baseline_trials(config, "flops"))
    points = {t: p for g in state["groups"].values() for t, p in g["points"].items()}
    for _ in range(100):
        if replay.next_suggestion() is not None:
            continue
        if replay.finished():
            break
        for trial_id in replay.pending():
            spec = replay.specs[trial_id]
            if spec.algorithm == BASELINE:
                replay.record(trial_id, None, None)
            else:
                point = points[trial_id]
                replay.record(trial_id, point["cost_fraction"], point["accuracy"])
    assert {k: g.suggested for k, g in replay.groups.items()} == {
        k: g["suggested"] for k, g in state["groups"].items()
    }


def test_pick_by_budget_and_the_parent_run_report(resumed_sweep, tmp_path, capsys):
    uri, state = resumed_sweep["uri"], resumed_sweep["state"]
    table = results_table(uri, "budget").dropna(subset=["cost", "accuracy"])
    seed_cost = float(table["seed_cost"].iloc[0])
    # a budget every finished trial meets: pick takes the most accurate, then the cheapest
    # (at most 1: a budget above 1 is an absolute cost, not a fraction of the seed's)
    fraction = min(float((table["cost"] / seed_cost).max()) * 1.0001, 1.0)
    out = tmp_path / "structure.json"
    budget = f"flops={fraction!r}"
    assert main(["pick", "budget", "--tracking-uri", uri, "--budget", budget, "-o", str(out)]) == 0
    best = table.sort_values(["accuracy", "cost"], ascending=[False, True]).iloc[0]
    assert f"picked {best['trial_id']}" in capsys.readouterr().out
    # the downloaded JSON is that trial's structure, within the budget
    assert json.loads(out.read_text())["cost"]["learned"] <= fraction * seed_cost
    client = MlflowClient(uri)
    parent = client.get_run(
        client.search_runs(
            [client.get_experiment_by_name("budget").experiment_id],
            filter_string=f"tags.`{TAG_ROLE}` = 'parent'",
        )[0].info.run_id
    )
    # the parent run names the best trial within the sweep's own budget (25%), if any
    within = table[table["cost"] <= BUDGET * seed_cost]
    if len(within):
        best = within.sort_values(["accuracy", "cost"], ascending=[False, True]).iloc[0]
        assert parent.data.tags["budget/flops/0.25/best_trial"] == best["trial_id"]
        distance = parent.data.metrics["budget/flops/0.25/best_distance"]
        assert distance == pytest.approx(best["cost"] / (BUDGET * seed_cost) - 1)
    else:
        assert "budget/flops/0.25/best_trial" not in parent.data.tags
    # and, per algorithm, how many trials the search took to meet it (when it did)
    for key, group in state["groups"].items():
        met = group["budgets"][0]["trials_to_meet"]
        metric = f"search/{group['algorithm']}/flops/s0/b0.25/trials_to_meet"
        assert parent.data.metrics.get(metric) == met, key
    # with no trial that cheap, the error names the cheapest one
    assert (
        main(["pick", "budget", "--tracking-uri", uri, "--budget", "flops=10", "-o", "x.json"]) == 2
    )
    cheapest = table.sort_values("cost").iloc[0]["trial_id"]
    assert cheapest in capsys.readouterr().err
