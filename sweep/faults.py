"""Fault injection for the reliability tests: kill this process at a named point.

``MORPHSWEEP_KILL_AT=<point>`` makes :func:`point` send SIGKILL to the current process when the
sweep reaches ``<point>`` (for example ``publish``: the Pareto front half published). Nothing
happens when the variable is unset, which is always the case outside those tests.
"""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    """Die here, at once and without cleanup, when the environment asks for it."""
    if os.environ.get("MORPHSWEEP_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
