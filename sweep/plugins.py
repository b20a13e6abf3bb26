"""What the sweep hands its results to when they are ready: publishers, found as installed plugins.

A publisher draws: a finished trial's figures on its run, the sweep's figures and pages on the
parent run when the front is known. The sweep never imports one; the packages that draw
register theirs under the entry point group ``morphsweep.publishers`` (this project's
``dashboards`` does, in ``pyproject.toml``), and ``installed_publishers()`` loads them. A library
user may pass their own to ``sweep.driver.run_sweep``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from trainers.records import Epoch

    from .pareto import ParetoResult
    from .store import SweepStore
    from .tracking import SweepTracker

GROUP = "morphsweep.publishers"


class Publisher(Protocol):
    """Draws results into MLflow through the sweep's writer (``SweepTracker``)."""

    def publish_trial(
        self,
        tracker: SweepTracker,
        trial_id: str,
        structure: dict[str, Any] | None,
        history: Sequence[Epoch],
    ) -> None:
        """A finished trial: its structure JSON (None if it has none) and its epochs."""

    def publish_sweep(
        self, tracker: SweepTracker, store: SweepStore, config: Any, front: ParetoResult | None
    ) -> None:
        """The finished sweep: its store (read once) and its front (None: no trial yet)."""


def installed_publishers() -> list[Publisher]:
    """Every publisher registered under ``morphsweep.publishers``, in name order."""
    found = sorted(entry_points(group=GROUP), key=lambda e: e.name)
    return [entry.load()() for entry in found]
