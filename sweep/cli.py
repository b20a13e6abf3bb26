"""The ``morphsweep`` command line.

    morphsweep train trial.yaml [-o DIR] [--set key=value ...] [--no-resume]
    morphsweep apply structure.json --model SPEC|seed.keras -o small.keras [--keep-weights]
    morphsweep run sweep.yaml [--address HOST:PORT]
    morphsweep submit sweep.yaml --address http://HEAD:8265
    morphsweep status JOB_ID --address http://HEAD:8265
    morphsweep logs JOB_ID --address http://HEAD:8265 [--follow]
    morphsweep pareto SWEEP [--tracking-uri URI]
    morphsweep pick SWEEP (--max-cost X | --min-accuracy Y | --knee | --budget flops=0.25) -o structure.json
    morphsweep ui [--tracking-uri URI] [--port 5000]
    morphsweep dashboard SWEEP [--tracking-uri URI] [--port 8050]

Heavy imports (TensorFlow, Ray, MLflow) happen inside the command that needs them, so errors in
arguments are reported at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from trainers.records import EPOCHS_SAVED


def _parse_value(text: str, key: str = "") -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        from trainers.config import yaml_error_text
        from trainers.errors import TrialConfigError

        raise TrialConfigError(
            f"--set {key}: {text!r} is not a plain YAML value ({yaml_error_text(exc)}); give a "
            f"number, a word or a [list] (no !!python tags)"
        ) from exc
    return text if value is None and text not in ("null", "~", "") else value


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            from trainers.errors import TrialConfigError

            raise TrialConfigError(f"--set needs key=value, but got {pair!r}")
        out[key] = _parse_value(value, key)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.config import TrialConfig
    from trainers.errors import TrialConfigError, TrialFailed

    try:
        overrides = _overrides(args.set)
        if args.output:
            overrides["output_dir"] = args.output
        config = TrialConfig.from_yaml(args.config, overrides)
    except TrialConfigError as exc:
        print(f"morphsweep train: {exc}", file=sys.stderr)
        return 2
    from trainers.morphnet.errors import MorphNetError
    from trainers.trial import run_trial

    try:
        result = run_trial(config, resume=not args.no_resume)
    except (TrialConfigError, MorphNetError) as exc:
        # a model MorphNet cannot work on is found before the first training step
        print(f"morphsweep train: {exc}", file=sys.stderr)
        return 2
    except TrialFailed as exc:
        print(f"morphsweep train: trial failed: {exc}", file=sys.stderr)
        return 1
    summary = result.summary()
    print(
        f"\n{result.cost_name}: seed {summary['seed_cost']:.4g} -> rebuilt {summary['rebuilt_cost']:.4g} "
        f"({result.outcome.cost_fraction:.1%}); retrained val accuracy {result.retrained_val_accuracy:.4f}"
    )
    print(
        f"structure: {result.structure_path}\nmodel:     {result.model_path}\nmetrics:   {result.metrics_path}"
    )
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from trainers.errors import TrialConfigError
    from trainers.morphnet.errors import MorphNetError

    try:
        model = _load_seed_model(args)
        from trainers.morphnet import Structure
        from trainers.morphnet.keras3 import apply_structure, model_cost

        structure = Structure.load(args.structure)
        # by default, the min_channels the structure's predicted cost was computed with
        min_channels = (
            args.min_channels if args.min_channels is not None else structure.rebuild_min_channels
        )
        small = apply_structure(
            model, structure, keep_weights=args.keep_weights, min_channels=min_channels
        )
    except (MorphNetError, TrialConfigError) as exc:
        print(f"morphsweep apply: {exc}", file=sys.stderr)
        return 2
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    small.save(args.output)
    seed, new = model_cost(model), model_cost(small)
    print(
        f"FLOPs: seed {seed:.4g} -> {new:.4g} ({new / seed:.1%}); params {model.count_params()} -> {small.count_params()}"
    )
    print(f"wrote {args.output}")
    return 0


def _load_seed_model(args: argparse.Namespace) -> Any:
    from trainers.errors import TrialConfigError

    if args.model.endswith(".keras"):
        if not Path(args.model).is_file():
            raise TrialConfigError(f"--model file {args.model!r} does not exist")
        from trainers.morphnet.keras3.backend import keras
        from trainers.morphnet.keras3.gating import CUSTOM_OBJECTS

        return keras.models.load_model(args.model, custom_objects=CUSTOM_OBJECTS)
    from trainers.data import load_dataset
    from trainers.models import build_model

    if args.input_shape:
        shape = tuple(int(d) for d in args.input_shape.split(","))
        classes = args.num_classes
    else:
        data = load_dataset(args.dataset).resized(args.image_size)
        shape, classes = data.input_shape, data.num_classes
    return build_model(args.model, shape, classes, args.width)


def _tracking_uri(args: argparse.Namespace) -> str:
    if getattr(args, "tracking_uri", None):
        return str(args.tracking_uri)
    if getattr(args, "config", None):
        from .config import load_sweep_config

        return load_sweep_config(args.config).resolved_tracking_uri
    from .store import default_tracking_uri

    return default_tracking_uri()


def port_number(text: str) -> int:
    """An argparse type: a TCP port 0-65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"port must be a number 0-65535, but got {text!r}"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, but got {value}")
    return value


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str, what: str) -> str | None:
    """The warning to print when a server without authentication listens beyond this machine."""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (
        f"WARNING: {what} listens on {host}, reachable from other machines, and has no "
        f"authentication: anyone who can reach the port sees the sweep. Use the default "
        f"--host 127.0.0.1 (and an SSH tunnel) unless the network is trusted."
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .config import SweepConfigError, load_sweep_config

    try:
        config = load_sweep_config(args.config)
    except SweepConfigError as exc:
        print(f"morphsweep run: {exc}", file=sys.stderr)
        return 2
    from .driver import run_sweep
    from .preflight import BadEnvironment, ClusterUnavailable, StorageUnavailable
    from .tracking import TrackingUnavailable

    try:
        summary = run_sweep(config, address=args.address, verbose=args.verbose)
    except (TrackingUnavailable, ClusterUnavailable, StorageUnavailable, BadEnvironment) as exc:
        print(f"morphsweep run: {exc}", file=sys.stderr)
        return 2
    from .results import budget_table, format_budgets, format_front, front
    from .store import SweepStore

    uri = config.resolved_tracking_uri
    store = SweepStore(uri, config.name)
    print(
        f"\nPareto front of sweep {config.name!r} (cost = rebuilt model, accuracy = retrained, validation):"
    )
    print(format_front(front(store)))
    if config.budgets:
        print("\nBudgets:")
        print(format_budgets(budget_table(store)))
    for row in summary.get("search", []):
        where = f"{row['algorithm']}/{row['target']} seed {row['seed']}"
        if row["trials_to_meet"]:
            print(
                f"adaptive {where}: within {config.budget_tolerance:.0%} of "
                f"{row['budget_fraction']:.0%} of seed cost after {row['trials_to_meet']} trials "
                f"({row['met_by']}); {row['trials']} trials in all"
            )
        else:
            print(
                f"adaptive {where}: no trial within {config.budget_tolerance:.0%} of "
                f"{row['budget_fraction']:.0%} of seed cost in {row['trials']} trials"
            )
    print(
        f"\n{summary['ran']} trials ran this time, {summary['trials']} in the sweep; "
        f"{summary['stopped']} stopped early as hopeless, saving {summary[EPOCHS_SAVED]} epochs."
    )
    print(f"Browse: morphsweep ui --tracking-uri {uri}")
    print(f"Pick:   morphsweep pick {config.name} --tracking-uri {uri} --knee -o structure.json")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from .results import budget_table, format_budgets, format_front, front
    from .store import SweepNotFound, SweepStore

    try:
        store = SweepStore(_tracking_uri(args), args.sweep)
        print(format_front(front(store)))
        budgets = budget_table(store)
        if not budgets.empty:
            print("\nBudgets:")
            print(format_budgets(budgets))
    except SweepNotFound as exc:
        print(f"morphsweep pareto: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from .pareto import NoTrialMeetsConstraint, parse_budget, pick
    from .results import budget_table, front
    from .store import SweepNotFound, SweepStore

    if Path(args.output).exists() and not args.force:
        print(
            f"morphsweep pick: {args.output!r} already exists; choose another --output or add "
            f"--force to replace it",
            file=sys.stderr,
        )
        return 2
    store = SweepStore(_tracking_uri(args), args.sweep)
    try:
        result = front(store)
        targets = sorted(set(result.table["target"].dropna()))
        group = args.target or (targets[0] if len(targets) == 1 else None)
        max_cost = args.max_cost
        if args.budget:
            group, budget = parse_budget(args.budget)
            if group not in targets:
                raise ValueError(
                    f"--budget {args.budget!r}: sweep {args.sweep!r} has no target {group!r}; "
                    f"its targets: {targets}"
                )
            max_cost = float(budget_table(store, {group: [budget]})["budget_cost"][0])
        row = pick(
            result,
            max_cost=max_cost,
            min_accuracy=args.min_accuracy,
            knee=args.knee,
            group_value=group,
        )
    except (SweepNotFound, NoTrialMeetsConstraint, ValueError) as exc:
        print(f"morphsweep pick: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        local = store.download(row["run_id"], "structure.json", tmp)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local, args.output)
    print(
        f"picked {row['trial_id']}: cost {row['cost']:.4g}, retrained accuracy {row['accuracy']:.4f} "
        f"(run {row['run_id']})\nwrote {args.output}"
    )
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    import subprocess

    uri = _tracking_uri(args)
    remote = uri.startswith(("http://", "https://"))
    base = uri if remote else f"http://{args.host}:{args.port}"
    links: dict[str, str] = {}
    if args.sweep:
        from .store import SweepStore, ui_urls

        experiment = SweepStore(uri, args.sweep).find_experiment()
        if experiment is None:
            print(
                f"morphsweep ui: no sweep named {args.sweep!r} in {uri}; `morphsweep pareto` "
                f"lists a sweep by the name in its config",
                file=sys.stderr,
            )
            return 2
        links = ui_urls(base, experiment.experiment_id)
    if remote:
        # a tracking server has its own UI: only say where the sweep is in it
        print(f"MLflow UI of {uri}")
        for what, url in links.items():
            print(f"  {what}: {url}")
        return 0
    warning = exposure_warning(args.host, "the MLflow UI")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"MLflow UI on http://{args.host}:{args.port} ({uri}); Ctrl-C to stop", flush=True)
    if links:
        print(f"  sweep {args.sweep!r}, its trials as a table: {links['table']}", flush=True)
        print(f"  cost against accuracy, charted:  {links['chart']}", flush=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    return subprocess.call(command)


def _job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ray raises ConnectionError or RuntimeError depending on the failure
        raise SystemExit(
            f"morphsweep: cannot reach the Ray job server at {address} ({exc}); give the head's "
            f"dashboard address, e.g. --address http://HEAD:8265 (and RAY_AUTH_TOKEN if the cluster "
            f"uses token authentication)"
        ) from exc


def _stage(config_path: str) -> Path:
    """A directory holding the project's packages and the config, shipped as the job's working_dir."""
    import shutil
    import tempfile

    root = Path(__file__).resolve().parents[1]
    stage = Path(tempfile.mkdtemp(prefix="morphsweep-job-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("sweep", "trainers", "dashboards"):
        shutil.copytree(root / package, stage / package, ignore=ignore)
    shutil.copy(config_path, stage / "sweep.yaml")
    return stage


def cmd_submit(args: argparse.Namespace) -> int:
    from .config import SweepConfigError, load_sweep_config

    try:
        config = load_sweep_config(args.config)
    except SweepConfigError as exc:
        print(f"morphsweep submit: {exc}", file=sys.stderr)
        return 2
    missing = [key for key in ("tracking_uri", "storage_path") if not getattr(config, key)]
    if missing:
        print(
            f"morphsweep submit: set {' and '.join(missing)} in {args.config}: on a cluster the "
            f"results must go to an MLflow server the cluster reaches (tracking_uri) and to a "
            f"storage path every node sees (storage_path)",
            file=sys.stderr,
        )
        return 2
    client = _job_client(args.address)
    stage = _stage(args.config)
    job_id = client.submit_job(
        # the driver runs from the storage path, which outlives the job's working_dir (Ray may
        # delete that when the last trial using it ends, under the driver's feet)
        entrypoint=(
            'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MORPHSWEEP_CONFIG="$PWD/sweep.yaml"'
            f" && mkdir -p {shlex.quote(config.resolved_storage_path)}"
            f" && cd {shlex.quote(config.resolved_storage_path)}"
            ' && python -m sweep.cli run "$MORPHSWEEP_CONFIG" --address auto --verbose 1'
        ),
        runtime_env={"working_dir": str(stage)},
        metadata={"morphsweep_sweep": config.name},
    )
    print(f"submitted sweep {config.name!r} as job {job_id}")
    print(f"watch:  morphsweep status {job_id} --address {args.address}")
    print(f"        morphsweep logs {job_id} --address {args.address} --follow")
    print(f"        Ray dashboard: {args.address}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = _job_client(args.address).get_job_info(args.job_id)
    print(f"{args.job_id}: {info.status}" + (f" ({info.message})" if info.message else ""))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    client = _job_client(args.address)
    if not args.follow:
        print(client.get_job_logs(args.job_id), end="")
        return 0
    import asyncio

    async def tail() -> None:
        async for lines in client.tail_job_logs(args.job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="morphsweep", description="MorphNet structure learning, swept."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run one structure-learning trial locally")
    train.add_argument("config", help="trial YAML (see trainers/examples/)")
    train.add_argument("-o", "--output", help="output directory (overrides output_dir)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    train.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    train.set_defaults(func=cmd_train)

    apply = sub.add_parser("apply", help="rebuild a model at a learned structure")
    apply.add_argument("structure", help="structure JSON (from `train` or `pick`)")
    apply.add_argument(
        "--model",
        required=True,
        help="seed model: a .keras file, zoo:<name>, keras.applications.<Name> or module:function",
    )
    apply.add_argument(
        "-o", "--output", required=True, help="where to save the rebuilt .keras model"
    )
    apply.add_argument(
        "--dataset",
        default="digits",
        help="dataset the seed model was built for (gives input shape and classes)",
    )
    apply.add_argument("--input-shape", help="e.g. 32,32,3 (instead of --dataset)")
    apply.add_argument("--num-classes", type=int, default=10)
    apply.add_argument("--image-size", type=int, default=None)
    apply.add_argument(
        "--width", type=int, default=32, help="zoo model width (model_width of the trial)"
    )
    apply.add_argument(
        "--keep-weights", action="store_true", help="carry the surviving channels' weights"
    )
    apply.add_argument(
        "--min-channels",
        type=int,
        default=None,
        help="raise every width to at least this (default: what the structure's cost counts)",
    )
    apply.set_defaults(func=cmd_apply)

    run = sub.add_parser("run", help="run a sweep (local Ray, or --address of a running cluster)")
    run.add_argument("config", help="sweep YAML (see sweep/examples/)")
    run.add_argument(
        "--address", help="Ray cluster address (default: the config's, else a local Ray)"
    )
    run.add_argument("--verbose", type=int, default=1)
    run.set_defaults(func=cmd_run)

    for name, helptext in (
        ("pareto", "print a sweep's Pareto front"),
        ("pick", "download a chosen trial's structure JSON"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("sweep", help="sweep name")
        p.add_argument(
            "--tracking-uri", help="MLflow URI (default: the local store under ./morphsweep_runs)"
        )
        p.add_argument("--config", help="read the tracking URI from this sweep YAML")
        if name == "pareto":
            p.set_defaults(func=cmd_pareto)
    pick = sub.choices["pick"]
    how = pick.add_mutually_exclusive_group(required=True)
    how.add_argument("--max-cost", type=float, help="most accurate trial with cost <= this")
    how.add_argument("--min-accuracy", type=float, help="cheapest trial with accuracy >= this")
    how.add_argument("--knee", action="store_true", help="the knee of the front")
    how.add_argument(
        "--budget",
        metavar="TARGET=VALUE",
        help="most accurate trial within a budget: a fraction of the seed cost (<= 1) or an "
        "absolute cost, e.g. flops=0.25",
    )
    pick.add_argument("--target", help="cost target when the sweep has several")
    pick.add_argument("-o", "--output", required=True)
    pick.add_argument("--force", action="store_true", help="replace --output if it exists")
    pick.set_defaults(func=cmd_pick)

    submit = sub.add_parser("submit", help="submit a sweep to a Ray cluster (job submission)")
    submit.add_argument("config")
    submit.add_argument(
        "--address", required=True, help="the head's dashboard, e.g. http://HEAD:8265"
    )
    submit.set_defaults(func=cmd_submit)
    for name, func in (("status", cmd_status), ("logs", cmd_logs)):
        p = sub.add_parser(name, help=f"{name} of a submitted sweep")
        p.add_argument("job_id")
        p.add_argument("--address", required=True)
        if name == "logs":
            p.add_argument("--follow", action="store_true")
        p.set_defaults(func=func)

    # commands of installed plugins (this project's dashboards adds `dashboard`)
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="morphsweep.commands"), key=lambda e: e.name):
        entry.load()(sub)

    ui = sub.add_parser(
        "ui", help="serve the MLflow UI on the sweep store (and print where a sweep is in it)"
    )
    ui.add_argument(
        "sweep",
        nargs="?",
        help="print the links to this sweep's trials (table) and its cost-accuracy chart",
    )
    ui.add_argument("--tracking-uri")
    ui.add_argument("--config")
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; the MLflow UI has no "
        "authentication)",
    )
    ui.add_argument("--port", type=port_number, default=5000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # an offline tool: MLflow's usage telemetry stays off unless the user turns it on (its
    # network calls can also hold a process at exit where there is no network)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
