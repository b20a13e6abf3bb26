"""Checks a sweep passes before any work: its storage, tracking store, cluster and environment.

Each fails within seconds with one message naming the bad value and the fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .config import SweepConfig
from .tracking import TrackingUnavailable

# what MLflow 3 tracks to: a server, or a database (no file store)
SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql")
FIX_URI = (
    "give http(s)://HOST:PORT of an MLflow server or sqlite:///path/to/mlflow.db "
    "(leave it out for the local store)"
)


def check_tracking(
    uri: str, timeout: float = 5.0, *, reading: bool = False, ours: bool = False
) -> None:
    """Fail at once, naming the URI, when a tracking store cannot be used: a scheme MLflow
    cannot track to, a SQLite file in a directory that does not exist or cannot be written (it
    is never created here), a store to read that does not exist, a server that does not answer
    within ``timeout`` seconds.

    Args:
        reading: the command only reads (a SQLite store must exist; none is created).
        ours: the sweep's own local store under its workdir (its folder is made when the sweep
            starts; check_storage checked it can be).
    """
    scheme = uri.partition(":")[0].split("+")[0].lower() if ":" in uri else ""
    if scheme not in SCHEMES:
        raise TrackingUnavailable(
            f"tracking URI {uri!r} is not one MLflow can track to "
            f"({'scheme ' + repr(scheme) if scheme else 'no scheme'}); {FIX_URI}"
        )
    if scheme == "sqlite" and not ours:
        _check_sqlite(uri, reading)
    elif scheme in ("http", "https"):
        _check_server(uri, timeout)


def _check_sqlite(uri: str, reading: bool) -> None:
    if not uri.startswith("sqlite:///") or uri == "sqlite:///":
        raise TrackingUnavailable(f"tracking URI {uri!r} names no database file; {FIX_URI}")
    path = Path(uri[len("sqlite:///") :])
    if reading and not path.is_file():
        raise TrackingUnavailable(
            f"there is no MLflow store at {path} (tracking URI {uri!r}); give the "
            f"--tracking-uri the sweep wrote to (its config's tracking_uri)"
        )
    if path.is_dir():
        raise TrackingUnavailable(
            f"tracking URI {uri!r}: {path} is a directory; name a database file in it, e.g. "
            f"sqlite:///{path / 'mlflow.db'}"
        )
    if path.is_file() and path.stat().st_size and not _is_sqlite(path):
        raise TrackingUnavailable(
            f"tracking URI {uri!r}: {path} is not a SQLite database; name the mlflow.db a sweep "
            f"wrote, or a new file"
        )
    if not path.parent.is_dir():
        raise TrackingUnavailable(
            f"tracking URI {uri!r}: the directory {path.parent} does not exist (it is not "
            f"created for you); create it or choose another path"
        )
    writable = os.access(path if path.exists() else path.parent, os.W_OK)
    if not reading and not writable:
        raise TrackingUnavailable(
            f"tracking URI {uri!r}: {path if path.exists() else path.parent} is not writable; "
            f"choose a path you can write"
        )


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _check_server(uri: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status != 200:
                raise TrackingUnavailable(
                    f"MLflow tracking server {uri} answered {response.status} on /health"
                )
    except urllib.error.HTTPError as exc:  # something answers, but not an MLflow server
        raise TrackingUnavailable(
            f"{uri} answered {exc.code} {exc.reason} on /health: it is not an MLflow tracking "
            f"server (or a proxy answers for it); fix the tracking URI"
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TrackingUnavailable(
            f"cannot reach the MLflow tracking server at {uri} within {timeout:.0f} s "
            f"({reason}); start it, or fix tracking_uri / --tracking-uri (leave it out for the "
            f"local store)"
        ) from exc


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
        # the folder, or the nearest one above it that exists (none is made before the sweep
        # has passed every check: a refused sweep leaves no empty folder)
        probed = path
        while not probed.exists() and probed != probed.parent:
            probed = probed.parent
        try:
            if not probed.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(probed))
            # a real write: permissions, read-only mounts and a full disk all show up here
            with tempfile.NamedTemporaryFile(dir=probed, prefix=".morphsweep-probe-") as probe:
                probe.write(b"\0" * 65536)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
            raise StorageUnavailable(
                f"cannot write to the {what} {path} ({reason}); {fix}"
            ) from exc
        free_mb = shutil.disk_usage(probed).free / 2**20
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
    check_tracking(config.resolved_tracking_uri, ours=not config.tracking_uri)
    check_address(address)
