"""Bad inputs, table-driven: every case is one command a user could type.

Each case asserts the exit code; one short message that names the bad value and says how to fix
it (no traceback); that nothing trained or started trials (``Model.fit`` and the sweep's Tune
launch are trip wires); and that nothing already on disk (files, the MLflow store of an earlier
sweep) changed. README's "What happens when..." table lists the same cases by id.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIX = "tests.trainers.fixtures"


def fix_png(width: int, height: int | None = None) -> Any:
    def make(keep: Path) -> bytes:
        from tests.trainers.fixtures import png

        return png(width, height)(keep)

    return make


def fix_subclassed(keep: Path) -> bytes:
    from tests.trainers.fixtures import subclassed_model_file

    return subclassed_model_file()


def fix_tiny_file(keep: Path) -> bytes:
    from tests.trainers.fixtures import tiny_model_file

    return tiny_model_file()


@dataclass
class Case:
    id: str
    argv: list[str]  # {dir} is the case's own directory, {keep} what is already on disk
    expect: list[str]  # regexes the message must match: the bad value, the fix
    code: int = 2
    files: dict[str, Any] = field(default_factory=dict)  # name -> text / dict (YAML) / callable
    env: dict[str, str] = field(default_factory=dict)
    readme: str = ""  # the README row: what happens, in words


def sweep(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "bad-input",
        "trial": {
            "model": f"{FIX}:tiny_model",
            "dataset": f"{FIX}:tiny_dataset",
            "epochs": 1,
            "retrain_epochs": 1,
            "batch_size": 8,
        },
        "algorithms": ["gamma"],
        "baseline": {"widths": [1.0]},
        "tracking_uri": "sqlite:///{keep}/mlflow.db",
        "storage_path": "{dir}/storage",
        "workdir": "{dir}/work",
    }
    for key, value in changes.items():
        if key.startswith("trial."):
            config["trial"][key[6:]] = value
        elif value is DROP:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def trial(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model": f"{FIX}:tiny_model",
        "dataset": f"{FIX}:tiny_dataset",
        "epochs": 1,
        "retrain_epochs": 1,
        "batch_size": 8,
        "output_dir": "{dir}/out",
    }
    config.update(changes)
    return config


DROP = object()


def structure_edit(edit):
    """A structure file: the one already on disk, changed by ``edit(data)``."""

    def make(keep: Path) -> str:
        data = json.loads((keep / "structure.json").read_text())
        edit(data)
        return json.dumps(data)

    return make


def first_layer(data):
    return next(iter(data["layers"].values()))


def _alive_above(data):
    layer = first_layer(data)
    layer["alive"] = layer["original"] + 5


def _negative(data):
    first_layer(data)["alive"] = -3


def _unknown_layer(data):
    data["layers"]["no_such_layer"] = dict(first_layer(data))


def _schema(data):
    data["schema_version"] = 99


def _other_model(data):
    data["model"]["fingerprint"] = "0123456789abcdef"


def npz(**arrays):
    def make(keep: Path) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    return make


def _drop_a_layer(data):
    data["layers"].pop(sorted(data["layers"])[0])


def _channels_disagree(data):
    layer = first_layer(data)
    layer["alive_channels"] = layer["alive_channels"][:-1]


def checkpoint_of(**config: Any) -> str:
    """A trial checkpoint's state.json, as a run with ``config`` (over ``trial()``) left it."""
    saved = {**trial(), **config}
    return json.dumps({"phase": "learn", "epoch": 1, "trial_config": saved})


RUN_AT = ["run", "{dir}/sweep.yaml"]
RUN = RUN_AT
TRAIN = ["train", "{dir}/trial.yaml"]
APPLY = ["apply", "{dir}/s.json", "--model", "zoo:plain", "--width", "8", "-o", "{dir}/m.keras"]
URI = ["--tracking-uri", "sqlite:///{keep}/mlflow.db"]
PICK_KNEE = ["pick", "existing", "--knee", "-o", "{dir}/p.json", *URI]
X = np.zeros((8, 4, 4, 1), np.float32)
Y = np.zeros(8, np.int32)

