"""A trial's MLflow model (sweep.registry): the keras-flavor directory written from a .keras file
loads back in MLflow and predicts what Keras does; it survives an outage of the tracking server;
model names are refused exactly where MLflow's registry stores refuse them."""

from __future__ import annotations

import mlflow.keras
import mlflow.pyfunc
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sweep.registry import (
    MAX_NAME,
    STRUCTURE,
    CannotRegister,
    check_model_name,
    read_signature,
    write_model,
)
from sweep.store import MLMODEL, MODEL_ARTIFACT, NoModelRegistry, SweepStore
from sweep.tracking import SweepTracker
from trainers.morphnet.keras3.backend import keras


def functional(classes: int = 10):
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(classes, name="logits")(x))


def sequential():
    return keras.Sequential(
        [keras.Input((6, 1)), keras.layers.Flatten(), keras.layers.Dense(3, name="logits")]
    )


def batch(model, n: int = 5) -> np.ndarray:
    shape = (n, *model.input_shape[1:])
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def saved(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    structure = tmp_path / "structure.json"
    structure.write_text('{"schema_version": 1}')
    return path, structure


@pytest.mark.parametrize("build", [functional, sequential])
def test_the_written_model_loads_back_and_predicts_as_keras(build, tmp_path):
    model = build()
    keras_file, structure = saved(model, tmp_path)
    directory = write_model(keras_file, tmp_path / "mlflow_model", "tensorflow", structure)
    data = batch(model)
    expected = model.predict(data, verbose=0)
    # both MLflow loaders read the directory as mlflow.keras.save_model writes it
    np.testing.assert_allclose(
        mlflow.keras.load_model(str(directory)).predict(data, verbose=0), expected, rtol=1e-6
    )
    loaded = mlflow.pyfunc.load_model(str(directory))
    np.testing.assert_allclose(loaded.predict(data), expected, rtol=1e-6)
    # the signature: float32 inputs of the input layer's shape, the Dense head's logits
    signature = loaded.metadata.signature
    assert [s.shape for s in signature.inputs.inputs] == [(-1, *model.input_shape[1:])]
    assert [s.type for s in signature.inputs.inputs] == [np.dtype("float32")]
    assert [s.shape for s in signature.outputs.inputs] == [(-1, model.output_shape[-1])]
    # the trial's structure travels with the model; the requirements are named, not inferred
    assert (directory / STRUCTURE).read_text() == structure.read_text()
    requirements = (directory / "requirements.txt").read_text().splitlines()
    assert [r.split("==")[0] for r in requirements] == ["mlflow", "keras", "tensorflow"]


def test_a_head_that_is_not_dense_leaves_the_outputs_unnamed(tmp_path):
    image = keras.Input((4,))
    model = keras.Model(image, keras.layers.Softmax()(keras.layers.Dense(3)(image)))
    keras_file, _ = saved(model, tmp_path)
    signature = read_signature(keras_file)
    assert [s.shape for s in signature.inputs.inputs] == [(-1, 4)]
    assert signature.outputs is None


def test_a_model_logged_during_an_outage_lands_when_the_server_is_back(
    private_mlflow_server, tmp_path
):
    """Real server, stopped while the trial's model is logged: queued, replayed, loadable."""
    server = private_mlflow_server
    tracker = SweepTracker(server.uri, "model-outage", queue_dir=tmp_path / "queue")
    run_id = tracker.start("t1", {"algorithm": "gamma"})
    model = functional()
    keras_file, structure = saved(model, tmp_path)
    directory = write_model(keras_file, tmp_path / "mlflow_model", "tensorflow", structure)
    server.stop()
    tracker.log_model("t1", directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    assert len(tracker.outbox) == len(files)
    # the MLmodel goes last: a model whose upload is cut short is not taken for logged
    assert tracker.outbox.path_of(tracker.outbox.queue[-1]).name == MLMODEL
    del tracker  # the driver dies with the model queued
    server.start()
    again = SweepTracker(server.uri, "model-outage", queue_dir=tmp_path / "queue")
    assert len(again.outbox) == 0
    assert SweepStore(server.uri, "model-outage").has_model(run_id)
    data = batch(model)
    uri = f"runs:/{run_id}/{MODEL_ARTIFACT}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.uri)
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    finally:
        mlflow.set_tracking_uri(previous)
    np.testing.assert_allclose(loaded.predict(data), model.predict(data, verbose=0), rtol=1e-6)


REFUSED = ["", "  ", "a/b", "team:model", "50%", ".", "..", "..hidden"]
ACCEPTED = ["my-sweep-knee", "MorphNet resnet v2", "knee.2026_01", "a@b"]


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    """MLflow's own registry stores: a database and a file store (kept for old setups, which
    MLflow 3 opens only when asked to)."""
    root = tmp_path_factory.mktemp("registries")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield [
            MlflowClient(tracking_uri=uri, registry_uri=uri)
            for uri in (f"sqlite:///{root / 'mlflow.db'}", (root / "mlruns").as_uri())
        ]


@pytest.mark.parametrize("name", REFUSED)
def test_a_name_mlflow_refuses_is_refused_before_anything(name, registries):
    with pytest.raises(CannotRegister, match="--register .*MLflow refuses"):
        check_model_name(name)
    # the rule is MLflow's: one of its registry stores refuses the name too
    refusals = 0
    for client in registries:
        try:
            client.create_registered_model(name)
        except MlflowException:
            refusals += 1
    assert refusals >= 1


@pytest.mark.parametrize("name", ACCEPTED)
def test_a_name_every_store_takes_is_accepted(name, registries):
    check_model_name(name)
    for client in registries:
        assert client.create_registered_model(name).name == name


def test_a_name_longer_than_the_registry_column_is_refused():
    with pytest.raises(CannotRegister, match=f"over MLflow's {MAX_NAME}"):
        check_model_name("m" * (MAX_NAME + 1))
    check_model_name("m" * MAX_NAME)


def test_a_store_without_a_model_registry_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "nosuch://registry")
    store = SweepStore(f"sqlite:///{tmp_path / 'mlflow.db'}", "any")
    with pytest.raises(NoModelRegistry, match="no Model Registry.*MLFLOW_REGISTRY_URI"):
        store.check_registry()
