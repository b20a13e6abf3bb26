"""A trial's model in MLflow: the MLflow model each finished trial logs, and `pick --register`.

A finished trial's retrained network reaches the driver as its ``model.keras`` file.
``write_model`` lays that file out as an MLflow model of the keras flavor, the directory
``mlflow.keras.save_model`` writes (``MLmodel``, ``data/model.keras``, the environment files),
from the file alone: the driver never loads the network (no custom objects to resolve, no
seconds per trial), and the signature is read from the file's saved config. The trial's
structure JSON travels in the same directory. ``mlflow.keras.load_model`` and
``mlflow.pyfunc.load_model`` load it; the tracker logs it on the trial's run through its queue
(``SweepTracker.log_model``).

``register`` makes the picked trial's model a new version of a registered model, tagged with
the trial. What could refuse it is checked first (``check_model_name``, ``check_trial_model``,
``SweepStore.check_registry``), so a refusal registers nothing.
"""

from __future__ import annotations

import json
import math
import platform
import posixpath
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from trainers.records import COST_FRACTION

from .store import MLMODEL, MODEL_ARTIFACT, SweepStore, model_version_url, ui_base

FLAVOR = "keras"  # mlflow.keras, the Keras 3 flavor
DATA = "data"  # the flavor's folder: data/model.keras (+ data/keras_module.txt)
STRUCTURE = "structure.json"  # the trial's structure, beside MLmodel
REQUIREMENTS, CONDA, PYTHON_ENV = "requirements.txt", "conda.yaml", "python_env.yaml"
MAX_NAME = 256  # the SQL registry's column width
# a registered model version's tags: the trial's own row of the results table (store.COLUMNS)
VERSION_TAGS = (
    "trial_id",
    "algorithm",
    "target",
    "seed",
    "strength",
    "width",
    "cost",
    COST_FRACTION,
    "accuracy",
)


class CannotRegister(ValueError):
    """`pick --register` refuses: the name, or the chosen trial, cannot be registered."""


# ----- the MLflow model a trial logs ------------------------------------------------------------
def _refs(refs: Any) -> list[str]:
    """The layer names of Keras' saved input or output references ([name, node, tensor], one
    or a list of them)."""
    if isinstance(refs, Mapping):
        refs = list(refs.values())
    if refs and isinstance(refs[0], str):
        refs = [refs]
    return [str(ref[0]) for ref in refs]


def _dtype(spec: Any) -> Any:
    """A saved dtype (a name, or a dtype policy whose compute dtype counts) as numpy's."""
    import numpy as np

    if isinstance(spec, Mapping):
        spec = spec.get("config", {}).get("name", "float32")
    name = str(spec or "float32").removeprefix("mixed_")
    try:
        return np.dtype(name)
    except TypeError:  # bfloat16: numpy has none, the values fit float32
        return np.dtype("float32")


def _shape(shape: Sequence[Any]) -> tuple[int, ...]:
    return (-1, *(-1 if d is None else int(d) for d in shape[1:]))


def _input_spec(layer: Mapping[str, Any]) -> Any:
    from mlflow.types.schema import TensorSpec

    config = layer["config"]
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    return TensorSpec(_dtype(config.get("dtype")), _shape(shape))


def _output_spec(layer: Mapping[str, Any]) -> Any:
    """The logits of a Dense head: the head's input shape with its last axis ``units``."""
    from mlflow.types.schema import TensorSpec

    config = layer["config"]
    shape = layer.get("build_config", {}).get("input_shape") or [None, None]
    return TensorSpec(_dtype(config.get("dtype")), _shape([*shape[:-1], config["units"]]))


def read_signature(keras_file: Path) -> Any:
    """The signature a saved network's config gives: its inputs (-1, *input shape) and, when the
    output is a Dense head, its logits; None for a config without an input layer (subclassed)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema

    with zipfile.ZipFile(keras_file) as archive:
        config = json.loads(archive.read("config.json"))["config"]
    listed = config.get("layers", [])
    layers = {layer["config"]["name"]: layer for layer in listed}
    if "input_layers" in config:  # functional
        inputs = [layers[n] for n in _refs(config["input_layers"])]
        outputs = [layers[n] for n in _refs(config["output_layers"])]
    else:  # Sequential: its layers in order
        inputs, outputs = listed[:1], listed[-1:]
    if not inputs or any(layer["class_name"] != "InputLayer" for layer in inputs):
        return None
    heads = None
    if outputs and all(layer["class_name"] == "Dense" for layer in outputs):
        heads = Schema([_output_spec(layer) for layer in outputs])
    return ModelSignature(Schema([_input_spec(layer) for layer in inputs]), heads)


def _pinned(packages: Sequence[str]) -> list[str]:
    """``name==version`` of each installed package (the bare name when it is not installed)."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def _write_environment(directory: Path, backend: str) -> None:
    """requirements.txt, conda.yaml and python_env.yaml as MLflow writes them, with the packages
    named here (nothing inferred: inference would load the model)."""
    requirements = _pinned(["mlflow", "keras", backend])
    python = platform.python_version()
    build = _pinned(["pip", "setuptools", "wheel"])
    (directory / REQUIREMENTS).write_text("\n".join(requirements))
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", build[0].replace("==", "<="), {"pip": requirements}],
    }
    (directory / CONDA).write_text(yaml.safe_dump(conda, default_flow_style=False))
    env = {"python": python, "build_dependencies": build, "dependencies": [f"-r {REQUIREMENTS}"]}
    (directory / PYTHON_ENV).write_text(yaml.safe_dump(env, default_flow_style=False))


