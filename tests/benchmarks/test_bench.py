"""``make bench``'s script: its table logic, its checks of bad options, one real section."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks import bench

ROOT = Path(__file__).resolve().parents[2]


def test_row_is_median_and_spread_and_goal_compares_the_median():
    row = bench._row("train step", "m", "gamma / plain Keras", [1.2, 1.0, 1.04, 0.98, 1.01])
    assert (row.median, row.low, row.high, row.rounds) == (1.01, 0.98, 1.2, 5)
    assert bench._goal(row, 1.05).met == "yes" and row.goal == "<= 1.05"
    assert bench._goal(bench._row("s", "c", "m", [0.84]), 0.85, below=False).met == "NO"
    # one run has no spread
    assert bench._row("s", "c", "m", [3.0], unit="s").cells()[3:5] == ["3.0 s", "(1 run)"]


def test_rounds_time_every_variant_and_rotate_which_goes_first():
    calls = []
    fns = {k: (lambda k=k: calls.append(k)) for k in ("plain", "gamma", "group_lasso")}
    times = bench._interleaved(fns, 4)
    assert {k: len(v) for k, v in times.items()} == {"plain": 4, "gamma": 4, "group_lasso": 4}
    assert all(t >= 0 for v in times.values() for t in v)
    rounds = [calls[i : i + 3] for i in range(0, 12, 3)]
    assert [r[0] for r in rounds] == ["plain", "gamma", "group_lasso", "plain"]
    assert all(sorted(r) == ["gamma", "group_lasso", "plain"] for r in rounds)


def test_csv_has_every_row(tmp_path):
    rows = [bench._row("a", "b", "c", [1.0, 2.0, 3.0]), bench._row("d", "e", "f", [4.0], unit="s")]
    bench.write_csv(rows, tmp_path / "out" / "bench.csv")
    lines = list(csv.DictReader((tmp_path / "out" / "bench.csv").open()))
    assert [(r["section"], r["median"], r["min"], r["max"], r["unit"]) for r in lines] == [
        ("a", "2", "1", "3", "x"),
        ("d", "4", "4", "4", "s"),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sections", "steps,gpu"], "unknown section(s) ['gpu']"),
        (["--rounds", "1"], "--rounds must be >= 2"),
        (["--models", "VGG16"], "--models 'VGG16'"),
        (["--backends", "torch"], "--backends 'torch'"),
    ],
)
def test_bad_options_are_refused_before_any_work(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        bench.main([*args, "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bench.csv").exists()


@pytest.mark.slow
def test_train_step_section_writes_its_ratios(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "tests/benchmarks/bench.py", "--sections", "steps"]
        + ["--models", "zoo ResNet@32", "--rounds", "2", "--round-seconds", "0.1"]
        + ["--batch", "8", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((out / "bench.csv").open()))
    ratios = {
        (r["case"], r["measure"]): r
        for r in rows
        if r["section"] == "train step" and r["unit"] == "x"
    }
    # TensorFlow and JAX side by side, the same models and ratios
    measures = [f"{a} / plain Keras" for a in (*bench.ALGORITHMS, bench.UNFOLDED)]
    measures.append(f"{bench.UNFOLDED} / logistic_sigmoid (folded)")
    assert set(ratios) == {
        (f"zoo ResNet@32 [{b}]", m) for m in measures for b in ("tensorflow", "jax")
    }
    for r in ratios.values():
        # a measured ratio (its size is make bench's figure, not something a loaded CI machine
        # could assert)
        assert 0 < float(r["median"]) < float("inf") and r["rounds"] == "2"
        # judged against its goal; the unfolded-gates comparison has none
        assert r["met"] in (("",) if bench.UNFOLDED in r["measure"] else ("yes", "NO"))
    terms = [r for r in rows if r["section"] == "term / forward" and r["unit"] == "x"]
    assert len(terms) == 2 * len(bench.ALGORITHMS)
    assert all(0 < float(r["median"]) for r in terms)
    assert "gamma / plain Keras" in done.stdout  # the printed table
