"""tests/benchmarks/gpu_check.sh: its CPU dry run measures every part; without a GPU it exits 2."""

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
def test_the_dry_run_measures_steps_and_the_sweep(tmp_path):
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "CI": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    rows = list(csv.DictReader((tmp_path / "gpu_check.csv").open()))
    steps = [r for r in rows if r["unit"] == "images/s"]
    # plain Keras and the three MorphNet regularizers, each in float32 and mixed precision
    assert {(r["case"], r["precision"]) for r in steps} == {
        (case, precision)
        for case in (
            "plain Keras",
            "MorphNet GammaFlops",
            "MorphNet GroupLassoFlops",
            "MorphNet LogisticSigmoidFlops (FiGS)",
        )
        for precision in ("float32", "mixed_float16")
    }
    assert all(float(r["value"]) > 0 and float(r["vs_plain"]) > 0 for r in steps)
    efficiency = [r for r in rows if r["case"] == "parallel efficiency T1/(2*T2)"]
    assert len(efficiency) == 1
    assert math.isfinite(float(efficiency[0]["value"])) and float(efficiency[0]["value"]) > 0
    # the printed table is the one written
    assert "images/s" in done.stdout and "parallel efficiency T1/(2*T2)" in done.stdout
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


def test_the_table_holds_the_ratios_and_the_efficiency():
    gpu_check = _gpu_check()
    steps = [
        {"case": "plain", "precision": "float32", "images_per_s": 100.0},
        {"case": "gamma", "precision": "float32", "images_per_s": 90.0},
        {"case": "plain", "precision": "mixed_float16", "images_per_s": 200.0},
        {"case": "gamma", "precision": "mixed_float16", "images_per_s": 170.0},
    ]
    sweep = {"trials": 4, "gpus_per_trial": 0.25, "c4": {"seconds": 50.0}, "c1": {"seconds": 160.0}}
    rows = {(r["case"], r["precision"]): r for r in gpu_check.table_rows(steps, sweep)}
    gamma = rows[("MorphNet GammaFlops", "mixed_float16")]
    # against plain Keras in the same precision, and against itself in float32
    assert gamma["vs_plain"] == 0.85 and gamma["vs_float32"] == pytest.approx(1.889)
    # T1 / (4 x T4)
    assert rows[("parallel efficiency T1/(4*T4)", "")]["value"] == 0.8
    assert rows[("4 trials, max_concurrent 4, gpus 0.25 each", "float32")]["value"] == 50.0
    # a sweep cut short before its serial run has no efficiency row
    partial = gpu_check.table_rows([], {k: v for k, v in sweep.items() if k != "c1"})
    assert [r["case"] for r in partial] == ["4 trials, max_concurrent 4, gpus 0.25 each"]
