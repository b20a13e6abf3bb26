"""The Pareto PNG and the plotly chart draw exactly the rows and front that sweep computed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dashboards.pareto import pareto_html, pareto_png
from sweep.pareto import ParetoResult, pareto_front
from tests.dashboards.pages import figure_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MLFLOW = "http://mlflow.local:5000/#/experiments/1/runs/"


class Chart:
    """What a Pareto page shows: its plotly traces by role, every drawn point, the front table."""

    def __init__(self, path: Path) -> None:
        (self.figure,) = figure_data(path)
        self.raw = path.read_text(encoding="utf-8")
        self.points = []  # one per trial drawn: (series, cost, accuracy, customdata, hover)
        for trace in self.roles("points") + self.roles("baseline"):
            for x, y, custom, hover in zip(
                trace["x"], trace["y"], trace["customdata"], trace["hovertext"], strict=True
            ):
                self.points.append(
                    {
                        "series": trace["meta"]["series"],
                        "cost": x,
                        "accuracy": y,
                        "trial": custom[0],
                        "href": custom[1] or None,
                        "pareto": custom[2],
                        "hover": hover,
                    }
                )
        body = self.raw.split("<body>", 1)[1]
        self.table_rows = body.split('class="front-table"', 1)[1].count("<tr>") - 1

    def roles(self, role: str) -> list[dict]:
        return [t for t in self.figure["data"] if t.get("meta", {}).get("role") == role]

    def drawn(self, role: str) -> int:
        return sum(len(t["x"]) for t in self.roles(role))


@pytest.fixture
def result() -> ParetoResult:
    """Two MorphNet series, a uniform-width baseline and one failed trial."""
    rows = [
        ("t0", "gamma", 1e-9, 1e6, 0.80, MLFLOW + "r0"),
        ("t1", "gamma", 3e-9, 3e6, 0.90, MLFLOW + "r1"),
        ("t2", "gamma", 5e-9, 5e6, 0.88, ""),
        ("t3 <b>&", "group_lasso", 1e-9, 2e6, 0.86, MLFLOW + "r3"),
        ("t4", "group_lasso", 2e-9, 8e6, 0.93, "javascript:alert(1)"),
        ("t5", "baseline", 0.0, 4e6, 0.85, None),
        ("t6", "baseline", 0.0, 1e7, 0.92, MLFLOW + "r6"),
        ("t7", "baseline", 0.0, 6e5, 0.70, MLFLOW + "r7"),
        ("t8", "group_lasso", 9e-9, float("nan"), 0.95, MLFLOW + "r8"),
    ]
    df = pd.DataFrame(rows, columns=["trial", "algorithm", "strength", "cost", "accuracy", "url"])
    return pareto_front(df)


def test_fixture_front(result: ParetoResult) -> None:
    # hand check of what the charts must show: t5, t2 beaten by t1; t6 beaten by t4; t8 failed
    assert result.front()["trial"].tolist() == ["t7", "t0", "t3 <b>&", "t1", "t4"]


def test_png_is_written(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_png(result, tmp_path / "pareto.png", title="digits", cost_label="FLOPs")
    assert path == tmp_path / "pareto.png"
    data = path.read_bytes()
    assert len(data) > 0
    assert data[:8] == PNG_MAGIC


def test_png_without_series_or_valid_rows(tmp_path: Path) -> None:
    df = pd.DataFrame({"cost": [1.0, 2.0], "accuracy": [0.5, 0.7]})
    single = pareto_png(pareto_front(df), tmp_path / "one.png", series=None)
    assert single.read_bytes()[:8] == PNG_MAGIC
    # a sweep where every trial failed still gets a (empty) chart rather than an exception
    failed = pareto_front(df.assign(accuracy=float("nan")))
    assert pareto_png(failed, tmp_path / "none.png", series=None).read_bytes()[:8] == PNG_MAGIC


def test_html_points(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "pareto.html", hover_columns=("trial", "strength"))
    assert path == tmp_path / "pareto.html"
    chart = Chart(path)
    valid = result.valid()
    # one point per trial with a finite cost and accuracy; the NaN trial is not drawn
    assert len(chart.points) == len(valid) == 8
    # the rings and the pareto flags both follow the computed front
    assert chart.drawn("front") == len(result.front()) == 5
    assert sum(p["pareto"] for p in chart.points) == 5
    assert sorted(c[0] for c in chart.roles("front")[0]["customdata"]) == sorted(
        result.front()["trial"]
    )
    assert sum(p["series"] == "baseline" for p in chart.points) == 3
    assert chart.drawn("knee") == 1
    assert sorted(p["cost"] for p in chart.points) == sorted(valid["cost"])
    assert {p["accuracy"] for p in chart.points} == set(valid["accuracy"])
    assert sorted(p["series"] for p in chart.points) == sorted(valid["algorithm"])


def test_html_hover_text_names_the_trials(result: ParetoResult, tmp_path: Path) -> None:
    chart = Chart(pareto_html(result, tmp_path / "p.html", hover_columns=("trial", "strength")))
    hovers = [p["hover"] for p in chart.points]
    for name in result.valid()["trial"]:
        escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert sum(f"trial: {escaped}<br>" in h for h in hovers) == 1
    assert any("strength: 3e-9" in h for h in hovers)
    # text from the data is escaped: plotly renders hover text as HTML, the <b> must not be a tag
    assert any("t3 &lt;b&gt;&amp;" in h for h in hovers)
    assert not any("<b>" in h for h in hovers)


def test_html_links(result: ParetoResult, tmp_path: Path) -> None:
    chart = Chart(pareto_html(result, tmp_path / "p.html", link_column="url"))
    by_trial = {p["trial"]: p for p in chart.points}
    # rows with a non-empty, safe URL open it on click
    assert by_trial["t0"]["href"] == MLFLOW + "r0"
    assert by_trial["t6"]["href"] == MLFLOW + "r6"
    # empty, missing and script URLs get no link
    assert by_trial["t2"]["href"] is None
    assert by_trial["t5"]["href"] is None
    assert by_trial["t4"]["href"] is None
    assert sum(p["href"] is not None for p in chart.points) == 5
    assert "javascript:alert" not in chart.raw
    # the front table links the front rows that have one
    assert f'href="{MLFLOW}r0"' in chart.raw


def test_html_without_links(result: ParetoResult, tmp_path: Path) -> None:
    chart = Chart(pareto_html(result, tmp_path / "p.html"))
    assert all(p["href"] is None for p in chart.points)
    assert MLFLOW not in chart.raw


def test_html_is_self_contained(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", link_column="url")
    raw = path.read_text(encoding="utf-8")
    # offline machines: plotly.js is inline, once; nothing is loaded from anywhere
    assert raw.count("<script") >= 2 and not re.search(r"<script[^>]*\bsrc=", raw)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", raw)
    assert len(figure_data(path)) == 1


def test_html_chart_parts(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", title="digits <FLOPs>", cost_label="FLOPs")
    chart = Chart(path)
    layout = chart.figure["layout"]
    # costs from 6e5 to 1e7 span more than a decade, so the x axis is logarithmic
    assert layout["xaxis"]["type"] == "log"
    assert layout["xaxis"]["title"]["text"] == "FLOPs"
    assert len(chart.roles("baseline")) == 1
    # one step line per non-baseline series
    assert sorted(t["meta"]["series"] for t in chart.roles("front-line")) == [
        "gamma",
        "group_lasso",
    ]
    assert all(t["line"]["shape"] == "hv" for t in chart.roles("front-line"))
    # the table under the chart lists the front rows
    assert chart.table_rows == len(result.front())
    assert layout["title"]["text"] == "digits &lt;FLOPs&gt;"


def test_html_linear_axis_for_narrow_costs(tmp_path: Path) -> None:
    df = pd.DataFrame({"cost": [1.0, 2.0, 5.0], "accuracy": [0.5, 0.7, 0.8]})
    chart = Chart(pareto_html(pareto_front(df), tmp_path / "p.html", series=None))
    # a 5x cost range is less than a decade: linear axis
    assert chart.figure["layout"]["xaxis"]["type"] == "linear"
    assert len(chart.points) == 3


def test_missing_columns_are_reported(result: ParetoResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'method' not found"):
        pareto_png(result, tmp_path / "p.png", series="method")
    with pytest.raises(ValueError, match="'run_link' not found"):
        pareto_html(result, tmp_path / "p.html", link_column="run_link")


def test_imports_stay_light() -> None:
    code = (
        "import sys, dashboards.pareto, sweep.pareto\n"
        "heavy = {'matplotlib', 'plotly', 'tensorflow', 'ray', 'mlflow', 'keras'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    # a fresh interpreter: this test session may already have imported matplotlib
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr


def test_hover_columns_naming_cost_are_not_repeated(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", hover_columns=("trial", "cost", "accuracy"))
    chart = Chart(path)
    # cost and accuracy are always in the hover text; naming them again must not duplicate them
    assert all(p["hover"].count("cost: ") == 1 for p in chart.points)
    assert chart.raw.count("<th>cost</th>") == 1 and chart.raw.count("<th>accuracy</th>") == 1
