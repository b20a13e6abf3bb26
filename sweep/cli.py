"""The ``morphsweep`` command line, on click.

    morphsweep train trial.yaml [-o DIR] [--set key=value ...] [--no-resume]
    morphsweep apply structure.json --model SPEC|seed.keras -o small.keras [--keep-weights]
    morphsweep run sweep.yaml [--address HOST:PORT]
    morphsweep submit sweep.yaml --address http://HEAD:8265
    morphsweep status JOB_ID --address http://HEAD:8265
    morphsweep logs JOB_ID --address http://HEAD:8265 [--follow]
    morphsweep pareto SWEEP [--tracking-uri URI]
    morphsweep pick SWEEP (--max-cost X | --min-accuracy Y | --knee | --budget flops=0.25) -o structure.json
    morphsweep ui [SWEEP] [--tracking-uri URI] [--port 5000]
    morphsweep dashboard SWEEP [--tracking-uri URI] [--port 8050]   (a plugin: dashboards.cli)

Every command ends through one error path (:func:`main`): a failure the user can fix prints one
line, ``morphsweep <command>: <what and how to fix it>``, and exits 2; a trial that fails exits 1.
The commands live in ``sweep.commands`` (this machine) and ``sweep.jobs`` (a cluster's job
server), what they share in ``sweep.options``; plugins add theirs under the entry point group
``morphsweep.commands``. TensorFlow and Ray are imported by the commands that need them (at the
call into ``trainers.trial``, ``trainers.morphnet.keras3`` or ``sweep.driver``), so bad arguments
are reported at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import SimpleNamespace
from typing import Any

import click

from trainers.errors import TrialFailed
from trainers.morphnet.errors import MorphNetError

from .commands import apply, pareto, pick_trial, run, train, ui
from .config import SweepConfigError
from .jobs import logs, status, submit
from .options import Interrupted
from .pareto import NoTrialMeetsConstraint
from .preflight import BadEnvironment, ClusterUnavailable, StorageUnavailable
from .registry import CannotRegister
from .store import NoModelRegistry, SweepNotFound
from .tracking import TrackingUnavailable

# what a user can fix: one line and exit 2 (a failed trial, TrialFailed, exits 1)
USER_ERRORS = (
    MorphNetError,
    SweepConfigError,
    SweepNotFound,
    NoTrialMeetsConstraint,
    CannotRegister,
    NoModelRegistry,
    TrackingUnavailable,
    ClusterUnavailable,
    StorageUnavailable,
    BadEnvironment,
)
COMMANDS = "morphsweep.commands"  # entry point group of plugin commands (dashboards' `dashboard`)


class Commands(click.Group):
    """The commands here and those of installed plugins (this project's dashboards adds
    ``dashboard``), loaded when asked for: a plugin may import this module."""

    def plugins(self) -> dict[str, Any]:
        return {entry.name: entry for entry in entry_points(group=COMMANDS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = self.plugins().get(name)
        found = self.commands.get(name) or (entry.load() if entry else None)
        return found if isinstance(found, click.Command) else None


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="MorphNet structure learning, swept.",
)
def cli() -> None:
    # an offline tool: MLflow's usage telemetry stays off unless the user turns it on (its
    # network calls can also hold a process at exit where there is no network)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


for command in (train, apply, run, pareto, pick_trial, ui, submit, status, logs):
    cli.add_command(command)


def commands() -> list[str]:
    return cli.list_commands(click.Context(cli))


def parse_args(argv: Sequence[str]) -> SimpleNamespace:
    """What ``argv`` asks for, parsed as :func:`main` would but run nowhere: the command's name
    (``command``) and its parameters by name. Raises ``click.UsageError`` if it does not parse."""
    if not argv:
        raise click.UsageError("give a command")
    command = cli.get_command(click.Context(cli), argv[0]) if argv[0] in commands() else None
    if command is None:
        raise click.UsageError(f"No such command {argv[0]!r}.")
    with command.make_context(argv[0], list(argv[1:])) as ctx:
        return SimpleNamespace(command=argv[0], **ctx.params)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command; every failure ends here: one line on stderr and the exit status (2 for
    what the user can fix, 1 for a failure of ours, 130 for Ctrl-C). ``--debug`` (anywhere, or
    MORPHSWEEP_DEBUG=1) lets the exception through with its traceback instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MORPHSWEEP_DEBUG", "") == "1"
    args = [a for a in args if a != "--debug"]
    if debug:
        cli.main(args=args, prog_name="morphsweep", standalone_mode=False)
        return 0
    name = f"morphsweep {args[0]}" if args and args[0] in commands() else "morphsweep"
    try:
        return _run(args, name)
    except Interrupted as exc:
        print(f"{name}: interrupted; {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        print(f"{name}: interrupted; nothing was saved", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or folder the user named or made: permissions, space, kind
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"{name}: cannot use{where}: {exc.strerror or exc}; check the path and its permissions",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # ours: one line, and how to see more
        print(
            f"{name}: internal error: {type(exc).__name__}: {one_line(str(exc))} (rerun with "
            f"--debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def one_line(text: str, limit: int = 300) -> str:
    """An exception's message on one line, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _run(args: list[str], name: str) -> int:
    try:
        cli.main(args=args, prog_name="morphsweep", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, or a command's own status
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # `morphsweep` alone: its help
        print(exc.format_message(), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        fix = (
            f"`{name} --help` lists its options"
            if name != "morphsweep"
            else f"the commands: {', '.join(commands())}"
        )
        print(f"{name}: {exc.format_message()} ({fix})", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"{name}: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except TrialFailed as exc:
        print(f"{name}: trial failed: {exc}", file=sys.stderr)
        return 1
    except USER_ERRORS as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
