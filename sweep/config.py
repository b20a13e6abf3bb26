"""A sweep's configuration (YAML), validated on load, naming every bad field at once."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainers.config import yaml_error_text

ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
TARGETS = ("flops", "model_size", "latency", "activations")
# Centres of the strength grid, as multipliers of 1 / seed cost, that suit each algorithm's
# per-channel scale (gammas ~1, kernel RMS ~0.1, gate probabilities ~0.9).
DEFAULT_CENTERS = {"gamma": 3.0, "group_lasso": 100.0, "logistic_sigmoid": 1.0}
SEARCHES = ("grid", "adaptive")
EARLY_STOPS = ("off", "degenerate", "dominated")


class SweepConfigError(ValueError):
    """A sweep config has errors; ``problems`` lists each bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid sweep config:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True, kw_only=True)
class StrengthGrid:
    """Log grid of multipliers around ``center`` (strength = multiplier / seed cost)."""

    decades_below: float = 1.0
    decades_above: float = 1.0
    points_per_decade: int = 2
    center: float | dict[str, float] | None = None

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


@dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """Everything a sweep needs; ``trial`` holds the fields shared by every trial (TrialConfig)."""

    name: str
    trial: dict[str, Any] = field(default_factory=dict)
    algorithms: tuple[str, ...] = ("gamma",)
    targets: tuple[str, ...] = ("flops",)
    strengths: StrengthGrid = field(default_factory=StrengthGrid)
    seeds: tuple[int, ...] = (0,)
    baseline_widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 2
    retries: int = 1
    tracking_uri: str | None = None
    address: str | None = None
    storage_path: str | None = None
    workdir: str = "morphsweep_runs"
    search: str = "grid"
    budgets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    max_trials: int = 8
    budget_tolerance: float = 0.05
    early_stop: str = "degenerate"
    early_stop_after: float = 0.5
    dominated_margin: float = 0.05

    def budget_costs(self, target: str, seed_cost: float) -> list[float]:
        """The budgets of ``target`` as absolute costs: a value <= 1 is a fraction of the seed's."""
        return [b * seed_cost if b <= 1 else b for b in self.budgets.get(target, ())]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("algorithms", "targets", "seeds", "baseline_widths"):
            data[key] = list(data[key])
        data["budgets"] = {t: list(v) for t, v in self.budgets.items()}
        return data

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


_KNOWN = {f.name for f in dataclasses.fields(SweepConfig)} | {"strengths", "baseline", "resources"}


def load_sweep_config(source: str | Path | dict[str, Any]) -> SweepConfig:
    """Read and validate a sweep config (a YAML path or a dict); all problems are listed."""
    import yaml

    if isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise SweepConfigError([f"sweep config file {str(path)!r} does not exist"])
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SweepConfigError(
                [
                    f"{str(path)!r} is not valid YAML: {yaml_error_text(exc)}; only plain YAML "
                    f"is read (no !!python tags)"
                ]
            ) from exc
    if not isinstance(data, dict):
        raise SweepConfigError(["a sweep config must be a mapping of fields"])
    problems: list[str] = []
    config = _build(data, problems)
    if problems:
        raise SweepConfigError(problems)
    assert config is not None
    return config


