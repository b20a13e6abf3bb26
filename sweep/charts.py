"""What the sweep's figures show, computed from its records: the points and fronts of a Pareto
chart, a trial's curves, a structure's widths, as frozen results.

``dashboards`` draws them (plotly and matplotlib alike) and decides nothing: which rows are
points, each series' own front, the knee, when an axis is logarithmic, the hover lines, the
front's table and which links are safe to put on a page are all decided here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from trainers.records import LEARN, RETRAIN, Epoch

from .pareto import ParetoResult, pareto_front

BASELINE = "baseline"  # the uniform-width baseline's series: drawn last, as a curve
# the columns that name a row's trial, in order of preference
TRIAL_COLUMNS = ("trial", "trial_name", "trial_id", "run_name")
DEFAULT_HOVER = (*TRIAL_COLUMNS, "strength")
SAFE_SCHEMES = ("", "http", "https", "file")  # the pages get shared: no link may run script
# (metric key of an epoch record, panel title): a panel each
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    (Epoch.key(LEARN, "cost"), "cost while learning"),
    (Epoch.key(LEARN, "val_accuracy"), "validation accuracy while learning"),
    (Epoch.key(RETRAIN, "val_accuracy"), "validation accuracy while retraining"),
)
Curve = Sequence[tuple[float, float]]  # (epoch, value) pairs


def fmt(value: object) -> str:
    """A value as hover text and tables show it: floats to 6 digits, "1e6" rather than "1e+06"."""
    if not isinstance(value, float | np.floating):
        return str(value)
    mantissa, e, exponent = f"{float(value):.6g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def safe_link(value: object) -> str | None:
    """The URL when it is a non-empty http(s), file or relative link, else None."""
    text = value.strip() if isinstance(value, str) else ""
    return text if text and urlsplit(text).scheme.lower() in SAFE_SCHEMES else None


def log_scale(values: Sequence[float]) -> bool:
    """Whether positive values span more than a decade (a log axis)."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


# ----- a Pareto chart ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """A trial's point: cost, accuracy, its trial and link, whether it is on the front."""

    x: float
    y: float
    trial: str
    link: str
    pareto: bool
    rank: int
    hover: tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """A series' points (the baseline's in cost order) and its own front, one step line per group."""

    label: str
    baseline: bool
    points: tuple[Point, ...]
    fronts: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]


@dataclass(frozen=True)
class FrontChart:
    """A Pareto chart: its series in drawing order (the baseline last), the front, the knee, and
    the front's rows as a table (``columns``; ``rows`` of (cells, link))."""

    title: str
    x_label: str
    y_label: str
    log_x: bool
    series: tuple[Series, ...]
    front: tuple[Point, ...]
    knee: tuple[Point, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[tuple[str, ...], str | None], ...]
    links: bool  # whether the rows have links (a link column was given)

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)

    @property
    def caption(self) -> str:
        n = len(self.rows)
        return f"Pareto front ({n} trial{'s' if n != 1 else ''}), cheapest first"


