"""The e2e adaptive sweep config run twice from scratch gives identical results.

Two experiments, two storages, one local Ray: the child runs' metric histories (timing aside),
structures and statuses and the search's suggestions must be equal, trial for trial. The first
run gives every trial a fresh worker process (``MORPHSWEEP_REUSE_WORKERS=0``), the second runs
as sweeps do by default, a finished trial's worker running the next trial: equal results also
show that a reused worker computes what a fresh one does. The first run's fingerprint is
recorded for ``make test-repeat``, which compares it between pytest runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep.cli import main
from sweep.config import load_sweep_config
from tests.sweep.conftest import fingerprint, record_for_repeat
from tests.sweep.test_adaptive_e2e import MAX_TRIALS, write_config

pytestmark = pytest.mark.slow


def worker_pids(config) -> dict[str, int]:
    """Each trial's worker process id, from the results Tune kept in the sweep's storage."""
    pids = {}
    for result in (Path(config.resolved_storage_path) / config.name).rglob("result.json"):
        lines = result.read_text().splitlines()
        if lines:
            row = json.loads(lines[-1])
            pids[row["config"]["trial_id"]] = row["pid"]
    return pids


@pytest.fixture(scope="module")
def twice(mlflow_server, local_ray, tmp_path_factory):
    """The same adaptive sweep config run twice from scratch (two experiments, two storages):
    first a fresh worker per trial, then reused workers (the default)."""
    prints, pids = [], []
    for name, reuse in (("same-a", "0"), ("same-b", "1")):
        tmp = tmp_path_factory.mktemp(name)
        # GroupLasso alone (its strength -> cost map is the steep one, where small numeric
        # differences would move the search) and no baseline: the mechanism, at half the trials
        path = write_config(
            tmp, name, mlflow_server, algorithms=["group_lasso"], baseline={"widths": []}
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MORPHSWEEP_REUSE_WORKERS", reuse)
            assert main(["run", str(path), "--verbose", "0"]) == 0
        config = load_sweep_config(path)
        prints.append(fingerprint(mlflow_server, config))
        pids.append(worker_pids(config))
    record_for_repeat("adaptive_e2e", prints[0])  # make test-repeat compares it between runs
    return prints, pids


def test_the_same_sweep_twice_gives_identical_results(twice):
    (first, second), (fresh, reused) = twice
    assert first["suggestions"] == second["suggestions"]
    assert sorted(first["trials"]) == sorted(second["trials"])
    for trial_id, trial in first["trials"].items():
        other = second["trials"][trial_id]
        assert trial["status"] == other["status"], trial_id
        assert trial["metrics"] == other["metrics"], trial_id
        assert trial["structure"] == other["structure"], trial_id
    # the comparison has something to compare: structures, learn and retrain curves, suggestions
    assert all(len(s) == MAX_TRIALS for s in first["suggestions"].values())
    # the first run gave each trial its own worker; in the second, workers ran several trials
    assert sorted(fresh) == sorted(reused) == sorted(first["trials"])
    assert len(set(fresh.values())) == len(fresh)
    assert len(set(reused.values())) < len(reused)
    finished = [t for t in first["trials"].values() if t["status"] == "FINISHED"]
    assert finished and all(t["structure"] and "retrain/accuracy" in t["metrics"] for t in finished)
