"""The sweep's pages in a real headless Chromium: the MLflow 3 UI showing the parent run and its
Pareto artifact, and the dashboard served over HTTP and opened from file://.

Needs Debian's chromium and chromium-driver (``.ci/install-browser.sh``). Without them the tests
are skipped, unless the environment variable CI is set: then they fail. Screenshots go to
``$MORPHSWEEP_ARTIFACTS/browser`` (default ``./test-artifacts/browser``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dashboards.page import build_dashboard, trial_page_name
from dashboards.publish import publish_dashboard
from sweep.store import ui_urls
from tests.dashboards.browser import Browser, find_chromedriver, find_chromium
from tests.dashboards.screenshots import CLOSE_ASSISTANT, morphsweep_ui
from tests.dashboards.test_dashboards import LAYERS, populate_sweep
from tests.sweep.conftest import mlflow_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
CHROMIUM, CHROMEDRIVER = find_chromium(), find_chromedriver()
MISSING = [
    name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not path
]
SWEEP = "browser-sweep"

if MISSING and not CI:
    pytestmark = pytest.mark.skip(
        reason=f"{' and '.join(MISSING)} not installed (run .ci/install-browser.sh)"
    )


def artifacts_dir() -> Path:
    """Where screenshots are kept for the CI run to upload."""
    base = os.environ.get("MORPHSWEEP_ARTIFACTS") or str(ROOT / "test-artifacts")
    out = Path(base) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser():
    if MISSING:
        pytest.fail(
            f"CI is set but {' and '.join(MISSING)} is missing: run .ci/install-browser.sh "
            "(Debian packages chromium and chromium-driver)"
        )
    with Browser(CHROMIUM, CHROMEDRIVER, window=(1500, 1000)) as driver:  # type: ignore[arg-type]
        yield driver


@pytest.fixture(scope="module")
def sweep(mlflow_server, tmp_path_factory):  # noqa: F811
    logged = populate_sweep(mlflow_server, SWEEP, tmp_path_factory.mktemp("logged"))
    publish_dashboard(mlflow_server, SWEEP)
    return logged


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The same sweep logged to a local SQLite store and served by ``morphsweep ui SWEEP``, as
    after ``make demo``; its ``uri`` is the UI's address, ``links`` what the command printed."""
    folder = tmp_path_factory.mktemp("local")
    store = f"sqlite:///{folder / 'mlflow.db'}"
    logged = populate_sweep(store, SWEEP, folder / "logged")
    with morphsweep_ui(SWEEP, store) as links:
        yield dataclasses.replace(logged, uri=links["table"].split("/#/", 1)[0]), links


def remote_links(sweep) -> dict[str, str]:
    """The links ``morphsweep ui SWEEP`` prints for a sweep tracked to a tracking server."""
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "ui", SWEEP, "--tracking-uri", sweep.uri],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = dict(re.findall(r"(table|chart): (http\S+)", done.stdout))
    assert found == ui_urls(sweep.uri, sweep.experiment_id), done.stdout
    return found


@pytest.fixture(params=["tracking server", "local store"])
def sweep_and_links(request):
    """A sweep and the two links ``morphsweep ui`` printed for it: tracked to a tracking server
    on loopback, or to a local store that ``morphsweep ui`` serves."""
    if request.param == "local store":
        sweep, links = request.getfixturevalue("local_sweep")
        return sweep, links, "local"
    sweep = request.getfixturevalue("sweep")
    return sweep, remote_links(sweep), "server"


@pytest.fixture(scope="module")
def dashboard_dir(sweep, tmp_path_factory):
    return build_dashboard(sweep.uri, sweep.name, tmp_path_factory.mktemp("dash")).parent


