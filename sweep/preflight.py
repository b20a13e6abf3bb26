"""Checks a sweep passes before any work: its storage, tracking store, cluster and environment.

Each fails within seconds with one message naming the bad value and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from pathlib import Path

from .config import SweepConfig
from .tracking import check_tracking


class ClusterUnavailable(RuntimeError):
    """The Ray cluster address does not answer."""


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Fail at once when a ``host:port`` Ray address does not accept connections."""
    host_port = (address or "").split("://", 1)[-1]
    if not host_port or address == "auto" or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterUnavailable(
            f"cannot reach the Ray cluster at {address} ({exc}); start it (ray start --head) or "
            f"fix --address (leave it out to run on a local Ray)"
        ) from exc


class StorageUnavailable(RuntimeError):
    """The storage path (or the local tracking store's directory) cannot take the sweep's files."""


MIN_FREE_MB = 200  # a sweep's checkpoints, structures and queue need at least this much room


def check_storage(config: SweepConfig) -> None:
    """Fail before any trial when a directory the sweep writes to is not writable or full."""
    min_free = float(os.environ.get("MORPHSWEEP_MIN_FREE_MB", MIN_FREE_MB))
    places = [("storage_path", Path(config.resolved_storage_path))]
    if not config.tracking_uri:
        places.append(("workdir (the local MLflow store)", config.root))
    for what, path in places:
        fix = (
            f"set {what.split()[0]} to a writable directory with room"
            if what == "storage_path"
            else "set workdir to a writable directory with room, or give a tracking_uri"
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
            # a real write: permissions, read-only mounts and a full disk all show up here
            with tempfile.NamedTemporaryFile(dir=path, prefix=".morphsweep-probe-") as probe:
                probe.write(b"\0" * 65536)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
            raise StorageUnavailable(
                f"cannot write to the {what} {path} ({reason}); {fix}"
            ) from exc
        free_mb = shutil.disk_usage(path).free / 2**20
        if free_mb < min_free:
            raise StorageUnavailable(
                f"the {what} {path} has only {free_mb:.0f} MB free (a sweep needs at least "
                f"{min_free:.0f} MB for checkpoints and structures); free some space or {fix}"
            )


class BadEnvironment(ValueError):
    """A MORPHSWEEP_* environment variable has a value the sweep cannot use."""


def reuse_workers() -> bool:
    """MORPHSWEEP_REUSE_WORKERS: "1" (the default) or "0"; anything else is refused."""
    value = os.environ.get("MORPHSWEEP_REUSE_WORKERS", "1").strip()
    if value not in ("0", "1"):
        raise BadEnvironment(
            f"MORPHSWEEP_REUSE_WORKERS={value!r}: set it to 1 (a finished trial's worker runs the "
            "next trial, the default) or 0 (a fresh worker per trial)"
        )
    return value == "1"


def preflight(config: SweepConfig, address: str | None) -> None:
    """Every check, cheapest first."""
    reuse_workers()  # a bad MORPHSWEEP_REUSE_WORKERS is refused before anything else
    check_storage(config)
    check_tracking(config.resolved_tracking_uri)
    check_address(address)