CASES = [
    # ----- sweep configs ------------------------------------------------------------------
    Case("sweep-missing-file", ["run", "{dir}/nope.yaml"], [r"nope\.yaml", r"does not exist"]),
    Case(
        "sweep-yaml-syntax",
        RUN,
        [r"sweep\.yaml", r"YAML"],
        files={"sweep.yaml": "name: [unclosed\n"},
        readme="the YAML does not parse: the file and the line are named",
    ),
    Case(
        "sweep-unknown-key",
        RUN,
        [r"algoritms", r"known:"],
        files={"sweep.yaml": sweep(algoritms=["gamma"])},
        readme="a misspelled key: it is named with the list of known keys",
    ),
    Case(
        "sweep-unknown-algorithm",
        RUN,
        [r"'gama'", r"group_lasso"],
        files={"sweep.yaml": sweep(algorithms=["gama"])},
    ),
    Case(
        "sweep-unknown-target",
        RUN,
        [r"'energy'", r"flops"],
        files={"sweep.yaml": sweep(targets=["energy"])},
    ),
    Case(
        "sweep-name-path-traversal",
        RUN,
        [r"\.\./\.\./etc", r"letters, digits"],
        files={"sweep.yaml": sweep(name="../../etc")},
        readme="a sweep name with '/' or '..': refused, so no file lands outside the storage path",
    ),
    Case(
        "sweep-zero-concurrency",
        RUN,
        [r"max_concurrent", r"0"],
        files={"sweep.yaml": sweep(max_concurrent=0)},
    ),
    Case(
        "sweep-negative-budget",
        RUN,
        [r"-0\.5", r"budget"],
        files={"sweep.yaml": sweep(search="adaptive", budgets={"flops": [-0.5]})},
    ),
    Case(
        "sweep-unknown-search",
        RUN,
        [r"'random'", r"adaptive"],
        files={"sweep.yaml": sweep(search="random")},
    ),
    Case("sweep-bad-seeds", RUN, [r"seeds", r"'abc'"], files={"sweep.yaml": sweep(seeds="abc")}),
    Case(
        "sweep-bad-early-stop",
        RUN,
        [r"'sometimes'", r"degenerate"],
        files={"sweep.yaml": sweep(early_stop="sometimes")},
    ),
    Case(
        "sweep-yaml-python-tag",
        RUN,
        [r"sweep\.yaml", r"YAML"],
        files={
            "sweep.yaml": "name: x\nalgorithms: !!python/object/apply:os.system ['touch {dir}/PWNED']\n"
        },
        readme="a YAML tag that would run code (`!!python/...`): refused, nothing runs",
    ),
    Case(
        "sweep-trial-owned-key",
        RUN,
        [r"algorithm", r"sweep"],
        files={"sweep.yaml": sweep(**{"trial.algorithm": "gamma"})},
    ),
    Case(
        "sweep-trial-negative-epochs",
        RUN,
        [r"epochs", r"-1"],
        files={"sweep.yaml": sweep(**{"trial.epochs": -1})},
    ),
    Case(
        "sweep-trial-unknown-model",
        RUN,
        [r"zoo:nosuch", r"zoo:\{plain,resnet"],
        files={"sweep.yaml": sweep(**{"trial.model": "zoo:nosuch"})},
    ),
    Case(
        "sweep-trial-missing-npz",
        RUN,
        [r"missing\.npz", r"npz:"],
        files={"sweep.yaml": sweep(**{"trial.dataset": "npz:{dir}/missing.npz"})},
    ),
    Case(
        "storage-not-a-directory",
        RUN,
        [r"storage_path", r"a-file", r"writable directory"],
        files={"a-file": "x", "sweep.yaml": sweep(storage_path="{dir}/a-file/storage")},
        readme="the storage path cannot be written: named, before any trial",
    ),
    Case(
        "storage-full",
        RUN,
        [r"storage_path", r"MB free", r"free some space"],
        files={"sweep.yaml": sweep()},
        env={"MORPHSWEEP_MIN_FREE_MB": "1e12"},
        readme="the storage path has no room: the free space is named, before any trial",
    ),
    Case(
        "reuse-workers-not-0-or-1",
        RUN,
        [r"MORPHSWEEP_REUSE_WORKERS='yes'", r"set it to 1 .* or 0"],
        files={"sweep.yaml": sweep()},
        env={"MORPHSWEEP_REUSE_WORKERS": "yes"},
        readme="MORPHSWEEP_REUSE_WORKERS is neither 0 nor 1: the value is named, before any trial",
    ),
    Case(
        "tracking-unreachable",
        RUN,
        [r"http://127\.0\.0\.1:9", r"tracking_uri"],
        files={"sweep.yaml": sweep(tracking_uri="http://127.0.0.1:9")},
        readme="the tracking server does not answer at start: the URI is named, before any trial",
    ),
    Case(
        "ray-unreachable",
        [*RUN, "--address", "127.0.0.1:9"],
        [r"127\.0\.0\.1:9", r"ray start"],
        files={"sweep.yaml": sweep()},
    ),
    # ----- trial configs and --set ---------------------------------------------------------
    Case(
        "trial-bad-type",
        TRAIN,
        [r"learning_rate", r"'fast'"],
        files={"trial.yaml": trial(learning_rate="fast")},
    ),
    Case("trial-unknown-key", TRAIN, [r"epoch_count"], files={"trial.yaml": trial(epoch_count=3)}),
    Case(
        "trial-unknown-algorithm",
        TRAIN,
        [r"'lasso'", r"gamma"],
        files={"trial.yaml": trial(algorithm="lasso")},
    ),
    Case(
        "set-bad-value",
        [*TRAIN, "--set", "epochs=abc"],
        [r"epochs", r"'abc'"],
        files={"trial.yaml": trial()},
    ),
    Case(
        "set-no-equals",
        [*TRAIN, "--set", "epochs"],
        [r"--set", r"key=value", r"'epochs'"],
        files={"trial.yaml": trial()},
    ),
    Case(
        "set-yaml-python-tag",
        [*TRAIN, "--set", "epochs=!!python/object/apply:os.system ['touch {dir}/PWNED']"],
        [r"--set", r"epochs", r"plain YAML"],
        files={"trial.yaml": trial()},
        readme="a `--set` value with a YAML tag that would run code: refused, nothing runs",
    ),
    Case(
        "set-unknown-key",
        [*TRAIN, "--set", "epoks=2"],
        [r"epoks"],
        files={"trial.yaml": trial()},
    ),
    Case(
        "set-zero-batch",
        [*TRAIN, "--set", "batch_size=0"],
        [r"batch_size", r"0"],
        files={"trial.yaml": trial()},
    ),
    # ----- datasets --------------------------------------------------------------------------
    Case(
        "dataset-missing-npz",
        TRAIN,
        [r"gone\.npz", r"npz:"],
        files={"trial.yaml": trial(dataset="npz:{dir}/gone.npz")},
        readme="the dataset file is missing: the path is named",
    ),
    Case(
        "dataset-npz-wrong-arrays",
        TRAIN,
        [r"images", r"x_train"],
        files={"trial.yaml": trial(dataset="npz:{dir}/d.npz"), "d.npz": npz(images=X)},
    ),
    Case(
        "dataset-npz-wrong-shapes",
        TRAIN,
        [r"y_train", r"one integer label per example"],
        files={
            "trial.yaml": trial(dataset="npz:{dir}/d.npz"),
            "d.npz": npz(x_train=X, y_train=np.zeros(5, np.int32), x_val=X, y_val=Y),
        },
        readme="images and labels do not line up: both shapes are named",
    ),
    Case(
        "dataset-labels-out-of-range",
        TRAIN,
        [r"from 0 to 4", r"0\.\.1"],
        files={"trial.yaml": trial(dataset=f"{FIX}:labels_out_of_range")},
        readme="labels outside 0..num_classes-1: the range found and the one expected are named",
    ),
    Case(
        "dataset-function-mismatched",
        TRAIN,
        [r"y_train", r"shape"],
        files={"trial.yaml": trial(dataset=f"{FIX}:wrong_shapes")},
    ),
    Case(
        "dataset-unimportable",
        TRAIN,
        [r"no_such_module", r"cannot import"],
        files={"trial.yaml": trial(dataset="no_such_module:data")},
    ),
    # ----- models ----------------------------------------------------------------------------
    Case(
        "model-subclassed",
        TRAIN,
        [r"subclassed", r"functional"],
        files={"trial.yaml": trial(model=f"{FIX}:subclassed_model")},
        readme="a subclassed model (no graph): refused, with the functional-API fix",
    ),
    Case(
        "model-nothing-to-prune",
        TRAIN,
        [r"nothing to regularize", r"GroupLasso"],
        files={"trial.yaml": trial(model=f"{FIX}:no_prunable_model")},
        readme="a model with no prunable layer: refused before training",
    ),
    Case(
        "model-custom-layer",
        TRAIN,
        [r"'mystery'", r"Mystery", r"register_layer"],
        files={"trial.yaml": trial(model=f"{FIX}:custom_layer_model")},
        readme="a custom layer MorphNet has no rule for: the layer and how to register it are named",
    ),
    Case(
        "model-not-a-model",
        TRAIN,
        [r"tiny_dataset", r"keras\.Model"],
        files={"trial.yaml": trial(model=f"{FIX}:tiny_dataset")},
    ),
    # ----- structure files (morphsweep apply) --------------------------------------------------
    Case("structure-missing", APPLY, [r"s\.json", r"does not exist"]),
    Case("structure-not-json", APPLY, [r"s\.json", r"JSON"], files={"s.json": "{not json"}),
    Case(
        "structure-schema-version",
        APPLY,
        [r"schema", r"99"],
        files={"s.json": structure_edit(_schema)},
        readme="a structure JSON of another schema version: the version is named",
    ),
    Case(
        "structure-unknown-layer",
        APPLY,
        [r"no_such_layer"],
        files={"s.json": structure_edit(_unknown_layer)},
    ),
    Case(
        "structure-alive-above-original",
        APPLY,
        [r"alive", r"original"],
        files={"s.json": structure_edit(_alive_above)},
        readme="more channels alive than the layer has: the layer and both counts are named",
    ),
    Case(
        "structure-negative-count",
        APPLY,
        [r"-3"],
        files={"s.json": structure_edit(_negative)},
    ),
    Case(
        "structure-of-another-model",
        [*APPLY[:3], "zoo:resnet", *APPLY[4:]],
        [r"fingerprint|another model|different model"],
        files={"s.json": structure_edit(lambda d: None)},
        readme="a structure learned on another model: refused, nothing is rebuilt",
    ),
    # ----- command line ----------------------------------------------------------------------
    Case("cli-unknown-command", ["fly"], [r"No such command 'fly'", r"the commands: apply, "]),
    Case(
        "cli-pick-bad-budget",
        ["pick", "existing", "--budget", "flops=abc", "-o", "{dir}/p.json", *URI],
        [r"flops=abc", r"flops=0\.25"],
    ),
    Case(
        "cli-pick-unknown-sweep",
        ["pick", "nosuch", "--knee", "-o", "{dir}/p.json", *URI],
        [r"nosuch"],
    ),
    Case(
        "cli-pick-unknown-target",
        ["pick", "existing", "--budget", "energy=0.3", "-o", "{dir}/p.json", *URI],
        [r"energy"],
    ),
    Case(
        "cli-pick-overwrite-guard",
        ["pick", "existing", "--knee", "-o", "{keep}/structure.json", *URI],
        [r"structure\.json", r"exists"],
        readme="`pick -o` at a file that exists: refused unless --force, the old file is kept",
    ),
    Case(
        "cli-ui-bad-port",
        ["ui", "--port", "-1", "--tracking-uri", "sqlite:///{keep}/mlflow.db"],
        [r"-1", r"0-65535"],
    ),
    Case(
        "cli-pick-nothing-meets",
        ["pick", "existing", "--max-cost", "1", "-o", "{dir}/p.json", *URI],
        [r"cost", r"1"],
    ),
    # ----- pick --register: refused before anything is registered or written ---------------
    Case(
        "cli-pick-register-bad-name",
        [*PICK_KNEE, "--register", "team/model"],
        [r"'team/model'", r"'/'", r"--register my-sweep-knee"],
        readme="`pick --register` a name MLflow refuses ('/', ':', '%', '..'): named, nothing registered",
    ),
    Case(
        "cli-pick-register-dot-name",
        [*PICK_KNEE, "--register", "..models"],
        [r"'\.\.models'", r"folder"],
    ),
    Case(
        "cli-pick-register-unknown-sweep",
        ["pick", "nosuch", "--knee", "-o", "{dir}/p.json", *URI, "--register", "m"],
        [r"nosuch", r"known sweeps"],
    ),
    Case(
        "cli-pick-register-nothing-meets",
        ["pick", "existing", "--max-cost", "1", "-o", "{dir}/p.json", *URI, "--register", "m"],
        [r"cost", r"1"],
    ),
    Case(
        "cli-pick-register-no-model",
        [*PICK_KNEE, "--register", "m"],
        [r"no MLflow model", r"mlflow_model/MLmodel", r"mlflow runs delete --run-id"],
        readme="`pick --register` a trial whose run has no MLflow model (a sweep from before "
        "trials logged one): says so and how to log one, nothing registered",
    ),
    Case(
        "cli-pick-register-no-registry",
        [*PICK_KNEE, "--register", "m"],
        [r"no Model Registry", r"MLFLOW_REGISTRY_URI='nosuch://registry'"],
        env={"MLFLOW_REGISTRY_URI": "nosuch://registry"},
        readme="`pick --register` where the tracking store has no Model Registry: named, nothing "
        "registered",
    ),
    Case(
        "cli-dashboard-bad-port",
        [
            "dashboard",
            "existing",
            "--port",
            "70000",
            "--tracking-uri",
            "sqlite:///{keep}/mlflow.db",
        ],
        [r"70000", r"port"],
    ),
]

