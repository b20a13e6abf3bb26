"""One structure-learning trial: learn with MorphNet, export, rebuild the smaller model, retrain.

``run_trial(config, reporter)`` is the entry point a sweep calls. It reports per epoch through
``trainers.reporting.Reporter``, checkpoints every epoch under ``<output_dir>/checkpoint`` and
resumes from there when run again. The phases themselves are ``trainers.phases``; what both
training phases share (the setup, the progress, one fit) is ``trainers.training``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import Checkpoint
from .config import TrialConfig
from .data import Dataset, check_dataset_spec, load_dataset
from .models import (
    build_model,
    check_agrees,
    check_input_size,
    check_model_spec,
    is_model_file,
    load_model_file,
    reinitialized,
)
from .phases import Learned, Retrained, baseline, gated, learn, rebuild, resumed, retrain
from .preprocessing import prepend, preprocessing_for
from .records import COST_FRACTION, LEARN, Outcome
from .reporting import ConsoleReporter, Reporter, write_json
from .runtime import resolve_jit_compile, select_backend, set_determinism
from .training import Progress, Setup, compile_for_training


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
    seed_val_accuracy: float | None = None
    # given budgets (``records.Outcome``): the final structure's cost, and the export retrained
    final_cost: float | None = None
    retrained_step: int | None = None
    retrained_budget: float | None = None
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


def run_trial(
    config: TrialConfig, reporter: Reporter | None = None, *, resume: bool = True
) -> TrialResult:
    """Run (or resume) one trial and return what it produced.

    Raises:
        TrialConfigError: a bad model or dataset spec, before any training.
        TrialFailed: a NaN loss; the reason names the epoch and step.
    """
    out = Path(config.output_dir).resolve()
    progress = Progress(
        Checkpoint(out / "checkpoint"), reporter or ConsoleReporter(), resume, config.to_dict()
    )
    if progress.resumed_from() and reporter is None:  # on the console: say where it goes on
        print(
            f"resuming the trial in {out} after {progress.resumed_from()} "
            "(--no-resume starts fresh)",
            flush=True,
        )
    select_backend(config.backend)
    with _dtype_policy(config.mixed_precision):
        setup = _set_up(config, out)
        learned = _learn(setup, progress)
        model = rebuild(setup, progress, learned)
        return _finish(setup, progress, learned, retrain(setup, progress, learned, model))


@contextmanager
def _dtype_policy(mixed_precision: bool) -> Iterator[None]:
    """Build every model of the trial (seed, gated, rebuilt) in mixed precision when asked."""
    from .morphnet.keras3.backend import keras

    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        # a process that runs several trials is not left in mixed precision
        keras.config.set_dtype_policy(previous)


def _set_up(config: TrialConfig, out: Path) -> Setup:
    """Check the specs, seed the process, load the data, build and cost the seed network."""
    from .morphnet.keras3 import read_model
    from .morphnet.widths import seed_cost

    check_model_spec(config.model)
    check_dataset_spec(config.dataset)
    seed_file = load_model_file(config.model) if is_model_file(config.model) else None
    data = load_dataset(config.dataset, config.seed, config.validation_split)
    data = data.resized(config.image_size or _read_size(seed_file, config.dataset))
    data.check()
    if seed_file is not None:
        check_agrees(config.model, seed_file, config.dataset, data.input_shape, data.num_classes)
        check_input_size(config.model, seed_file, data.input_shape)
    set_determinism(config.seed, config.deterministic)
    train_ds, val_ds = data.batches(config.batch_size, config.seed, config.steps_per_epoch)
    jit_compile = resolve_jit_compile(config.jit_compile, config.backend)
    preprocessing = preprocessing_for(config.augment, config.normalize, train_ds)
    measured = None
    if seed_file is None:
        built = build_model(
            config.model, data.input_shape, data.num_classes, config.model_width, config.seed
        )
        check_input_size(config.model, built, data.input_shape)
        seed_model = prepend(built, preprocessing, config.seed)
    else:  # the trained network's accuracy, before learning starts from it or from scratch
        trained = prepend(seed_file, preprocessing, config.seed)
        measured = seed_accuracy(trained, val_ds, jit_compile)
        seed_model = trained
        if not config.starts_pretrained:
            fresh = reinitialized(seed_file, config.seed)
            seed_model = prepend(fresh, preprocessing, config.seed)
    out.mkdir(parents=True, exist_ok=True)  # every check passed: the trial writes from here on
    seed_graph, _ = read_model(seed_model)
    target = target_of(config)
    return Setup(
        config=config,
        out=out,
        train_ds=train_ds,
        val_ds=val_ds,
        jit_compile=jit_compile,
        seed_model=seed_model,
        seed_graph=seed_graph,
        target=target,
        seed_cost=seed_cost(seed_graph, target),
        preprocessing=preprocessing,
        seed_val_accuracy=measured,
    )


def _read_size(seed_file: Any, dataset: str) -> tuple[int, int] | None:
    """The size an image folder is read at when no ``image_size`` is given: a seed file's
    input size (None otherwise: images as they are)."""
    if seed_file is None or not dataset.startswith("images:") or len(seed_file.input_shape) != 4:
        return None
    return int(seed_file.input_shape[1]), int(seed_file.input_shape[2])


def seed_accuracy(model: Any, val_ds: Any, jit_compile: bool) -> float:
    """The trained seed's validation accuracy, before any learning."""
    from .morphnet.keras3.backend import keras

    compile_for_training(model, keras.optimizers.Adam(), jit_compile)
    return float(model.evaluate(val_ds.for_fit(), verbose=0, return_dict=True)["accuracy"])


