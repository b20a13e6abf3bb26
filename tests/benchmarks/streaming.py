"""``make bench-streaming``: a trial's peak memory over an image folder and one 10x larger.

Writes shapes32 as PNGs twice (``--images`` of them, and the same set 10 times over), then runs
the same trial (``steps_per_epoch`` bounds its epochs, so both train the same number of steps)
on each, each in a fresh process, on each backend of ``--backends``, and prints the peak
resident memory of each run (the child process's ``ru_maxrss``) with the ratio large / small.
A trial that read its data whole would grow with the folder; one that streams it does not.

    .venv/bin/python tests/benchmarks/streaming.py [--images 1000] [--backends tensorflow,jax]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# runs one command and prints its peak resident memory (KiB on Linux) as the last line
PEAK = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def peak_mib(config: dict, work: Path, name: str) -> tuple[float, float, int]:
    """(peak resident MiB, wall seconds, training steps) of ``morphsweep train`` on ``config``."""
    path = work / f"{name}.yaml"
    out = work / name
    path.write_text(yaml.safe_dump({**config, "output_dir": str(out)}))
    command = [str(Path(sys.executable).parent / "morphsweep"), "train", str(path), "--no-resume"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *command], capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    history = json.loads((out / "metrics.json").read_text())["history"]
    return int(done.stdout.strip().splitlines()[-1]) / 1024, seconds, int(history[-1]["step"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the small folder")
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--steps", type=int, default=20, help="steps_per_epoch of both trials")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "sweep" / "examples"))
    from make_real_workload import write_images

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = write_images(work / "small", args.images)
        large = write_images(work / "large", args.images, copies=10)
        counts = {
            name: len(list(folder.rglob("*.png")))
            for name, folder in (("small", small), ("large", large))
        }
        print(f"folders: {counts['small']} and {counts['large']} images", flush=True)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            config = {
                "model": "zoo:plain",
                "model_width": 16,
                "image_size": 32,
                "epochs": 2,
                "retrain_epochs": 1,
                "batch_size": 32,
                "steps_per_epoch": args.steps,
                "backend": backend,
                "verbose": 0,
            }
            measured = {}
            for name, folder in (("small", small), ("large", large)):
                trial = {**config, "dataset": f"images:{folder}"}
                measured[name] = peak_mib(trial, work, f"{backend}-{name}")
                print(
                    f"{backend} {name}: {measured[name][0]:.0f} MiB peak, "
                    f"{measured[name][1]:.0f} s, {measured[name][2]} steps",
                    flush=True,
                )
            ratio = measured["large"][0] / measured["small"][0]
            rows.append((backend, measured["small"], measured["large"], ratio))
    print("\n| backend | small folder peak | 10x folder peak | ratio | steps | goal |")
    print("|---|---|---|---|---|---|")
    for backend, s, big, ratio in rows:
        met = "yes" if ratio <= 1.10 else "NO"
        print(
            f"| {backend} | {s[0]:.0f} MiB | {big[0]:.0f} MiB | {ratio:.3f} | {s[2]} / {big[2]} "
            f"| <= 1.10: {met} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
