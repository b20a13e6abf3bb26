#!/usr/bin/env bash
# GPU check (under 6 minutes on one NVIDIA GPU, on Keras' JAX backend: no TensorFlow needed):
# ResNet50@224 batch 128 train-step images/s, plain Keras against MorphNet, in float32 and
# bfloat16; one trial end to end; and, with Ray and MLflow, k = 1, 4, 8 trials sharing the GPU.
#
#   tests/benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--parts steps,trial,sweep]
#                                 [--backend jax|tensorflow]
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
# a machine that brings its own Python with JAX and Keras (a GPU machine) runs it directly:
#   PYTHONPATH=. python tests/benchmarks/gpu_check.py
if [[ ! -x .venv/bin/python ]]; then
  make venv
fi
exec .venv/bin/python tests/benchmarks/gpu_check.py "$@"
