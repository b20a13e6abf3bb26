"""Screenshots of a sweep's two MLflow views for the README, as a user opens them.

    .venv/bin/python -m tests.dashboards.screenshots digits-demo [--tracking-uri URI] [--out docs]

Runs ``morphsweep ui SWEEP`` on the store (the default is the one ``make demo`` writes), opens
the two links it prints in headless Chromium (1500x1000), waits until the table lists the trials
and the chart view draws its scatters, and writes ``mlflow_trials_table.png`` and
``mlflow_chart_view.png``. Needs Debian's chromium and chromium-driver
(``.ci/install-browser.sh``). ``morphsweep_ui`` and ``CLOSE_ASSISTANT`` serve the browser tests
too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.dashboards.browser import Browser, find_chromedriver, find_chromium
from tests.sweep.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

# MLflow 3.17 opens its assistant panel beside the page: closed for the screenshots
CLOSE_ASSISTANT = """
const panel = Array.from(document.querySelectorAll('div'))
  .find(d => d.children.length && d.innerText.startsWith('MLflow Assistant'));
if (!panel) { return true; }
const close = Array.from(panel.querySelectorAll('button'))
  .filter(b => /close/i.test(b.getAttribute('aria-label') || '')).pop();
if (close) { close.click(); }
return true;
"""


@contextlib.contextmanager
def morphsweep_ui(sweep: str, tracking_uri: str | None = None) -> Iterator[dict[str, str]]:
    """``morphsweep ui SWEEP`` serving the store on a free loopback port, until the block ends.

    Yields the two links it printed (``table``, ``chart``), once the UI answers.
    """
    command = [sys.executable, "-m", "sweep.cli", "ui", sweep, "--port", str(free_port())]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed: list[str] = []
        while len(printed) < 2 and process.stdout is not None:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"morphsweep ui ended before printing its links: {printed}")
            printed += re.findall(r"(http://\S+viewStateShareKey\S+)", line)
        wait_for_http(printed[0].split("/#/", 1)[0] + "/health")
        yield {"table": printed[0], "chart": printed[1]}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def wait_for_http(url: str, timeout: float = 120) -> None:
    """Returns once ``url`` answers 200 (the UI server's start)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answered at {url} within {timeout:.0f} s")


# each view: its link, what shows it is drawn, and the PNG
VIEWS = (
    ("table", ".ag-center-cols-container .ag-row", "the trial rows", "mlflow_trials_table.png"),
    ("chart", ".js-plotly-plot path.point", "the scatters' points", "mlflow_chart_view.png"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep's name")
    parser.add_argument("--tracking-uri", default=None, help="its store (default: the demo's)")
    parser.add_argument("--out", default="docs", help="folder of the PNGs (default docs)")
    args = parser.parse_args(argv)
    chromium, chromedriver = find_chromium(), find_chromedriver()
    if not chromium or not chromedriver:
        parser.error("chromium and chromedriver are needed: run .ci/install-browser.sh")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (
        morphsweep_ui(args.sweep, args.tracking_uri) as links,
        Browser(chromium, chromedriver, window=(1500, 1000)) as browser,
    ):
        for view, drawn, what, png in VIEWS:
            browser.get("about:blank")
            browser.get(links[view])
            browser.wait_for(
                "return document.querySelectorAll(arguments[0]).length",
                drawn,
                timeout=180,
                what=what,
            )
            time.sleep(2)  # the rest of the page settles
            browser.execute(CLOSE_ASSISTANT)
            time.sleep(1)
            browser.screenshot(out / png)
            print(f"wrote {out / png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