# ----- a user's own seed network and image folders (issue 23) ---------------------------------
IMAGES = "images:{dir}/imgs"
CASES += [
    Case(
        "images-missing-folder",
        TRAIN,
        [r"imgs", r"does not exist", r"one\s+subfolder of images per class"],
        files={"trial.yaml": trial(dataset=IMAGES, image_size=8)},
        readme="an image folder that does not exist",
    ),
    Case(
        "images-no-class-folders",
        TRAIN,
        [r"imgs", r"no class subfolders", r"<class>/<image>"],
        files={"trial.yaml": trial(dataset=IMAGES, image_size=8), "imgs/a.png": fix_png(8)},
        readme="an image folder without a subfolder per class",
    ),
    Case(
        "images-class-without-images",
        TRAIN,
        [r"imgs/b", r"has no images"],
        files={
            "trial.yaml": trial(dataset=IMAGES, image_size=8),
            "imgs/a/1.png": fix_png(8),
            "imgs/b/notes.txt": "not an image",
        },
    ),
    Case(
        "images-mixed-sizes",
        TRAIN,
        [r"differ in size", r"8x8", r"10x6", r"image_size"],
        files={
            "trial.yaml": trial(dataset=IMAGES, model="zoo:plain", model_width=4),
            "imgs/a/1.png": fix_png(8),
            "imgs/a/2.png": fix_png(10, 6),
            "imgs/b/3.png": fix_png(8),
        },
        readme="images of several sizes and no `image_size`: both sizes named",
    ),
    Case(
        "images-unreadable",
        TRAIN,
        [r"cannot read image", r"broken\.png", r"replace or remove"],
        files={
            "trial.yaml": trial(dataset=IMAGES, image_size=8, model="zoo:plain", model_width=4),
            "imgs/a/1.png": fix_png(8),
            "imgs/a/broken.png": b"this is not a PNG",
            "imgs/b/2.png": fix_png(8),
        },
        readme="an image file that does not decode: the file is named",
    ),
    Case(
        "images-sweep-without-size",
        RUN,
        [r"imgs", r"image_size", r"\.keras"],
        files={
            "sweep.yaml": sweep(**{"trial.dataset": IMAGES, "trial.model": "zoo:plain"}),
            "imgs/a/1.png": fix_png(8),
            "imgs/b/2.png": fix_png(8),
        },
        readme="a sweep over an image folder with neither `image_size` nor a .keras seed",
    ),
    Case(
        "model-file-missing",
        TRAIN,
        [r"nope\.keras", r"does not exist", r"model\.save"],
        files={"trial.yaml": trial(model="{dir}/nope.keras")},
    ),
    Case(
        "model-file-not-a-model",
        TRAIN,
        [r"bad\.keras", r"not a Keras model"],
        files={"trial.yaml": trial(model="{dir}/bad.keras"), "bad.keras": b"\x00garbage"},
        readme="a `.keras` seed that is not a saved model",
    ),
    Case(
        "model-file-subclassed",
        TRAIN,
        [r"sub\.keras", r"subclassed", r"functional API or keras\.Sequential"],
        files={"trial.yaml": trial(model="{dir}/sub.keras"), "sub.keras": fix_subclassed},
        readme="a `.keras` seed holding a subclassed model",
    ),
    Case(
        "model-file-other-data",
        TRAIN,
        [r"seed\.keras", r"\(4, 4, 1\)", r"\(8, 8, 1\)", r"2 classes", r"has 10"],
        files={
            "trial.yaml": trial(model="{dir}/seed.keras", dataset="digits"),
            "seed.keras": fix_tiny_file,
        },
        readme="a `.keras` seed whose input or classes disagree with the data: both named",
    ),
    Case(
        "sweep-model-file-other-data",
        RUN,
        [r"seed\.keras", r"\(4, 4, 1\)", r"\(8, 8, 1\)"],
        files={
            "sweep.yaml": sweep(**{"trial.model": "{dir}/seed.keras", "trial.dataset": "digits"}),
            "seed.keras": fix_tiny_file,
        },
    ),
    Case(
        "init-pretrained-without-file",
        TRAIN,
        [r"init='pretrained'", r"\.keras", r"init: scratch"],
        files={"trial.yaml": trial(init="pretrained")},
    ),
    Case(
        "bad-retrain-init",
        TRAIN,
        [r"retrain_init", r"'warm'"],
        files={"trial.yaml": trial(retrain_init="warm")},
    ),
    Case(
        "augment-unknown",
        TRAIN,
        [r"'mirror'", r"choose from", r"flip"],
        files={"trial.yaml": trial(augment=["flip", "mirror"])},
        readme="an augmentation that does not exist: named with the ones that do",
    ),
    Case(
        "augment-repeated",
        TRAIN,
        [r"'flip'", r"more than once"],
        files={"trial.yaml": trial(augment=["flip", "crop", "flip"])},
    ),
    Case(
        "augment-not-a-list",
        TRAIN,
        [r"augment", r"list"],
        files={"trial.yaml": trial(augment="flip")},
    ),
    Case(
        "bad-validation-split",
        TRAIN,
        [r"validation_split", r"1\.5"],
        files={"trial.yaml": trial(validation_split=1.5)},
    ),
]
# ----- issue 24's classes: files that are no config, stores and outputs that cannot be used,
# sizes that cannot work, structures that disagree with their model, checkpoints of other configs
CASES += [
    Case(
        "config-binary",
        TRAIN,
        [r"trial\.yaml", r"not a text file"],
        files={"trial.yaml": b"\x00\x01\xff\xfe"},
        readme="a config file that is binary: named as not a text file",
    ),
    Case(
        "sweep-config-binary",
        RUN,
        [r"sweep\.yaml", r"not a text file"],
        files={"sweep.yaml": b"\xff\xfe\x00"},
    ),
    Case(
        "config-directory",
        ["train", "{dir}/conf"],
        [r"conf", r"is a directory"],
        files={"conf/readme.txt": "a folder, not a config"},
        readme="a directory given as the config: named as a directory, not as missing",
    ),
    Case(
        "sweep-config-directory", ["run", "{dir}/conf"], [r"is a directory"], files={"conf/x": "x"}
    ),
    Case(
        "config-empty",
        TRAIN,
        [r"trial\.yaml", r"is empty"],
        files={"trial.yaml": ""},
        readme="an empty config file: refused instead of training the defaults",
    ),
    Case("sweep-config-empty", RUN, [r"is empty"], files={"sweep.yaml": "# nothing yet\n"}),
    Case(
        "config-a-list", TRAIN, [r"mapping", r"list"], files={"trial.yaml": "- model\n- dataset\n"}
    ),
    Case(
        "tracking-uri-ftp",
        RUN,
        [r"ftp://", r"sqlite:///"],
        files={"sweep.yaml": sweep(tracking_uri="ftp://example.org/mlflow")},
        readme="a tracking URI MLflow cannot track to (`ftp://`, a bare path): the scheme is named",
    ),
    Case(
        "pareto-tracking-uri-ftp",
        ["pareto", "existing", "--tracking-uri", "ftp://x/y"],
        [r"ftp://"],
    ),
    Case(
        "pick-tracking-uri-bare-path",
        ["pick", "existing", "--knee", "-o", "{dir}/p.json", "--tracking-uri", "{keep}/mlflow.db"],
        [r"no scheme", r"sqlite:///"],
    ),
    Case(
        "tracking-sqlite-no-directory",
        RUN,
        [r"nowhere", r"does not exist", r"not created"],
        files={"sweep.yaml": sweep(tracking_uri="sqlite:///{dir}/nowhere/mlflow.db")},
        readme="a `sqlite:` URI under a directory that does not exist: refused, no directory made",
    ),
    Case(
        "tracking-sqlite-directory",
        RUN,
        [r"is a directory", r"mlflow\.db"],
        files={"sweep.yaml": sweep(tracking_uri="sqlite:///{dir}/conf"), "conf/x": "x"},
    ),
    Case(
        "pareto-no-store",
        ["pareto", "existing", "--tracking-uri", "sqlite:///{dir}/none.db"],
        [r"no MLflow store", r"none\.db"],
        readme="`pareto`, `pick` or `ui` on a SQLite store that does not exist: refused, none made",
    ),
    Case(
        "ui-no-store",
        ["ui", "existing", "--tracking-uri", "sqlite:///{dir}/none.db"],
        [r"no MLflow store"],
    ),
    Case(
        "pareto-server-not-answering",
        ["pareto", "existing", "--tracking-uri", "http://127.0.0.1:9"],
        [r"127\.0\.0\.1:9", r"cannot reach"],
        readme="`pareto`/`pick`/`ui` against a tracking server that does not answer: within seconds",
    ),
    Case(
        "pick-server-not-answering",
        [
            "pick",
            "existing",
            "--knee",
            "-o",
            "{dir}/p.json",
            "--tracking-uri",
            "http://127.0.0.1:9",
        ],
        [r"cannot reach"],
    ),
    Case(
        "train-output-under-a-file",
        [*TRAIN, "-o", "{dir}/afile/out"],
        [r"afile", r"not a folder"],
        files={"trial.yaml": trial(), "afile": "a file"},
        readme="an output path that cannot be written (`-o`, `--out`): refused before any work",
    ),
    Case(
        "train-output-empty",
        [*TRAIN, "-o", ""],
        [r"output_dir is empty"],
        files={"trial.yaml": trial()},
    ),
    Case(
        "apply-output-under-a-file",
        [*APPLY[:-1], "{dir}/afile/m.keras"],
        [r"afile", r"not a folder"],
        files={"s.json": structure_edit(lambda d: None), "afile": "a file"},
    ),
    Case(
        "apply-output-a-directory",
        [*APPLY[:-1], "{dir}/conf"],
        [r"conf", r"is a directory"],
        files={"s.json": structure_edit(lambda d: None), "conf/x": "x"},
    ),
    Case(
        "pick-output-under-a-file",
        ["pick", "existing", "--knee", "-o", "{dir}/afile/p.json", *URI],
        [r"afile", r"not a folder"],
        files={"afile": "a file"},
    ),
    Case(
        "dashboard-out-a-file",
        ["dashboard", "existing", "--no-serve", "--out", "{dir}/afile", *URI],
        [r"afile", r"is a file"],
        files={"afile": "a file"},
    ),
    Case(
        "apply-corrupt-model-file",
        ["apply", "{dir}/s.json", "--model", "{dir}/bad.keras", "-o", "{dir}/m.keras"],
        [r"bad\.keras", r"not a Keras"],
        files={"s.json": structure_edit(lambda d: None), "bad.keras": b"PK\x03\x04 not a zip"},
        readme="a corrupt `.keras` file: named as not a Keras model file, not as missing",
    ),
    Case(
        "apply-bad-input-shape",
        [*APPLY, "--input-shape", "0,-1"],
        [r"--input-shape '0,-1'", r"32,32,3"],
        files={"s.json": structure_edit(lambda d: None)},
        readme="`apply --input-shape` or `--width` values no network can take: refused by name",
    ),
    Case(
        "apply-input-shape-words",
        [*APPLY, "--input-shape", "a,b"],
        [r"'a,b'"],
        files={"s.json": structure_edit(lambda d: None)},
    ),
    Case(
        "apply-width-huge",
        [*APPLY[:4], "--width", "1000000", "-o", "{dir}/m.keras"],
        [r"1000000", r"4096"],
    ),
    Case(
        "apply-structure-missing-a-layer",
        APPLY,
        [r"lacks 1 prunable layer", r"export it again"],
        files={"s.json": structure_edit(_drop_a_layer)},
        readme="`apply` with a structure that lacks one of the model's layers, or whose "
        "alive_channels disagree with its alive count: refused, naming the layer",
    ),
    Case(
        "apply-structure-channels-disagree",
        APPLY,
        [r"alive_channels", r"must agree"],
        files={"s.json": structure_edit(_channels_disagree)},
    ),
    Case(
        "sweep-strengths-overflow",
        RUN,
        [r"decades_above", r"\[0, 30\]"],
        files={"sweep.yaml": sweep(strengths={"decades_above": 400})},
        readme="a strength grid whose numbers overflow: refused before the seed is costed",
    ),
    Case(
        "sweep-max-concurrent-true",
        RUN,
        [r"max_concurrent", r"True"],
        files={"sweep.yaml": sweep(max_concurrent=True)},
        readme="`true` where a count goes (`max_concurrent: true`): refused, never taken as 1",
    ),
    Case(
        "sweep-duplicate-algorithms",
        RUN,
        [r"'gamma' listed more than once"],
        files={"sweep.yaml": sweep(algorithms=["gamma", "gamma"])},
        readme="an algorithm listed twice: refused, not run once without a word",
    ),
    Case(
        "image-smaller-than-strides",
        TRAIN,
        [r"1x1", r"image_size >= \d+"],
        files={"trial.yaml": trial(model="zoo:resnet", dataset="digits", image_size=1)},
        readme="images smaller than the network's strides (`image_size: 1`): refused, the "
        "smallest size named",
    ),
    Case(
        "sweep-image-smaller-than-strides",
        RUN,
        [r"2x2", r"image_size >= \d+"],
        files={
            "sweep.yaml": sweep(
                **{"trial.model": "zoo:resnet", "trial.dataset": "digits", "trial.image_size": 2}
            )
        },
    ),
    Case(
        "trial-width-huge",
        TRAIN,
        [r"model_width", r"4096"],
        files={"trial.yaml": trial(model_width=100000)},
    ),
    Case(
        "checkpoint-of-another-config",
        TRAIN,
        [r"different trial config", r"batch_size: 4 -> 8", r"--no-resume"],
        files={"trial.yaml": trial(), "out/checkpoint/state.json": checkpoint_of(batch_size=4)},
        readme="rerunning with a changed config on the same output directory: the changed "
        "fields are named, with the flag that starts fresh",
    ),
    Case(
        "sweep-checkpoint-of-another-config",
        RUN,
        [r"different trial config", r"epochs: 3 -> 1", r"another name or workdir"],
        files={
            "sweep.yaml": sweep(),
            "storage/bad-input/trials/baseline-flops-w1-s0/checkpoint/state.json": checkpoint_of(
                epochs=3
            ),
        },
    ),
    Case(
        "set-extra-not-a-mapping",
        [*TRAIN, "--set", "extra=notadict"],
        [r"extra must be a mapping", r"'notadict'"],
        files={"trial.yaml": trial()},
    ),
]


