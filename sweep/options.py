"""What the command line's commands share: the error a command refuses with, option types and
options, where the tracking store is."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

import click

from .config import load_sweep_config
from .preflight import check_tracking
from .store import default_tracking_uri

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UserError(click.ClickException):
    """A command's own refusal (an output that exists, a missing setting): exit 2."""

    exit_code = 2


class Interrupted(Exception):
    """Ctrl-C, answered with one line: what was saved and how to go on (exit 130)."""

    exit_code = 130


class Number(click.ParamType):
    """A finite number in [low, high] (``nan``, ``inf`` and out-of-range values refused)."""

    name = "number"

    def __init__(self, low: float, high: float = math.inf, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        above = number > self.low if self.low_open else number >= self.low
        if not (math.isfinite(number) and above and number <= self.high):
            rule = f"{'>' if self.low_open else '>='} {self.low:g}"
            if math.isfinite(self.high):
                rule += f" and <= {self.high:g}"
            self.fail(f"{value!r} is not a finite number {rule}", param, ctx)
        return number


class Port(click.ParamType):
    """A TCP port 0-65535 (0: any free port)."""

    name = "port"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            port = int(value)
        except (TypeError, ValueError):
            self.fail(f"port must be a number 0-65535, but got {value!r}", param, ctx)
        if not 0 <= port <= 65535:
            self.fail(f"port must be 0-65535, but got {port}", param, ctx)
        return port


def exposure_warning(host: str, what: str) -> str | None:
    """The warning to print when a server without authentication listens beyond this machine."""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (
        f"WARNING: {what} listens on {host}, reachable from other machines, and has no "
        f"authentication: anyone who can reach the port sees the sweep. Use the default "
        f"--host 127.0.0.1 (and an SSH tunnel) unless the network is trusted."
    )


# the options several commands share
tracking_uri_option = click.option(
    "--tracking-uri", help="MLflow URI (default: the local store under ./morphsweep_runs)"
)
config_option = click.option("--config", help="read the tracking URI from this sweep YAML")


def host_option(what: str) -> Any:
    return click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help=f"address to listen on (127.0.0.1: this machine only; {what} has no authentication)",
    )


def resolve_uri(uri: str | None, config: str | None = None, reading: bool = True) -> str:
    """--tracking-uri, else the one in --config's sweep, else the local store; checked to be a
    store there is to read (a server that answers within seconds, a SQLite file that exists),
    before anything is read or created."""
    if uri:
        found = uri
    elif config:
        found = load_sweep_config(config).resolved_tracking_uri
    else:
        found = default_tracking_uri()
    check_tracking(found, reading=reading)
    return found


def check_output(path: str, what: str, *, directory: bool = False) -> Path:
    """Refuse an output path that cannot be written, before any download or training.

    The path may not exist yet (its folders are made when it is written, so a refusal or a
    failure leaves none behind); its nearest existing folder must be a folder this process can
    write, and the path itself must not be a file where a folder is wanted or the reverse.
    """
    target = Path(path)
    if str(path).strip() == "":
        raise UserError(f"{what} is empty; give a path")
    if target.exists() and target.is_dir() != directory:
        kind = "a directory" if target.is_dir() else "a file"
        raise UserError(
            f"{what} {path!r} is {kind}; give the path of a {'directory' if directory else 'file'}"
        )
    parent = target if target.is_dir() else target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {path!r}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path!r}: {parent} is not writable; choose a path you can write")
    return target


def check_port(host: str, port: int) -> None:
    """Refuse a port another process already listens on (0 picks a free one)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another server holds "
                f"it or the address is not this machine's; choose another --port (0 picks a "
                f"free one) or --host"
            ) from None
