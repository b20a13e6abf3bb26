"""A sweep's configuration (YAML): pydantic models, validated on load, naming every bad field at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from trainers.config import (
    TARGETS,
    Algorithm,
    Count,
    NonNegative,
    Positive,
    PositiveCount,
    Target,
    TrialConfig,
    read_yaml_mapping,
    validation_problems,
)
from trainers.data import check_dataset_spec
from trainers.errors import TrialConfigError
from trainers.models import ZOO, is_model_file

# Centres of the strength grid, as multipliers of 1 / seed cost, that suit each algorithm's
# per-channel scale (gammas ~1, kernel RMS ~0.1, gate probabilities ~0.9).
DEFAULT_CENTERS = {"gamma": 3.0, "group_lasso": 100.0, "logistic_sigmoid": 1.0}
# A strength grid spans at most this many decades each way (10^30 x the centre is far past any
# network's collapse) with at most this many points per decade: numbers that stay finite
MAX_DECADES, MAX_POINTS = 30, 100
# Trial fields the sweep sets for each trial; the sweep's `trial` block holds the shared rest.
SWEEP_OWNED = frozenset(
    {"algorithm", "target", "strength", "multiplier", "seed", "baseline_width", "output_dir"}
)
# Blocks that may be left empty in YAML (`budgets:` with nothing under it): their defaults.
_BLOCKS = ("trial", "strengths", "baseline", "resources", "budgets")


class SweepConfigError(ValueError):
    """A sweep config has errors; ``problems`` lists each bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid sweep config:\n  - " + "\n  - ".join(problems))


def _as_list(value: Any) -> Any:
    # one item may be written without brackets: `targets: flops`
    return [value] if isinstance(value, str | int | float) else value


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    twice = [v for i, v in enumerate(values) if v in values[:i]]
    if twice:
        listed = ", ".join(repr(v) for v in dict.fromkeys(twice))
        raise ValueError(f"{listed} listed more than once; list each once")
    return values


def _descending(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted(set(values), reverse=True))


Algorithms = Annotated[
    tuple[Algorithm, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_distinct)
]
Targets = Annotated[
    tuple[Target, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_distinct)
]
Seeds = Annotated[
    tuple[Count, ...], BeforeValidator(_as_list), Field(min_length=1), AfterValidator(_distinct)
]
Budgets = Annotated[
    tuple[Positive, ...],
    BeforeValidator(_as_list),
    Field(min_length=1),
    AfterValidator(_descending),
]


