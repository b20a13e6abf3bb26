"""What the figures and pages share: series colours, number format, hover text, safe links."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

# matplotlib's tab10, so that PNGs and plotly pages colour the series alike; the baseline is grey
PALETTE = tuple("#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #bcbd22 #17becf".split())
BASELINE, BASELINE_COLOR = "baseline", "#555555"
SAFE_SCHEMES = ("", "http", "https", "file")  # the pages get shared: no link may run script


def series_colors(labels: Iterable[str], baseline: str | None = BASELINE) -> dict[str, str]:
    """Colour per series label, in drawing order: sorted, the baseline last and grey."""
    names = sorted(set(labels))
    order = [n for n in names if n != baseline] + [n for n in names if n == baseline]
    return {n: BASELINE_COLOR if n == baseline else PALETTE[i % 9] for i, n in enumerate(order)}


def fmt(value: object) -> str:
    """A value as hover text and tables show it: floats to 6 digits, "1e6" rather than "1e+06"."""
    if not isinstance(value, float | np.floating):
        return str(value)
    mantissa, e, exponent = f"{float(value):.6g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def hover_text(lines: Sequence[str]) -> str:
    """Hover lines joined for plotly, escaped: plotly renders a subset of HTML in them."""
    return "<br>".join(html.escape(line) for line in lines)


def safe_link(value: object) -> str | None:
    """The URL when it is a non-empty http(s), file or relative link, else None."""
    text = value.strip() if isinstance(value, str) else ""
    return text if text and urlsplit(text).scheme.lower() in SAFE_SCHEMES else None


def plotly_layout(figure: Any, kind: str, title: str, height: int, **layout: Any) -> Any:
    """The layout every plotly figure shares; ``meta.kind`` names the figure."""
    meta = {"kind": kind, **layout.pop("meta", {})}
    margin = {"l": 60, "r": 20, "t": 80, "b": 50, **layout.pop("margin", {})}
    title_ = {"text": html.escape(title) + layout.pop("subtitle", "")}
    return figure.update_layout(
        title=title_, template="plotly_white", height=height, meta=meta, margin=margin, **layout
    )


def png_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas: no pyplot state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: str | os.PathLike[str] | None) -> Any:
    """Writes the figure and returns its Path; None returns the Figure (for mlflow.log_figure)."""
    if path is None:
        return figure
    figure.savefig(Path(path), format="png")
    return Path(path)