BY_ID = {case.id: case for case in CASES}


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 40
    assert len(BY_ID) == len(CASES)


@pytest.fixture(scope="module")
def keep(tmp_path_factory):
    """What is on disk before any case: a structure file and an earlier sweep's MLflow store."""
    root = tmp_path_factory.mktemp("keep")
    from trainers.models import build_model
    from trainers.morphnet.keras3 import GammaFlopsRegularizer

    model = build_model("zoo:plain", (8, 8, 1), 10, width=8, seed=0)
    GammaFlopsRegularizer(model, 0.1).structure().save(root / "structure.json")
    from sweep.tracking import SweepTracker
    from trainers.records import Outcome

    tracker = SweepTracker(f"sqlite:///{root / 'mlflow.db'}", "existing")
    for trial_id, cost, accuracy in (
        ("gamma-flops-m1-s0", 50.0, 0.9),
        ("baseline-flops-w1-s0", 100.0, 0.95),
    ):
        tracker.start(trial_id, {"algorithm": trial_id.split("-")[0], "target": "flops"})
        # a finished trial's outcome as a sweep logs it (but no MLflow model: an older sweep)
        outcome = Outcome(
            seed_cost=100.0, predicted_cost=cost, rebuilt_cost=cost, retrained_val_accuracy=accuracy
        )
        tracker.log_metrics(trial_id, outcome.metrics("flops"), step=0)
        tracker.finish(trial_id, "FINISHED")
    tracker.finish_sweep()
    return root


