"""The commands that work on this machine: a trial, a rebuild, a sweep, and reading a sweep's
results (its front, a picked structure, the MLflow UI on it). ``sweep.cli`` runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from trainers.config import MAX_IMAGE_SIZE, MAX_WIDTH, TrialConfig, load_yaml, yaml_error_text
from trainers.errors import TrialConfigError
from trainers.records import EPOCHS_SAVED

from .config import load_sweep_config
from .options import (
    Interrupted,
    Number,
    Port,
    UserError,
    check_output,
    check_port,
    config_option,
    exposure_warning,
    host_option,
    resolve_uri,
    tracking_uri_option,
)
from .pareto import NoTrialMeetsConstraint, parse_budget, pick
from .registry import check_model_name, check_trial_model, register
from .results import budget_table, format_budgets, format_front, front
from .store import SweepStore, ui_urls


def parse_value(text: str, key: str = "") -> Any:
    """A ``--set`` value as YAML reads it; a word that YAML reads as nothing stays the word."""
    if not text.strip():
        raise TrialConfigError(
            f"--set {key}= gives no value; write a value, or {key}=null to unset the field"
        )
    try:
        value = load_yaml(text)
    except ValueError as exc:
        raise TrialConfigError(f"--set {key}: {text[:40]!r}... cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise TrialConfigError(
            f"--set {key}: {text!r} is not a plain YAML value ({yaml_error_text(exc)}); give a "
            f"number, a word or a [list] (no !!python tags)"
        ) from exc
    return text if value is None and text not in ("null", "~", "") else value


def overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TrialConfigError(f"--set needs key=value, but got {pair!r}")
        out[key] = parse_value(value, key)
    return out


@click.command(help="Run one structure-learning trial locally.")
@click.argument("config")
@click.option("-o", "--output", help="output directory (overrides output_dir)")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="override a field")
@click.option("--no-resume", is_flag=True, help="start over even if a checkpoint exists")
def train(config: str, output: str | None, pairs: tuple[str, ...], no_resume: bool) -> None:
    changes = overrides(pairs)
    if output is not None:  # -o "" is refused below, not ignored
        changes["output_dir"] = output
    trial_config = TrialConfig.from_yaml(config, changes)
    check_output(trial_config.output_dir, "output_dir", directory=True)
    from trainers.trial import run_trial  # TensorFlow or JAX, as the config says

    out = Path(trial_config.output_dir)
    made = not out.exists()
    try:
        result = run_trial(trial_config, resume=not no_resume)
    except KeyboardInterrupt:
        raise Interrupted(saved_trial(out, config)) from None
    except Exception:
        if made and out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
            shutil.rmtree(out)  # a trial that failed before writing leaves no empty folder
        raise
    outcome = result.outcome
    print(
        f"\n{result.cost_name}: seed {outcome.seed_cost:.4g} -> rebuilt {outcome.rebuilt_cost:.4g} "
        f"({outcome.cost_fraction:.1%}); retrained val accuracy {outcome.accuracy:.4f}"
    )
    print(f"structure: {result.structure_path}\nmodel:     {result.model_path}")
    print(f"metrics:   {result.metrics_path}")


def saved_trial(output_dir: Path, config: str) -> str:
    """What an interrupted trial left: its last checkpoint, and the command that resumes it."""
    from trainers.checkpoint import Checkpoint

    state = Checkpoint(output_dir / "checkpoint").state()
    again = f"rerun `morphsweep train {config}` (with the same options) to resume"
    if not state:
        return (
            f"no epoch had finished, so there is no checkpoint; {again.replace('resume', 'start')}"
        )
    return (
        f"the checkpoint in {output_dir / 'checkpoint'} keeps {state.get('phase')} epoch "
        f"{state.get('epoch')}; {again} from there"
    )


@click.command(help="Rebuild a model at a learned structure.")
@click.argument("structure")
@click.option(
    "--model",
    required=True,
    help="seed model: a .keras file, zoo:<name>, keras.applications.<Name> or module:function",
)
@click.option("-o", "--output", required=True, help="where to save the rebuilt .keras model")
@click.option("--dataset", default="digits", help="what the seed was built for (input, classes)")
@click.option("--input-shape", help="e.g. 32,32,3 (instead of --dataset)")
@click.option("--num-classes", type=click.IntRange(min=1), default=10)
@click.option("--image-size", type=click.IntRange(1, MAX_IMAGE_SIZE), default=None)
@click.option(
    "--width",
    type=click.IntRange(1, MAX_WIDTH),
    default=32,
    help="zoo model width (the trial's model_width)",
)
@click.option("--keep-weights", is_flag=True, help="carry the surviving channels' weights")
@click.option(
    "--min-channels",
    type=click.IntRange(min=0),
    default=None,
    help="raise every width to at least this (default: what the structure's cost counts)",
)
def apply(
    structure: str, output: str, keep_weights: bool, min_channels: int | None, **seed: Any
) -> None:
    from trainers.morphnet import Structure
    from trainers.morphnet.keras3 import apply_structure, model_cost
    from trainers.preprocessing import Preprocessing, prepend

    check_output(output, "--output")
    learned = Structure.load(structure)
    # the layers the trial put in front of the seed (augmentation, normalization), again
    preprocessing = Preprocessing.from_dict(learned.extra.get("preprocessing"))
    model = prepend(load_seed_model(**seed), preprocessing)
    # by default, the min_channels the structure's predicted cost was computed with
    floor = min_channels if min_channels is not None else learned.rebuild_min_channels
    small = apply_structure(
        model, learned, keep_weights=keep_weights, min_channels=floor, complete=True
    )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    small.save(output)
    old, new = model_cost(model), model_cost(small)
    print(
        f"FLOPs: seed {old:.4g} -> {new:.4g} ({new / old:.1%}); params {model.count_params()} -> "
        f"{small.count_params()}"
    )
    print(f"wrote {output}")


def parse_shape(text: str) -> tuple[int, ...]:
    """``--input-shape 32,32,3``: one example's shape, positive integers."""
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape) or len(shape) > 4:
        raise UserError(
            f"--input-shape {text!r}: give 1 to 4 positive integers separated by commas, without "
            f"the batch, e.g. 32,32,3"
        )
    return shape


