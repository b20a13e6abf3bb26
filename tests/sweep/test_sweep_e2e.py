"""Real sweeps: a local Ray running two trials at once, tracked by an MLflow server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweep.cli import main
from sweep.config import load_sweep_config
from sweep.pareto import pareto_front
from sweep.store import PARENT_ID, TAG_PARETO, TAG_REASON, TAG_ROLE, TAG_WORKER, results_table
from tests.sweep.conftest import RUN_TREE, fingerprint, record_for_repeat, run_tree

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def sweep_yaml(tmp_path, name, uri, **extra):
    config = {
        "name": name,
        "trial": {
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "tests.trainers.fixtures:nan_for_seed_1",
            "epochs": 2,
            "retrain_epochs": 1,
            "batch_size": 16,
            "export_every_steps": 2,
        },
        "algorithms": ["gamma", "group_lasso"],
        "targets": ["flops"],
        "strengths": {"decades_below": 0, "decades_above": 0.5, "points_per_decade": 2},
        "seeds": [0],
        "baseline": {"widths": [0.5, 1.0]},
        "resources": {"cpus": 1},
        "max_concurrent": 2,
        "retries": 0,
        # the grid service itself; early stopping has its own tests (test_adaptive_e2e)
        "early_stop": "off",
        "tracking_uri": uri,
        "workdir": str(tmp_path / "work"),
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def runs(uri, name):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = [r for r in found if r.data.tags.get(TAG_ROLE) == "parent"]
    children = [r for r in found if r.data.tags.get(TAG_ROLE) == "trial"]
    return client, parent, children


@pytest.fixture(scope="module")
def finished_sweep(mlflow_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    path = sweep_yaml(tmp, "e2e", mlflow_server, seeds=[0, 1])
    os.environ["PYTHONPATH"] = f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"
    assert main(["run", str(path), "--verbose", "0"]) == 0
    record_for_repeat("sweep_e2e", fingerprint(mlflow_server, load_sweep_config(path)))
    return mlflow_server, tmp


def test_run_tree_is_the_recorded_one(finished_sweep):
    """The sweep's MLflow content, as names (runs, params, metrics, tags, artifacts), equals the
    checked-in tree: a change of the code behind it changes nothing a user sees in MLflow.
    MORPHSWEEP_RECORD_RUN_TREE=1 writes the tree anew (for a change meant to alter it)."""
    uri, _ = finished_sweep
    tree = run_tree(uri, "e2e")
    if os.environ.get("MORPHSWEEP_RECORD_RUN_TREE") == "1":
        RUN_TREE.write_text(json.dumps(tree, indent=1) + "\n")
    expected = json.loads(RUN_TREE.read_text())
    assert sorted(tree) == sorted(expected)
    for name in expected:
        assert tree[name] == expected[name], name


def test_parent_children_metrics_artifacts(finished_sweep):
    uri, _ = finished_sweep
    client, parent, children = runs(uri, "e2e")
    # one parent; 2 algorithms x 2 strengths x 2 seeds + 2 widths x 2 seeds children
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert len(children) == 12
    assert {c.data.tags[PARENT_ID] for c in children} == {parent[0].info.run_id}
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id, "pareto")}
    assert artifacts == {"pareto/pareto.csv", "pareto/pareto_flops.png", "pareto/pareto_flops.html"}
    # the saved MLflow views of the experiment (the runs table and the cost-accuracy chart)
    experiment = client.get_experiment_by_name("e2e")
    views = {k for k in experiment.tags if k.startswith("mlflow.sharedViewState.")}
    assert views == {"mlflow.sharedViewState.morphsweep", "mlflow.sharedViewState.morphsweep-table"}
    chart = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.morphsweep"])["state"])
    scatters = [c for c in chart["compareRunCharts"] if not c["deleted"]]
    assert [(c["xaxis"]["key"], c["yaxis"]["key"]) for c in scatters] == [
        ("cost/flops", "accuracy"),
        ("cost/flops", "pareto_accuracy/flops"),
    ]
    # flat rows sorted by cost (MLflow folds children under the parent when sorted by time)
    assert chart["orderByKey"] == "metrics.`cost/flops`" and chart["runsHiddenMode"] == "SHOW_ALL"
    # the front's trials carry their accuracy as the Pareto scatter's metric, the others not
    for child in children:
        on_front = child.data.tags.get("morphsweep.pareto") == "true"
        front_accuracy = child.data.metrics.get("pareto_accuracy/flops")
        assert (front_accuracy is not None) == on_front
        if on_front:
            assert front_accuracy == child.data.metrics["accuracy"]
    # the parent run's description links to both views
    note = parent[0].data.tags["mlflow.note.content"]
    assert "viewStateShareKey=morphsweep-table" in note and "viewStateShareKey=morphsweep&" in note
    for child in children:
        seed = child.data.params["seed"]
        if seed == "1":
            # seed 1's data is NaN: the trial fails with its reason, the sweep goes on
            assert child.info.status == "FAILED"
            assert "loss became nan" in child.data.tags[TAG_REASON]
            continue
        assert child.info.status == "FINISHED"
        assert {"rebuilt_cost", "retrained_val_accuracy", "seed_cost"} <= set(child.data.metrics)
        # the structure's predicted cost is the rebuilt model's, for every algorithm
        assert child.data.metrics["predicted_cost"] == child.data.metrics["rebuilt_cost"]
        top = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"structure.json", "metrics.json", "structures", "figures"} <= top
        # the figures MLflow shows in the run's artifact view, logged with log_figure
        figures = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        assert {"figures/layer_widths.png", "figures/training_curves.png"} <= figures
        # what MLflow's run table and chart view compare across trials
        metrics = child.data.metrics
        assert metrics["cost/flops"] == metrics["rebuilt_cost"]
        assert metrics["accuracy"] == metrics["retrained_val_accuracy"]
        assert metrics["cost_fraction/flops"] == metrics["cost_fraction"]
        # where the trial's time went: training inside the trial's own time, inside what the
        # driver saw from its start to its last report
        train, trial = metrics["train_seconds"], metrics["trial_seconds"]
        assert 0 < train < trial < metrics["time/wall_seconds"]
        assert metrics["time/overhead_seconds"] == pytest.approx(
            metrics["time/wall_seconds"] - train
        )
        if child.data.params["algorithm"] != "baseline":
            history = client.get_metric_history(child.info.run_id, "learn/cost")
            # one cost value per structure-learning epoch, no step twice
            assert sorted(m.step for m in history) == [1, 2]
            assert float(child.data.params["strength"]) > 0


def test_trials_ran_in_parallel(finished_sweep, tmp_path):
    uri, _ = finished_sweep
    _, parent, children = runs(uri, "e2e")
    timing = parent[0].data.metrics
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert timing["time/trials_finished"] == len(finished)
    assert timing["time/train_seconds"] == pytest.approx(
        sum(c.data.metrics["train_seconds"] for c in finished)
    )
    assert timing["time/parallelism"] == pytest.approx(
        timing["time/train_seconds"] / timing["time/sweep_seconds"]
    )
    spans = sorted((c.info.start_time, c.info.end_time) for c in children)
    # a finished trial's worker ran a later trial (no new process, no TensorFlow import),
    # and Keras started afresh in it: every structure names the seed network's layers
    workers = [c.data.tags[TAG_WORKER] for c in children if c.info.status == "FINISHED"]
    assert len(set(workers)) < len(workers)
    client = MlflowClient(uri)
    names = set()
    for c in children:
        if c.info.status == "FINISHED":
            path = client.download_artifacts(
                c.info.run_id, "structure.json", str(tmp_path / c.info.run_id)
            )
            names.add(tuple(sorted(json.loads(Path(path).read_text())["layers"])))
    assert len(names) == 1
    # some trial started before an earlier one ended
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_pareto_table_and_tags_match_the_results(finished_sweep, tmp_path):
    uri, _ = finished_sweep
    client, parent, children = runs(uri, "e2e")
    table = results_table(uri, "e2e")
    expected = pareto_front(table, cost="cost", accuracy="accuracy", group="target").table
    by_run = dict(zip(expected["run_id"], expected["pareto"], strict=True))
    for child in children:
        if child.info.status == "FINISHED":
            # Pareto-optimal children are tagged so the UI can filter them
            assert child.data.tags[TAG_PARETO] == str(bool(by_run[child.info.run_id])).lower()
    path = client.download_artifacts(parent[0].info.run_id, "pareto/pareto.csv", str(tmp_path))
    import pandas as pd

    logged = pd.read_csv(path)
    assert sorted(logged.loc[logged["pareto"], "trial_id"]) == sorted(
        expected.loc[expected["pareto"], "trial_id"]
    )
    html = client.download_artifacts(
        parent[0].info.run_id, "pareto/pareto_flops.html", str(tmp_path)
    )
    # the plotly figure (log_figure, plotly.js inline) draws one point per finished trial
    from tests.dashboards.pages import figure_data

    (figure,) = figure_data(Path(html))
    drawn = [t for t in figure["data"] if t["meta"]["role"] in ("points", "baseline")]
    assert sum(len(t["x"]) for t in drawn) == int(table["cost"].notna().sum())
    assert "cdn.plot.ly/plotly" not in Path(html).read_text()[:2000]


@pytest.mark.parametrize("how", [["--knee"], ["--max-cost", "COST"], ["--min-accuracy", "ACC"]])
def test_pick_downloads_the_chosen_structure(finished_sweep, tmp_path, how):
    uri, _ = finished_sweep
    table = results_table(uri, "e2e").dropna(subset=["cost", "accuracy"])
    cost, acc = float(table["cost"].median()), float(table["accuracy"].median())
    args = [a.replace("COST", str(cost)).replace("ACC", str(acc)) for a in how]
    out = tmp_path / "structure.json"
    assert main(["pick", "e2e", "--tracking-uri", uri, *args, "-o", str(out)]) == 0
    picked = json.loads(out.read_text())
    if how[0] == "--max-cost":
        best = (
            table[table["cost"] <= cost]
            .sort_values(["accuracy", "cost"], ascending=[False, True])
            .iloc[0]
        )
    elif how[0] == "--min-accuracy":
        best = (
            table[table["accuracy"] >= acc]
            .sort_values(["cost", "accuracy"], ascending=[True, False])
            .iloc[0]
        )
    else:
        front = pareto_front(table, cost="cost", accuracy="accuracy").table
        best = front[front["knee"]].iloc[0]
    client = MlflowClient(uri)
    expected = json.loads(
        Path(
            client.download_artifacts(best["run_id"], "structure.json", str(tmp_path / "x"))
        ).read_text()
    )
    # the downloaded JSON is the chosen trial's structure, and predicts the table's cost
    assert picked == expected
    assert picked["cost"]["learned"] == pytest.approx(best["cost"], rel=1e-12)


def test_pick_registers_the_chosen_trials_model(finished_sweep, tmp_path, capsys):
    """`pick --register`: a new version of the registered model per pick, tagged with the trial,
    whose MLflow model predicts what the trial's own model.keras does."""
    import mlflow
    from mlflow.artifacts import download_artifacts

    from sweep.registry import STRUCTURE
    from trainers.morphnet.keras3.backend import keras

    uri, tmp = finished_sweep
    out = tmp_path / "structure.json"
    pick = ["pick", "e2e", "--tracking-uri", uri, "-o", str(out), "--force"]
    assert main([*pick, "--knee", "--register", "e2e-small"]) == 0
    printed = capsys.readouterr().out
    assert "registered 'e2e-small' version 1: " in printed
    assert f"{uri}/#/models/e2e-small/versions/1" in printed
    table = results_table(uri, "e2e").dropna(subset=["cost", "accuracy"])
    front = pareto_front(table, cost="cost", accuracy="accuracy").table
    knee = front[front["knee"]].iloc[0]
    client = MlflowClient(uri)
    version = client.get_model_version("e2e-small", "1")
    # the version is the knee trial's model, tagged with what the sweep knows of the trial
    assert version.run_id == knee["run_id"]
    tags = version.tags
    assert tags["sweep"] == "e2e" and tags["picked_by"] == "--knee"
    assert (tags["trial_id"], tags["algorithm"], tags["target"]) == (
        knee["trial_id"],
        knee["algorithm"],
        "flops",
    )
    assert float(tags["cost"]) == pytest.approx(knee["cost"], rel=1e-5)
    assert float(tags["accuracy"]) == pytest.approx(knee["accuracy"], rel=1e-5)
    assert ("strength" in tags) == (knee["algorithm"] != "baseline")
    # its structure JSON is the one pick wrote, where the tag says
    structure = download_artifacts(
        tags["structure"], dst_path=str(tmp_path / "s"), tracking_uri=uri
    )
    assert Path(structure).name == STRUCTURE
    assert json.loads(Path(structure).read_text()) == json.loads(out.read_text())
    # the registered model predicts what the trial's retrained network does
    trial_model = (
        load_sweep_config(tmp / "e2e.yaml").trials_dir() / knee["trial_id"] / "model.keras"
    )
    network = keras.saving.load_model(trial_model)
    batch = np.random.default_rng(0).normal(size=(8, *network.input_shape[1:])).astype("float32")
    expected = network.predict(batch, verbose=0)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        registered = mlflow.keras.load_model("models:/e2e-small/1")
        served = mlflow.pyfunc.load_model("models:/e2e-small/1")
    finally:
        mlflow.set_tracking_uri(previous)
    np.testing.assert_allclose(registered.predict(batch, verbose=0), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served.predict(batch), expected, rtol=1e-5, atol=1e-6)
    # a second pick is the model's next version
    cheapest = table.sort_values(["cost", "accuracy"], ascending=[True, False]).iloc[0]
    max_cost = ["--max-cost", str(cheapest["cost"])]
    assert main([*pick, *max_cost, "--register", "e2e-small"]) == 0
    second = client.get_model_version("e2e-small", "2")
    assert second.tags["picked_by"] == f"--max-cost {cheapest['cost']}"
    assert second.run_id == str(
        table[table["cost"] <= cheapest["cost"]]
        .sort_values(["accuracy", "cost"], ascending=[False, True])
        .iloc[0]["run_id"]
    )


