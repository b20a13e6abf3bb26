"""One structure-learning trial: learn with MorphNet, export, rebuild the smaller model, retrain.

``run_trial(config, reporter)`` is the entry point a sweep calls. It reports per epoch through
``trainers.reporting.Reporter``, checkpoints every epoch under ``<output_dir>/checkpoint`` and
resumes from there when run again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrialConfig
from .data import Dataset, check_dataset_spec, load_dataset
from .errors import TrialFailed
from .models import build_model, check_model_spec
from .morphnet.errors import StructureError
from .morphnet.structure import Structure
from .records import COST_FRACTION, LEARN, RETRAIN, Epoch, Outcome
from .reporting import ConsoleReporter, Reporter, write_json
from .runtime import resolve_jit_compile, select_backend, set_determinism


@dataclass
class TrialResult:
    """What a finished trial produced (also written to ``metrics.json``)."""

    output_dir: str
    structure_path: str
    model_path: str
    metrics_path: str
    cost_name: str
    seed_cost: float
    predicted_cost: float
    rebuilt_cost: float
    strength: float
    retrained_val_accuracy: float
    learned_val_accuracy: float | None
    train_seconds: float = 0.0
    trial_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        return Outcome.from_result(dataclasses.asdict(self))

    def summary(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("history")
        data[COST_FRACTION] = self.outcome.cost_fraction
        return data


def _keras() -> Any:
    from .morphnet.keras3.backend import keras

    return keras


def make_regularizer(model: Any, config: TrialConfig) -> Any:
    """The MorphNet regularizer this config asks for, on ``model``."""
    from .morphnet.keras3 import make_regularizer as make

    options: dict[str, Any] = {}
    if config.algorithm == "logistic_sigmoid":
        options["regularize_on_mask"] = config.regularize_on_mask
    return make(
        model,
        config.algorithm,
        target_of(config),
        config.regularizer_threshold,
        **options,
    )


def target_of(config: TrialConfig) -> Any:
    from .morphnet.costs import TARGETS, latency_target

    if config.target == "latency":
        return latency_target(config.hardware, config.latency_batch_size)
    return TARGETS[config.target]


class _Checkpoint:
    """Weights, optimizer state and progress of a trial, in one directory.

    A process killed while saving must leave the previous checkpoint whole: each save writes its
    weights and optimizer state under new names (``model-<n>.weights.h5``, ``optimizer-<n>.npz``),
    then replaces ``state.json`` (atomically) naming them, and only then removes the older files.
    A kill at any point leaves ``state.json`` naming complete files.
    """

    FILES = "checkpoint_files"  # the key of state.json naming the weight and optimizer files

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def state(self) -> dict[str, Any] | None:
        path = self.dir / "state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        state.pop(self.FILES, None)
        return state

    def _files(self) -> tuple[Path, Path]:
        path = self.dir / "state.json"
        named = json.loads(path.read_text()).get(self.FILES) if path.is_file() else None
        if not named:  # a checkpoint from before the files were numbered
            return self.dir / "model.weights.h5", self.dir / "optimizer.npz"
        return self.dir / named["weights"], self.dir / named["optimizer"]

    def save(self, model: Any, optimizer: Any, state: dict[str, Any]) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        found = (re.fullmatch(r"model-(\d+)\.weights\.h5", p.name) for p in self.dir.iterdir())
        n = max((int(m[1]) for m in found if m), default=0) + 1
        weights, opt = f"model-{n}.weights.h5", f"optimizer-{n}.npz"
        model.save_weights(str(self.dir / weights))
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
        np.savez(self.dir / opt, **arrays)  # type: ignore[arg-type]
        write_json(
            self.dir / "state.json", {**state, self.FILES: {"weights": weights, "optimizer": opt}}
        )
        for old in [*self.dir.glob("model*.weights.h5"), *self.dir.glob("optimizer*.npz")]:
            if old.name not in (weights, opt):
                old.unlink(missing_ok=True)
        return str(self.dir)

    def restore(self, model: Any, optimizer: Any) -> None:
        weights, opt = self._files()
        model.load_weights(str(weights))
        optimizer.build(model.trainable_variables)
        saved = np.load(opt)
        for i, v in enumerate(optimizer.variables):
            v.assign(saved[f"v{i}"])


def _epoch_callback(trial: _Trial, phase: str) -> Any:
    keras = _keras()
    from .morphnet.keras3.backend import sync_weights

    class EpochCallback(keras.callbacks.Callback):  # type: ignore[name-defined,misc]
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            trial.step += 1
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                trial.failure = (
                    f"loss became {loss} at {phase} epoch {trial.epoch + 1}, step {trial.step}; "
                    f"lower the learning rate or the regularization strength"
                )
                self.model.stop_training = True
            elif (
                phase == LEARN
                and trial.config.export_every_steps
                and trial.step % trial.config.export_every_steps == 0
            ):
                # mid-epoch, a JAX fit holds the weights outside the model's variables
                sync_weights(self.model)
                trial.export_structure(final=False)

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            trial.epoch = epoch
            trial.train_ds.set_epoch(epoch)  # the epoch's batch order, also when resumed
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            # the epoch's training steps and its validation; what end_epoch does is overhead
            trial.train_seconds += time.perf_counter() - self.started
            if trial.failure:
                return
            trial.end_epoch(phase, epoch, dict(logs or {}))

    return EpochCallback()


class _Trial:
    def __init__(self, config: TrialConfig, reporter: Reporter, resume: bool) -> None:
        self.config = config
        self.reporter = reporter
        self.out = Path(config.output_dir).resolve()
        self.ckpt = _Checkpoint(self.out / "checkpoint")
        self.state = self.ckpt.state() if resume else None
        self.history: list[dict[str, Any]] = list((self.state or {}).get("history", []))
        self.warnings: list[str] = list((self.state or {}).get("warnings", []))
        self.step = int((self.state or {}).get("step", 0))
        # seconds in training steps, validation and evaluation (the rest of a trial is setup,
        # checkpoints and exports), and the trial's whole time, over every run of it
        self.train_seconds = float((self.state or {}).get("train_seconds", 0.0))
        self.earlier_seconds = float((self.state or {}).get("trial_seconds", 0.0))
        self.started = time.perf_counter()
        self.epoch = 0
        self.failure: str | None = None
        self.network: Any = None
        self.regularizer: Any = None
        self.optimizer: Any = None
        self.strength = 0.0
        self.initial_term = 0.0

    # ----- phases --------------------------------------------------------------------------
    def run(self) -> TrialResult:
        select_backend(self.config.backend)
        keras = _keras()
        previous = keras.config.dtype_policy()
        if self.config.mixed_precision:
            # every model of the trial (seed, gated, rebuilt) is built under this policy
            keras.config.set_dtype_policy("mixed_float16")
        try:
            return self._run()
        finally:
            # a process that runs several trials is not left in mixed precision
            keras.config.set_dtype_policy(previous)

    def _run(self) -> TrialResult:
        config = self.config
        check_model_spec(config.model)
        check_dataset_spec(config.dataset)
        self.out.mkdir(parents=True, exist_ok=True)
        set_determinism(config.seed, config.deterministic)
        data = load_dataset(config.dataset, config.seed).resized(config.image_size)
        self.data = data
        self.train_ds, self.val_ds = data.batches(config.batch_size, config.seed)
        self.jit_compile = resolve_jit_compile(config.jit_compile, config.backend)
        self.seed_model = build_model(
            config.model, data.input_shape, data.num_classes, config.model_width, config.seed
        )
        from .morphnet.keras3 import read_model

        self.seed_graph, _ = read_model(self.seed_model)
        self.target = target_of(config)
        from .morphnet.widths import seed_cost

        # what strength = multiplier / seed cost divides by, here and in a sweep's driver
        self.seed_cost = seed_cost(self.seed_graph, self.target)
        phase = (self.state or {}).get("phase", LEARN)
        learned_accuracy = None
        if phase == LEARN:
            if config.baseline_width is None:
                learned_accuracy = self.learn()
            else:
                self.baseline_structure()
        else:
            self.structure = Structure.load(self.out / "structure.json")
            self.strength = float((self.state or {}).get("strength", 0.0))
            learned_accuracy = (self.state or {}).get("learned_val_accuracy")
        self.learned_accuracy = learned_accuracy
        # the rebuilt network's initial weights depend on the seed only, not on the learning run
        from .morphnet.keras3.backend import set_random_seed

        set_random_seed(config.seed + 1)
        model = self.rebuild()
        accuracy = self.retrain(model)
        return self.finish(model, accuracy, learned_accuracy)

    def _seed_structure(self) -> Structure:
        from .morphnet.widths import seed_structure

        return seed_structure(self.seed_graph)

    def baseline_structure(self) -> None:
        from .morphnet.widths import scale_structure, structure_cost

        scaled = scale_structure(self._seed_structure(), self.config.baseline_width or 1.0)
        cost = structure_cost(self.seed_graph, scaled, self.target)
        self.structure = dataclasses.replace(
            scaled,
            cost_name=self.target.cost_name,
            seed_cost=self.seed_cost,
            learned_cost=cost,
            regularizer=f"uniform x{self.config.baseline_width}",
        )
        self._save_structure(self.structure, final=True)

    def learn(self) -> float | None:
        config = self.config
        keras = _keras()
        network = self.seed_model
        if config.algorithm == "logistic_sigmoid":
            from .morphnet.keras3 import add_gating

            network = add_gating(
                network,
                seed=config.seed,
                temperature=config.gate_temperature,
                log_odds_init=config.gate_log_odds_init,
                straight_through=config.gate_straight_through,
            )
        self.network = network
        self.regularizer = make_regularizer(network, config)
        # config validation guarantees a multiplier when no strength is given
        multiplier = float(config.multiplier or 0.0)
        self.strength = (
            config.strength if config.strength is not None else multiplier / self.seed_cost
        )
        from .morphnet.keras3 import StructureLearner

        learner = StructureLearner(network, self.regularizer, self.strength)
        self.optimizer = keras.optimizers.Adam(config.learning_rate)
        learner.compile(
            jit_compile=self.jit_compile,
            optimizer=self.optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        initial = 0
        # the term before any learning: how far it has fallen tells a run that moves from one
        # that does not, before any channel crosses the threshold
        self.initial_term = float(self.regularizer.get_regularization_term())
        if self.state and self.state.get("phase") == LEARN:
            self.ckpt.restore(network, self.optimizer)
            initial = int(self.state["epoch"])
            self.initial_term = float(self.state.get("initial_term", self.initial_term))
        if initial < config.epochs:
            learner.fit(
                self.train_ds.for_fit(),
                validation_data=self.val_ds.for_fit(),
                shuffle=False,  # the batches come in their own seeded order
                epochs=config.epochs,
                initial_epoch=initial,
                verbose=config.verbose,
                callbacks=[_epoch_callback(self, LEARN)],
            )
        if self.failure:
            raise TrialFailed(self.failure)
        accuracy = self._evaluate(learner)
        self.export_structure(final=True)
        return accuracy

    def export_structure(self, final: bool) -> None:
        from .morphnet.widths import (
            keep_full_width,
            output_layers,
            rebuild_structure,
            structure_cost,
        )

        if final and self.config.algorithm == "logistic_sigmoid":
            # the gates' inference masks decide, ORed across gates tied by adds
            structure = self.regularizer.structure(step=self.step, inference=True)
        else:
            structure = self.regularizer.structure(step=self.step)
        # the logits keep every class: output layers are rebuilt at full width
        structure = keep_full_width(structure, output_layers(self.seed_graph))
        # the cost of what rebuild() will build (one channel in dead layers if it must)
        predicted = structure_cost(self.seed_graph, structure, self.target)
        _, min_channels = rebuild_structure(self.seed_graph, structure)
        structure = dataclasses.replace(
            structure,
            cost_name=self.target.cost_name,
            seed_cost=self.seed_cost,
            learned_cost=predicted,
            cost_definition="rebuild",
            rebuild_min_channels=min_channels,
            regularizer=self.regularizer.name,
            step=self.step,
            extra={
                "strength": self.strength,
                "algorithm": self.config.algorithm,
                "target": self.config.target,
            },
        )
        self._save_structure(structure, final)
        if final:
            self.structure = structure
            self._check_degenerate(structure)

    def _save_structure(self, structure: Structure, final: bool) -> None:
        path = structure.save(self.out / "structures" / f"structure_{self.step}.json")
        structure.save_alive_counts(self.out, self.step)
        self.reporter.artifact(str(path), "structure")
        if final:
            final_path = structure.save(self.out / "structure.json")
            self.reporter.artifact(str(final_path), "structure")

    def _check_degenerate(self, structure: Structure) -> None:
        fraction = structure.learned_cost / self.seed_cost if self.seed_cost else 1.0
        message = None
        if structure.learned_cost <= 0 or all(s.alive == 0 for s in structure.layers.values()):
            message = (
                f"the learned {structure.cost_name} collapsed to {structure.learned_cost:g}: the "
                f"strength {self.strength:.3g} is too high; try about 10x lower"
            )
        elif fraction >= 0.98:
            message = (
                f"nothing shrank ({structure.cost_name} is {fraction:.1%} of the seed's): the "
                f"strength {self.strength:.3g} is too low; try 10x-100x higher"
            )
        if message:
            self.warnings.append(message)
            self.reporter.warn(message)

    def end_epoch(self, phase: str, epoch: int, logs: dict[str, Any]) -> None:
        fields: dict[str, Any] = {k: float(logs[k]) for k in Epoch.KERAS_LOGS if k in logs}
        if phase == LEARN:
            cost = float(self.regularizer.get_cost())
            alive = self.regularizer.alive_vectors()
            total = sum(v.size for v in alive.values())
            fields.update(
                cost=cost,
                cost_name=self.target.cost_name,
                cost_fraction=cost / self.seed_cost if self.seed_cost else float("nan"),
                alive_fraction=float(sum(int(v.sum()) for v in alive.values()) / max(total, 1)),
                alive={name: float(v.mean()) for name, v in alive.items()},
                strength=self.strength,
                **self._predicted_now(),
            )
            if self.initial_term > 0:
                term = float(self.regularizer.get_regularization_term())
                fields["term_fraction"] = term / self.initial_term
        record = Epoch(phase=phase, epoch=epoch + 1, step=self.step, **fields)
        metrics = record.to_result()
        self.history.append(metrics)
        state = {
            "phase": phase,
            "epoch": epoch + 1,
            "step": self.step,
            "history": self.history,
            "warnings": self.warnings,
            "strength": self.strength,
            "learned_val_accuracy": getattr(self, "learned_accuracy", None),
            "initial_term": getattr(self, "initial_term", None),
            "train_seconds": self.train_seconds,
            "trial_seconds": self.trial_seconds,
        }
        model = self.network if phase == LEARN else self.retrain_model
        optimizer = self.optimizer if phase == LEARN else self.retrain_optimizer
        checkpoint = self.ckpt.save(model, optimizer, state)
        self.reporter.report(metrics, checkpoint)

    @property
    def trial_seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self.started

    def _evaluate(self, model: Any) -> float:
        started = time.perf_counter()
        accuracy = float(
            model.evaluate(self.val_ds.for_fit(), verbose=0, return_dict=True)["accuracy"]
        )
        self.train_seconds += time.perf_counter() - started
        return accuracy

    def _predicted_now(self) -> dict[str, float]:
        """The cost of the structure if learning stopped now, and whether it can be rebuilt."""
        from .morphnet.widths import keep_full_width, output_layers, structure_cost

        structure = keep_full_width(
            self.regularizer.structure(step=self.step), output_layers(self.seed_graph)
        )
        predicted = structure_cost(self.seed_graph, structure, self.target)
        # collapsed: nothing left, or a dead layer on every path (a dead residual branch leaves
        # the skip path: a smaller network, not a collapse)
        collapsed = predicted <= 0
        if not collapsed and any(s.alive == 0 for s in structure.layers.values()):
            from .morphnet.keras3 import cuts_network

            collapsed = cuts_network(self.seed_model, structure)
        return {
            "predicted_cost": float(predicted),
            "predicted_fraction": float(predicted / self.seed_cost) if self.seed_cost else 1.0,
            "collapsed": float(collapsed),
        }

    def rebuild(self) -> Any:
        """The seed model at the structure's widths, as its predicted cost describes it."""
        from .morphnet.keras3 import apply_structure
        from .morphnet.widths import rebuild_structure

        _, min_channels = rebuild_structure(self.seed_graph, self.structure)
        if min_channels:
            dead = sorted(n for n, s in self.structure.layers.items() if s.alive == 0)
            message = (
                f"layers pruned to zero cut the network ({dead[:5]}): the rebuild keeps "
                f"{min_channels} channel in each, as the predicted cost counts"
            )
            self.warnings.append(message)
            self.reporter.warn(message)
        try:
            return apply_structure(self.seed_model, self.structure, min_channels=min_channels)
        except StructureError as exc:  # the prediction and the rebuild disagree: say so
            message = f"rebuilt with one channel in layers pruned to zero ({exc}); the predicted cost does not count them"
            self.warnings.append(message)
            self.reporter.warn(message)
            return apply_structure(self.seed_model, self.structure, min_channels=1)

    def retrain(self, model: Any) -> float:
        config = self.config
        keras = _keras()
        steps = max(1, len(self.train_ds)) * max(config.retrain_epochs, 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.retrain_learning_rate, decay_steps=steps
        )
        self.retrain_model, self.retrain_optimizer = model, keras.optimizers.Adam(schedule)
        model.compile(
            jit_compile=self.jit_compile,
            optimizer=self.retrain_optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        initial = 0
        if self.state and self.state.get("phase") == RETRAIN:
            self.ckpt.restore(model, self.retrain_optimizer)
            initial = int(self.state["epoch"])
        if initial < config.retrain_epochs:
            model.fit(
                self.train_ds.for_fit(),
                validation_data=self.val_ds.for_fit(),
                shuffle=False,  # the batches come in their own seeded order
                epochs=config.retrain_epochs,
                initial_epoch=initial,
                verbose=config.verbose,
                callbacks=[_epoch_callback(self, RETRAIN)],
            )
        if self.failure:
            raise TrialFailed(self.failure)
        return self._evaluate(model)

    def finish(self, model: Any, accuracy: float, learned_accuracy: float | None) -> TrialResult:
        from .morphnet.keras3 import model_cost

        model_path = self.out / "model.keras"
        model.save(str(model_path))
        self.reporter.artifact(str(model_path), "model")
        rebuilt = model_cost(model, self.target)
        result = TrialResult(
            output_dir=str(self.out),
            structure_path=str(self.out / "structure.json"),
            model_path=str(model_path),
            metrics_path=str(self.out / "metrics.json"),
            cost_name=self.target.cost_name,
            seed_cost=self.seed_cost,
            predicted_cost=self.structure.learned_cost,
            rebuilt_cost=rebuilt,
            strength=self.strength,
            retrained_val_accuracy=accuracy,
            learned_val_accuracy=learned_accuracy,
            train_seconds=self.train_seconds,
            trial_seconds=self.trial_seconds,
            warnings=self.warnings,
            history=self.history,
        )
        final = result.outcome.to_result()
        write_json(
            self.out / "metrics.json",
            {"config": self.config.to_dict(), "summary": result.summary(), "history": self.history},
        )
        self.reporter.artifact(str(self.out / "metrics.json"), "metrics")
        self.reporter.report(final, None)
        return result


def run_trial(
    config: TrialConfig, reporter: Reporter | None = None, *, resume: bool = True
) -> TrialResult:
    """Run (or resume) one trial and return what it produced.

    Raises:
        TrialConfigError: a bad model or dataset spec, before any training.
        TrialFailed: a NaN loss; the reason names the epoch and step.
    """
    return _Trial(config, reporter or ConsoleReporter(), resume).run()


__all__ = ["Dataset", "TrialResult", "make_regularizer", "run_trial", "set_determinism"]
