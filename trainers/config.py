"""One trial's configuration: a frozen pydantic model, validated on creation.

It round-trips to a plain dict, so the same dict feeds YAML, MLflow params and Ray's param space.
The shared field types (numbers in any notation but never booleans, counts that are real ints) and
the translation of pydantic's errors into our messages live here; the sweep's config uses both.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticKnownError

from .errors import TrialConfigError
from .morphnet.algorithms import ALGORITHMS, BACKENDS, DEFAULT_THRESHOLDS
from .preprocessing import check_augment

TARGETS = ("flops", "model_size", "latency", "activations")
# the widest zoo network and the largest images a trial builds (past these, a typo such as
# 32000 for 32 would fill the memory before the first step)
MAX_WIDTH, MAX_IMAGE_SIZE = 4096, 4096

if TYPE_CHECKING:
    Algorithm = str
    Target = str
    Backend = str
else:  # the allowed values are the tuples above: one definition each
    Algorithm = Literal[ALGORITHMS]
    Target = Literal[TARGETS]
    Backend = Literal[BACKENDS]


def _not_a_bool(value: Any) -> Any:
    # YAML's `true` is never a number (pydantic's lax mode would read it as 1.0)
    if isinstance(value, bool):
        raise PydanticKnownError("float_type")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticKnownError("finite_number")
    return value


# A float written in any notation ("1e-3" too: YAML 1.1 reads it as a string), never a bool.
Real = Annotated[float, BeforeValidator(_not_a_bool)]
Positive = Annotated[Real, Field(gt=0), AfterValidator(_finite)]
NonNegative = Annotated[Real, Field(ge=0), AfterValidator(_finite)]
# Counts are real integers: neither True nor "3" nor 3.0.
Count = Annotated[StrictInt, Field(ge=0)]
PositiveCount = Annotated[StrictInt, Field(gt=0)]


class TrialConfig(BaseModel):
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

    A seed network saved as a ``.keras`` file (``model: seed.keras``) brings its input shape,
    classes and trained weights: learning starts from fresh weights (``init: scratch``, the
    default: ``make quality-finetune`` found it as accurate or slightly more so at every budget)
    or from the file's (``pretrained``); its trained accuracy is measured either way. The rebuilt small network is retrained from
    fresh weights (``retrain_init: scratch``, MorphNet's recipe) or from its surviving ones
    (``kept``). ``validation_split`` is the share of a dataset held out when it comes unsplit;
    ``steps_per_epoch`` bounds an epoch to that many training batches (over a huge dataset).
    ``augment`` (any of ``AUGMENTATIONS``, in order) and ``normalize`` (per channel, by the
    training data's mean and variance) are Keras preprocessing layers put in front of the seed
    network (``trainers.preprocessing``) and recorded in the structure JSON.

    ``budgets`` are costs, as shares of the seed's, the trial may retrain at, the most wanted
    first (the adaptive search sets them): structure learning watches the cost of the
    structure it would export as it falls, keeps the exported structure nearest each budget
    within ``budget_tolerance`` (relative; from below when there is one), and retrains the one
    for the first budget in this order that its path landed in, instead of the final structure
    (``trainers.budgets``). Empty: the final structure is retrained.

    A field's ``description``, where set, is what the error message says the field must be.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="trial config")

    model: str = "zoo:resnet"
    model_width: Annotated[PositiveCount, Field(le=MAX_WIDTH)] = Field(
        default=32, description=f"an integer in [1, {MAX_WIDTH}]"
    )
    init: Literal["pretrained", "scratch"] = "scratch"
    retrain_init: Literal["scratch", "kept"] = "scratch"
    dataset: str = "digits"
    image_size: Annotated[PositiveCount, Field(le=MAX_IMAGE_SIZE)] | None = Field(
        default=None, description=f"an integer in [1, {MAX_IMAGE_SIZE}] (pixels a side)"
    )
    validation_split: Annotated[Real, Field(gt=0, lt=1)] = 0.2
    steps_per_epoch: PositiveCount | None = None
    augment: tuple[str, ...] = ()
    normalize: StrictBool = False
    algorithm: Algorithm = "gamma"
    target: Target = "flops"
    hardware: str = "P100"
    latency_batch_size: PositiveCount = 1
    threshold: NonNegative | None = Field(default=None, description="a number >= 0")
    strength: Positive | None = Field(
        default=None, description="> 0 (e.g. 1 / seed cost), or unset to use multiplier"
    )
    multiplier: Positive | None = Field(
        default=1.0, description="> 0; strength = multiplier / seed cost"
    )
    epochs: PositiveCount = 10
    learning_rate: Positive = 1e-2
    batch_size: PositiveCount = 64
    retrain_epochs: Count = 10
    retrain_learning_rate: Positive = 3e-3
    export_every_steps: Count = 100
    seed: Count = 0
    gate_temperature: Positive = 0.5
    gate_log_odds_init: Real = 1.0
    gate_straight_through: StrictBool = True
    regularize_on_mask: StrictBool = False
    baseline_width: Positive | None = None
    backend: Backend = "tensorflow"
    jit_compile: StrictBool | None = None
    mixed_precision: StrictBool = False
    deterministic: StrictBool = True
    output_dir: str = "morphsweep_runs/trial"
    verbose: Count = 1
    budgets: tuple[Annotated[Positive, Field(le=1)], ...] = Field(
        default=(), description="a list of cost fractions in (0, 1]"
    )
    budget_tolerance: Annotated[Positive, Field(lt=1)] = Field(
        default=0.05, description="a relative distance in (0, 1)"
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = validation_problems(exc, data, TrialConfig)
            raise TrialConfigError("; ".join(problems), problems) from None

    @model_validator(mode="after")
    def _combinations(self) -> TrialConfig:
        from trainers.morphnet.costs import HARDWARE

        problems = []
        if self.algorithm == "logistic_sigmoid" and self.target == "activations":
            problems.append(
                "algorithm='logistic_sigmoid' has no 'activations' target (as in MorphNet); "
                "use target='flops', 'model_size' or 'latency'"
            )
        if self.init == "pretrained" and not self.model.endswith(".keras"):
            problems.append(
                f"init='pretrained' starts from a saved network's weights, but model="
                f"{self.model!r} is built fresh; give model: <path>.keras, or init: scratch"
            )
        problems += check_augment(self.augment)
        if self.strength is None and self.multiplier is None:
            problems.append("set strength or multiplier (strength = multiplier / seed cost)")
        if self.target == "latency" and self.hardware not in HARDWARE:
            problems.append(
                f"hardware must be one of {sorted(HARDWARE)}, but got hardware={self.hardware!r}"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # ----- derived -----------------------------------------------------------------------------
    @property
    def starts_pretrained(self) -> bool:
        """Whether learning starts from the seed file's trained weights."""
        return self.model.endswith(".keras") and self.init == "pretrained"

    @property
    def regularizer_threshold(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS[self.algorithm]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        if not isinstance(data, dict):
            raise TrialConfigError(
                f"a trial config must be a mapping, but got {type(data).__name__}"
            )
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrialConfig:
        """Load a YAML file, apply ``overrides`` (e.g. from the command line), then validate."""
        data = read_yaml_mapping(path, "trial config")
        return cls.from_dict({**data, **(overrides or {})})

    def replace(self, **changes: Any) -> TrialConfig:
        """A validated copy with ``changes``."""
        return TrialConfig(**{**self.to_dict(), **changes})


# ----- pydantic's errors as our messages: the field, the bad value and what it must be -----------
_RULES = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "int"),
    **dict.fromkeys(("float_type", "float_parsing"), "float"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "bool"),
    **dict.fromkeys(("dict_type", "model_type"), "a mapping"),
    **dict.fromkeys(("list_type", "tuple_type"), "a list"),
    "string_type": "str",
    "too_short": "a non-empty list",
    "finite_number": "a finite number",
    "missing": "set",
    "greater_than": "> {gt:g}",
    "greater_than_equal": ">= {ge:g}",
    "less_than": "< {lt:g}",
    "less_than_equal": "<= {le:g}",
}