def front_chart(
    result: ParetoResult,
    *,
    series: str | None = "algorithm",
    baseline_label: str = BASELINE,
    title: str | None = None,
    cost_label: str | None = None,
    link_column: str | None = None,
    hover_columns: Sequence[Hashable] = DEFAULT_HOVER,
) -> FrontChart:
    """The chart of ``result``: a series per ``series`` value (all rows one series without it).

    Raises:
        ValueError: ``series`` or ``link_column`` is not a column of the result.
    """
    for role, column in (("series", series), ("link", link_column)):
        if column is not None and column not in result.table.columns:
            available = [str(c) for c in result.table.columns]
            raise ValueError(f"{role} column {column!r} not found; available columns: {available}")
    cost, accuracy = result.cost_column, result.accuracy_column
    valid = result.table[result.table["rank"] >= 0]
    labels = pd.Series("all", index=valid.index, dtype=object)
    if series is not None:
        labels = valid[series].map(lambda v: "(none)" if pd.isna(v) else str(v))
    shown = [c for c in hover_columns if c in valid.columns and c not in {series, cost, accuracy}]
    trial = next((c for c in TRIAL_COLUMNS if c in valid.columns), None)

    def points(rows: pd.DataFrame, name: str) -> tuple[Point, ...]:
        out = []
        for _, row in rows.iterrows():
            lines = [f"{series}: {name}"] if series is not None else []
            lines += [f"{c}: {fmt(row[c])}" for c in [*shown, cost, accuracy]]
            lines.append(f"rank: {row['rank']}{' (Pareto front)' if row['pareto'] else ''}")
            link = safe_link(row[link_column]) if link_column is not None else None
            name_ = str(row[trial]) if trial is not None else ""
            x, y = float(row[cost]), float(row[accuracy])
            out.append(
                Point(x, y, name_, link or "", bool(row["pareto"]), int(row["rank"]), tuple(lines))
            )
        return tuple(out)

    base = baseline_label if series is not None else None
    names = sorted(set(labels))
    drawn = []
    for name in [n for n in names if n != base] + [n for n in names if n == base]:
        rows = valid[(labels == name).to_numpy()]
        if name == base:
            drawn.append(Series(name, True, points(_by_cost(rows, cost, accuracy), name), ()))
            continue
        own = pareto_front(rows, cost=cost, accuracy=accuracy, group=result.group_column).front()
        parts = (
            [own]
            if result.group_column is None
            else [p for _, p in own.groupby(result.group_column, dropna=False, sort=False)]
        )
        fronts = tuple((tuple(p[cost].tolist()), tuple(p[accuracy].tolist())) for p in parts)
        drawn.append(Series(name, False, points(rows, name), fronts))
    x_label = cost_label or cost
    columns, rows = _front_table(result, series, link_column, hover_columns)
    return FrontChart(
        title=title or f"{accuracy} vs {x_label}",
        x_label=x_label,
        y_label=accuracy,
        log_x=log_scale(valid[cost].astype(float).tolist()),
        series=tuple(drawn),
        front=points(valid[valid["pareto"].to_numpy(bool)], "front"),
        knee=points(valid[valid["knee"].to_numpy(bool)], "knee"),
        columns=columns,
        rows=rows,
        links=link_column is not None,
    )


def _by_cost(rows: pd.DataFrame, cost: str, accuracy: str) -> pd.DataFrame:
    return rows.sort_values([cost, accuracy], kind="mergesort")


def _front_table(
    result: ParetoResult, series: str | None, link_column: str | None, hover: Sequence[Hashable]
) -> tuple[tuple[str, ...], tuple[tuple[tuple[str, ...], str | None], ...]]:
    """The front's rows, cheapest first: column names, and per row its cells and safe link."""
    front = result.front()
    last = [result.cost_column, result.accuracy_column, "knee"]
    columns: list[Hashable] = []
    for column in [result.group_column, series, *hover]:
        if column is not None and column in front.columns and column not in columns + last:
            columns.append(column)
    columns += last
    rows = tuple(
        (
            tuple(("yes" if row[c] else "") if c == "knee" else fmt(row[c]) for c in columns),
            safe_link(row[link_column]) if link_column is not None else None,
        )
        for _, row in front.iterrows()
    )
    return tuple(str(c) for c in columns), rows


# ----- a trial's curves --------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialHistory:
    """A trial's curves: metric key -> (epoch, value) pairs. ``series`` colours its lines (the
    baseline grey), ``link`` opens on click, ``hover`` adds ``name: value`` lines."""

    trial_id: str
    metrics: Mapping[str, Curve]
    series: str = ""
    link: str | None = None
    hover: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of_epochs(
        cls, trial_id: str, epochs: Sequence[Epoch], metrics: Sequence[str]
    ) -> TrialHistory:
        """The curves of ``metrics`` (``learn/cost`` ...) in a trial's epoch records."""
        curves: dict[str, list[tuple[float, float]]] = {}
        for epoch in epochs:
            for key in metrics:
                phase, name = key.split("/", 1)
                value = getattr(epoch, name, None) if epoch.phase == phase else None
                if isinstance(value, int | float):
                    curves.setdefault(key, []).append((float(epoch.epoch), float(value)))
        return cls(trial_id, curves)