def registered(keep: Path) -> list[str]:
    """The registered models of the earlier sweep's store (its registry, whatever the env says)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{keep / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return [model.name for model in client.search_registered_models()]


def snapshot(root: Path) -> dict[str, str]:
    """Every file's hash and every folder under ``root`` (a new empty folder is a change too)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


def fill(text: str, directory: Path, keep: Path) -> str:
    return text.replace("{dir}", str(directory)).replace("{keep}", str(keep))


def write_files(case: Case, directory: Path, keep: Path) -> None:
    for name, content in case.files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content = content(keep)
        if isinstance(content, dict):
            content = yaml.safe_dump(content)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(fill(content, directory, keep))


@pytest.fixture
def trip_wires(monkeypatch):
    """Anything that trains or launches trials fails the test."""
    from trainers.morphnet.keras3.backend import keras

    def training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(keras.Model, "fit", training)
    import sweep.driver

    monkeypatch.setattr(sweep.driver, "_tune", training)
    yield
    import ray

    if ray.is_initialized():  # a sweep that got as far as its cluster: no Ray left behind
        ray.shutdown()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, keep, tmp_path, monkeypatch, capsys, trip_wires):
    from sweep.cli import main

    directory = tmp_path / "case"
    directory.mkdir()
    write_files(case, directory, keep)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(directory)
    before, before_case = snapshot(keep), snapshot(directory)
    try:
        code = main([fill(a, directory, keep) for a in case.argv])
        message = ""
    except SystemExit as exc:
        code, message = (exc.code, "") if isinstance(exc.code, int) else (1, str(exc.code))
    captured = capsys.readouterr()
    text = "\n".join(t for t in (captured.err, captured.out, message) if t.strip())
    assert code == case.code, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, text  # one message
    for pattern in case.expect:
        assert re.search(pattern, text), (pattern, text)
    # nothing on disk changed: the earlier sweep's store and files, the case's own inputs
    assert snapshot(keep) == before
    if "--register" in case.argv:
        assert registered(keep) == []
    assert snapshot(directory) == before_case
    assert not (directory / "PWNED").exists()


