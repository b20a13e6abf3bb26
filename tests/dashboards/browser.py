"""A minimal headless Chromium driver for tests: W3C WebDriver over HTTP with the stdlib only.

Uses Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/install-browser.sh``).
``chromedriver`` speaks plain HTTP/JSON, so navigating, running JavaScript in the page (and in its
frames, even sandboxed cross-origin ones), waiting for the page's own JavaScript to render and
taking screenshots need no Python package.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52f-4bf8d2d6cf2e"  # W3C WebDriver element reference key


def find_chromium() -> str | None:
    """Path of the Chromium binary, or None."""
    for candidate in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def find_chromedriver() -> str | None:
    """Path of chromedriver, or None."""
    for candidate in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebDriverError(RuntimeError):
    """chromedriver answered with an error."""


class Browser:
    """One headless Chromium session driven through chromedriver on loopback."""

    def __init__(
        self,
        chromium: str,
        chromedriver: str,
        *,
        window: tuple[int, int] = (1400, 1000),
        log: Path | None = None,
    ) -> None:
        """Starts chromedriver and a headless Chromium session.

        Args:
            chromium: Chromium binary.
            chromedriver: chromedriver binary.
            window: Window (and screenshot) size in pixels.
            log: Where to keep chromedriver's log (default: removed with the temporary profile).
        """
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log or self.profile / "chromedriver.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.session: str | None = None
        try:
            self._wait_ready()
            args = [
                "--headless=new",
                "--no-sandbox",  # CI containers run as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--hide-scrollbars",
                f"--window-size={window[0]},{window[1]}",
                f"--user-data-dir={self.profile / 'data'}",
            ]
            value = self._call(
                "POST",
                "/session",
                {
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "chrome",
                            "goog:chromeOptions": {"binary": chromium, "args": args},
                        }
                    }
                },
                timeout=120,
            )
            self.session = value["sessionId"]
        except BaseException:
            self.close()
            raise

    # --- protocol ---------------------------------------------------------------------------------
    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"chromedriver did not start (log: {self._log.name})")

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                value = json.loads(exc.read()).get("value", {})
            except ValueError:
                value = {}
            raise WebDriverError(
                f"{method} {path}: {value.get('error', exc.code)}: {value.get('message', '')}"
            ) from exc
        return payload.get("value")

    def _session(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body, timeout)

    # --- what tests use ---------------------------------------------------------------------------
    def get(self, url: str, timeout: float = 120) -> None:
        """Navigates and waits for the document to load (not for what its scripts fetch)."""
        self._session("POST", "/url", {"url": url}, timeout=timeout)

    def execute(self, script: str, *args: Any) -> Any:
        """Runs a function body in the current frame; ``arguments[i]`` are ``args``."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, *args: Any, timeout: float = 90, what: str = "") -> Any:
        """Runs ``script`` until it returns something truthy; returns that value."""
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            try:
                last = self.execute(script, *args)
            except WebDriverError as exc:  # a navigation in progress, a frame not there yet
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.5)
        text = self.execute("return document.body ? document.body.innerText : ''")
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what or script} (last: {last!r}); "
            f"page text: {str(text)[:1500]!r}"
        )

    def find(self, css: str) -> dict[str, str]:
        """The first element matching a CSS selector (a WebDriver element reference)."""
        return dict(self._session("POST", "/element", {"using": "css selector", "value": css}))

    def switch_to_frame(self, css: str) -> None:
        """Makes the frame matching ``css`` the current browsing context."""
        self._session("POST", "/frame", {"id": self.find(css)})

    def switch_to_top(self) -> None:
        self._session("POST", "/frame", {"id": None})

    def url(self) -> str:
        return str(self._session("GET", "/url"))

    def dom(self) -> str:
        """The rendered DOM of the current frame, after its scripts ran."""
        return str(self.execute("return document.documentElement.outerHTML"))

    def screenshot(self, path: str | os.PathLike[str], *, full_page: bool = False) -> Path:
        """Saves a PNG of the viewport, or of the whole page (through chromedriver's CDP
        passthrough; the viewport when that is unavailable)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = None
        if full_page:
            try:
                metrics = self._session(
                    "POST", "/goog/cdp/execute", {"cmd": "Page.getLayoutMetrics", "params": {}}
                )
                size = metrics["cssContentSize"]
                clip = {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                }
                data = self._session(
                    "POST",
                    "/goog/cdp/execute",
                    {
                        "cmd": "Page.captureScreenshot",
                        "params": {"format": "png", "captureBeyondViewport": True, "clip": clip},
                    },
                )["data"]
            except (WebDriverError, KeyError, TypeError):
                data = None
        if data is None:
            data = self._session("GET", "/screenshot")
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        """Ends the session and chromedriver (which ends the browser it started)."""
        if self.session is not None:
            try:
                self._session("DELETE", "", timeout=30)
            except (OSError, WebDriverError):
                pass
            self.session = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