def test_pick_with_no_trial_meeting_the_constraint(finished_sweep, capsys):
    uri, _ = finished_sweep
    assert (
        main(["pick", "e2e", "--tracking-uri", uri, "--min-accuracy", "1.5", "-o", "x.json"]) == 2
    )
    err = capsys.readouterr().err
    assert "closest" in err.lower() and "e2e" not in err.lower() or "accuracy" in err


def test_killed_sweep_resumes_without_duplicates(mlflow_server, tmp_path):
    path = sweep_yaml(
        tmp_path,
        "resume",
        mlflow_server,
        max_concurrent=2,
        # gamma at 2 strengths and one baseline width: one trial finishes while another runs
        # (the killed driver at every stage, on a cluster: test_faults.py)
        algorithms=["gamma"],
        baseline={"widths": [1.0]},
        trial={
            "model": "zoo:plain",
            "model_width": 8,
            "dataset": "synthetic",
            "epochs": 3,
            "retrain_epochs": 1,
            "batch_size": 32,
        },
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "sweep.cli", "run", str(path), "--verbose", "0"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 400
    killed_with = None
    while time.time() < deadline:
        time.sleep(2)
        try:
            _, _, children = runs(mlflow_server, "resume")
        except AttributeError:
            continue
        finished = [c for c in children if c.info.status == "FINISHED"]
        if finished and any(c.info.status == "RUNNING" for c in children):
            killed_with = {c.data.tags["morphsweep.trial_id"]: c.info.end_time for c in finished}
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert killed_with, "the sweep finished before it could be killed midway"
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client, _, children = runs(mlflow_server, "resume")
    ids = [c.data.tags["morphsweep.trial_id"] for c in children]
    # every trial has exactly one run, all finished
    assert len(ids) == len(set(ids)) == 3
    assert all(c.info.status == "FINISHED" for c in children)
    for child in children:
        tid = child.data.tags["morphsweep.trial_id"]
        if tid in killed_with:
            # trials finished before the kill were not run again
            assert child.info.end_time == killed_with[tid]
        for key in ("learn/cost", "retrain/accuracy"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert len(steps) == len(set(steps)), (tid, key, steps)
    assert np.isfinite(results_table(mlflow_server, "resume")["cost"]).all()


def test_pareto_command_prints_the_front(finished_sweep, capsys):
    uri, _ = finished_sweep
    assert main(["pareto", "e2e", "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    front = pareto_front(results_table(uri, "e2e"), cost="cost", accuracy="accuracy").table
    # every Pareto-optimal trial, and only those, is printed
    for trial_id, on_front in zip(front["trial_id"], front["pareto"], strict=True):
        assert (trial_id in printed) == bool(on_front), trial_id
