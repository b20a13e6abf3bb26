"""Sweep config validation and the strength grid; unreachable services fail before any trial."""

from __future__ import annotations

import time

import pytest

from sweep.cli import main
from sweep.config import SweepConfigError, load_sweep_config
from sweep.preflight import ClusterUnavailable, check_address, check_tracking
from sweep.space import build_trials
from sweep.tracking import TrackingUnavailable


def test_every_bad_field_is_named_at_once():
    data = {
        "name": "bad name!",
        "algorithms": ["gamma", "l0"],
        "targets": ["flops", "energy"],
        "seeds": [-1],
        "resources": {"cpus": 0, "gpus": -1},
        "max_concurrent": 0,
        "strengths": {"points_per_decade": 0, "centre": 1},
        "trial": {"epochs": "ten"},
        "extra_key": 1,
    }
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(data)
    text = str(info.value)
    for fragment in (
        "name must be",
        "'l0' is not one of",
        "'energy' is not one of",
        "seeds must be",
        "resources.cpus",
        "resources.gpus",
        "max_concurrent",
        "points_per_decade",
        "unknown key(s) ['centre']",
        "trial: epochs must be int",
        "['extra_key']",
    ):
        assert fragment in text, fragment


def test_no_pydantic_text_reaches_the_user():
    data = {"name": 3, "resources": 4, "strengths": {"center": {"gamma": "x"}}, "trial": []}
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(data)
    text = str(info.value)
    # every problem in our words: the field, the value and what it must be
    for fragment in (
        "name must be",
        "resources must be a mapping",
        "strengths.center",
        "trial must",
    ):
        assert fragment in text, fragment
    for raw in ("Input should", "validation error", "pydantic", "For further information"):
        assert raw not in text, raw


def test_numbers_in_any_notation_are_read_as_numbers():
    config = load_sweep_config(
        {
            "name": "notation",
            "trial": {"learning_rate": "1e-3", "retrain_learning_rate": "3E-4"},
            "targets": ["flops"],
            "strengths": {"center": "1e-3", "decades_below": "5e-1"},
            "budgets": {"flops": ["2e5", 0.25]},
            "resources": {"cpus": "2", "gpus": "5e-1"},
            "budget_tolerance": "5e-2",
        }
    )
    # YAML 1.1 reads 1e-3 (no dot) as a string; the config reads it as the number it means
    assert config.trial == {"learning_rate": 1e-3, "retrain_learning_rate": 3e-4}
    assert config.strengths.center == 1e-3 and config.strengths.decades_below == 0.5
    assert config.budgets["flops"] == (2e5, 0.25)
    assert (config.cpus_per_trial, config.gpus_per_trial, config.budget_tolerance) == (2, 0.5, 0.05)


def test_booleans_are_never_counts_or_numbers():
    data = {
        "name": "bools",
        "max_concurrent": True,
        "retries": False,
        "max_trials": True,
        "seeds": [True],
        "resources": {"cpus": True},
        "budget_tolerance": True,
        "strengths": {"points_per_decade": True, "center": True},
        "trial": {"epochs": True, "learning_rate": True},
    }
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(data)
    text = str(info.value)
    # each field is named with the boolean it got
    for fragment in (
        "max_concurrent must be an integer >= 1, but got max_concurrent=True",
        "retries=False",
        "max_trials=True",
        "seeds=[True]",
        "resources.cpus must be float, but got resources.cpus=True",
        "budget_tolerance=True",
        "strengths.points_per_decade must be an integer in [1, 100]",
        "strengths.center=True",
        "trial: epochs must be int, but got epochs=True",
        "trial: learning_rate must be float, but got learning_rate=True",
    ):
        assert fragment in text, fragment
    assert len(info.value.problems) == 10


def test_duplicates_are_refused_by_name():
    data = {
        "name": "dups",
        "algorithms": ["gamma", "group_lasso", "gamma"],
        "targets": ["flops", "flops", "model_size", "model_size"],
        "seeds": [0, 1, 1],
    }
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(data)
    assert info.value.problems == [
        "algorithms: 'gamma' listed more than once; list each once",
        "targets: 'flops', 'model_size' listed more than once; list each once",
        "seeds: 1 listed more than once; list each once",
    ]


def test_the_examples_load_and_round_trip(tmp_path, monkeypatch):
    from pathlib import Path

    examples = sorted(Path(__file__).resolve().parents[2].glob("sweep/examples/*.yaml"))
    assert examples
    # what make_real_workload.py writes, for the example that reads it (paths from the cwd)
    monkeypatch.chdir(tmp_path)
    workload = tmp_path / "morphsweep_runs" / "workload"
    for split in ("train", "val"):
        (workload / "images" / split / "disc").mkdir(parents=True)
    (workload / "seed.keras").write_bytes(b"")
    for path in examples:
        config = load_sweep_config(path)
        # to_dict is the YAML's shape: it loads back to the same config
        assert load_sweep_config(config.to_dict()) == config
        assert config.cpus_per_trial == 1.0 and config.baseline_widths


