#!/usr/bin/env bash
# GPU check (under 8 minutes on one NVIDIA GPU): ResNet50 train-step images/s, plain Keras against
# MorphNet, in float32 and mixed_float16, and the parallel efficiency of a sweep at gpus: 0.25.
#
#   tests/benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--parts steps,sweep]
#
# Exits 2 when no NVIDIA GPU is visible (--dry-run runs the same code at tiny sizes on the CPU).
# The table is printed and written to DIR/gpu_check.csv (default morphsweep_runs/bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

dry_run=0
for arg in "$@"; do
  if [[ $arg == --dry-run ]]; then dry_run=1; fi
done
if (( ! dry_run )) && ! { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; }; then
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi finds none); run it on a GPU machine, or pass --dry-run" >&2
  exit 2
fi
if [[ ! -x .venv/bin/python ]]; then
  make venv
fi
exec .venv/bin/python tests/benchmarks/gpu_check.py "$@"
