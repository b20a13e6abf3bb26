"""The sweep's pages in a real headless Chromium: the MLflow 3 UI showing the parent run and its
Pareto artifact, and the dashboard served over HTTP and opened from file://.

Needs Debian's chromium and chromium-driver (``.ci/install-browser.sh``). Without them the tests
are skipped, unless the environment variable CI is set: then they fail. Screenshots go to
``$MORPHSWEEP_ARTIFACTS/browser`` (default ``./test-artifacts/browser``).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dashboards.page import build_dashboard, publish_dashboard, trial_page_name
from tests.dashboards.browser import Browser, find_chromedriver, find_chromium
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
    with Browser(CHROMIUM, CHROMEDRIVER, window=(1400, 1000)) as driver:  # type: ignore[arg-type]
        yield driver


@pytest.fixture(scope="module")
def sweep(mlflow_server, tmp_path_factory):  # noqa: F811
    logged = populate_sweep(mlflow_server, SWEEP, tmp_path_factory.mktemp("logged"))
    publish_dashboard(mlflow_server, SWEEP)
    return logged


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


def open_html_artifact(browser, sweep, path: str, title: str) -> None:
    """Opens the parent run's HTML artifact in the MLflow UI and enters the frame showing it.

    MLflow fetches the file through the server and shows it in a sandboxed ``iframe``; a fresh
    page load keeps the frame of an earlier artifact from being entered by mistake.
    """
    browser.get("about:blank")
    browser.get(
        f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/{sweep.parent_id}/artifactPath/{path}"
    )
    browser.wait_for(
        "return document.querySelector('iframe.mlflow-html-iframe')", what="the HTML artifact frame"
    )
    browser.switch_to_frame("iframe.mlflow-html-iframe")
    browser.wait_for(
        "return document.title === arguments[0]", title, what=f"the artifact titled {title!r}"
    )


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


def test_mlflow_ui_renders_the_pareto_artifact(browser, sweep):
    expected = len(sweep.finished_of("flops"))
    title = f"{SWEEP}: FLOPs vs retrained accuracy"  # what sweep.results.publish_pareto titles it
    try:
        open_html_artifact(browser, sweep, "pareto/pareto_flops.html", title)
        points = browser.wait_for(
            "const n = document.querySelectorAll('svg.pareto circle.point').length;"
            "return n >= arguments[0] ? n : 0",
            expected,
            what=f"{expected} Pareto points",
        )
        assert points == expected
        assert count(browser, "svg.pareto polyline.baseline-line") == 1
        assert count(browser, "svg.pareto circle.point.baseline") == len(
            sweep.finished_of("flops", baseline=True)
        )
        assert count(browser, "svg.pareto circle.point.knee") == 1
        assert count(browser, "svg.pareto path.front-line") >= 1
        # the rendered chart has a size: the SVG is laid out, not just present in the DOM
        box = browser.execute(
            "const r = document.querySelector('svg.pareto').getBoundingClientRect();"
            "return [r.width, r.height]"
        )
        assert box[0] > 400 and box[1] > 200
    finally:
        browser.switch_to_top()
    browser.screenshot(artifacts_dir() / "mlflow_pareto_artifact.png")


def test_mlflow_serves_the_pareto_artifact(sweep):
    expected = len(sweep.finished_of("flops"))
    run = MlflowClient(sweep.uri).get_run(sweep.parent_id)
    # the run's artifacts are proxied by the server (mlflow-artifacts:/<exp>/<run>/artifacts)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    proxied = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    urls = [
        f"{sweep.uri}/get-artifact?path=pareto/pareto_flops.html&run_uuid={sweep.parent_id}",
        f"{sweep.uri}/ajax-api/2.0/mlflow-artifacts/artifacts/{proxied}/pareto/pareto_flops.html",
    ]
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode()
            assert response.status == 200
            assert response.headers.get_content_type() == "text/html"
        assert len(re.findall(r'<circle class="point\b', body)) == expected, url


def test_mlflow_ui_renders_the_published_dashboard(browser, sweep):
    try:
        open_html_artifact(browser, sweep, "dashboard/index.html", f"Sweep {SWEEP}")
        total = len(sweep.finished)
        assert (
            browser.wait_for(
                "const n = document.querySelectorAll('svg.pareto circle.point').length;"
                "return n >= arguments[0] ? n : 0",
                total,
                what="the dashboard's Pareto points",
            )
            == total
        )
        assert count(browser, "svg.widths rect.bar-alive") == 2 * len(LAYERS)  # one per target
    finally:
        browser.switch_to_top()
    browser.screenshot(artifacts_dir() / "mlflow_dashboard_artifact.png")


# --- the dashboard -------------------------------------------------------------------------------
def check_dashboard(browser, sweep) -> None:
    for target in ("flops", "latency"):
        section = f'section[data-target="{target}"]'
        everyone = sweep.finished_of(target)
        learners = sweep.finished_of(target, baseline=False)
        assert count(browser, f"{section} svg.pareto circle.point") == len(everyone)
        assert count(browser, f'{section} polyline.curve[data-metric="learn/cost"]') == len(
            learners
        )
        assert count(
            browser, f'{section} polyline.curve[data-metric="retrain/val_accuracy"]'
        ) == len(everyone)
        assert count(browser, f"{section} svg.widths rect.bar-alive") == len(LAYERS)
        assert count(browser, f"{section} svg.widths rect.bar-original") == len(LAYERS)
        assert count(browser, f"{section} select.trial-select option") == len(everyone)
    # every Pareto point links to its MLflow run
    hrefs = browser.execute(
        "return Array.from(document.querySelectorAll('svg.pareto circle.point'))"
        ".map(c => c.closest('a') ? c.closest('a').getAttribute('href') : null)"
    )
    assert all(
        h and h.startswith(f"{sweep.uri}/#/experiments/{sweep.experiment_id}/runs/") for h in hrefs
    )
    # the charts are laid out
    heights = browser.execute(
        "return Array.from(document.querySelectorAll('svg')).map(s => s.getBoundingClientRect().height)"
    )
    assert heights and min(heights) > 50


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
    assert count(browser, f'svg.widths[data-trial="{other}"] rect.bar-alive') == len(LAYERS)
    # a baseline only retrains: its page shows that panel alone
    assert count(browser, "polyline.curve") == 1
    assert count(browser, "svg.curves") == 1
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
