"""Writes pages from the jinja2 templates in ``templates/``: data in, HTML out.

A plotly figure on a page is an empty ``<div id="ID" class="plotly-graph-div">`` and its JSON
(``data``, ``layout``) in ``<script type="application/json" class="plotly-figure" id="ID-json">``;
the page's one script draws each with plotly.js (inline, or the shared ``plotly.min.js`` beside
the page) and opens a point's link (``customdata[1]``) when it is clicked.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .style import safe_link

PLOTLY_JS = "plotly.min.js"  # the copy that pages written with shared_js=True load


@dataclass(frozen=True)
class Plot:
    """A plotly figure as a page embeds it: its div's id and its JSON."""

    id: str
    figure: dict[str, Any]


def plot(figure: Any, div_id: str, **meta: Any) -> Plot:
    """The figure as JSON data, with ``meta`` added to its ``layout.meta``."""
    import plotly.io as pio

    data = json.loads(pio.to_json(figure, validate=False))
    data["layout"]["meta"] = {**data["layout"].get("meta", {}), **meta}
    return Plot(div_id, data)


@functools.cache
def _templates() -> jinja2.Environment:
    loader = jinja2.PackageLoader("dashboards")
    options = {"trim_blocks": True, "lstrip_blocks": True, "undefined": jinja2.StrictUndefined}
    return jinja2.Environment(loader=loader, autoescape=True, **options)


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_page(
    path: str | os.PathLike[str], template: str, *, shared_js: bool = False, **data: Any
) -> Path:
    """Renders ``templates/<template>`` with ``data`` into ``path``. plotly.js is inline, so the
    page works offline; with ``shared_js`` it loads ``plotly.min.js`` from the page's directory
    (written there once), so that many pages share one copy."""
    out = Path(path)
    if shared_js and not (out.parent / PLOTLY_JS).is_file():
        (out.parent / PLOTLY_JS).write_text(_plotly_js(), encoding="utf-8")
    inline = None if shared_js else Markup(_plotly_js())  # the library itself, never data
    page = (
        _templates().get_template(template).render(plotly_js=inline, plotly_src=PLOTLY_JS, **data)
    )
    out.write_text(page, encoding="utf-8")
    return out


def write_figures(
    path: str | os.PathLike[str],
    title: str,
    figures: Sequence[Any],
    *,
    link: str | None = None,
    table: dict[str, Any] | None = None,
) -> Path:
    """Writes a self-contained page of plotly figures (ids ``figure-0``, ``figure-1`` ...), then
    a link to the run (when safe) and a table (see :func:`dashboards.pareto.front_table`)."""
    plots = [plot(figure, f"figure-{i}") for i, figure in enumerate(figures)]
    return write_page(
        path, "figures.html", title=title, plots=plots, link=safe_link(link), table=table
    )
