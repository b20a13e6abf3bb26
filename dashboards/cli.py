"""``morphsweep dashboard SWEEP``: build a sweep's dashboard and serve it on loopback.

    morphsweep dashboard SWEEP [--tracking-uri URI] [--out DIR] [--trial ID]
                               [--port 8050] [--no-serve]

A click command that ``sweep.cli`` finds as a plugin (entry point group ``morphsweep.commands``);
``python -m dashboards.cli dashboard ...`` runs it through the same error path.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

from sweep import options
from sweep.cli import main as sweep_main
from sweep.options import Port, UserError, exposure_warning, host_option, tracking_uri_option
from sweep.store import DEFAULT_STORE


@click.command(
    help="Build a sweep's dashboard (Pareto front per target, training curves, layer widths of "
    "the knee trial and a page per trial) from the MLflow store, then serve it on 127.0.0.1 (or "
    "--host) until Ctrl-C."
)
@click.argument("sweep")
@tracking_uri_option
@click.option(
    "--out", help="directory to build into (default: ./morphsweep_runs/dashboard/<sweep>)"
)
@click.option("--trial", help="show this trial's layer widths on the page (default: the knee)")
@click.option("--port", type=Port(), default=8050, show_default=True, help="0: any free port")
@host_option("the page")
@click.option("--no-serve", is_flag=True, help="only build, print the page's path and exit")
def dashboard(
    sweep: str,
    tracking_uri: str | None,
    out: str | None,
    trial: str | None,
    port: int,
    host: str,
    no_serve: bool,
) -> None:
    from .page import build_dashboard, file_slug  # pandas, jinja2, plotly: off other commands' path

    uri = options.resolve_uri(tracking_uri)  # a store that answers, a port that is free
    where = Path(out) if out else Path(DEFAULT_STORE) / "dashboard" / file_slug(sweep)
    options.check_output(str(where), "--out", directory=True)
    if not no_serve:
        options.check_port(host, port)
    try:
        index = build_dashboard(uri, sweep, where, trial_id=trial)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if no_serve:
        print(index.resolve())
        return
    serve(index.parent, port, host)


class Server(ThreadingHTTPServer):
    # Ctrl-C must stop at once, not wait for open connections' handler threads
    daemon_threads = True
    block_on_close = False


def serve(directory: Path, port: int, host: str = "127.0.0.1") -> None:
    """Serves ``directory`` until Ctrl-C."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory.resolve()))
    with Server((host, port), handler) as server:  # the port was checked before the build
        warning = exposure_warning(host, "the dashboard")
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(
            f"Dashboard on http://{host}:{server.server_address[1]}/index.html (files in "
            f"{directory.resolve()}); Ctrl-C to stop",
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dashboards.cli dashboard SWEEP ...``: the morphsweep command line's own path."""
    return sweep_main(argv)


if __name__ == "__main__":
    sys.exit(main())