def test_readme_lists_the_cases():
    """README's "What happens when..." table: one row per case that has README text."""
    text = (ROOT / "README.md").read_text()
    assert f"tests/test_bad_inputs.py`, {len(CASES)} cases" in text
    for case in CASES:
        if case.readme:
            assert f"`{case.id}`" in text, f"README lacks the row for {case.id}"


def test_the_trip_wires_catch_training(keep, tmp_path, monkeypatch, trip_wires):
    """The same runner on good inputs reaches training and the trial launch: the wires work."""
    from sweep.cli import main

    directory = tmp_path / "case"
    directory.mkdir()
    (directory / "trial.yaml").write_text(yaml.safe_dump(trial(output_dir=str(directory / "out"))))
    with pytest.raises(AssertionError, match="training started"):
        main(["--debug", "train", str(directory / "trial.yaml")])  # --debug: let it through
    good = sweep(tracking_uri=f"sqlite:///{directory / 'mlflow.db'}")
    text = fill(yaml.safe_dump(good), directory, keep)
    (directory / "sweep.yaml").write_text(text)
    with pytest.raises(AssertionError, match="training started"):
        main(["--debug", "run", str(directory / "sweep.yaml")])


# ----- the generic check: every command, every input it takes, a set of hostile values --------
# (issue 24) Each must end with exit 2, one message naming the input, no traceback, within 15 s,
# and nothing on disk changed. The values are not chosen per slot: any slot must refuse them all.
HOSTILE_FILES: dict[str, Any] = {
    "empty": "",
    "binary": b"\x00\xff\xfe\x01" * 64,
    "directory": None,  # a folder where the file goes
    "missing": ...,  # nothing there
    "huge-number": "9" * 5000 + "\n",
    "a-list": "[1, 2, 3]\n",
    "nan": ".nan\n",
}
HOSTILE_VALUES = ["", "nan", "inf", "-1", "1e400", "true", "[]", "abc"]
STRUCTURE = "{keep}/structure.json"
APPLY_KEPT = ["apply", STRUCTURE, "--model", "zoo:plain", "--width", "8", "-o", "{dir}/m.keras"]
FILE_SLOTS = {  # slot -> (argv with {input}, what the message must name)
    "train-config": (["train", "{input}.yaml"], "input.yaml"),
    "run-config": (["run", "{input}.yaml"], "input.yaml"),
    "submit-config": (["submit", "{input}.yaml", "--address", "http://127.0.0.1:9"], "input.yaml"),
    "apply-structure": (
        ["apply", "{input}.json", "--model", "zoo:plain", "-o", "{dir}/m.keras"],
        "input.json",
    ),
    "apply-model-file": (
        ["apply", STRUCTURE, "--model", "{input}.keras", "-o", "{dir}/m.keras"],
        "input.keras",
    ),
}
VALUE_SLOTS = {  # slot -> (argv with {value}, what the message must name)
    "set-learning-rate": ([*TRAIN, "--set", "learning_rate={value}"], "learning_rate"),
    "set-epochs": ([*TRAIN, "--set", "epochs={value}"], "epochs"),
    "set-model-width": ([*TRAIN, "--set", "model_width={value}"], "model_width"),
    "set-image-size": ([*TRAIN, "--set", "image_size={value}"], "image_size"),
    "sweep-max-concurrent": (["run", "{dir}/max_concurrent.yaml"], "max_concurrent"),
    "sweep-retries": (["run", "{dir}/retries.yaml"], "retries"),
    "sweep-budget-tolerance": (["run", "{dir}/budget_tolerance.yaml"], "budget_tolerance"),
    "sweep-decades-above": (["run", "{dir}/decades_above.yaml"], "decades_above"),
    "sweep-gpus": (["run", "{dir}/gpus.yaml"], "gpus"),
    "apply-width": ([*APPLY_KEPT, "--width", "{value}"], "--width"),
    "apply-input-shape": ([*APPLY_KEPT, "--input-shape", "{value}"], "--input-shape"),
    "apply-min-channels": ([*APPLY_KEPT, "--min-channels", "{value}"], "--min-channels"),
    "apply-num-classes": ([*APPLY_KEPT, "--num-classes", "{value}"], "--num-classes"),
    "pick-max-cost": (
        ["pick", "existing", "-o", "{dir}/p.json", *URI, "--max-cost", "{value}"],
        "--max-cost",
    ),
    "pick-min-accuracy": (
        ["pick", "existing", "-o", "{dir}/p.json", *URI, "--min-accuracy", "{value}"],
        "--min-accuracy",
    ),
    "pick-budget": (
        ["pick", "existing", "-o", "{dir}/p.json", *URI, "--budget", "flops={value}"],
        "--budget",
    ),
    "ui-port": (["ui", *URI, "--port", "{value}"], "port"),
    "dashboard-port": (["dashboard", "existing", *URI, "--port", "{value}"], "port"),
}
HOSTILE_URIS = [
    "",
    "ftp://x/y",
    "sqlite:////nonexistent-morphsweep/m.db",
    "http://127.0.0.1:9",
    "{dir}",
    "sqlite:///{dir}/input.db",
]
URI_SLOTS = {
    "pareto": ["pareto", "existing"],
    "pick": ["pick", "existing", "--knee", "-o", "{dir}/p.json"],
    "ui": ["ui", "existing"],
    "dashboard": ["dashboard", "existing", "--no-serve"],
}
SWEEP_FIELDS = {
    "max_concurrent": "max_concurrent",
    "retries": "retries",
    "budget_tolerance": "budget_tolerance",
    "decades_above": "strengths.decades_above",
    "gpus": "resources.gpus",
}


