"""What users bring: a trained network as a ``.keras`` seed, a folder of images per class read
batch by batch, their own streaming source, and epochs bounded by ``steps_per_epoch``."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.config import TrialConfig
from trainers.data import BUILTIN_SHAPES, data_shape, load_dataset
from trainers.errors import TrialConfigError
from trainers.models import build_model
from trainers.morphnet.keras3.backend import keras
from trainers.reporting import RecordingReporter
from trainers.streams import image_folder
from trainers.training import compile_for_training
from trainers.trial import run_trial

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_seed(tmp_path_factory):
    """zoo:plain width 8 trained on digits (well above chance), saved as seed.keras."""
    path = tmp_path_factory.mktemp("seed") / "seed.keras"
    data = load_dataset("digits")
    model = build_model("zoo:plain", data.input_shape, data.num_classes, 8, seed=0)
    compile_for_training(model, keras.optimizers.Adam(1e-2), jit_compile=False)
    model.fit(data.x_train, data.y_train, epochs=8, batch_size=64, verbose=0)
    accuracy = model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.9  # the fixture is a trained network, or the tests below mean nothing
    model.save(str(path))
    return path, float(accuracy)


def seeded(tmp_path, seed_path, name="trial", **changes):
    options = {
        "model": str(seed_path),
        "dataset": "digits",
        "epochs": 1,
        "retrain_epochs": 1,
        "batch_size": 64,
        "verbose": 0,
        "output_dir": str(tmp_path / name),
        **changes,
    }
    return TrialConfig(**options)


def first_learn_epoch(reporter):
    return next(m for m in reporter.metrics if m["phase"] == "learn")


def test_a_trained_seed_starts_learning_at_its_accuracy(tmp_path, trained_seed):
    path, accuracy = trained_seed
    pretrained, scratch = RecordingReporter(), RecordingReporter()
    result = run_trial(seeded(tmp_path, path, "pretrained", init="pretrained"), pretrained)
    other = run_trial(seeded(tmp_path, path, "scratch"), scratch)  # scratch: the default
    # the seed's own accuracy is measured once, before learning, and kept with the outcome,
    # whether learning starts from its weights or from fresh ones
    for run, reporter in ((result, pretrained), (other, scratch)):
        assert run.seed_val_accuracy == pytest.approx(accuracy, abs=1e-6)
        assert reporter.metrics[-1]["seed_val_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    # learning from the trained weights starts where the seed is, not at chance (0.1) ...
    start = first_learn_epoch(pretrained)["val_accuracy"]
    assert abs(start - accuracy) <= 0.08, (start, accuracy)
    # ... and clearly above where the same network starts from fresh weights
    assert start > first_learn_epoch(scratch)["val_accuracy"] + 0.2


def test_a_network_built_fresh_has_no_trained_accuracy(tmp_path):
    config = TrialConfig(
        model="zoo:plain",
        model_width=4,
        dataset="synthetic",
        epochs=1,
        retrain_epochs=1,
        verbose=0,
        output_dir=str(tmp_path / "t"),
    )
    assert run_trial(config).seed_val_accuracy is None


def test_retrain_kept_starts_from_the_surviving_weights(tmp_path, trained_seed):
    path, _ = trained_seed
    # a strength so low that nothing is pruned: the rebuilt network is the learned one, so with
    # no retraining epoch its accuracy is exactly the learned network's
    options = {"strength": 1e-12, "retrain_epochs": 0}
    options["init"] = "pretrained"
    kept = run_trial(seeded(tmp_path, path, "kept", retrain_init="kept", **options))
    fresh = run_trial(seeded(tmp_path, path, "fresh", **options))
    assert kept.rebuilt_cost == kept.seed_cost
    assert kept.retrained_val_accuracy == pytest.approx(kept.learned_val_accuracy, abs=1e-6)
    assert fresh.retrained_val_accuracy < kept.retrained_val_accuracy - 0.3


def test_a_seed_file_is_checked_against_the_data_before_training(tmp_path, trained_seed):
    path, _ = trained_seed
    with pytest.raises(TrialConfigError) as info:
        run_trial(seeded(tmp_path, path, dataset="synthetic"))
    message = str(info.value)
    # one message naming both shapes and both class counts
    for part in ("(8, 8, 1)", "(16, 16, 3)", "10 classes", "has 4"):
        assert part in message, message
    assert not (tmp_path / "trial").exists()  # nothing written


def write_folder(root, sizes, per_class=6, classes=("a", "b", "c")):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for n in range(per_class):
            w, h = sizes[(c * per_class + n) % len(sizes)]
            # a class-coloured image, so the classes differ
            pixels = np.full((h, w, 3), 60 * c, np.uint8) + rng.integers(0, 40, (h, w, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{n}.png")
    return root


def test_an_image_folder_splits_lists_and_reads_batches(tmp_path):
    root = write_folder(tmp_path / "imgs", [(12, 10)], per_class=10)
    folder = image_folder(f"images:{root}", seed=3, validation_split=0.2)
    # classes from the folder names, sorted; 30 images split 24 / 6, no file in both
    assert folder.classes == ("a", "b", "c")
    assert (len(folder.train_files), len(folder.val_files)) == (24, 6)
    assert not set(folder.train_files) & set(folder.val_files)
    # the same seed gives the same split; another seed another one
    assert list(image_folder(f"images:{root}", seed=3).val_files) == list(folder.val_files)
    assert list(image_folder(f"images:{root}", seed=4).val_files) != list(folder.val_files)
    # read at their own size (height 10, width 12), or resized
    assert folder.input_shape == (10, 12, 3)
    assert folder.resized(8).input_shape == (8, 8, 3)
    train, val = folder.resized(8).batches(batch_size=5, seed=0, steps=3)
    assert (len(train), len(val)) == (3, 2)  # bounded by steps; validation in full
    x, y = train.batch(0)
    assert x.shape == (5, 8, 8, 3) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    # the labels are those of the files' folders
    rows = train.rows(0)[:5]
    names = [str(train.x[r]).split("/")[-2] for r in rows]
    assert [folder.classes[i] for i in y] == names


def test_a_train_and_val_tree_is_used_as_it_is(tmp_path):
    write_folder(tmp_path / "tree" / "train", [(8, 8)], per_class=4)
    write_folder(tmp_path / "tree" / "val", [(8, 8)], per_class=2)
    folder = image_folder(f"images:{tmp_path / 'tree'}")
    assert (len(folder.train_files), len(folder.val_files)) == (12, 6)
    assert all("/val/" in f for f in folder.val_files)


def test_a_trial_streams_an_image_folder_in_bounded_epochs(tmp_path):
    root = write_folder(tmp_path / "imgs", [(12, 12), (9, 14)], per_class=8)
    reporter = RecordingReporter()
    config = TrialConfig(
        model="zoo:plain",
        model_width=4,
        dataset=f"images:{root}",
        image_size=8,
        epochs=2,
        retrain_epochs=1,
        batch_size=4,
        steps_per_epoch=2,
        verbose=0,
        output_dir=str(tmp_path / "trial"),
    )
    result = run_trial(config, reporter)
    # two steps an epoch, whatever the folder's size: 2 learn epochs + 1 retrain epoch
    assert [m["step"] for m in reporter.metrics if "step" in m] == [2, 4, 6]
    assert np.isfinite(result.retrained_val_accuracy)


def test_the_builtin_shapes_table_matches_the_data():
    for name, (shape, classes) in BUILTIN_SHAPES.items():
        data = load_dataset(name)
        assert (data.input_shape, data.num_classes) == (shape, classes), name
    assert data_shape("digits", image_size=12) == ((12, 12, 1), 10)
    assert data_shape("mnist1d", image_size=12) == ((40, 1), 10)  # sequences are not resized


def test_data_shape_of_an_image_folder_opens_no_image(tmp_path, monkeypatch):
    import PIL.Image

    root = write_folder(tmp_path / "imgs", [(8, 8)], per_class=2)
    opened = []
    real = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(a) or real(*a, **k))
    assert data_shape(f"images:{root}", image_size=16) == ((16, 16, 3), 3)
    assert opened == []
    with pytest.raises(TrialConfigError, match="image_size"):
        data_shape(f"images:{root}")


def test_a_users_stream_trains_a_trial(tmp_path):
    reporter = RecordingReporter()
    config = TrialConfig(
        model="zoo:plain",
        model_width=4,
        dataset="tests.trainers.fixtures:streaming_dataset",
        epochs=1,
        retrain_epochs=1,
        steps_per_epoch=3,
        verbose=0,
        output_dir=str(tmp_path / "trial"),
    )
    run_trial(config, reporter)
    # the epoch is bounded to 3 of the source's 10 batches
    assert [m["step"] for m in reporter.metrics if "step" in m] == [3, 6]


def test_augmentation_and_normalization_go_with_every_model_of_the_trial(tmp_path):
    from click.testing import CliRunner

    from sweep.commands import apply
    from trainers.morphnet import Structure

    options = dict(
        model="zoo:plain",
        model_width=4,
        dataset="synthetic",
        augment=["flip", "crop"],
        normalize=True,
        epochs=1,
        retrain_epochs=1,
        verbose=0,
    )
    learned = run_trial(TrialConfig(**options, output_dir=str(tmp_path / "learned")))
    baseline = run_trial(
        TrialConfig(**options, baseline_width=0.5, output_dir=str(tmp_path / "baseline"))
    )
    data = load_dataset("synthetic")
    for result in (learned, baseline):
        model = keras.saving.load_model(result.model_path)
        names = [layer.name for layer in model.layers]
        # the layers in front of the network, in order, in the saved small model
        assert names[1:5] == ["augment_flip", "augment_crop_pad", "augment_crop", "normalize"]
        recorded = Structure.load(result.structure_path).extra["preprocessing"]
        assert recorded["augment"] == ["flip", "crop"]
        # the training split's per-channel mean and variance (all 384 examples: under 2048)
        np.testing.assert_allclose(recorded["mean"], data.x_train.mean(axis=(0, 1, 2)), rtol=1e-5)
        np.testing.assert_allclose(
            recorded["variance"], data.x_train.var(axis=(0, 1, 2)), rtol=1e-4
        )
    # apply rebuilds the same network from the structure: same layers, same weights' shapes
    out = tmp_path / "applied.keras"
    args = [learned.structure_path, "--model", "zoo:plain", "--width", "4", "--dataset"]
    done = CliRunner().invoke(apply, [*args, "synthetic", "-o", str(out)])
    assert done.exit_code == 0, done.output
    rebuilt, retrained = keras.saving.load_model(out), keras.saving.load_model(learned.model_path)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in retrained.layers]
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in retrained.weights]
    # at inference the augmentations are identity and the normalization the recorded one
    x = data.x_val[:4]
    normalize = retrained.get_layer("normalize")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(normalize(x)),
        (x - np.array(recorded["mean"])) / np.sqrt(recorded["variance"]),
        rtol=1e-4,
        atol=1e-5,
    )


def test_augmentation_of_sequences_is_refused(tmp_path):
    config = TrialConfig(
        model="zoo:resnet1d",
        model_width=4,
        dataset="mnist1d",
        augment=["flip"],
        epochs=1,
        verbose=0,
        output_dir=str(tmp_path / "t"),
    )
    with pytest.raises(TrialConfigError, match=r"augment \['flip'\].*\(40, 1\)"):
        run_trial(config)