def validation_problems(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[str]:
    """One message per bad field of ``data`` (what ``model`` was validated from), in order.

    ``"trial: epochs must be int, but got epochs='3'"``; a validator's own message is kept (after
    the field's name); unknown keys are listed together with the known ones.
    """
    problems: list[str] = []
    unknown: dict[tuple[str, ...], list[str]] = {}
    title = model.model_config.get("title")
    for error in exc.errors():
        loc, kind, ctx = error["loc"], error["type"], error.get("ctx", {})
        if kind == "extra_forbidden":
            unknown.setdefault(_path(loc[:-1], data)[0], []).append(str(loc[-1]))
            continue
        is_key = "[key]" in loc  # a bad key of a mapping: name the mapping, not the key
        loc = loc[: loc.index("[key]") - 1] if is_key else loc
        parts, value = _path(loc, data)
        if kind == "missing":
            parts, value = (*_path(loc[:-1], data)[0], str(loc[-1])), None
        name = ".".join(parts)
        got = f"{name}={value!r}" if name else repr(value)
        if kind == "value_error":
            lines = str(ctx["error"]).splitlines()
            problems += [f"{name}: {line}" if name else line for line in lines]
        elif kind == "literal_error":
            allowed = "(" + ctx["expected"].replace(" or ", ", ") + ")"
            item = is_key or len(parts) < len(loc)
            problems.append(
                f"{name}: {error['input']!r} is not one of {allowed}"
                if item
                else f"{name} must be one of {allowed}, but got {got}"
            )
        else:
            field = _walk(model, parts)[1]
            rule = (field and field.description) or _RULES.get(kind, "valid").format(**ctx)
            problems.append(f"{name or title} must be {rule}, but got {got}")
    for parts, keys in unknown.items():
        known = sorted(_walk(model, parts)[0].model_fields)
        where = f"{'.'.join(parts)}: unknown" if parts else f"unknown {title}"
        problems.append(f"{where} key(s) {sorted(keys)}; known: {known}")
    return list(dict.fromkeys(problems))


def _path(loc: tuple[int | str, ...], data: Any) -> tuple[tuple[str, ...], Any]:
    """The keys of ``loc`` the user wrote (not list indices or pydantic's union tags), and the
    value found there."""
    parts: list[str] = []
    for part in loc:
        if not (isinstance(data, dict) and isinstance(part, str) and part in data):
            break
        parts.append(part)
        data = data[part]
    return tuple(parts), data


def _walk(model: Any, parts: tuple[str, ...]) -> tuple[Any, Any]:
    """The model class and the field at ``parts`` (the walk stops at a mapping's keys)."""
    field = None
    for part in parts:
        fields = getattr(model, "model_fields", {})  # {} past the models: a mapping, a list
        if part not in fields:
            break
        field, model = fields[part], fields[part].annotation
    return model, field


# YAML 1.1 (PyYAML) reads 1e-3 and 2e5 as strings: only 1.0e-3 is a float there. Users write
# them anyway, so numbers are read as YAML 1.2 reads them (the resolver below adds exponents
# without a dot, and keeps everything else of plain safe YAML)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def yaml_loader() -> Any:
    """PyYAML's safe loader, reading numbers as YAML 1.2 does (``1e-3`` is a float)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return Loader


def load_yaml(text: str) -> Any:
    """Plain YAML (no ``!!python`` tags), numbers as YAML 1.2 reads them."""
    loader = yaml_loader()(text)  # a SafeLoader subclass: no tags that run code
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping a YAML file holds; only plain YAML is read (``!!python`` tags are refused).

    A missing path, a folder, a file that cannot be read or is not text, an empty file and a
    file that holds something other than a mapping are each refused by name.
    """
    import yaml

    where = Path(path)
    if where.is_dir():
        raise TrialConfigError(f"{what} {str(path)!r} is a directory; give the YAML file in it")
    if not where.is_file():
        raise TrialConfigError(f"{what} {str(path)!r} does not exist")
    try:
        text = where.read_bytes().decode("utf-8")
    except OSError as exc:
        raise TrialConfigError(
            f"{what} {str(path)!r} cannot be read ({exc.strerror}); check its permissions"
        ) from exc
    except UnicodeDecodeError as exc:
        raise TrialConfigError(
            f"{what} {str(path)!r} is not a text file (byte {exc.start} is not UTF-8); give "
            f"the YAML file"
        ) from exc
    if "\0" in text:
        raise TrialConfigError(f"{what} {str(path)!r} is not a text file; give the YAML file")
    try:
        data = load_yaml(text)
    except ValueError as exc:  # a number too long to convert
        raise TrialConfigError(f"{what} {str(path)!r} cannot be read as YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise TrialConfigError(
            f"{what} {str(path)!r} is not valid YAML: {yaml_error_text(exc)}; only plain YAML is "
            f"read (no !!python tags)"
        ) from exc
    if data is None:
        raise TrialConfigError(
            f"{what} {str(path)!r} is empty; write its fields (the README's examples show them)"
        )
    if not isinstance(data, dict):
        raise TrialConfigError(
            f"{what} {str(path)!r} must be a mapping of fields, but it holds a "
            f"{type(data).__name__}"
        )
    return data


def yaml_error_text(exc: Exception) -> str:
    """A YAML error in one line: where, and what the parser expected."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"
