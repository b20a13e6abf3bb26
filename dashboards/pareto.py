"""The Pareto chart of a ``sweep.charts.FrontChart`` as a ``render.Chart``. Marks by ``meta.role``:
"points" per series (the baseline's "baseline", joined in cost order), "front-line" (each
series' own front as a step line), "front" (rings on the front) and "knee" (a star); every
point's ``customdata`` is [trial, link, pareto, rank], and the link opens on click."""

from __future__ import annotations

from typing import Any

from sweep.charts import FrontChart, Point, front_chart
from sweep.pareto import ParetoResult

from .render import Chart, Mark, Panel, PathLike, series_colors, to_png, write_chart

EMPTY = "no trial with a finite cost and accuracy"


def _mark(kind: str, points: tuple[Point, ...], meta: dict[str, Any], **options: Any) -> Mark:
    """A mark of ``points``: their hover lines, and ``customdata`` [trial, link, pareto, rank]."""
    custom = [[p.trial, p.link, p.pareto, p.rank] for p in points]
    x, y, hover = [p.x for p in points], [p.y for p in points], [p.hover for p in points]
    return Mark(kind, x, y, meta=meta, hover=hover, custom=custom, **options)


def pareto_chart(front: FrontChart) -> Chart:
    """What the figure draws of the front's chart."""
    base = next((s.label for s in front.series if s.baseline), None)
    colors = series_colors([s.label for s in front.series], base)
    marks = [
        Mark("step", fx, fy, colors[s.label], meta={"role": "front-line", "series": s.label})
        for s in front.series
        for fx, fy in s.fronts
    ]
    for s in front.series:
        role = "baseline" if s.baseline else "points"
        meta = {"role": role, "series": s.label}
        marks.append(_mark(role, s.points, meta, color=colors[s.label], label=s.label))
    marks.append(_mark("ring", front.front, {"role": "front"}, label="Pareto front"))
    knee = ["knee"] * len(front.knee)
    marks.append(_mark("star", front.knee, {"role": "knee"}, label="knee", text=knee))
    axes = Panel(x=front.x_label, y=front.y_label, log_x=front.log_x, empty=EMPTY * front.empty)
    drawn = {"log_x": front.log_x, "points": sum(len(s.points) for s in front.series)}
    return Chart("pareto", front.title, marks, [axes], meta=drawn)


def pareto_png(result: ParetoResult, path: PathLike | None, **options: Any) -> Any:
    """Writes the chart (``options``: :func:`sweep.charts.front_chart`'s) as a PNG (see ``to_png``)."""
    return to_png(pareto_chart(front_chart(result, **options)), path)


def pareto_html(result: ParetoResult, path: PathLike, **options: Any) -> Any:
    """Writes the chart as a self-contained page over a table of the front's rows (and links)."""
    front = front_chart(result, **options)
    return write_chart(pareto_chart(front), path, table=front)
