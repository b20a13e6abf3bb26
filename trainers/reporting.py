"""How a trial reports: a narrow interface the sweep implements with Ray and MLflow.

Trainers never import Ray or MLflow. A trial calls ``reporter.report(metrics, checkpoint=dir)``
once per epoch and ``reporter.artifact(path, kind)`` when it writes a structure or a model.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from .records import Epoch


class Reporter(Protocol):
    """What a trial needs from whoever runs it."""

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        """Per-epoch metrics; ``checkpoint`` is a directory to resume from, when one was written."""

    def artifact(self, path: str, kind: str) -> None:
        """A file the trial wrote: kind is "structure", "model", "metrics"."""

    def warn(self, message: str) -> None:
        """Something the user should act on (a degenerate run)."""


class ConsoleReporter:
    """Prints a line per epoch (the progress bar of each epoch comes from Keras)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.start = time.monotonic()

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        parts = [f"{k}={_fmt(metrics[k])}" for k in Epoch.CONSOLE if k in metrics]
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:7.1f}s] " + " ".join(parts), file=self.stream, flush=True)

    def artifact(self, path: str, kind: str) -> None:
        print(f"wrote {kind}: {path}", file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        print(f"WARNING: {message}", file=self.stream, flush=True)


class RecordingReporter:
    """Keeps everything in memory (tests, and the metrics file)."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.artifacts: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.checkpoints: list[str] = []

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        self.metrics.append(dict(metrics))
        if checkpoint:
            self.checkpoints.append(checkpoint)

    def artifact(self, path: str, kind: str) -> None:
        self.artifacts.append((path, kind))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


class Tee:
    """Sends every call to several reporters."""

    def __init__(self, *reporters: Any) -> None:
        self.reporters = [r for r in reporters if r is not None]

    def report(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        for r in self.reporters:
            r.report(metrics, checkpoint)

    def artifact(self, path: str, kind: str) -> None:
        for r in self.reporters:
            r.artifact(path, kind)

    def warn(self, message: str) -> None:
        for r in self.reporters:
            r.warn(message)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3) and math.isfinite(value):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temporary file, then rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    tmp.replace(path)
    return path
