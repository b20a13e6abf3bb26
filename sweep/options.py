"""What the command line's commands share: the error a command refuses with, option types and
options, where the tracking store is."""

from __future__ import annotations

from typing import Any

import click

from .config import load_sweep_config
from .store import default_tracking_uri

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UserError(click.ClickException):
    """A command's own refusal (an output that exists, a missing setting): exit 2."""

    exit_code = 2


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


def resolve_uri(uri: str | None, config: str | None = None) -> str:
    """--tracking-uri, else the one in --config's sweep, else the local store."""
    if uri:
        return uri
    if config:
        return load_sweep_config(config).resolved_tracking_uri
    return default_tracking_uri()