def _learn(setup: Setup, progress: Progress) -> Learned:
    """The structure to rebuild: learned now, by an earlier run, or the seed's scaled uniformly."""
    config = setup.config
    if progress.phase != LEARN:
        return resumed(setup, progress)
    if config.baseline_width is not None:
        return baseline(setup, progress)
    network = gated(setup.seed_model, config)
    return learn(setup, progress, network, make_regularizer(network, config))


def _finish(
    setup: Setup, progress: Progress, learned: Learned, retrained: Retrained
) -> TrialResult:
    """Save the retrained model and the trial's metrics, report the outcome."""
    from .morphnet.keras3 import model_cost

    out, model = setup.out, retrained.model
    model_path = out / "model.keras"
    model.save(str(model_path))
    progress.reporter.artifact(str(model_path), "model")
    result = TrialResult(
        output_dir=str(out),
        structure_path=str(learned.structure_path),
        model_path=str(model_path),
        metrics_path=str(out / "metrics.json"),
        cost_name=setup.target.cost_name,
        seed_cost=setup.seed_cost,
        predicted_cost=learned.structure.learned_cost,
        rebuilt_cost=model_cost(model, setup.target),
        strength=learned.strength,
        retrained_val_accuracy=retrained.val_accuracy,
        learned_val_accuracy=learned.learned_val_accuracy,
        seed_val_accuracy=setup.seed_val_accuracy,
        final_cost=learned.final_cost,
        retrained_step=learned.structure.step if learned.final_cost is not None else None,
        retrained_budget=learned.budget,
        train_seconds=progress.train_seconds,
        trial_seconds=progress.trial_seconds,
        warnings=progress.warnings,
        history=progress.history,
    )
    final = result.outcome.to_result()
    write_json(
        out / "metrics.json",
        {
            "config": setup.config.to_dict(),
            "summary": result.summary(),
            "history": progress.history,
        },
    )
    progress.reporter.artifact(str(out / "metrics.json"), "metrics")
    progress.reporter.report(final, None)
    return result


__all__ = ["Dataset", "TrialResult", "make_regularizer", "run_trial", "set_determinism"]