@pytest.fixture(scope="module")
def http_dashboard(dashboard_dir):
    """The dashboard directory served on 127.0.0.1 by http.server, as `morphsweep dashboard` does."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(dashboard_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def count(browser, css: str) -> int:
    return int(browser.execute("return document.querySelectorAll(arguments[0]).length", css))


# What plotly drew, read from the rendered DOM: per figure div, its kind and target (layout.meta)
# and per trace group its role (trace.meta) with the number of marker points, bars and lines.
RENDERED = """
return Array.from(document.querySelectorAll(arguments[0] + ' .plotly-graph-div')).map(gd => ({
  kind: (gd.layout && gd.layout.meta || {}).kind,
  target: (gd.layout && gd.layout.meta || {}).target,
  height: gd.getBoundingClientRect().height,
  traces: Array.from(gd.querySelectorAll('g.trace')).map(g => {
    const t = g.__data__ && g.__data__[0] && g.__data__[0].trace;
    const meta = (t && t.meta) || {};
    return {role: meta.role, series: meta.series, trial: meta.trial, metric: meta.metric,
            points: g.querySelectorAll('path.point').length,
            bars: g.querySelectorAll('g.point').length,
            lines: g.querySelectorAll('path.js-line').length,
            links: (t && t.customdata || []).map(c => c[1])};
  }),
}));
"""


def rendered(browser, scope: str = "body") -> list[dict]:
    return browser.execute(RENDERED, scope)


def drawn(figure: dict, role: str, what: str = "points") -> int:
    return sum(t[what] for t in figure["traces"] if t["role"] == role)


def wait_for_plots(browser, scope: str = "body", minimum: int = 1) -> None:
    browser.wait_for(
        "const n = document.querySelectorAll(arguments[0] + ' .plotly-graph-div g.trace').length;"
        "return n >= arguments[1]",
        scope,
        minimum,
        what="plotly to draw the figures",
    )


def open_html_artifact(browser, sweep, path: str) -> None:
    """Opens the parent run's HTML artifact in the MLflow UI and enters the frame showing it.

    MLflow fetches the file through the server and shows it in a sandboxed ``iframe`` that runs
    scripts (plotly); a fresh page load keeps the frame of an earlier artifact from being used.
    """
    browser.get("about:blank")
    browser.get(
        f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent_id}/artifactPath/{path}"
    )
    browser.wait_for(
        "return document.querySelector('iframe.mlflow-html-iframe')", what="the HTML artifact frame"
    )
    browser.switch_to_frame("iframe.mlflow-html-iframe")
    wait_for_plots(browser)


# --- the MLflow UI -------------------------------------------------------------------------------
def test_mlflow_ui_shows_the_parent_run(browser, sweep):
    browser.get(f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent_id}")
    # MLflow's JavaScript renders the page from several tracking API calls: wait for each part
    # (header, run id, child runs) to show the sweep's data rather than reading a snapshot
    browser.wait_for(
        "const h = document.querySelector('[data-testid=\"runs-header\"]');"
        "const id = document.querySelector('[data-testid=\"key-value-Run ID\"]');"
        "return !!(h && id && h.innerText.trim() === arguments[0]"
        " && id.innerText.includes(arguments[1]))",
        SWEEP,  # the parent run is named after the sweep
        sweep.parent_id,
        timeout=180,  # the first page of a fresh browser parses MLflow's whole bundle
        what="the run header with the sweep's name and the parent run id",
    )
    browser.wait_for(
        "const c = document.querySelector('[data-testid=\"key-value-Child runs\"]');"
        "return !!c && arguments[0].some(t => c.innerText.includes(t))",
        sorted(sweep.finished),
        what="the trials among the child runs",
    )
    browser.screenshot(artifacts_dir() / "mlflow_parent_run.png")


# The rows of MLflow's runs grid as a user sees them: per row, the run name and each metric
# column's text, keyed by its header ("accuracy", "cost/flops" ...).
GRID_ROWS = """
const headers = {};
document.querySelectorAll('.ag-header-cell[col-id]').forEach(h => {
  headers[h.getAttribute('col-id')] = h.innerText.trim();
});
const rows = {};
document.querySelectorAll('.ag-center-cols-container .ag-row').forEach(r => {
  const i = r.getAttribute('row-index');
  const cells = rows[i] || (rows[i] = {});
  r.querySelectorAll('[col-id]').forEach(c => {
    cells[headers[c.getAttribute('col-id')] || c.getAttribute('col-id')] = c.innerText.trim();
  });
});
document.querySelectorAll('.ag-pinned-left-cols-container .ag-row').forEach(r => {
  const i = r.getAttribute('row-index');
  (rows[i] || (rows[i] = {})).name = r.innerText.trim();
});
return Object.keys(rows).sort((a, b) => a - b).map(i => rows[i]);
"""


def test_mlflow_table_link_lists_every_trial_flat_sorted_by_cost(browser, sweep_and_links):
    sweep, links, kind = sweep_and_links
    trials = len(sweep.finished) + len(sweep.failed)
    browser.get("about:blank")
    browser.get(links["table"])
    # no click: one row per trial (the parent is not among them, nothing folded), with the
    # saved view's columns filled
    rows = browser.wait_for(
        f"const rows = (function() {{ {GRID_ROWS} }})();"
        "return rows.length === arguments[0] && rows.filter(r => /^0\\.\\d+/.test("
        "r['accuracy'] || '')).length === arguments[1] ? rows : null",
        trials,
        len(sweep.finished),
        timeout=180,  # the first page of a fresh browser parses MLflow's whole bundle
        what=f"{trials} trial rows, {len(sweep.finished)} with an accuracy",
    )
    browser.execute(CLOSE_ASSISTANT)
    browser.screenshot(artifacts_dir() / f"mlflow_trials_table_{kind}.png")
    # the grid renders the columns in view: scroll right for the params and the Pareto tag
    browser.execute(
        "const v = document.querySelector('.ag-body-horizontal-scroll-viewport');"
        "if (v) { v.scrollLeft = v.scrollWidth; v.dispatchEvent(new Event('scroll')); }"
    )
    right = browser.wait_for(
        f"const rows = (function() {{ {GRID_ROWS} }})();"
        "return rows.length && rows.every(r => 'strength' in r || 'width' in r) ? rows : null",
        what="the params columns of the saved table view",
    )
    rows = [{**left, **more} for left, more in zip(rows, right, strict=True)]
    names = " ".join(r.get("name", "") for r in rows)
    assert all(trial in names for trial in sweep.finished), names
    assert SWEEP not in names  # the parent run is no row of its own
    # sorted by the first target's cost, ascending; the trials of the other target (no such
    # metric) and the failed one after them
    costs = [
        float(r["cost/flops"])
        for r in rows
        if re.match(r"^[\d.]+(e[+-]?\d+)?k?$", r.get("cost/flops", ""))
    ]
    assert len(costs) == sum(1 for t in sweep.finished.values() if t["target"] == "flops")
    assert costs == sorted(costs)
    # each row says what the trial was and whether it is on the front
    assert all(r.get("algorithm") for r in rows), str(rows[:2])
    assert all(r.get("strength") or r.get("width") for r in rows[: len(costs)]), str(rows[:2])
    assert {r.get("morphsweep.pareto") for r in rows[: len(costs)]} == {"true", "false"}


# Per scatter card of MLflow's chart view, found by its title ("<x> vs. <y>"): the number of
# points drawn.
CARD_POINTS = """
const title = Array.from(document.querySelectorAll('span, div, h3, h4'))
  .find(e => e.children.length === 0 && e.innerText.trim() === arguments[0]);
