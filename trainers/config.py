"""One trial's configuration: a frozen, keyword-only dataclass validated on creation.

It round-trips to a plain dict, so the same dict feeds YAML, MLflow params and Ray's param space.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TrialConfigError
from .morphnet.algorithms import ALGORITHMS, BACKENDS, DEFAULT_THRESHOLDS

TARGETS = ("flops", "model_size", "latency", "activations")


@dataclass(frozen=True, kw_only=True)
class TrialConfig:
    """Everything one structure-learning trial needs.

    Strength is either ``strength`` itself or ``multiplier / seed cost`` (MorphNet's advice: search
    on a log scale around 1 / initial cost). FiGS trials insert gates with ``gate_temperature``
    and straight-through sampling, and by default regularize the gate probabilities, whose
    gradient is smooth (the sampled mask's gradient is almost always 0 at low temperature).
    ``backend`` is the Keras backend the trial runs on (``tensorflow`` or ``jax``; the same
    batches and the same MorphNet terms on both). ``jit_compile`` left unset is chosen per backend:
    off on TensorFlow (XLA compilation costs more than it saves for the short trials of a sweep on
    CPUs), on for JAX (which runs op by op without it). ``mixed_precision`` computes in float16 with float32 weights
    (Keras' ``mixed_float16`` policy, with loss scaling), which pays off on GPUs only; the
    MorphNet regularizer term and costs are always computed in float32. ``baseline_width``
    skips structure learning and trains the seed network scaled uniformly (the baseline every
    Pareto plot compares against). ``deterministic`` (the default) seeds every random draw of the
    trial from ``seed`` and turns on TensorFlow's op determinism, so the same config gives the
    same weights, metrics and structures run after run on one machine (``make bench`` measures
    what it costs per step); off, TensorFlow may pick faster kernels whose sums vary in the last
    bits.
    """

    model: str = "zoo:resnet"
    model_width: int = 32
    dataset: str = "digits"
    image_size: int | None = None
    algorithm: str = "gamma"
    target: str = "flops"
    hardware: str = "P100"
    latency_batch_size: int = 1
    threshold: float | None = None
    strength: float | None = None
    multiplier: float | None = 1.0
    epochs: int = 10
    learning_rate: float = 1e-2
    batch_size: int = 64
    retrain_epochs: int = 10
    retrain_learning_rate: float = 3e-3
    export_every_steps: int = 100
    seed: int = 0
    gate_temperature: float = 0.5
    gate_log_odds_init: float = 1.0
    gate_straight_through: bool = True
    regularize_on_mask: bool = False
    baseline_width: float | None = None
    backend: str = "tensorflow"
    jit_compile: bool | None = None
    mixed_precision: bool = False
    deterministic: bool = True
    output_dir: str = "morphsweep_runs/trial"
    verbose: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_types()
        self._choice("algorithm", ALGORITHMS)
        self._choice("target", TARGETS)
        self._choice("backend", BACKENDS)
        if self.algorithm == "logistic_sigmoid" and self.target == "activations":
            raise TrialConfigError(
                "algorithm='logistic_sigmoid' has no 'activations' target (as in MorphNet); "
                "use target='flops', 'model_size' or 'latency'"
            )
        for name in ("model_width", "latency_batch_size", "epochs", "batch_size"):
            self._positive(name)
        for name in ("retrain_epochs", "export_every_steps", "seed", "verbose"):
            if getattr(self, name) < 0:
                raise TrialConfigError(
                    f"{name} must be >= 0, but got {name}={getattr(self, name)!r}"
                )
        for name in ("learning_rate", "retrain_learning_rate", "gate_temperature"):
            self._positive(name)
        if self.strength is not None:
            self._positive(
                "strength", fix="use a strength > 0 (e.g. 1 / seed cost), or set multiplier"
            )
        elif self.multiplier is None:
            raise TrialConfigError("set strength or multiplier (strength = multiplier / seed cost)")
        else:
            self._positive(
                "multiplier", fix="use a multiplier > 0; strength = multiplier / seed cost"
            )
        if self.threshold is not None and not (
            math.isfinite(self.threshold) and self.threshold >= 0
        ):
            raise TrialConfigError(
                f"threshold must be a number >= 0, but got threshold={self.threshold!r}"
            )
        if self.baseline_width is not None:
            self._positive("baseline_width")
        if self.image_size is not None:
            self._positive("image_size")
        from trainers.morphnet.costs import HARDWARE

        if self.target == "latency" and self.hardware not in HARDWARE:
            raise TrialConfigError(
                f"hardware must be one of {sorted(HARDWARE)}, but got hardware={self.hardware!r}"
            )

    # ----- validation helpers ----------------------------------------------------------------
    def _check_types(self) -> None:
        hints = typing.get_type_hints(TrialConfig)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise TrialConfigError(
                    f"{f.name} must be {_describe(hints[f.name])}, but got {f.name}={value!r}"
                )

    def _choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value not in allowed:
            raise TrialConfigError(f"{name} must be one of {allowed}, but got {name}={value!r}")

    def _positive(self, name: str, fix: str = "") -> None:
        value = getattr(self, name)
        if not (math.isfinite(value) and value > 0):
            raise TrialConfigError(
                f"{name} must be > 0, but got {name}={value!r}" + (f"; {fix}" if fix else "")
            )

    # ----- derived -----------------------------------------------------------------------------
    @property
    def regularizer_threshold(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS[self.algorithm]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        if not isinstance(data, dict):
            raise TrialConfigError(
                f"a trial config must be a mapping, but got {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrialConfigError(
                f"unknown trial config key(s) {unknown}; known keys: {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrialConfig:
        """Load a YAML file, apply ``overrides`` (e.g. from the command line), then validate."""
        import yaml

        file = Path(path)
        if not file.is_file():
            raise TrialConfigError(f"trial config {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TrialConfigError(
                f"trial config {str(path)!r} is not valid YAML: {yaml_error_text(exc)}; only plain "
                f"YAML is read (no !!python tags)"
            ) from exc
        if not isinstance(data, dict):
            raise TrialConfigError(f"trial config {str(path)!r} must be a mapping of fields")
        return cls.from_dict({**data, **(overrides or {})})

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, dict)
    if hint is Any:
        return True
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if args:
        return " or ".join(_describe(a) for a in args)
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def yaml_error_text(exc: Exception) -> str:
    """A YAML error in one line: where, and what the parser expected."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"
