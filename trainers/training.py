"""What both training phases of a trial share: its setup, its progress and one fit of a phase.

Structure learning and retraining each describe their run as a ``Fit`` and hand it to
``train``: it goes on from where the checkpoint stopped, and after every epoch ``Progress``
records the epoch (``records.Epoch``), saves the checkpoint and reports both.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import TrialConfig
from .errors import TrialFailed
from .preprocessing import Preprocessing
from .records import LEARN, Epoch
from .reporting import Reporter

if TYPE_CHECKING:
    from .budgets import BudgetPath
    from .checkpoint import Checkpoint
    from .data import Batches
    from .morphnet.costs import Target
    from .morphnet.graph import Graph


@dataclass(frozen=True)
class Setup:
    """What every phase of a trial reads: its config, its data, the seed network and the target."""

    config: TrialConfig
    out: Path  # the trial's output directory
    train_ds: Batches  # or a source read batch by batch (trainers.streams), alike
    val_ds: Batches
    jit_compile: bool
    seed_model: Any
    seed_graph: Graph
    target: Target
    # what strength = multiplier / seed cost divides by, here and in a sweep's driver
    seed_cost: float
    seed_val_accuracy: float | None = None  # a trained seed's, before learning
    preprocessing: Preprocessing = Preprocessing()  # the layers in front of the seed network

    @property
    def structure_path(self) -> Path:
        """Where the trial's final structure goes: the one its model is rebuilt from."""
        return self.out / "structure.json"


@dataclass(frozen=True)
class Fit:
    """One phase's training run: what it fits, what its checkpoints keep, what its epochs add.

    ``model`` is what Keras fits and evaluates (structure learning's ``StructureLearner``);
    ``checkpointed`` the network whose weights the checkpoint keeps. ``strength``,
    ``learned_val_accuracy`` and ``initial_term`` go into every checkpoint, for a resumed run.
    """

    phase: str
    model: Any
    checkpointed: Any
    optimizer: Any
    epochs: int
    initial_epoch: int
    strength: float
    learned_val_accuracy: float | None
    initial_term: float
    epoch_fields: Callable[[], dict[str, Any]] = dict  # the phase's own fields of an epoch
    after_step: Callable[[Any], None] | None = None  # called with the fitted model, each step
    stop_early: Callable[[Epoch], bool] | None = None  # after an epoch: end the phase now?