def hostile_cases() -> list[Any]:
    cases = []
    for slot, (argv, names) in FILE_SLOTS.items():
        for kind in HOSTILE_FILES:
            cases.append(pytest.param(slot, kind, argv, names, id=f"{slot}-{kind}"))
    for slot, (argv, names) in VALUE_SLOTS.items():
        for i, value in enumerate(HOSTILE_VALUES):
            cases.append(
                pytest.param(slot, value, argv, names, id=f"{slot}-{i}-{value or 'empty'}")
            )
    for slot, argv in URI_SLOTS.items():
        for i, uri in enumerate(HOSTILE_URIS):
            cases.append(pytest.param(f"uri-{slot}", uri, argv, "", id=f"uri-{slot}-{i}"))
    return cases


def _prepare(slot: str, value: Any, directory: Path, keep: Path) -> list[str]:
    """The case's files; the extra arguments it adds."""
    (directory / "trial.yaml").write_text(yaml.safe_dump(trial(output_dir=str(directory / "out"))))
    if slot in FILE_SLOTS:
        suffix = Path(FILE_SLOTS[slot][0][1 if slot != "apply-model-file" else 3]).suffix
        path = directory / f"input{suffix}"
        content = HOSTILE_FILES[value]
        if content is None:
            path.mkdir()
        elif content is not ...:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return []
    if slot.startswith("sweep-"):
        field_name = slot.removeprefix("sweep-").replace("-", "_")
        block, _, key = SWEEP_FIELDS[field_name].rpartition(".")
        config = sweep()
        text = fill(yaml.safe_dump(config), directory, keep)
        # the value exactly as a user types it into the YAML
        line = f"{key}: {value}" if not block else f"{block}: {{{key}: {value}}}"
        (directory / f"{field_name}.yaml").write_text(text + line + "\n")
        return []
    if slot.startswith("uri-"):
        (directory / "input.db").write_bytes(b"\x00\xff not a database" * 8)
        return ["--tracking-uri", fill(value, directory, keep)]
    return []