def load_seed_model(
    model: str,
    dataset: str,
    input_shape: str | None,
    num_classes: int,
    image_size: int | None,
    width: int,
) -> Any:
    """The seed network ``apply`` rebuilds: a saved .keras file, or built from its spec."""
    from trainers.data import data_shape
    from trainers.models import build_model, is_model_file, load_model_file

    if is_model_file(model):
        return load_model_file(model)
    if input_shape is not None:
        shape, classes = parse_shape(input_shape), num_classes
    else:
        shape, classes = data_shape(dataset, 0, image_size)
    return build_model(model, shape, classes, width)


@click.command(help="Run a sweep (a local Ray, or --address of a running cluster).")
@click.argument("config")
@click.option("--address", help="Ray cluster address (default: the config's, else a local Ray)")
@click.option("--verbose", type=int, default=1, show_default=True)
def run(config: str, address: str | None, verbose: int) -> None:
    sweep = load_sweep_config(config)
    from .driver import SweepInterrupted, run_sweep  # Ray

    try:
        summary = run_sweep(sweep, address=address, verbose=verbose)
    except SweepInterrupted as exc:
        raise Interrupted(str(exc)) from None
    uri = sweep.resolved_tracking_uri
    store = SweepStore(uri, sweep.name)
    print(f"\nPareto front of sweep {sweep.name!r} (cost = rebuilt model, accuracy = retrained):")
    print(format_front(front(store)))
    if sweep.budgets:
        print("\nBudgets:")
        print(format_budgets(budget_table(store)))
    for row in summary.get("search", []):
        print(search_line(row, sweep.budget_tolerance))
    print(
        f"\n{summary['ran']} trials ran this time, {summary['trials']} in the sweep; "
        f"{summary['stopped']} stopped early as hopeless, saving {summary[EPOCHS_SAVED]} epochs."
    )
    print(f"Browse: morphsweep ui --tracking-uri {uri}")
    print(f"Pick:   morphsweep pick {sweep.name} --tracking-uri {uri} --knee -o structure.json")


def search_line(row: dict[str, Any], tolerance: float) -> str:
    """One line of the adaptive search's summary: met (after how many trials) or not."""
    where = f"{row['algorithm']}/{row['target']} seed {row['seed']}"
    aim = f"{tolerance:.0%} of {row['budget_fraction']:.0%} of seed cost"
    if row["trials_to_meet"]:
        return (
            f"adaptive {where}: within {aim} after {row['trials_to_meet']} trials "
            f"({row['met_by']}); {row['trials']} trials in all"
        )
    return f"adaptive {where}: no trial within {aim} in {row['trials']} trials"


@click.command(help="Print a sweep's Pareto front (and its budgets).")
@click.argument("sweep")
@tracking_uri_option
@config_option
def pareto(sweep: str, tracking_uri: str | None, config: str | None) -> None:
    store = SweepStore(resolve_uri(tracking_uri, config), sweep)
    print(format_front(front(store)))
    budgets = budget_table(store)
    if not budgets.empty:
        print("\nBudgets:")
        print(format_budgets(budgets))


