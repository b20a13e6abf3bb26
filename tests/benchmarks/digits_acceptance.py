"""``make quality`` (part): `morphsweep train` on digits shrinks the zoo ResNet and keeps its
accuracy — a quality figure, measured here and reported in the README, not asserted in a test.

Three seeds of a MorphNet trial (Gamma, FLOPs, multiplier 5) and of the seed network trained the
same way (baseline_width=1.0), 8 + 8 epochs, width 16. It prints the FLOPs each MorphNet run keeps
and the mean retrained accuracy against the seed network's, and exits 1 when a run keeps more than
70% of the FLOPs or the mean accuracy falls more than 2 points below the seed network's.

    .venv/bin/python tests/benchmarks/digits_acceptance.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sweep.cli import main as cli  # noqa: E402

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
    code = cli(
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
    if code != 0:
        raise SystemExit(f"morphsweep train {name} failed (exit {code})")
    return json.loads((out / "metrics.json").read_text())["summary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="where the trials go (default: a temp dir)")
    args = parser.parse_args(argv)
    tmp_path = Path(args.out or tempfile.mkdtemp(prefix="morphsweep-acceptance-")).resolve()
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "trial.yaml").write_text("algorithm: gamma\ntarget: flops\n")
    learned = [train(tmp_path, f"morphnet-{s}", s, "--set", "multiplier=5.0") for s in SEEDS]
    seed_nets = [train(tmp_path, f"seed-{s}", s, "--set", "baseline_width=1.0") for s in SEEDS]
    fractions = [r["rebuilt_cost"] / r["seed_cost"] for r in learned]
    learned_acc = float(np.mean([r["retrained_val_accuracy"] for r in learned]))
    seed_acc = float(np.mean([r["retrained_val_accuracy"] for r in seed_nets]))
    print(
        f"digits, zoo ResNet w16, Gamma FLOPs x5, seeds {list(SEEDS)}: FLOPs kept "
        f"{[round(f, 3) for f in fractions]}; retrained accuracy {learned_acc:.4f} (mean) against "
        f"{seed_acc:.4f} for the seed network"
    )
    ok = max(fractions) <= 0.70 and learned_acc >= seed_acc - 0.02
    print(
        "goal (every run <= 70% of the FLOPs, mean accuracy within 2 points):",
        "met" if ok else "NOT met",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