def _build(data: dict[str, Any], problems: list[str]) -> SweepConfig | None:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        problems.append(f"unknown key(s) {unknown}; known: {sorted(_KNOWN)}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name or ""
    ):
        problems.append(
            f"name must be 1-64 letters, digits, '.', '_' or '-', but got name={name!r}"
        )
    algorithms = _list(data, "algorithms", ["gamma"], problems)
    for a in algorithms:
        if a not in ALGORITHMS:
            problems.append(f"algorithms: {a!r} is not one of {ALGORITHMS}")
    targets = _list(data, "targets", ["flops"], problems)
    for t in targets:
        if t not in TARGETS:
            problems.append(f"targets: {t!r} is not one of {TARGETS}")
    if "logistic_sigmoid" in algorithms and "activations" in targets:
        problems.append(
            "targets: 'activations' has no LogisticSigmoid regularizer; drop one of them"
        )
    seeds = _list(data, "seeds", [0], problems)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        problems.append(f"seeds must be integers >= 0, but got seeds={seeds!r}")
    baseline = data.get("baseline", {}) or {}
    widths = baseline.get("widths", [0.25, 0.5, 0.75, 1.0]) if isinstance(baseline, dict) else None
    if widths is None or not isinstance(widths, list) or not all(_positive(w) for w in widths):
        problems.append(
            f"baseline.widths must be a list of width multipliers > 0, but got {widths!r}"
        )
        widths = []
    search = data.get("search", "grid")
    if search not in SEARCHES:
        problems.append(f"search must be one of {SEARCHES}, but got search={search!r}")
    strengths = data.get("strengths")
    if strengths is None and search == "adaptive":
        # the adaptive search starts from a coarse grid (a point per decade) and refines it
        strengths = {"points_per_decade": 1}
    grid = _grid(strengths or {}, problems)
    budgets = _budgets(data.get("budgets", {}), targets, problems)
    search_options = _search_options(data, problems)
    resources = data.get("resources", {}) or {}
    cpus = resources.get("cpus", 1) if isinstance(resources, dict) else None
    gpus = resources.get("gpus", 0) if isinstance(resources, dict) else None
    if not _positive(cpus):
        problems.append(f"resources.cpus must be > 0, but got {cpus!r}")
    if not (isinstance(gpus, int | float) and not isinstance(gpus, bool) and gpus >= 0):
        problems.append(f"resources.gpus must be >= 0 (fractions allowed), but got {gpus!r}")
    for key in ("max_concurrent",):
        value = data.get(key, 2)
        if not (isinstance(value, int) and value >= 1):
            problems.append(f"{key} must be an integer >= 1, but got {key}={value!r}")
    retries = data.get("retries", 1)
    if not (isinstance(retries, int) and retries >= 0):
        problems.append(f"retries must be an integer >= 0, but got retries={retries!r}")
    trial = data.get("trial", {}) or {}
    if not isinstance(trial, dict):
        problems.append("trial must be a mapping of trial config fields")
        trial = {}
    _check_trial(trial, problems)
    for key in ("tracking_uri", "address", "storage_path"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string, but got {key}={value!r}")
    uri = data.get("tracking_uri")
    if (
        isinstance(uri, str)
        and uri.startswith("file:")
        or (isinstance(uri, str) and uri.rstrip("/").endswith("mlruns") and "://" not in uri)
    ):
        problems.append(
            f"tracking_uri={uri!r} is a file store, which MLflow 3 no longer supports; use "
            f"sqlite:///<absolute path>.db or http://<tracking server>"
        )
    if problems:
        return None
    return SweepConfig(
        name=name,  # type: ignore[arg-type]
        trial=trial,
        algorithms=tuple(algorithms),
        targets=tuple(targets),
        strengths=grid,  # type: ignore[arg-type]
        seeds=tuple(seeds),
        baseline_widths=tuple(float(w) for w in widths),
        cpus_per_trial=float(cpus),  # type: ignore[arg-type]
        gpus_per_trial=float(gpus),  # type: ignore[arg-type]
        max_concurrent=int(data.get("max_concurrent", 2)),
        retries=int(retries),
        tracking_uri=data.get("tracking_uri"),
        address=data.get("address"),
        # absolute now: Ray runs trials (and may run the driver) in other working directories
        storage_path=str(Path(data["storage_path"]).expanduser().resolve())
        if data.get("storage_path")
        else None,
        workdir=str(Path(str(data.get("workdir", "morphsweep_runs"))).expanduser().resolve()),
        search=search,
        budgets=budgets,
        **search_options,
    )


def _budgets(data: Any, targets: list[Any], problems: list[str]) -> dict[str, tuple[float, ...]]:
    """``{target: [budget, ...]}``: a fraction of the seed cost (<= 1) or an absolute cost."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            f"budgets must map a target to a list of budgets (e.g. {{flops: [0.25]}}), "
            f"but got budgets={data!r}"
        )
        return {}
    budgets: dict[str, tuple[float, ...]] = {}
    for target, values in data.items():
        if target not in TARGETS:
            problems.append(f"budgets: {target!r} is not a target; known: {TARGETS}")
            continue
        if target not in targets:
            problems.append(
                f"budgets: {target!r} is not among the sweep's targets {targets}; add it to "
                f"targets or drop its budgets"
            )
            continue
        values = [values] if isinstance(values, int | float) else values
        if not isinstance(values, list) or not values:
            problems.append(f"budgets.{target} must be a non-empty list, but got {values!r}")
            continue
        bad = [v for v in values if not _positive(v)]
        if bad:
            problems.append(
                f"budgets.{target}: every budget must be > 0 (a fraction of the seed cost <= 1, "
                f"or an absolute cost > 1), but got {bad!r}"
            )
            continue
        budgets[target] = tuple(sorted({float(v) for v in values}, reverse=True))
    return budgets


def _search_options(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """max_trials, budget_tolerance and the early-stopping settings, checked."""
    max_trials = data.get("max_trials", 8)
    if not (isinstance(max_trials, int) and not isinstance(max_trials, bool) and max_trials >= 1):
        problems.append(
            f"max_trials (per algorithm x target x seed) must be an integer >= 1, but got "
            f"max_trials={max_trials!r}"
        )
    tolerance = data.get("budget_tolerance", 0.05)
    if not (_positive(tolerance) and tolerance < 1):
        problems.append(
            f"budget_tolerance is relative and must be in (0, 1), but got "
            f"budget_tolerance={tolerance!r}"
        )
    early_stop = data.get("early_stop", "degenerate")
    if early_stop is False or early_stop is None:
        early_stop = "off"  # YAML reads a bare `off` as False
    if early_stop not in EARLY_STOPS:
        problems.append(f"early_stop must be one of {EARLY_STOPS}, but got {early_stop!r}")
    after = data.get("early_stop_after", 0.5)
    if not (_positive(after) and after <= 1):
        problems.append(
            f"early_stop_after is a share of the structure-learning epochs and must be in "
            f"(0, 1], but got early_stop_after={after!r}"
        )
    margin = data.get("dominated_margin", 0.05)
    if not (isinstance(margin, int | float) and not isinstance(margin, bool) and 0 <= margin < 1):
        problems.append(
            f"dominated_margin is an accuracy margin in [0, 1), but got dominated_margin={margin!r}"
        )
    return {
        "max_trials": max_trials if isinstance(max_trials, int) else 8,
        "budget_tolerance": float(tolerance) if _positive(tolerance) else 0.05,
        "early_stop": early_stop,
        "early_stop_after": float(after) if _positive(after) else 0.5,
        "dominated_margin": float(margin) if isinstance(margin, int | float) else 0.05,
    }


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _list(data: dict[str, Any], key: str, default: list[Any], problems: list[str]) -> list[Any]:
    value = data.get(key, default)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(f"{key} must be a non-empty list, but got {key}={value!r}")
        return []
    return value


def _grid(data: Any, problems: list[str]) -> StrengthGrid | None:
    if not isinstance(data, dict):
        problems.append(f"strengths must be a mapping, but got {data!r}")
        return None
    allowed = {"decades_below", "decades_above", "points_per_decade", "center"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        problems.append(f"strengths: unknown key(s) {unknown}; known: {sorted(allowed)}")
    for key in ("decades_below", "decades_above"):
        value = data.get(key, 1.0)
        if not (isinstance(value, int | float) and value >= 0):
            problems.append(f"strengths.{key} must be a number >= 0, but got {value!r}")
    ppd = data.get("points_per_decade", 2)
    if not (isinstance(ppd, int) and ppd >= 1):
        problems.append(f"strengths.points_per_decade must be an integer >= 1, but got {ppd!r}")
    center = data.get("center")
    centers = center.values() if isinstance(center, dict) else [] if center is None else [center]
    if not all(_positive(c) for c in centers):
        problems.append(
            f"strengths.center must be a multiplier > 0 (or one per algorithm), but got {center!r}"
        )
    if isinstance(center, dict):
        bad = sorted(set(center) - set(ALGORITHMS))
        if bad:
            problems.append(f"strengths.center: unknown algorithm(s) {bad}")
    if problems:
        return None
    return StrengthGrid(
        decades_below=float(data.get("decades_below", 1.0)),
        decades_above=float(data.get("decades_above", 1.0)),
        points_per_decade=int(ppd),
        center=center,
    )


_SWEEP_OWNED = {
    "algorithm",
    "target",
    "strength",
    "multiplier",
    "seed",
    "baseline_width",
    "output_dir",
}


def _check_trial(trial: dict[str, Any], problems: list[str]) -> None:
    from trainers.config import TrialConfig
    from trainers.errors import TrialConfigError

    owned = sorted(set(trial) & _SWEEP_OWNED)
    if owned:
        problems.append(
            f"trial: {owned} are set by the sweep for each trial; remove them from trial"
        )
    try:
        config = TrialConfig.from_dict({k: v for k, v in trial.items() if k not in _SWEEP_OWNED})
        from trainers.data import check_dataset_spec
        from trainers.models import ZOO

        check_dataset_spec(config.dataset)
        if config.model.startswith("zoo:") and config.model[4:] not in ZOO:
            problems.append(
                f"trial: model must be zoo:{{{','.join(ZOO)}}}, keras.applications.<Name> or module:function, but got {config.model!r}"
            )
    except TrialConfigError as exc:
        problems.append(f"trial: {exc}")