class _Block(BaseModel):
    """A nested block of the sweep's YAML; a field's ``description`` is what it must be."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StrengthGrid(_Block):
    """Log grid of multipliers around ``center`` (strength = multiplier / seed cost)."""

    decades_below: Annotated[NonNegative, Field(le=MAX_DECADES)] = Field(
        default=1.0, description=f"in [0, {MAX_DECADES}] (decades of strength below the centre)"
    )
    decades_above: Annotated[NonNegative, Field(le=MAX_DECADES)] = Field(
        default=1.0, description=f"in [0, {MAX_DECADES}] (decades of strength above the centre)"
    )
    points_per_decade: Annotated[PositiveCount, Field(le=MAX_POINTS)] = Field(
        default=2, description=f"an integer in [1, {MAX_POINTS}]"
    )
    center: Positive | dict[Algorithm, Positive] | None = Field(
        default=None, description="a multiplier > 0 (or one per algorithm)"
    )

    def center_for(self, algorithm: str) -> float:
        if isinstance(self.center, dict):
            return float(self.center.get(algorithm, DEFAULT_CENTERS[algorithm]))
        return float(self.center) if self.center is not None else DEFAULT_CENTERS[algorithm]

    def multipliers(self, algorithm: str) -> list[float]:
        """Centre x 10^(k / points_per_decade), k from -below*ppd to +above*ppd."""
        lo = -int(round(self.decades_below * self.points_per_decade))
        hi = int(round(self.decades_above * self.points_per_decade))
        c = self.center_for(algorithm)
        return [c * 10 ** (k / self.points_per_decade) for k in range(lo, hi + 1)]


class Baseline(_Block):
    """The uniform-width baseline: the seed network scaled by each width, trained as is."""

    widths: tuple[Positive, ...] = Field(
        default=(0.25, 0.5, 0.75, 1.0), description="a list of width multipliers > 0"
    )


class Resources(_Block):
    """What Ray reserves for each trial."""

    cpus: Positive = 1.0
    gpus: NonNegative = Field(default=0.0, description=">= 0 (fractions allowed)")


class SweepConfig(BaseModel):
    """Everything a sweep needs, in the YAML's own shape; ``trial`` holds the fields shared by every
    trial (as TrialConfig reads them). A field's ``description`` is what it must be."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="sweep config")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="1-64 letters, digits, '.', '_' or '-'",
    )
    trial: dict[str, Any] = Field(default_factory=dict, description="a mapping of trial fields")
    algorithms: Algorithms = ("gamma",)
    targets: Targets = ("flops",)
    strengths: StrengthGrid = StrengthGrid()
    seeds: Seeds = Field(default=(0,), description="integers >= 0")
    baseline: Baseline = Baseline()
    resources: Resources = Resources()
    max_concurrent: PositiveCount = Field(default=2, description="an integer >= 1")
    retries: Count = Field(default=1, description="an integer >= 0")
    tracking_uri: str | None = None
    address: str | None = None
    storage_path: str | None = None
    workdir: str = Field(default="morphsweep_runs", validate_default=True)
    search: Literal["grid", "adaptive"] = "grid"
    budgets: dict[Target, Budgets] = Field(
        default_factory=dict,
        description="a list of budgets > 0 per target, e.g. {flops: [0.25]}: a fraction of the "
        "seed cost (<= 1) or an absolute cost (> 1)",
    )
    max_trials: PositiveCount = Field(
        default=8, description="an integer >= 1 (trials per algorithm x target x seed)"
    )
    budget_tolerance: Annotated[Positive, Field(lt=1)] = Field(
        default=0.05, description="in (0, 1) (relative to the budget)"
    )
    # adaptive: every trial retrains its final structure, or (budget) a trial given budgets
    # retrains the structure its path left nearest one (``trainers.budgets``; not yet the
    # default: the quality study has not measured it against final)
    retrain: Literal["budget", "final"] = "final"
    early_stop: Literal["off", "degenerate", "dominated"] = "degenerate"
    early_stop_after: Annotated[Positive, Field(le=1)] = Field(
        default=0.5, description="in (0, 1] (a share of the structure-learning epochs)"
    )
    dominated_margin: Annotated[NonNegative, Field(lt=1)] = Field(
        default=0.05, description="an accuracy margin in [0, 1)"
    )

    # ----- what YAML writes differently ---------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None or k not in _BLOCKS}
        if "strengths" not in data and data.get("search") == "adaptive":
            # the adaptive search starts from a coarse grid (a point per decade) and refines it
            data["strengths"] = {"points_per_decade": 1}
        return data

    @field_validator("early_stop", mode="before")
    @classmethod
    def _bare_off(cls, value: Any) -> Any:
        return "off" if value is False or value is None else value  # YAML reads `off` as False

    @field_validator("workdir", "storage_path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        # absolute now: Ray runs trials (and may run the driver) in other working directories
        return str(Path(path).expanduser().resolve()) if path else path

    # ----- checks across fields -----------------------------------------------------------------
    @field_validator("trial")
    @classmethod
    def _trial(cls, trial: dict[str, Any]) -> dict[str, Any]:
        problems = []
        owned = sorted(set(trial) & SWEEP_OWNED)
        if owned:
            problems.append(f"{owned} are set by the sweep for each trial; remove them from trial")
        shared = {k: v for k, v in trial.items() if k not in SWEEP_OWNED}
        try:
            config = TrialConfig(**shared)
        except TrialConfigError as exc:
            problems += exc.problems
        else:
            problems += _spec_problems(config)
        if problems:
            raise ValueError("\n".join(problems))
        checked = {key: getattr(config, key) for key in shared}  # "1e-3" read as 0.001
        return {key: _absolute_file(key, value) for key, value in checked.items()}

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if "logistic_sigmoid" in info.data.get("algorithms", ()) and "activations" in targets:
            raise ValueError("'activations' has no LogisticSigmoid regularizer; drop one of them")
        return targets

    @field_validator("budgets", mode="wrap")
    @classmethod
    def _budgets(
        cls, budgets: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        targets = info.data.get("targets", TARGETS)
        stray = (
            [t for t in budgets if t in TARGETS and t not in targets]
            if isinstance(budgets, dict)
            else []
        )
        error = ValueError(
            "\n".join(
                f"{t!r} is not among the sweep's targets {list(targets)}; add it to targets or "
                f"drop its budgets"
                for t in stray
            )
        )
        try:
            checked = handler(budgets)
        except ValidationError as exc:  # report the stray targets along with the bad values
            extra = [{"type": "value_error", "loc": (), "input": budgets, "ctx": {"error": error}}]
            errors: list[Any] = [*exc.errors(), *(extra if stray else [])]
            raise ValidationError.from_exception_data(exc.title, errors) from None
        if stray:
            raise error
        return checked

    @field_validator("tracking_uri")
    @classmethod
    def _not_a_file_store(cls, uri: str | None) -> str | None:
        if uri and (
            uri.startswith("file:") or ("://" not in uri and uri.rstrip("/").endswith("mlruns"))
        ):
            raise ValueError(
                f"{uri!r} is a file store, which MLflow 3 no longer supports; use "
                f"sqlite:///<absolute path>.db or http://<tracking server>"
            )
        return uri

    # ----- derived ------------------------------------------------------------------------------
    @property
    def baseline_widths(self) -> tuple[float, ...]:
        return self.baseline.widths

    @property
    def cpus_per_trial(self) -> float:
        return self.resources.cpus

    @property
    def gpus_per_trial(self) -> float:
        return self.resources.gpus

    def budget_costs(self, target: str, seed_cost: float) -> list[float]:
        """The budgets of ``target`` as absolute costs: a value <= 1 is a fraction of the seed's."""
        return [b * seed_cost if b <= 1 else b for b in self.budgets.get(target, ())]

    def to_dict(self) -> dict[str, Any]:
        """The config as YAML writes it (lists, not tuples); ``load_sweep_config`` reads it back."""
        return self.model_dump(mode="json")

    # ----- locations (absolute: Ray runs each trial in its own working directory) ----------
    @property
    def root(self) -> Path:
        return Path(self.workdir).expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str | None:
        """Local artifact store of the embedded default; a tracking server keeps its own."""
        return None if self.tracking_uri else (self.root / "mlartifacts").as_uri()

    @property
    def resolved_storage_path(self) -> str:
        return (
            str(Path(self.storage_path).expanduser().resolve())
            if self.storage_path
            else str(self.root / "ray")
        )

    def trials_dir(self) -> Path:
        return Path(self.resolved_storage_path) / self.name / "trials"


def _absolute_file(key: str, value: Any) -> Any:
    """A seed file's or a dataset's path made absolute: Ray runs trials in other directories."""
    if key == "model" and is_model_file(str(value)):
        return str(Path(value).expanduser().resolve())
    if key == "dataset":
        for prefix in ("images:", "npz:"):
            if str(value).startswith(prefix):
                return prefix + str(Path(value[len(prefix) :]).expanduser().resolve())
    return value


def _spec_problems(trial: TrialConfig) -> list[str]:
    """The model and dataset specs, checked without building or loading anything."""
    problems = []
    try:
        check_dataset_spec(trial.dataset)
    except TrialConfigError as exc:
        problems.append(str(exc))
    if trial.model.startswith("zoo:") and trial.model[4:] not in ZOO:
        problems.append(
            f"model must be zoo:{{{','.join(ZOO)}}}, <path>.keras, keras.applications.<Name> or "
            f"module:function, but got {trial.model!r}"
        )
    seed_file = is_model_file(trial.model)
    if seed_file and not Path(trial.model).expanduser().is_file():
        problems.append(
            f"model file {trial.model!r} does not exist; give the path of a network saved with "
            f"model.save('<name>.keras')"
        )
    if trial.dataset.startswith("images:") and trial.image_size is None and not seed_file:
        problems.append(
            f"dataset {trial.dataset!r}: set trial.image_size (the size its images are read at) "
            f"or seed the sweep with a .keras file, whose input gives the size: the driver costs "
            f"the seed without opening an image"
        )
    return problems


def load_sweep_config(source: str | Path | dict[str, Any]) -> SweepConfig:
    """Read and validate a sweep config (a YAML path or a dict); all problems are listed."""
    try:
        data = source if isinstance(source, dict) else read_yaml_mapping(source, "sweep config")
    except TrialConfigError as exc:
        raise SweepConfigError([str(exc)]) from exc
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise SweepConfigError(validation_problems(exc, data, SweepConfig)) from None
