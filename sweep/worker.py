"""Inside a Ray worker: one trial, run as a Tune function trainable.

``trainable`` sets the worker up for the trial's Keras backend, restores the trial's files from
Tune's checkpoint when Tune retries or resumes it, runs ``trainers.trial.run_trial`` and sends
each record (``trainers.records``) with ``tune.report`` and a checkpoint. The driver
(``sweep.driver``) never runs this code; the two share only the records and the checkpoint's
layout (``BUNDLE``).

Only Tune's function API is used: ``tune.report``, ``tune.get_checkpoint``, ``tune.Checkpoint``.
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainers.config import TrialConfig
from trainers.errors import TrialFailed
from trainers.records import Failure
from trainers.runtime import select_backend, setup_device

# What a report's checkpoint holds: the trial's checkpoint directory, its structure and metrics
# files, the structure exported since the last report, the report itself, and on the first report
# of a resumed trial the epochs it had saved (the driver logs those the old worker did not send).
BUNDLE = {
    "checkpoint": "checkpoint",
    "structure": "structure.json",
    "final_structure": "final_structure.json",  # beside a structure retrained from the path
    "metrics": "metrics.json",
    "model": "model.keras",  # the retrained network, in the finished trial's last report only
    "structures": "structures",
    "report": "report.json",
    "history": "history.json",
}
# keys a report adds to the trial's record: where and when it ran, and where a resumed trial
# picks up (a plain string; the epochs themselves travel in the checkpoint, BUNDLE["history"])
NODE_ID, REPORTED_AT, ENTERED_AT, RESUMED_FROM = (
    "node_id",
    "reported_at",
    "entered_at",
    "resumed_from",
)

_TRIALS_IN_PROCESS = 0  # trials this worker process has begun


def setup_worker(backend: str, cpus: float) -> None:
    """The worker process for one trial: its Keras backend, threads = its CPUs, GPU memory taken
    as needed (``trainers.runtime``).

    Tune reuses a finished trial's worker for the next trial (``reuse_actors``): the backend is
    then imported and set up already (its settings cannot change once it runs, and every trial of
    a sweep asks for the same backend and resources), and Keras' state is cleared instead, so
    layer names and graphs start afresh as in a new process.

    Python's garbage collector is kept off the objects that outlive trials (the imported
    modules, the backend's state): they are frozen (``gc.freeze``) before each trial, so that
    collecting what the last trial left walks that trial's objects only. A full collection over
    everything took 0.5-7 s per reused worker and grew with every trial; this one takes ~0.3 s.
    """
    select_backend(backend)
    setup_device(backend, cpus)
    global _TRIALS_IN_PROCESS
    if _TRIALS_IN_PROCESS:  # a fresh worker is left exactly as it starts
        from trainers.morphnet.keras3.backend import keras

        keras.backend.clear_session(free_memory=False)
        gc.collect()  # the last trial's garbage: everything older is frozen
    gc.freeze()
    _TRIALS_IN_PROCESS += 1


class TuneReporter:
    """The trainer's reporter inside Tune: each record becomes ``tune.report`` with a checkpoint.

    Args:
        output_dir: the trial's directory.
        resumed: the trial's saved state when it resumes (its phase, epoch and history).
        entered: when the worker began the trial (``time.time()``), sent with the first report.
    """

    def __init__(
        self, output_dir: Path, resumed: dict[str, Any] | None = None, entered: float = 0.0
    ) -> None:
        self.output_dir = output_dir
        self.entered: float | None = entered or None
        self.structures: list[str] = []  # exported since the last report
        self.model_file: str | None = None  # saved just before the outcome is reported
        self.resumed = resumed
        # the node a trial runs on (several nodes may share one IP address)
        self.node_id = ray.get_runtime_context().get_node_id()

    def _bundle(self, bundle: Path, checkpoint: str | None, metrics: dict[str, Any]) -> None:
        if checkpoint and Path(checkpoint).is_dir():
            shutil.copytree(checkpoint, bundle / BUNDLE["checkpoint"])
        for name in (BUNDLE["structure"], BUNDLE["final_structure"], BUNDLE["metrics"]):
            if (self.output_dir / name).is_file():
                shutil.copy2(self.output_dir / name, bundle / name)
        if self.model_file and Path(self.model_file).is_file():
            shutil.copy2(self.model_file, bundle / BUNDLE["model"])
        if self.structures:
            (bundle / BUNDLE["structures"]).mkdir()
            for path in dict.fromkeys(self.structures):
                if Path(path).is_file():
                    shutil.copy2(path, bundle / BUNDLE["structures"])
            self.structures = []
        (bundle / BUNDLE["report"]).write_text(json.dumps(metrics, default=str))

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp)
            self._bundle(bundle, checkpoint, metrics)
            extra: dict[str, Any] = {NODE_ID: self.node_id, REPORTED_AT: time.time()}
            if self.entered is not None:
                extra[ENTERED_AT], self.entered = self.entered, None
            if self.resumed is not None:
                extra[RESUMED_FROM] = f"{self.resumed['phase']} epoch {self.resumed['epoch']}"
                history = self.resumed.get("history", [])
                (bundle / BUNDLE["history"]).write_text(json.dumps(history, default=float))
                self.resumed = None
            tune.report({**metrics, **extra}, checkpoint=tune.Checkpoint.from_directory(tmp))

    def artifact(self, path: str, kind: str) -> None:
        if kind == "structure" and "/structures/" in path:
            self.structures.append(path)
        elif kind == "model":
            self.model_file = path

    def warn(self, message: str) -> None:
        print(f"WARNING: {message}", flush=True)


def _restore(output_dir: Path) -> dict[str, Any] | None:
    """Tune's checkpoint of a retried or resumed trial back in its directory; its saved state."""
    checkpoint = tune.get_checkpoint()
    state_file = output_dir / BUNDLE["checkpoint"] / "state.json"
    if checkpoint is not None and not state_file.is_file():
        with checkpoint.as_directory() as directory:
            source = Path(directory)
            if (source / BUNDLE["checkpoint"]).is_dir():
                shutil.copytree(
                    source / BUNDLE["checkpoint"],
                    output_dir / BUNDLE["checkpoint"],
                    dirs_exist_ok=True,
                )
            if (source / BUNDLE["structure"]).is_file():
                shutil.copy2(source / BUNDLE["structure"], output_dir / BUNDLE["structure"])
    return json.loads(state_file.read_text()) if state_file.is_file() else None


def trainable(config: dict[str, Any], specs: dict[str, dict[str, Any]], cpus: float = 1.0) -> None:
    """One trial: restore from Tune's checkpoint if any, run it, report a failure reason.

    Args:
        config: Tune's config of the trial: its sweep trial id and, for the adaptive search, the
            trial itself (output directory and trial config).
        specs: a grid sweep's trials by sweep trial id (the same entries).
        cpus: the CPUs the trial was given (its thread pools).
    """
    entered = time.time()
    spec = specs.get(config["trial_id"]) or config
    setup_worker(str(spec["config"].get("backend", "tensorflow")), cpus)
    # Keras now, on the backend just selected (TensorFlow or JAX)
    from trainers.trial import run_trial

    output_dir = Path(spec["output_dir"])
    resumed = _restore(output_dir)
    trial = TrialConfig.from_dict({**spec["config"], "output_dir": str(output_dir), "verbose": 0})
    try:
        run_trial(trial, TuneReporter(output_dir, resumed, entered))
    except TrialFailed as exc:
        tune.report(Failure(str(exc)).to_result())
