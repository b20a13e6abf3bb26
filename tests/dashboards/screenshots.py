"""Screenshots of a sweep's two MLflow views for the README, as a user opens them.

    .venv/bin/python -m tests.dashboards.screenshots digits-demo [--tracking-uri URI] [--out docs]

Runs ``morphsweep ui SWEEP`` on the store (the default is the one ``make demo`` writes), opens
the two links it prints in headless Chromium (1500x1000), waits until the table lists the trials
and the chart view draws its scatters, and writes ``mlflow_trials_table.png`` and
``mlflow_chart_view.png``. Needs Debian's chromium and chromium-driver
(``.ci/install-browser.sh``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.dashboards.browser import Browser, find_chromedriver, find_chromium
from tests.sweep.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CLOSE_ASSISTANT = """
const panel = Array.from(document.querySelectorAll('div'))
  .find(d => d.children.length && d.innerText.startsWith('MLflow Assistant'));
if (!panel) { return true; }
const close = Array.from(panel.querySelectorAll('button'))
  .filter(b => /close/i.test(b.getAttribute('aria-label') || '')).pop();
if (close) { close.click(); }
return true;
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="the sweep's name")
    parser.add_argument("--tracking-uri", default=None, help="its store (default: the demo's)")
    parser.add_argument("--out", default="docs", help="folder of the PNGs (default docs)")
    args = parser.parse_args(argv)
    chromium, chromedriver = find_chromium(), find_chromedriver()
    if not chromium or not chromedriver:
        parser.error("chromium and chromedriver are needed: run .ci/install-browser.sh")
    port = free_port()
    command = [sys.executable, "-m", "sweep.cli", "ui", args.sweep, "--port", str(port)]
    if args.tracking_uri:
        command += ["--tracking-uri", args.tracking_uri]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        links: list[str] = []
        while len(links) < 2 and process.stdout is not None:
            line = process.stdout.readline()
            if not line:
                print(f"morphsweep ui ended before printing its links: {links}", file=sys.stderr)
                return 2
            links += re.findall(r"(http://\S+viewStateShareKey\S+)", line)
        base = links[0].split("/#/", 1)[0]
        deadline = time.time() + 120
        while time.time() < deadline:  # the UI server's start
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with Browser(chromium, chromedriver, window=(1500, 1000)) as browser:
            browser.get(links[0])
            browser.wait_for(
                "return document.querySelectorAll('.ag-center-cols-container .ag-row').length",
                timeout=180,
                what="the trial rows",
            )
            time.sleep(2)
            browser.execute(CLOSE_ASSISTANT)
            time.sleep(1)
            browser.screenshot(out / "mlflow_trials_table.png")
            browser.get("about:blank")
            browser.get(links[1])
            browser.wait_for(
                "return document.querySelectorAll('.js-plotly-plot path.point').length",
                timeout=180,
                what="the scatters' points",
            )
            time.sleep(2)
            browser.execute(CLOSE_ASSISTANT)
            time.sleep(1)
            browser.screenshot(out / "mlflow_chart_view.png")
        print(f"wrote {out / 'mlflow_trials_table.png'} and {out / 'mlflow_chart_view.png'}")
        return 0
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