@dataclass(frozen=True)
class Line:
    """One trial's line in a panel: finite points in epoch order, its hover lines."""

    history: TrialHistory
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    hover: tuple[str, ...]

    @property
    def link(self) -> str:
        return safe_link(self.history.link) or ""


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    lines: tuple[Line, ...]
    log: bool  # a cost spanning more than a decade


def histories(
    data: Sequence[TrialHistory] | Mapping[str, Mapping[str, Curve]],
) -> list[TrialHistory]:
    """Histories as given, or from ``{trial id: {metric key: [(epoch, value), ...]}}``."""
    if isinstance(data, Mapping):
        return [TrialHistory(str(trial), metrics) for trial, metrics in data.items()]
    return list(data)


def curve_panels(
    trials: Sequence[TrialHistory], metrics: Sequence[tuple[str, str]] = CURVE_METRICS
) -> tuple[Panel, ...]:
    """A panel per metric: a line per trial with finite data there."""
    panels = []
    for key, title in metrics:
        lines = []
        for h in trials:
            points = sorted(
                (float(x), float(y))
                for x, y in h.metrics.get(key, ())
                if math.isfinite(x) and math.isfinite(y)
            )
            if not points:
                continue
            xs, ys = tuple(x for x, _ in points), tuple(y for _, y in points)
            hover = [f"trial: {h.trial_id}"] + [f"series: {h.series}"] * bool(h.series)
            hover += [f"{k}: {fmt(v)}" for k, v in h.hover.items()]
            hover.append(f"{key} at epoch {fmt(xs[-1])}: {fmt(ys[-1])}")
            lines.append(Line(h, xs, ys, tuple(hover)))
        values = [y for line in lines for y in line.ys]
        panels.append(Panel(key, title, tuple(lines), key.endswith("cost") and log_scale(values)))
    return tuple(panels)


# ----- a structure's widths ----------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    name: str
    alive: int
    original: int
    kind: str  # the Keras class

    @property
    def short(self) -> str:
        """The name cut at 40 characters for an axis (the hover has it whole)."""
        return self.name if len(self.name) <= 40 else self.name[:39] + "\u2026"

    @property
    def hover(self) -> str:
        share = f" ({self.alive / self.original:.0%})" if self.original > 0 else ""
        kind = f" ({self.kind})" if self.kind else ""
        return f"{self.name}{kind}: {self.alive} of {self.original} channels{share}"


@dataclass(frozen=True)
class Widths:
    """A structure's layers in order, and a line on its cost ("FLOPs: seed 1e6 → learned 5e5
    (50.0% of the seed)", or "")."""

    layers: tuple[Layer, ...]
    cost: str


def widths(structure: Mapping[str, Any]) -> Widths:
    """The widths in a structure JSON; ValueError when it is malformed."""
    layers = structure.get("layers") if isinstance(structure, Mapping) else None
    if not isinstance(layers, Mapping):
        raise ValueError("a structure needs a 'layers' object ({name: {alive, original, ...}})")
    out = []
    for name, data in layers.items():
        try:
            out.append(
                Layer(
                    str(name), int(data["alive"]), int(data["original"]), str(data.get("class", ""))
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"layer {name!r} of the structure needs integer 'alive' and 'original', got {data!r}"
            ) from exc
    cost = structure.get("cost") or {}
    seed, learned = (float(cost.get(k, "nan")) for k in ("seed", "learned"))
    if not (math.isfinite(seed) and math.isfinite(learned)):
        return Widths(tuple(out), "")
    share = f" ({learned / seed:.1%} of the seed)" if seed > 0 else ""
    line = f"{cost.get('name') or 'cost'}: seed {fmt(seed)} \u2192 learned {fmt(learned)}{share}"
    return Widths(tuple(out), line)