class Progress:
    """What a trial has done, over every run of it: steps, time, epoch records and warnings.

    Read back from the checkpoint's state when the trial resumes; the one object the phases
    change as they go (the epoch callback counts steps and time into it).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        reporter: Reporter,
        resume: bool,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.reporter = reporter
        # the trial's config as JSON reads it back: what a checkpoint is checked against
        self.config = json.loads(json.dumps(config or {}, default=str))
        self.state = checkpoint.state() if resume else None
        if self.state:
            checkpoint.check_config(self.config)
        saved = self.state or {}
        self.history: list[dict[str, Any]] = list(saved.get("history", []))
        self.warnings: list[str] = list(saved.get("warnings", []))
        self.step = int(saved.get("step", 0))
        # seconds in training steps, validation and evaluation (the rest of a trial is setup,
        # checkpoints and exports), and the trial's whole time, over every run of it
        self.train_seconds = float(saved.get("train_seconds", 0.0))
        self.earlier_seconds = float(saved.get("trial_seconds", 0.0))
        self.started = time.perf_counter()
        # given budgets, the path of structure learning (trainers.budgets), saved with the state
        self.saved_budget_path: dict[str, Any] | None = saved.get("budget_path")
        self.budget_path: BudgetPath | None = None

    @property
    def phase(self) -> str:
        """The phase the last run stopped in (learn for a trial that has not run yet)."""
        return str((self.state or {}).get("phase", LEARN))

    def resumed_from(self) -> str | None:
        """Where a resumed trial picks up (``learn epoch 2, step 46``); None for a fresh one."""
        if not self.state:
            return None
        state = self.state
        return f"{state.get('phase', LEARN)} epoch {state.get('epoch', 0)}, step {self.step}"

    @property
    def trial_seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self.started

    def resumes(self, phase: str) -> bool:
        """Whether the last run stopped in ``phase``, so that its checkpoint holds its weights."""
        return bool(self.state) and (self.state or {}).get("phase") == phase

    def restore(self, model: Any, optimizer: Any) -> int:
        """Load the checkpoint into ``model`` and ``optimizer``; the epochs it had trained."""
        self.checkpoint.restore(model, optimizer)
        return int((self.state or {})["epoch"])

    def saved_initial_term(self, default: float) -> float:
        """The regularization term before learning, as the run that started learning saw it."""
        return float((self.state or {}).get("initial_term", default))

    def saved_learning(self) -> tuple[float, float | None]:
        """The strength and learned accuracy of the run that learned the structure."""
        saved = self.state or {}
        return float(saved.get("strength", 0.0)), saved.get("learned_val_accuracy")

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.reporter.warn(message)

    def end_epoch(self, fit: Fit, epoch: int, logs: dict[str, Any]) -> Epoch:
        """Record the epoch, save the checkpoint and report both."""
        fields: dict[str, Any] = {k: float(logs[k]) for k in Epoch.KERAS_LOGS if k in logs}
        fields.update(fit.epoch_fields())
        record = Epoch(phase=fit.phase, epoch=epoch + 1, step=self.step, **fields)
        metrics = record.to_result()
        self.history.append(metrics)
        state = {
            "phase": fit.phase,
            "epoch": epoch + 1,
            "step": self.step,
            "history": self.history,
            "warnings": self.warnings,
            "strength": fit.strength,
            "learned_val_accuracy": fit.learned_val_accuracy,
            "initial_term": fit.initial_term,
            "train_seconds": self.train_seconds,
            "trial_seconds": self.trial_seconds,
            self.checkpoint.CONFIG: self.config,
        }
        if self.budget_path is not None:
            state["budget_path"] = self.budget_path.to_dict()
        checkpoint = self.checkpoint.save(fit.checkpointed, fit.optimizer, state)
        self.reporter.report(metrics, checkpoint)
        return record


def compile_for_training(model: Any, optimizer: Any, jit_compile: bool) -> None:
    """Compile ``model`` as both phases train it: the task's loss, Keras' accuracy."""
    from .morphnet.keras3.backend import keras

    model.compile(
        jit_compile=jit_compile,
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(setup: Setup, progress: Progress, fit: Fit) -> float:
    """Fit ``fit.model`` from its initial epoch on; its validation accuracy after.

    Raises:
        TrialFailed: a NaN or infinite loss; the reason names the epoch and step.
    """
    callback = epoch_callback(progress, fit, setup.train_ds)
    if fit.initial_epoch < fit.epochs:
        fit.model.fit(
            setup.train_ds.for_fit(),
            validation_data=setup.val_ds.for_fit(),
            shuffle=False,  # the batches come in their own seeded order
            epochs=fit.epochs,
            initial_epoch=fit.initial_epoch,
            verbose=setup.config.verbose,
            callbacks=[callback],
        )
    if callback.failure:
        raise TrialFailed(callback.failure)
    started = time.perf_counter()
    accuracy = float(
        fit.model.evaluate(setup.val_ds.for_fit(), verbose=0, return_dict=True)["accuracy"]
    )
    progress.train_seconds += time.perf_counter() - started
    return accuracy


def epoch_callback(progress: Progress, fit: Fit, train_ds: Batches) -> Any:
    """The Keras callback of a fit: counts steps and time, stops on a non-finite loss."""
    from .morphnet.keras3.backend import keras

    class EpochCallback(keras.callbacks.Callback):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.started = 0.0
            self.failure: str | None = None

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            progress.step += 1
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                self.failure = (
                    f"loss became {loss} at {fit.phase} epoch {self.epoch + 1}, step "
                    f"{progress.step}; lower the learning rate or the regularization strength"
                )
                self.model.stop_training = True
            elif fit.after_step is not None:
                fit.after_step(self.model)

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch
            train_ds.set_epoch(epoch)  # the epoch's batch order, also when resumed
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            # the epoch's training steps and its validation; what end_epoch does is overhead
            progress.train_seconds += time.perf_counter() - self.started
            if self.failure:
                return
            record = progress.end_epoch(fit, epoch, dict(logs or {}))
            if fit.stop_early is not None and fit.stop_early(record):
                self.model.stop_training = True

    return EpochCallback()
