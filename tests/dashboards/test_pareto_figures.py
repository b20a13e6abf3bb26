"""The Pareto PNG and offline HTML charts draw exactly the rows and front that sweep computed."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dashboards.pareto import pareto_html, pareto_png
from sweep.pareto import ParetoResult, pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MLFLOW = "http://mlflow.local:5000/#/experiments/1/runs/"


class ChartParser(HTMLParser):
    """Collects point circles (with their enclosing link and hover title) and all tags."""

    def __init__(self) -> None:
        """Starts with nothing collected."""
        super().__init__()
        self.points: list[dict[str, object]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.table_rows = 0
        self._href: str | None = None
        self._circle: dict[str, object] | None = None
        self._in_title = False
        self._in_front_table = False
        self._in_tbody = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Records the tag; opens a point record for circles of class point."""
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        classes = (attributes.get("class") or "").split()
        if tag == "a":
            self._href = attributes.get("href")
        elif tag == "circle" and "point" in classes:
            self._circle = {"classes": set(classes), "attrs": attributes, "href": self._href}
            self._circle["title"] = ""
        elif tag == "title" and self._circle is not None:
            self._in_title = True
        elif tag == "table" and "front-table" in classes:
            self._in_front_table = True
        elif tag == "tbody" and self._in_front_table:
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody:
            self.table_rows += 1

    def handle_endtag(self, tag: str) -> None:
        """Closes the open link, title, point or table."""
        if tag == "a":
            self._href = None
        elif tag == "title":
            self._in_title = False
        elif tag == "circle" and self._circle is not None:
            self.points.append(self._circle)
            self._circle = None
        elif tag == "tbody":
            self._in_tbody = False
        elif tag == "table":
            self._in_front_table = False

    def handle_data(self, data: str) -> None:
        """Accumulates hover text (already unescaped by the parser)."""
        if self._in_title and self._circle is not None:
            self._circle["title"] = str(self._circle["title"]) + data


def parse(path: Path) -> ChartParser:
    """Parses an HTML file with the standard library parser."""
    parser = ChartParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


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
    chart = parse(path)
    valid = result.valid()
    # one point per trial with a finite cost and accuracy; the NaN trial is not drawn
    assert len(chart.points) == len(valid) == 8
    # front class and data-pareto both follow the computed front
    assert sum("front" in p["classes"] for p in chart.points) == len(result.front()) == 5
    assert sum(p["attrs"]["data-pareto"] == "true" for p in chart.points) == 5
    assert sum("baseline" in p["classes"] for p in chart.points) == 3
    assert sum("knee" in p["classes"] for p in chart.points) == 1
    drawn = sorted(float(p["attrs"]["data-cost"]) for p in chart.points)
    assert drawn == sorted(valid["cost"])
    accuracies = {float(p["attrs"]["data-accuracy"]) for p in chart.points}
    assert accuracies == set(valid["accuracy"])
    series = sorted(p["attrs"]["data-series"] for p in chart.points)
    assert series == sorted(valid["algorithm"])


def test_html_hover_titles_name_the_trials(result: ParetoResult, tmp_path: Path) -> None:
    chart = parse(pareto_html(result, tmp_path / "p.html", hover_columns=("trial", "strength")))
    titles = [str(p["title"]) for p in chart.points]
    for name in result.valid()["trial"]:
        assert sum(f"trial: {name}" in t for t in titles) == 1
    assert any("strength: 3e-9" in t for t in titles)
    # text from the data is escaped: the trial name's markup must not become a tag
    raw = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "<b>" not in raw and "t3 &lt;b&gt;&amp;" in raw
    assert not any(tag == "b" for tag, _ in chart.tags)


