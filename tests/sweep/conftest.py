"""Real services for sweep tests: an MLflow tracking server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """`mlflow server` with a SQLite store and proxied artifacts on 127.0.0.1; can be stopped
    and started again on the same port and store (an outage)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self, timeout: float = 120) -> str:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        self.log = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.uri
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 15)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A tracking server shared by the session's tests."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield server.start()
    server.stop()


@pytest.fixture
def private_mlflow_server(tmp_path_factory):
    """A tracking server of one test's own, which the test may stop and start again."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_private"))
    server.start()
    yield server
    server.stop()