def test_sweep_owned_trial_fields_and_file_store_are_rejected():
    with pytest.raises(SweepConfigError, match="set by the sweep"):
        load_sweep_config({"name": "x", "trial": {"strength": 1e-6}})
    with pytest.raises(SweepConfigError, match="file store"):
        load_sweep_config({"name": "x", "tracking_uri": "file:///tmp/mlruns"})


def test_strength_grid_is_logarithmic_around_one_over_seed_cost():
    config = load_sweep_config(
        {
            "name": "grid",
            "algorithms": ["gamma", "group_lasso"],
            "strengths": {
                "decades_below": 1,
                "decades_above": 1,
                "points_per_decade": 2,
                "center": {"gamma": 2.0},
            },
            "baseline": {"widths": [0.5]},
            "seeds": [0, 1],
        }
    )
    trials = build_trials(config, {"flops": 1e6})
    gamma = sorted(t.multiplier for t in trials if t.algorithm == "gamma" and t.seed == 0)
    # centre x 10^(k/2) for k = -2..2, strength = multiplier / seed cost
    assert gamma == pytest.approx([0.2, 2 / 10**0.5, 2.0, 2 * 10**0.5, 20.0])
    assert all(t.strength == pytest.approx(t.multiplier / 1e6) for t in trials if t.multiplier)
    lasso = sorted(t.multiplier for t in trials if t.algorithm == "group_lasso" and t.seed == 0)
    assert lasso[2] == pytest.approx(100.0)  # the default centre for group lasso
    assert len(trials) == 2 * 5 * 2 + 1 * 2
    assert len({t.trial_id for t in trials}) == len(trials)


def test_unreachable_services_fail_fast():
    start = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="cannot reach the MLflow tracking server"):
        check_tracking("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ClusterUnavailable, match="cannot reach the Ray cluster"):
        check_address("127.0.0.1:9", timeout=2)
    assert time.monotonic() - start < 10


def test_run_rejects_bad_config_before_ray(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nalgorithms: [magic]\n")
    assert main(["run", str(path)]) == 2
    assert "'magic' is not one of" in capsys.readouterr().err
    path.write_text("name: x\ntracking_uri: http://127.0.0.1:9\n")
    assert main(["run", str(path)]) == 2
    assert "cannot reach the MLflow tracking server" in capsys.readouterr().err


def test_budget_and_search_fields_are_checked_all_at_once():
    data = {
        "name": "budgets",
        "targets": ["flops"],
        "search": "bayes",
        "budgets": {"flops": [0.25, 0, -3], "energy": [0.5], "model_size": [1e5]},
        "max_trials": 0,
        "budget_tolerance": 1.5,
        "early_stop": "sometimes",
        "early_stop_after": 0,
        "dominated_margin": -0.1,
    }
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(data)
    text = str(info.value)
    for fragment in (
        "search must be one of ('grid', 'adaptive'), but got search='bayes'",
        "budgets.flops must be a list of budgets > 0",
        "budgets.flops=[0.25, 0, -3]",
        "budgets: 'energy' is not one of",
        "'model_size' is not among the sweep's targets ['flops']",
        "max_trials",
        "budget_tolerance=1.5",
        "early_stop must be one of",
        "early_stop_after=0",
        "dominated_margin=-0.1",
    ):
        assert fragment in text, fragment


def test_budgets_fractions_and_absolute_costs():
    config = load_sweep_config(
        {
            "name": "b",
            "targets": ["flops", "model_size"],
            "search": "adaptive",
            "budgets": {"flops": [0.25, 0.5], "model_size": 2.0e5},
            "early_stop": False,  # YAML's bare `off`
        }
    )
    assert config.early_stop == "off"
    # <= 1 is a fraction of the seed cost, > 1 an absolute cost
    assert config.budget_costs("flops", 1000.0) == [500.0, 250.0]
    assert config.budget_costs("model_size", 1e6) == [2.0e5]
    # adaptive without a strengths block starts from one point per decade
    assert config.strengths.multipliers("gamma") == pytest.approx([0.3, 3.0, 30.0])
    assert config.to_dict()["budgets"] == {"flops": [0.5, 0.25], "model_size": [2.0e5]}


def test_bad_budget_fails_before_ray_starts(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: x\nbudgets: {flops: [0]}\nworkdir: " + str(tmp_path / "w") + "\n")
    assert main(["run", str(path)]) == 2
    assert "budgets.flops" in capsys.readouterr().err
    # nothing was written: the error came before any tracking store or Ray
    assert not (tmp_path / "w").exists()


def test_seed_file_and_data_paths_are_made_absolute(tmp_path, monkeypatch):
    # Ray runs trials in other working directories: a relative path would point elsewhere there
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "seed.keras").write_bytes(b"")
    config = load_sweep_config(
        {"name": "x", "trial": {"model": "seed.keras", "dataset": "images:imgs"}}
    )
    assert config.trial["model"] == str(tmp_path / "seed.keras")
    assert config.trial["dataset"] == f"images:{tmp_path / 'imgs'}"
