"""Reading back what a page shows, for tests: the plotly figures it holds, as dicts.

Our pages keep each figure's JSON in a ``<script type="application/json" class="plotly-figure">``
(``dashboards/templates/macros.html``); a figure MLflow wrote with ``log_figure`` is plotly's own
page, whose ``Plotly.newPlot(id, data, layout, config)`` calls hold it.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, Any]] = []
        self._open = False

    def handle_starttag(self, tag, attrs):
        self._open = tag == "script" and "plotly-figure" in (dict(attrs).get("class") or "")

    def handle_data(self, data):
        if self._open:
            self.figures.append(json.loads(data))
            self._open = False


def figure_data(page: str | Path) -> list[dict[str, Any]]:
    """The figures a page holds (``data``, ``layout``), in order."""
    text = Path(page).read_text(encoding="utf-8")
    parser = _Figures()
    parser.feed(text)
    if parser.figures:
        return parser.figures
    decoder, figures = json.JSONDecoder(), []
    for call in re.finditer(r'Plotly\.newPlot\(\s*(?="[\w-]+",)', text):
        parts, i = [], call.end()
        for _ in range(3):  # the div id, data, layout
            while text[i] in " \t\r\n,":
                i += 1
            value, i = decoder.raw_decode(text, i)
            parts.append(value)
        figures.append({"data": parts[1], "layout": parts[2]})
    return figures