@pytest.mark.parametrize(("slot", "value", "argv", "names"), hostile_cases())
def test_hostile_input(slot, value, argv, names, keep, tmp_path, monkeypatch, capsys, trip_wires):
    """Any command, any input, any hostile value: exit 2, one message naming the input, no
    traceback, within 15 s, nothing on disk changed."""
    import time

    from sweep.cli import main

    directory = tmp_path / "case"
    directory.mkdir()
    extra = _prepare(slot, value, directory, keep)
    monkeypatch.chdir(directory)
    before, before_case = snapshot(keep), snapshot(directory)
    args = [
        fill(a, directory, keep)
        .replace("{input}", str(directory / "input"))
        .replace("{value}", value if isinstance(value, str) else "")
        for a in argv
    ]
    started = time.monotonic()
    code = main([*args, *extra])
    took = time.monotonic() - started
    captured = capsys.readouterr()
    text = "\n".join(t for t in (captured.err, captured.out) if t.strip())
    assert code == 2, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, text
    if names:
        assert names in text, (names, text)
    assert took < 15, f"{took:.1f} s: {text}"
    assert snapshot(keep) == before
    assert snapshot(directory) == before_case, text


def test_a_port_in_use_is_refused(keep, tmp_path, capsys):
    """`ui` and `dashboard` on a port another server holds: exit 2 naming it, no links printed."""
    import socket

    from sweep.cli import main

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        uri = f"sqlite:///{keep / 'mlflow.db'}"
        for argv in (
            ["ui", "existing", "--tracking-uri", uri, "--port", port],
            [
                "dashboard",
                "existing",
                "--tracking-uri",
                uri,
                "--port",
                port,
                "--out",
                str(tmp_path / "d"),
            ],
        ):
            assert main(argv) == 2
            text = capsys.readouterr()
            assert f"127.0.0.1:{port}" in text.err and "choose another --port" in text.err
            assert "http://" not in text.out  # no links to whatever holds the port
    assert not (tmp_path / "d").exists()


def test_a_failure_of_ours_is_one_line_and_debug_shows_it(tmp_path, monkeypatch, capsys):
    """An exception no check foresaw: exit 1, one line naming it and --debug; --debug raises it."""
    import trainers.trial
    from sweep.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(trainers.trial, "run_trial", broken)
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(trial(output_dir=str(tmp_path / "out"))))
    assert main(["train", str(tmp_path / "trial.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "morphsweep train: internal error: RuntimeError: a bug over two lines (rerun with "
        "--debug for the traceback, and please report it)"
    )
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", str(tmp_path / "trial.yaml"), "--debug"])
    assert not (tmp_path / "out").exists()  # the failed trial left no empty folder


def test_gpus_no_node_has_fail_at_once(tmp_path):
    """A sweep asking for a GPU where no node has one (this machine) fails as soon as Ray is up,
    naming the nodes' totals, with no MLflow run made (instead of trials PENDING forever)."""
    import os
    import subprocess
    import sys

    config = sweep(resources={"gpus": 1}, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "sweep.yaml").write_text(fill(yaml.safe_dump(config), tmp_path, tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "run", str(tmp_path / "sweep.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("morphsweep run: each trial asks for 1 GPU, but no node has"), last
    assert "resources.gpus" in last
    assert not (tmp_path / "mlflow.db").exists()  # no sweep was recorded
