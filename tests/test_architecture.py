"""The shape of the code (issue 22): dependencies run one way, one read side, names defined once.

Read from the source with ``ast``; nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainers", "sweep", "dashboards")
# a package may import the ones before it, never one after it
ORDER = {name: i for i, name in enumerate(PACKAGES)}
# the MLflow client's queries: only the store asks them
QUERIES = {
    "search_runs",
    "search_experiments",
    "get_experiment_by_name",
    "get_experiment",
    "get_run",
    "get_metric_history",
    "list_artifacts",
    "download_artifacts",
    # the Model Registry's
    "search_registered_models",
    "get_registered_model",
    "get_model_version",
    "search_model_versions",
}
# the modules that took over sweep/tune_runner.py
DRIVER_AND_WORKER = ("driver", "worker", "callback", "preflight", "plugins")


def modules(*packages: str) -> dict[str, ast.Module]:
    found = {}
    for package in packages or PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name] = ast.parse(path.read_text(), str(path))
    return found


def imported(name: str, tree: ast.Module) -> set[str]:
    """Every module ``name`` imports, anywhere in it, as absolute names."""
    out = set()
    package = name.rsplit(".", 1)[0] if not name.endswith("__init__") else name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.add(node.module)
    return out


def test_packages_import_only_the_ones_below_them():
    wrong = []
    for name, tree in modules().items():
        own = name.split(".")[0]
        for target in imported(name, tree):
            top = target.split(".")[0]
            if top in ORDER and ORDER[top] > ORDER[own]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_only_the_store_queries_mlflow():
    wrong = []
    for name, tree in modules().items():
        if name == "sweep.store":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in QUERIES:
                wrong.append(f"{name}:{node.lineno} {node.attr}")
    assert wrong == []


def metric_names() -> set[str]:
    """The names a trial's records are logged under, as written out here by hand."""
    epoch_fields = (
        "task_loss",
        "regularization_loss",
        "cost_fraction",
        "alive_fraction",
        "predicted_cost",
        "predicted_fraction",
        "collapsed",
        "term_fraction",
        "val_accuracy",
        "cost",
        "step",
        "loss",
        "accuracy",
        "val_loss",
        "strength",
    )
    names = {f"{phase}/{field}" for phase in ("learn", "retrain") for field in epoch_fields}
    names |= {
        "rebuilt_cost",
        "retrained_val_accuracy",
        "predicted_cost",
        "predicted_fraction",
        "learned_val_accuracy",
        "seed_cost",
        "cost_fraction",
        "term_fraction",
        "alive_fraction",
        "train_seconds",
        "trial_seconds",
        "epochs_saved",
        "regularization_loss",
        "task_loss",
    }
    return names


def test_no_metric_name_is_written_in_two_modules():
    where: dict[str, set[str]] = defaultdict(set)
    names = metric_names()
    for name, tree in modules().items():
        if name == "trainers.records":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in names:
                    where[node.value].add(name)
    assert {k: sorted(v) for k, v in where.items() if len(v) > 1} == {}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_of_sweep_or_dashboards_is_over_450_lines():
    big = {
        str(p.relative_to(ROOT)): lines(p)
        for package in ("sweep", "dashboards")
        for p in (ROOT / package).glob("*.py")
        if lines(p) > 450
    }
    assert big == {}


def test_dashboards_is_at_most_600_lines():
    assert sum(lines(p) for p in (ROOT / "dashboards").glob("*.py")) <= 600


@pytest.mark.parametrize("module", DRIVER_AND_WORKER)
def test_driver_and_worker_functions_are_short_and_flat(module):
    tree = ast.parse((ROOT / "sweep" / f"{module}.py").read_text())
    long, nested = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = node.end_lineno - node.lineno + 1
            if size > 60:
                long.append(f"{node.name}: {size} lines")
            nested += [
                f"{inner.name} in {node.name}"
                for inner in ast.walk(node)
                if isinstance(inner, ast.ClassDef)
            ]
    assert long == [] and nested == []


def test_the_sweep_never_changes_the_working_directory():
    calls = [
        f"{name}:{node.lineno}"
        for name, tree in modules("sweep").items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "chdir"
    ]
    assert calls == []