if (!title) { return null; }
title.scrollIntoView({block: 'center'});
let card = title;
while (card && !card.querySelector('.js-plotly-plot')) { card = card.parentElement; }
if (!card) { return null; }
return card.querySelectorAll('.js-plotly-plot g.trace.scatter path.point').length;
"""


def test_mlflow_chart_link_plots_every_trial_per_target(browser, sweep_and_links):
    sweep, links, kind = sweep_and_links
    browser.get("about:blank")
    browser.get(links["chart"])
    pareto = {
        r.info.run_name: r.data.tags.get("morphsweep.pareto") == "true"
        for r in MlflowClient(sweep.uri).search_runs(
            [sweep.experiment_id], "tags.`morphsweep.role` = 'trial'"
        )
    }
    for i, target in enumerate(("flops", "latency")):
        # no click: every finished trial of the target (learned and baseline widths) is a point
        finished = [t for t, spec in sweep.finished.items() if spec["target"] == target]
        drawn_points = browser.wait_for(
            CARD_POINTS,
            f"cost/{target} vs. accuracy",
            timeout=180 if i == 0 else 90,
            what=f"the {target} scatter",
        )
        assert drawn_points == len(finished), (target, drawn_points, finished)
        front = [t for t in finished if pareto.get(t)]
        assert 0 < len(front) < len(finished)
        # the Pareto-optimal trials, as their own scatter
        points = browser.wait_for(
            CARD_POINTS, f"cost/{target} vs. pareto_accuracy/{target}", what=f"the {target} front"
        )
        assert points == len(front), (target, points, front)
        if i == 0:
            browser.execute(CLOSE_ASSISTANT)
            browser.screenshot(artifacts_dir() / f"mlflow_chart_view_{kind}.png")


def test_mlflow_parent_run_links_to_both_views(browser, sweep):
    browser.get("about:blank")
    browser.get(f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent_id}")
    hrefs = browser.wait_for(
        "const a = Array.from(document.querySelectorAll('a')).map(e => e.getAttribute('href'))"
        ".filter(h => h && h.includes('viewStateShareKey')); return a.length >= 2 ? a : null",
        timeout=180,
        what="the links to the table and chart views in the run's description",
    )
    links = ui_urls("", sweep.experiment_id)
    assert any(h.endswith(links["table"].split("#", 1)[1]) for h in hrefs), hrefs
    assert any(h.endswith(links["chart"].split("#", 1)[1]) for h in hrefs), hrefs


def test_mlflow_ui_renders_the_pareto_figure(browser, sweep):
    expected = len(sweep.finished_of("flops"))
    try:
        open_html_artifact(browser, sweep, "pareto/pareto_flops.html")
        (figure,) = rendered(browser)
        assert figure["kind"] == "pareto"
        assert drawn(figure, "points") + drawn(figure, "baseline") == expected
        assert drawn(figure, "baseline") == len(sweep.finished_of("flops", baseline=True))
        assert drawn(figure, "baseline", "lines") == 1  # the baseline curve on the plot
        assert drawn(figure, "knee") == 1
        assert drawn(figure, "front-line", "lines") >= 1
        assert figure["height"] > 200  # laid out, not just present in the DOM
    finally:
        browser.switch_to_top()
    browser.screenshot(artifacts_dir() / "mlflow_pareto_artifact.png")


def test_mlflow_ui_shows_the_pareto_png(browser, sweep):
    browser.get("about:blank")
    browser.get(
        f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent_id}"
        "/artifactPath/pareto/pareto_flops.png"
    )
    size = browser.wait_for(
        "const i = Array.from(document.querySelectorAll('img')).find(i => i.naturalWidth > 300);"
        "return i ? [i.naturalWidth, i.naturalHeight] : null",
        what="the Pareto PNG figure in the artifact view",
    )
    assert size[0] > 300 and size[1] > 200


def test_mlflow_serves_the_pareto_figure(sweep, tmp_path):
    expected = len(sweep.finished_of("flops"))
    run = MlflowClient(sweep.uri).get_run(sweep.parent_id)
    # the run's artifacts are proxied by the server (mlflow-artifacts:/<exp>/<run>/artifacts)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    url = f"{sweep.uri}/get-artifact?path=pareto/pareto_flops.html&run_uuid={sweep.parent_id}"
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read().decode()
        assert response.status == 200
        assert response.headers.get_content_type() == "text/html"
    # self-contained: plotly.js inline, nothing from a CDN
    assert not re.search(r"<script[^>]*\bsrc=", body)
    (tmp_path / "p.html").write_text(body)
    from tests.dashboards.pages import figure_data

    (figure,) = figure_data(tmp_path / "p.html")
    points = [t for t in figure["data"] if t["meta"]["role"] in ("points", "baseline")]
    assert sum(len(t["x"]) for t in points) == expected


def test_mlflow_ui_renders_the_published_dashboard(browser, sweep):
    try:
        open_html_artifact(browser, sweep, "dashboard/index.html")
        wait_for_plots(browser, "body", 6)  # 3 figures per target
        browser.wait_for(
            "return document.querySelectorAll('.plotly-graph-div .barlayer g.point').length"
            " >= arguments[0]",
            4 * len(LAYERS),
            what="the layer width bars of both targets",
        )
        figures = rendered(browser)
        pareto = [f for f in figures if f["kind"] == "pareto"]
        total = sum(drawn(f, "points") + drawn(f, "baseline") for f in pareto)
        assert total == len(sweep.finished)
        widths = [f for f in figures if f["kind"] == "widths"]
        assert sum(drawn(f, "bar-alive", "bars") for f in widths) == 2 * len(LAYERS)
    finally:
        browser.switch_to_top()
    browser.screenshot(artifacts_dir() / "mlflow_dashboard_artifact.png")


# --- the dashboard -------------------------------------------------------------------------------
def check_dashboard(browser, sweep) -> None:
    wait_for_plots(browser, minimum=6)
    figures = rendered(browser)
    for target in ("flops", "latency"):
        everyone = sweep.finished_of(target)
        learners = sweep.finished_of(target, baseline=False)
        mine = {f["kind"]: f for f in figures if f["target"] == target}
        pareto, curves, widths = mine["pareto"], mine["curves"], mine["widths"]
        assert drawn(pareto, "points") + drawn(pareto, "baseline") == len(everyone)
        assert drawn(pareto, "baseline", "lines") == 1
        assert drawn(pareto, "knee") == 1
        by_metric: dict[str, list] = {}
        for t in curves["traces"]:
            if t["role"] == "curve":
                by_metric.setdefault(t["metric"], []).append(t["trial"])
        assert sorted(by_metric["learn/cost"]) == sorted(learners)
        assert sorted(by_metric["retrain/val_accuracy"]) == sorted(everyone)
        assert drawn(widths, "bar-alive", "bars") == len(LAYERS)
        assert drawn(widths, "bar-original", "bars") == len(LAYERS)
        section = f'section[data-target="{target}"]'
        assert count(browser, f"{section} select.trial-select option") == len(everyone)
        # every Pareto point opens its MLflow run
        links = [
            link
            for t in pareto["traces"]
            if t["role"] in ("points", "baseline")
            for link in t["links"]
        ]
        assert all(
            h.startswith(f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/") for h in links
        )
    # the charts are laid out
    assert min(f["height"] for f in figures) > 100


def test_dashboard_over_http(browser, sweep, http_dashboard):
    browser.get(f"{http_dashboard}/index.html")
    browser.wait_for("return document.readyState === 'complete'")
    check_dashboard(browser, sweep)
    browser.screenshot(artifacts_dir() / "dashboard.png", full_page=True)
    # the menu opens another trial's page (its inline onchange handler runs)
    other = next(t for t in sweep.finished_of("flops", baseline=True))
    page = trial_page_name(other)
    browser.execute(
        "const s = document.querySelector('section[data-target=\"flops\"] select.trial-select');"
        "s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        page,
    )
    browser.wait_for(
        "return location.pathname.endsWith(arguments[0]) && document.readyState === 'complete'",
        page,
        what=f"navigation to {page}",
    )
    wait_for_plots(browser, minimum=2)
    figures = {f["kind"]: f for f in rendered(browser)}
    assert drawn(figures["widths"], "bar-alive", "bars") == len(LAYERS)
    assert {t["trial"] for t in figures["widths"]["traces"]} == {other}
    # a baseline only retrains: its page shows that panel alone
    curves = [t for t in figures["curves"]["traces"] if t["role"] == "curve"]
    assert [t["metric"] for t in curves] == ["retrain/val_accuracy"]
    browser.screenshot(artifacts_dir() / "dashboard_trial.png", full_page=True)


def test_dashboard_from_file_url(browser, sweep, dashboard_dir):
    browser.get((dashboard_dir / "index.html").resolve().as_uri())
    browser.wait_for("return document.readyState === 'complete'")
    check_dashboard(browser, sweep)
    # relative links to the trial pages and the stand-alone charts resolve on disk
    links = browser.execute(
        "return Array.from(document.querySelectorAll('a.trial-page')).map(a => a.href)"
    )
    assert links and all(
        Path(urllib.request.url2pathname(u[len("file://") :])).is_file() for u in links
    )
