"""Acceptance: `morphsweep train` on digits shrinks the zoo ResNet and keeps its accuracy.

Three seeds of a MorphNet trial (Gamma, FLOPs) and of the seed network trained the same way
(baseline_width=1.0). Digits' validation set is small (360 images), so single runs vary by a few
points: the check is on the mean over seeds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweep.cli import main

SEEDS = (0, 1, 2)
COMMON = [
    "--set",
    "model=zoo:resnet",
    "--set",
    "model_width=16",
    "--set",
    "dataset=digits",
    "--set",
    "epochs=8",
    "--set",
    "retrain_epochs=8",
    "--set",
    "verbose=0",
]


def train(tmp_path, name, seed, *extra):
    out = tmp_path / name
    code = main(
        [
            "train",
            str(tmp_path / "trial.yaml"),
            "-o",
            str(out),
            "--set",
            f"seed={seed}",
            *COMMON,
            *extra,
        ]
    )
    assert code == 0
    return json.loads((out / "metrics.json").read_text())["summary"]


@pytest.mark.slow
def test_morphnet_shrinks_resnet_on_digits_and_keeps_accuracy(tmp_path):
    (tmp_path / "trial.yaml").write_text("algorithm: gamma\ntarget: flops\n")
    learned = [train(tmp_path, f"morphnet-{s}", s, "--set", "multiplier=5.0") for s in SEEDS]
    seed_nets = [train(tmp_path, f"seed-{s}", s, "--set", "baseline_width=1.0") for s in SEEDS]
    fractions = [r["rebuilt_cost"] / r["seed_cost"] for r in learned]
    # every run removes at least 30% of the FLOPs
    assert max(fractions) <= 0.70, fractions
    learned_acc = np.mean([r["retrained_val_accuracy"] for r in learned])
    seed_acc = np.mean([r["retrained_val_accuracy"] for r in seed_nets])
    # retrained accuracy, averaged over 3 seeds, within 2 points of the seed network's
    assert learned_acc >= seed_acc - 0.02, (learned_acc, seed_acc)
    print(
        f"\nFLOPs kept {np.round(fractions, 3)}; accuracy {learned_acc:.4f} vs seed {seed_acc:.4f}"
    )
