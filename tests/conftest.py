"""Shared test setup: quiet TensorFlow, deterministic Keras, small model builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray for every in-process sweep of the session (2 CPUs, no dashboard).

    Its workers import the tests' own helpers (a scripted trainable), so the checkout goes on
    their PYTHONPATH before Ray starts; the sweeps that run in-process find it running.
    """
    import ray

    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray


def pytest_collection_modifyitems(config, items):
    """Modules with slow tests (real sweeps, clusters, processes) first, each module's tests in
    their own order: ``make test`` hands whole modules to its 2 workers (``--dist loadscope
    --no-loadscope-reorder``), and the long ones started first leave the short ones to even out
    the end, instead of one worker finishing a long sweep alone."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)
