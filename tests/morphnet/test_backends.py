"""TensorFlow against JAX: the MorphNet library computes the same thing on both Keras backends.

Each backend runs ``backend_probe.py`` in its own process (a process's Keras backend is fixed
when Keras is imported): TensorFlow builds the seeds (the test zoo, MobileNetV2 and ResNet50 with
BatchNormalization scales spread around the alive threshold) and saves them; both backends load
the same files and record, for Gamma, GroupLasso and FiGS (fixed gate log-odds and noise) x
FLOPs, model size and latency: the regularization term, its gradient for every trainable
variable, alive vectors, structure JSON and exact cost, and one optimizer step of
``StructureLearner.fit``; then each backend reloads the networks the other one stepped.

Tolerances: the term to 1e-6 relative; gradients, and what the MorphNet term changes in an
optimizer step, to 1e-5 of each variable's scale; exact costs, alive vectors and structures
identical. The whole step (task loss included) is compared to 1e-5 on the test zoo; on
MobileNetV2 and ResNet50 the two backends' float32 convolutions already part at 1e-4 of the
logits in a random network's forward pass (measured: 8e-5 of ResNet50's logits at 64x64), and a step
amplifies that into 1e-2 of a kernel, so there the step is compared through the term's part of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from . import backend_probe

PROBE = Path(backend_probe.__file__)
ROOT = PROBE.parents[2]
ZOO_CASES = [c for c, spec, _ in backend_probe.CASES if spec.startswith("zoo:")]

pytestmark = pytest.mark.slow


def _run(backend: str, *args: str) -> None:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": str(ROOT),
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("PROBE_CASES", None)
    done = subprocess.run(
        [sys.executable, str(PROBE), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{backend} {args[0]} failed:\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    out = tmp_path_factory.mktemp("backends")
    _run("tensorflow", "seed", str(out))
    _run("tensorflow", "probe", str(out))
    _run("jax", "probe", str(out))
    _run("tensorflow", "restore", str(out), "jax")
    _run("jax", "restore", str(out), "tensorflow")
    results = {
        b: (
            json.loads((out / f"probe.{b}.json").read_text()),
            np.load(out / f"probe.{b}.npz"),
            json.loads((out / f"restore.{b}.json").read_text()),
        )
        for b in ("tensorflow", "jax")
    }
    return results


def _keys(results, kind: str):
    return sorted(k for k in results["tensorflow"][1].files if k.startswith(kind + "|"))


def _close_to_scale(
    a: np.ndarray, b: np.ndarray, tol: float, what: str, floor: float = 0.0
) -> None:
    """``|a - b| <= max(tol x max|a|, floor)`` elementwise over the whole array (its scale)."""
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-12)
    worst = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert worst <= max(tol * scale, floor), (
        f"{what}: max |TF - JAX| = {worst:.3g} at scale {scale:.3g}"
    )


def test_every_case_was_probed_on_both_backends(probes):
    tf, jx = probes["tensorflow"][0], probes["jax"][0]
    expected = {
        f"{case}/{a}/{t}"
        for case, _, _ in backend_probe.CASES
        for a in backend_probe.ALGORITHMS
        for t in backend_probe.TARGETS
    }
    assert expected <= set(tf) and expected <= set(jx)
    assert set(probes["tensorflow"][1].files) == set(probes["jax"][1].files)


def test_term_cost_alive_and_structure_agree(probes):
    tf, jx = probes["tensorflow"][0], probes["jax"][0]
    checked = 0
    for key, a in tf.items():
        if key == "mid_epoch" or (key.endswith("/step") and key[: -len("/step")] not in ZOO_CASES):
            continue  # after a whole step, only the zoo's weights agree to 1e-5 (module doc)
        b = jx[key]
        assert a["term"] > 0, key
        assert abs(a["term"] - b["term"]) <= 1e-6 * abs(a["term"]), (key, a["term"], b["term"])
        assert a["cost"] == b["cost"], (key, a["cost"], b["cost"])
        assert a["alive"] == b["alive"], key
        assert a["structure"] == b["structure"], key
        checked += 1
    # the seeds have dead and alive channels: the alive vectors test something
    some = tf["resnet/gamma/flops"]["alive"]
    flat = [x for v in some.values() for x in v]
    assert 0 < sum(flat) < len(flat)
    assert checked == len(backend_probe.CASES) * 9 + len(ZOO_CASES)


def test_term_gradients_agree_for_every_variable(probes):
    a, b = probes["tensorflow"][1], probes["jax"][1]
    keys = _keys(probes, "grad")
    assert len(keys) > 1000
    nonzero = 0
    for key in keys:
        _close_to_scale(a[key], b[key], 1e-5, key)
        nonzero += bool(np.any(a[key]))
    assert nonzero > 100  # the term reaches gammas, kernels and gate logits


def test_one_fit_step_gives_the_same_weights(probes):
    a, b = probes["tensorflow"][1], probes["jax"][1]
    for key in _keys(probes, "delta"):
        # a difference of two float32 weights carries their rounding: 1e-6 of the weight
        weight = float(np.max(np.abs(a[key.replace("delta|", "step|", 1)])))
        _close_to_scale(a[key], b[key], 1e-5, key, floor=1e-6 * weight)
    assert any(np.any(a[k]) for k in _keys(probes, "delta"))
    for key in _keys(probes, "step"):
        if key.split("|")[1] in ZOO_CASES:  # weights to 1e-5 (relative where they exceed 1)
            _close_to_scale(a[key], b[key], 1e-5, key, floor=1e-5)
    for case in ZOO_CASES:
        la = probes["tensorflow"][0][f"{case}/step"]["logs"]
        lb = probes["jax"][0][f"{case}/step"]["logs"]
        assert set(la) >= {"loss", "task_loss", "regularization_loss"}
        for name in ("task_loss", "regularization_loss"):
            assert la[name] == pytest.approx(lb[name], rel=1e-5), (case, name)


def test_weights_saved_on_one_backend_restore_on_the_other(probes):
    for saved, loaded in (("jax", "tensorflow"), ("tensorflow", "jax")):
        stepped = probes[saved][0]
        restored = probes[loaded][2]
        for case, _, _ in backend_probe.CASES:
            a, b = stepped[f"{case}/step"], restored[case]
            assert b["term"] == pytest.approx(a["term"], rel=1e-6), (saved, case)
            assert b["cost"] == a["cost"] and b["structure"] == a["structure"], (saved, case)


def test_a_structure_exported_mid_epoch_on_jax_equals_one_after_the_fit_stops(probes):
    mid = probes["jax"][0]["mid_epoch"]
    assert mid["exported"] == mid["stopped"]
    # the learning moved something by then: not the seed's own structure
    seed = probes["jax"][0]["resnet/gamma/flops"]
    assert mid["exported"]["term"] != pytest.approx(seed["term"], rel=1e-6)
