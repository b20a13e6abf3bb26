"""``morphsweep dashboard SWEEP``: build a sweep's dashboard and serve it on loopback.

    morphsweep dashboard SWEEP [--tracking-uri URI] [--out DIR] [--trial ID]
                               [--port 8050] [--no-serve]

``sweep.cli`` registers it with :func:`add_parser`; ``python -m dashboards.cli dashboard ...``
runs it on its own.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep.cli import exposure_warning, port_number
from sweep.store import DEFAULT_STORE, SweepNotFound, default_tracking_uri

__all__ = ["add_parser", "cmd_dashboard", "default_out", "main"]


def default_out(sweep: str) -> Path:
    """Where the dashboard goes without --out: ./morphsweep_runs/dashboard/<sweep>."""
    from .page import _slug

    return Path(DEFAULT_STORE) / "dashboard" / _slug(sweep)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers the ``dashboard`` command on an ``add_subparsers()`` object.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The command's parser (its ``func`` default is :func:`cmd_dashboard`).
    """
    parser = subparsers.add_parser(
        "dashboard",
        help="build a sweep's HTML dashboard and serve it (on 127.0.0.1 unless --host)",
        description=(
            "Build the sweep's dashboard (Pareto front per target, training curves, layer widths "
            "of the knee trial and a page per trial) from the MLflow store, then serve it on "
            "127.0.0.1 (or --host) until Ctrl-C."
        ),
    )
    parser.add_argument("sweep", help="sweep name")
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (default: the local store under ./morphsweep_runs)"
    )
    parser.add_argument(
        "--out", help="directory to build into (default: ./morphsweep_runs/dashboard/<sweep>)"
    )
    parser.add_argument(
        "--trial", help="show this trial's layer widths on the page (default: the knee)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8050, help="port to listen on (0: any free port)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; the page has no "
        "authentication, so exposing it shows the sweep to anyone who can reach the port)",
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="only build, print the page's path and exit"
    )
    parser.set_defaults(func=cmd_dashboard)
    return parser


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Builds the dashboard and serves it (unless --no-serve); returns the exit status."""
    from .page import build_dashboard

    uri = args.tracking_uri or default_tracking_uri()
    out = Path(args.out) if args.out else default_out(args.sweep)
    try:
        index = build_dashboard(uri, args.sweep, out, trial_id=getattr(args, "trial", None))
    except (SweepNotFound, ValueError) as exc:
        print(f"morphsweep dashboard: {exc}", file=sys.stderr)
        return 2
    if args.no_serve:
        print(index.resolve())
        return 0
    return _serve(index.parent, args.port, args.host)


def _serve(directory: Path, port: int, host: str = "127.0.0.1") -> int:
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        # Ctrl-C must stop at once, not wait for open connections' handler threads
        daemon_threads = True
        block_on_close = False

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory.resolve()))
    try:
        server = Server((host, port), handler)
    except OSError as exc:
        print(
            f"morphsweep dashboard: cannot listen on {host}:{port} ({exc}); pick another "
            f"--port, or --no-serve and open {directory.resolve() / 'index.html'}",
            file=sys.stderr,
        )
        return 2
    with server:
        actual = server.server_address[1]
        warning = exposure_warning(host, "the dashboard")
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(
            f"Dashboard on http://{host}:{actual}/index.html (files in {directory.resolve()}); "
            "Ctrl-C to stop",
            flush=True,
        )
        # Ctrl-C raises KeyboardInterrupt even when this process inherited SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.server_close()
            # Ctrl-C stops at once: the pages are written, and no thread left by the libraries
            # that built them (MLflow's download pools, its clients) may hold the exit
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dashboards.cli dashboard SWEEP ...``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as sweep.cli: offline by default
    parser = argparse.ArgumentParser(prog="morphsweep", description="MorphNet sweep dashboard.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
