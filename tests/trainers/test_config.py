"""Trial config validation: unknown keys, wrong types and ranges are named before any training."""

from __future__ import annotations

import pytest

from trainers.config import TrialConfig
from trainers.data import check_dataset_spec, load_dataset
from trainers.errors import TrialConfigError
from trainers.models import IMAGE_ZOO, build_model, check_model_spec


def test_round_trip_through_dict():
    config = TrialConfig(model="zoo:plain", multiplier=3.0, epochs=2)
    # one dict feeds YAML, MLflow params and Ray's param space
    assert TrialConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"epochz": 3}, r"unknown trial config key\(s\) \['epochz'\]"),
        ({"epochs": "3"}, r"epochs must be int, but got epochs='3'"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"strength": 0.0}, r"strength must be > 0.*multiplier"),
        ({"strength": -1e-9}, "strength must be > 0"),
        ({"multiplier": None}, "set strength or multiplier"),
        ({"algorithm": "lasso"}, r"algorithm must be one of \('gamma'"),
        ({"target": "energy"}, "target must be one of"),
        ({"target": "latency", "hardware": "Z80"}, "hardware must be one of"),
        ({"algorithm": "logistic_sigmoid", "target": "activations"}, "no 'activations' target"),
        ({"threshold": -1.0}, "threshold must be a number >= 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be > 0"),
        ({"baseline_width": 0}, "baseline_width must be > 0"),
        ({"epochs": True}, r"epochs must be int, but got epochs=True"),
        ({"learning_rate": False}, r"learning_rate must be float, but got learning_rate=False"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
        ({"epochs": 0, "seed": -1}, r"epochs must be > 0.*; seed must be >= 0"),
    ],
)
def test_bad_fields_are_named(data, match):
    with pytest.raises(TrialConfigError, match=match):
        TrialConfig.from_dict(data)


def test_numbers_in_any_notation():
    # YAML 1.1 reads 1e-3 (no dot) as a string: it means the number
    config = TrialConfig.from_dict({"learning_rate": "1e-3", "strength": "2E-7"})
    assert (config.learning_rate, config.strength) == (1e-3, 2e-7)
    # a copy is validated like a new config
    with pytest.raises(TrialConfigError, match="batch_size must be > 0"):
        config.replace(batch_size=0)


def test_yaml_errors(tmp_path):
    with pytest.raises(TrialConfigError, match="does not exist"):
        TrialConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(TrialConfigError, match="not valid YAML"):
        TrialConfig.from_yaml(bad)


def test_specs_are_checked_cheaply(tmp_path):
    with pytest.raises(TrialConfigError, match="does not exist"):
        check_dataset_spec(f"npz:{tmp_path}/nothing.npz")
    with pytest.raises(TrialConfigError, match="dataset must be one of"):
        check_dataset_spec("imagenet")
    with pytest.raises(TrialConfigError, match="cannot import module"):
        check_dataset_spec("no_such_module_xyz:load")
    with pytest.raises(TrialConfigError, match="model must be one of"):
        check_model_spec("zoo:vgg")
    with pytest.raises(TrialConfigError, match="has no model 'ResNet9000'"):
        check_model_spec("keras.applications.ResNet9000")


def test_datasets_are_offline_and_split():
    digits = load_dataset("digits")
    # scikit-learn's bundled digits: 1797 8x8 images, 10 classes, split 80/20
    assert digits.input_shape == (8, 8, 1) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_val) == 1797
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    synthetic = load_dataset("synthetic", seed=1)
    assert synthetic.input_shape == (16, 16, 3) and synthetic.num_classes == 4
    assert digits.resized(32).input_shape == (32, 32, 1)


def test_npz_and_function_datasets(tmp_path):
    import numpy as np

    path = tmp_path / "arrays.npz"
    x = np.random.default_rng(0).normal(size=(50, 6, 6, 2)).astype(np.float32)
    np.savez(path, x=x, y=np.arange(50) % 3)
    data = load_dataset(f"npz:{path}")
    assert data.num_classes == 3 and len(data.x_train) == 40
    function = load_dataset("tests.trainers.fixtures:tiny_dataset")
    assert function.input_shape == (4, 4, 1) and function.num_classes == 2


@pytest.mark.parametrize("name", sorted(IMAGE_ZOO))
def test_zoo_models_build_for_digits_and_32px(name):
    for shape in ((8, 8, 1), (32, 32, 3)):
        model = build_model(f"zoo:{name}", shape, 10, width=8)
        # every zoo model ends in 10 logits
        assert model.output.shape == (None, 10)