def test_html_links(result: ParetoResult, tmp_path: Path) -> None:
    chart = parse(pareto_html(result, tmp_path / "p.html", link_column="url"))
    by_trial = {str(p["title"]).split("trial: ")[1].split("\n")[0]: p for p in chart.points}
    # rows with a non-empty, safe URL are wrapped in a link to it
    assert by_trial["t0"]["href"] == MLFLOW + "r0"
    assert by_trial["t6"]["href"] == MLFLOW + "r6"
    # empty, missing and script URLs get no link
    assert by_trial["t2"]["href"] is None
    assert by_trial["t5"]["href"] is None
    assert by_trial["t4"]["href"] is None
    assert sum(p["href"] is not None for p in chart.points) == 5
    assert "javascript:" not in (tmp_path / "p.html").read_text(encoding="utf-8")


def test_html_without_links_has_no_anchors(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html")
    chart = parse(path)
    assert all(p["href"] is None for p in chart.points)
    assert not any(tag == "a" for tag, _ in chart.tags)
    # nothing refers to the network at all, not even a namespace URL
    assert "http" not in path.read_text(encoding="utf-8")


def test_html_is_self_contained(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", link_column="url")
    chart = parse(path)
    raw = path.read_text(encoding="utf-8").lower()
    # offline machines: no scripts, stylesheets, images or frames loaded from anywhere
    assert not any(
        tag in {"script", "link", "img", "iframe", "object", "embed"} for tag, _ in chart.tags
    )
    assert not any("src" in attrs for _, attrs in chart.tags)
    assert "url(" not in raw and "@import" not in raw
    # the only http text is the links to the runs
    assert all(
        attrs.get("href", "").startswith(MLFLOW)
        for tag, attrs in chart.tags
        if any("http" in (v or "") for v in attrs.values())
    )


def test_html_chart_parts(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", title="digits <FLOPs>", cost_label="FLOPs")
    chart = parse(path)
    svgs = [attrs for tag, attrs in chart.tags if tag == "svg"]
    assert len(svgs) == 1
    # costs from 6e5 to 1e7 span more than a decade, so the x axis is logarithmic
    assert svgs[0]["data-x-scale"] == "log"
    classes = [attrs.get("class") or "" for _, attrs in chart.tags]
    assert sum(c == "tick x" for c in classes) >= 3
    assert sum(c == "tick y" for c in classes) >= 3
    assert "legend" in classes
    assert classes.count("baseline-line") == 1
    # one step line per non-baseline series
    assert classes.count("front-line") == 2
    # the table under the chart lists the front rows
    assert chart.table_rows == len(result.front())
    assert "digits &lt;FLOPs&gt;" in path.read_text(encoding="utf-8")


def test_html_linear_axis_for_narrow_costs(tmp_path: Path) -> None:
    df = pd.DataFrame({"cost": [1.0, 2.0, 5.0], "accuracy": [0.5, 0.7, 0.8]})
    chart = parse(pareto_html(pareto_front(df), tmp_path / "p.html", series=None))
    svg = next(attrs for tag, attrs in chart.tags if tag == "svg")
    # a 5x cost range is less than a decade: linear axis
    assert svg["data-x-scale"] == "linear"
    assert len(chart.points) == 3


def test_missing_columns_are_reported(result: ParetoResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'method' not found"):
        pareto_png(result, tmp_path / "p.png", series="method")
    with pytest.raises(ValueError, match="'run_link' not found"):
        pareto_html(result, tmp_path / "p.html", link_column="run_link")


def test_imports_stay_light() -> None:
    code = (
        "import sys, dashboards.pareto, sweep.pareto\n"
        "heavy = {'matplotlib', 'tensorflow', 'ray', 'mlflow', 'keras'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    # a fresh interpreter: this test session may already have imported matplotlib
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr


def test_hover_columns_naming_cost_are_not_repeated(result: ParetoResult, tmp_path: Path) -> None:
    path = pareto_html(result, tmp_path / "p.html", hover_columns=("trial", "cost", "accuracy"))
    chart = parse(path)
    # cost and accuracy are always in the hover text; naming them again must not duplicate them
    assert all(str(p["title"]).count("cost: ") == 1 for p in chart.points)
    raw = path.read_text(encoding="utf-8")
    assert raw.count("<th>cost</th>") == 1 and raw.count("<th>accuracy</th>") == 1