@click.command(
    "pick",
    help="Download a chosen trial's structure JSON (and, with --register, register its model).",
)
@click.argument("sweep")
@tracking_uri_option
@config_option
@click.option(
    "--max-cost", type=Number(0, low_open=True), help="the most accurate trial with cost <= this"
)
@click.option(
    "--min-accuracy", type=Number(0, 1), help="the cheapest trial with accuracy >= this (0-1)"
)
@click.option("--knee", is_flag=True, help="the knee of the front")
@click.option(
    "--budget",
    metavar="TARGET=VALUE",
    help="the most accurate trial within a budget: a fraction of the seed cost (<= 1) or an "
    "absolute cost, e.g. flops=0.25",
)
@click.option("--target", help="cost target when the sweep has several")
@click.option("-o", "--output", required=True, help="where to write the structure JSON")
@click.option("--force", is_flag=True, help="replace --output if it exists")
@click.option(
    "--register",
    "register_as",
    metavar="NAME",
    help="also register the trial's MLflow model as a new version of registered model NAME",
)
def pick_trial(sweep: str, output: str, force: bool, register_as: str | None, **how: Any) -> None:
    ways = ("max_cost", "min_accuracy", "knee", "budget")
    given = [f"--{w.replace('_', '-')}" for w in ways if how[w] is not None and how[w] is not False]
    if len(given) != 1:
        raise click.UsageError(
            f"give exactly one of --max-cost, --min-accuracy, --knee, --budget; got "
            f"{', '.join(given) or 'none'}"
        )
    if register_as is not None:
        check_model_name(register_as)
    if Path(output).exists() and not force:
        raise UserError(
            f"{output!r} already exists; choose another --output or add --force to replace it"
        )
    check_output(output, "--output")
    store = SweepStore(resolve_uri(how["tracking_uri"], how["config"]), sweep)
    if register_as is not None:
        store.check_registry()
    row = chosen_row(store, how)
    if register_as is not None:
        check_trial_model(store, row)  # every refusal before anything is written
    with tempfile.TemporaryDirectory() as tmp:
        local = store.download(row["run_id"], "structure.json", tmp)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(local, output)
    print(
        f"picked {row['trial_id']}: cost {row['cost']:.4g}, retrained accuracy "
        f"{row['accuracy']:.4f} (run {row['run_id']})\nwrote {output}"
    )
    if register_as is not None:
        way = given[0][2:].replace("-", "_")
        picked_by = given[0] if way == "knee" else f"{given[0]} {how[way]}"
        version, url = register(store, register_as, row, picked_by)
        print(f"registered {register_as!r} version {version.version}: {url}")


def chosen_row(store: SweepStore, how: dict[str, Any]) -> Any:
    """The trial ``pick``'s options choose: under a cost, over an accuracy, the knee, a budget."""
    result = front(store)
    targets = sorted(set(result.table["target"].dropna()))
    group = how["target"] or (targets[0] if len(targets) == 1 else None)
    max_cost = how["max_cost"]
    if how["budget"]:
        try:
            group, budget = parse_budget(how["budget"])
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if group not in targets:
            raise UserError(
                f"--budget {how['budget']!r}: sweep {store.sweep!r} has no target {group!r}; "
                f"its targets: {targets}"
            )
        max_cost = float(budget_table(store, {group: [budget]})["budget_cost"][0])
    try:
        return pick(
            result,
            max_cost=max_cost,
            min_accuracy=how["min_accuracy"],
            knee=how["knee"],
            group_value=group,
        )
    except NoTrialMeetsConstraint:
        raise
    except ValueError as exc:
        raise UserError(str(exc)) from None


@click.command(help="Serve the MLflow UI on the sweep store (and print where a sweep is in it).")
@click.argument("sweep", required=False)
@tracking_uri_option
@config_option
@host_option("the MLflow UI")
@click.option("--port", type=Port(), default=5000, show_default=True)
def ui(
    sweep: str | None, tracking_uri: str | None, config: str | None, host: str, port: int
) -> None:
    # with no sweep named, the UI may open a local store that does not exist yet (MLflow makes it)
    uri = resolve_uri(tracking_uri, config, reading=sweep is not None)
    remote = uri.startswith(("http://", "https://"))
    if not remote:
        check_port(host, port)
    base = uri if remote else f"http://{host}:{port}"
    links: dict[str, str] = {}
    if sweep:
        experiment = SweepStore(uri, sweep).find_experiment()
        if experiment is None:
            raise UserError(
                f"no sweep named {sweep!r} in {uri}; `morphsweep pareto` lists a sweep by the "
                f"name in its config"
            )
        links = ui_urls(base, experiment.experiment_id)
    if remote:
        # a tracking server has its own UI: only say where the sweep is in it
        print(f"MLflow UI of {uri}")
        for what, url in links.items():
            print(f"  {what}: {url}")
        return
    warning = exposure_warning(host, "the MLflow UI")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"MLflow UI on http://{host}:{port} ({uri}); Ctrl-C to stop", flush=True)
    if links:
        print(f"  sweep {sweep!r}, its trials as a table: {links['table']}", flush=True)
        print(f"  cost against accuracy, charted:  {links['chart']}", flush=True)
    mlflow_ui = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    code = subprocess.call([*mlflow_ui, "--host", host, "--port", str(port)])
    click.get_current_context().exit(code)
