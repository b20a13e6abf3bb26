"""Errors of the trial trainer."""

from __future__ import annotations

from .morphnet.errors import MorphNetError


class TrialConfigError(MorphNetError, ValueError):
    """A trial config field is unknown, of the wrong type, or out of range; ``problems`` lists
    each bad field (the message joins them)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class TrialFailed(MorphNetError, RuntimeError):
    """A trial stopped for a reason worth reporting (NaN loss, degenerate structure)."""
