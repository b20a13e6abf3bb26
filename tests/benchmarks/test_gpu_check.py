"""tests/benchmarks/gpu_check.sh: its CPU dry run measures every part on JAX in a process that
cannot import TensorFlow (what a GPU machine with JAX alone has); without a GPU it exits 2."""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "benchmarks" / "gpu_check.sh"
MODULE = ROOT / "tests" / "benchmarks" / "gpu_check.py"


def _gpu_present() -> bool:
    nvidia = shutil.which("nvidia-smi")
    if nvidia is None:
        return False
    listed = subprocess.run([nvidia, "-L"], capture_output=True, text=True, check=False)
    return listed.returncode == 0 and "GPU" in listed.stdout


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_dry_run_measures_every_part_without_tensorflow(tmp_path):
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("tensorflow is blocked here")\n')
    env = {**os.environ, "CI": "1", "PYTHONPATH": f"{blocked.parent}{os.pathsep}{ROOT}"}
    env.pop("KERAS_BACKEND", None)
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = list(csv.DictReader((out / "gpu_check.csv").open()))
    steps = [r for r in rows if r["unit"] == "images/s"]
    # plain Keras and the three MorphNet regularizers, each in float32 and bfloat16
    assert {(r["case"], r["precision"]) for r in steps} == {
        (case, precision)
        for case in (
            "plain Keras",
            "MorphNet GammaFlops",
            "MorphNet GroupLassoFlops",
            "MorphNet LogisticSigmoidFlops (FiGS)",
        )
        for precision in ("float32", "mixed_bfloat16")
    }
    assert all(float(r["value"]) > 0 and float(r["vs_plain"]) > 0 for r in steps)
    trial = {r["case"]: float(r["value"]) for r in rows if r["section"] == "trial"}
    assert trial["one trial end to end"] > 0
    assert 0 < trial["one trial: rebuilt cost / seed cost"] <= 1
    assert 0 <= trial["one trial: retrained val accuracy"] <= 1
    sweep = {r["case"]: r for r in rows if r["unit"] == "trials/min"}
    assert set(sweep) == {"1 trials at once, CPU", "2 trials at once, CPU"}
    assert float(sweep["1 trials at once, CPU"]["vs_one"]) == 1.0
    assert math.isfinite(float(sweep["2 trials at once, CPU"]["vs_one"]))
    # the printed table is the one written, and the trial printed its structure
    assert "images/s" in done.stdout and "2 trials at once, CPU" in done.stdout
    assert "trial structure (" in done.stdout
    assert "PROBLEM" not in done.stdout


@pytest.mark.skipif(_gpu_present(), reason="a GPU is visible: the check would run")
@pytest.mark.parametrize("command", [["bash", str(SCRIPT)], [sys.executable, str(MODULE)]])
def test_without_a_gpu_it_exits_2_saying_so(tmp_path, command):
    done = subprocess.run(
        [*command, "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "CI": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (done.stdout + done.stderr).strip().splitlines()
    # one line that says why and what to do instead, and nothing written
    assert done.returncode == 2
    assert len(lines) == 1 and "no NVIDIA GPU visible" in lines[0] and "--dry-run" in lines[0]
    assert not (tmp_path / "gpu_check.csv").exists()


def test_the_table_holds_the_ratios_and_the_throughputs():
    gpu_check = _gpu_check()
    steps = [
        {"case": "plain", "precision": "float32", "images_per_s": 100.0},
        {"case": "gamma", "precision": "float32", "images_per_s": 90.0},
        {"case": "plain", "precision": "mixed_bfloat16", "images_per_s": 200.0},
        {"case": "gamma", "precision": "mixed_bfloat16", "images_per_s": 170.0},
    ]
    sweep = {"gpu": True, "k1": {"seconds": 60.0}, "k4": {"seconds": 80.0}}
    trial = {"seconds": 30.0, "cost_fraction": 0.5, "accuracy": 0.9}
    rows = {(r["case"], r["precision"]): r for r in gpu_check.table_rows(steps, sweep, trial)}
    gamma = rows[("MorphNet GammaFlops", "mixed_bfloat16")]
    # against plain Keras in the same precision, and against itself in float32
    assert gamma["vs_plain"] == 0.85 and gamma["vs_float32"] == pytest.approx(1.889)
    # 4 trials in 80 s: 3 trials/min, 3x one trial alone (1 trial/min)
    four = rows[("4 trials at once, gpus 0.25 each", "float32")]
    assert four["value"] == 3.0 and four["vs_one"] == 3.0
    assert rows[("one trial end to end", "float32")]["value"] == 30.0
    assert rows[("one trial: rebuilt cost / seed cost", "")]["value"] == 0.5
    # a sweep cut short before one trial alone ran has no ratio
    partial = gpu_check.table_rows([], {"gpu": True, "k4": {"seconds": 80.0}})
    assert [(r["case"], r["vs_one"]) for r in partial] == [("4 trials at once, gpus 0.25 each", "")]