def write_model(
    keras_file: Path, directory: Path, backend: str, structure: Path | None = None
) -> Path:
    """Lay out ``keras_file`` in ``directory`` (new) as an MLflow model of the keras flavor.

    Args:
        keras_file: the trial's retrained network, saved by Keras.
        directory: where the MLflow model goes; it must not exist.
        backend: the Keras backend the trial ran on (a requirement of the model).
        structure: the trial's structure JSON, kept beside MLmodel (``STRUCTURE``).
    """
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    data = directory / DATA
    data.mkdir(parents=True)
    shutil.copy2(keras_file, data / "model.keras")
    (data / "keras_module.txt").write_text("keras")
    _write_environment(directory, backend)
    model = Model(signature=read_signature(keras_file))
    if structure is not None and structure.is_file():
        shutil.copy2(structure, directory / STRUCTURE)
        model.metadata = {"morphsweep_structure": STRUCTURE}
    model.add_flavor(
        FLAVOR,
        data=DATA,
        keras_version=_pinned(["keras"])[0].partition("==")[2],
        keras_backend=backend,
        save_exported_model=False,
    )
    add_to_model(model, loader_module="mlflow.keras", conda_env=CONDA, python_env=PYTHON_ENV)
    model.model_size_bytes = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    model.save(str(directory / MLMODEL))
    return directory


# ----- pick --register --------------------------------------------------------------------------
def check_model_name(name: str) -> None:
    """Refuse a registered model name one of MLflow's registry stores refuses.

    Its rules (``mlflow.utils.validation._validate_model_name``, and the file store's): not
    blank; no ``/`` or ``:``; no ``%``; not ``.`` nor starting ``..`` (a name is also a
    folder); at most 256 characters (the database column).
    """
    problem = None
    if not name.strip():
        problem = "it is blank"
    elif bad := sorted({c for c in name if c in "/:%"}):
        problem = f"it contains {' and '.join(repr(c) for c in bad)}"
    elif name == "." or name.startswith(".."):
        problem = "MLflow keeps a model as a folder of that name, which must not be '.' or '..'"
    elif len(name) > MAX_NAME:
        problem = f"it has {len(name)} characters, over MLflow's {MAX_NAME}"
    if problem:
        raise CannotRegister(
            f"--register {name!r}: MLflow refuses that registered model name ({problem}); "
            f"use letters, digits, '-', '_' and '.', e.g. --register my-sweep-knee"
        )


def check_trial_model(store: SweepStore, row: Mapping[str, Any]) -> None:
    """Refuse a chosen trial whose run holds no MLflow model (a sweep run before trials logged
    one, or one whose upload has not finished)."""
    if not store.has_model(row["run_id"]):
        raise CannotRegister(
            f"trial {row['trial_id']} of sweep {store.sweep!r} (run {row['run_id']}) has no MLflow "
            f"model ({MODEL_ARTIFACT}/{MLMODEL}): its sweep ran before morphsweep logged one per "
            f"trial. Run the sweep again under a new name, or (a grid sweep) delete that run "
            f"(MLFLOW_TRACKING_URI={store.uri} mlflow runs delete --run-id {row['run_id']}) and "
            f"run the sweep again: it reruns that trial, which logs its model"
        )


def version_tags(store: SweepStore, row: Mapping[str, Any], picked_by: str) -> dict[str, str]:
    """The trial a version is: its sweep, settings, cost and accuracy, how it was picked, and
    where its structure JSON is (``mlflow.artifacts.download_artifacts`` takes the URI)."""
    tags = {"sweep": store.sweep, "picked_by": picked_by}
    for key in VERSION_TAGS:
        value = row.get(key)
        if isinstance(value, float):  # a baseline has no strength, a MorphNet trial no width
            if not math.isnan(value):
                tags[key] = f"{value:.6g}"
        elif value is not None and value != "":
            tags[key] = str(value)
    tags["structure"] = f"runs:/{row['run_id']}/{posixpath.join(MODEL_ARTIFACT, STRUCTURE)}"
    return tags


def register(
    store: SweepStore, name: str, row: Mapping[str, Any], picked_by: str
) -> tuple[Any, str]:
    """The chosen trial's MLflow model as a new version of ``name`` (created if need be).

    Returns the model version and its page in the MLflow UI.
    """
    from mlflow.exceptions import MlflowException

    client, run_id = store.client, str(row["run_id"])
    if store.registered_model(name) is None:
        try:
            client.create_registered_model(
                name, description=f"Structures learned by morphsweep sweep {store.sweep!r}."
            )
        except MlflowException as exc:  # created meanwhile by another pick
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    version = client.create_model_version(
        name,
        source=f"runs:/{run_id}/{MODEL_ARTIFACT}",
        run_id=run_id,
        tags=version_tags(store, row, picked_by),
        description=(
            f"Trial {row['trial_id']} of sweep {store.sweep!r} ({picked_by}): cost "
            f"{row['cost']:.4g}, retrained accuracy {row['accuracy']:.4f}. Its structure JSON is "
            f"{STRUCTURE} among this version's files."
        ),
    )
    return version, model_version_url(ui_base(store.uri), name, version.version)
