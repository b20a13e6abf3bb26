"""The real-workload path end to end: a sweep seeded from a trained .keras file over a folder of
images, on a local Ray; the driver opens no image."""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweep.cli import main
from sweep.results import format_front, front
from sweep.store import TAG_ROLE, TAG_TRIAL, SweepStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """What make_real_workload.py writes, smaller: 300 shapes32 PNGs and a seed trained on them."""
    sys.path.insert(0, str(ROOT / "sweep" / "examples"))
    try:
        from make_real_workload import train_seed, write_images
    finally:
        sys.path.pop(0)
    out = tmp_path_factory.mktemp("workload")
    images = write_images(out, 300)
    train_seed(images, out, epochs=2, width=4)
    return out


def test_a_sweep_from_a_seed_file_over_an_image_folder(workload, tmp_path, monkeypatch):
    import PIL.Image

    images = workload / "images"
    config = {
        "name": "real-e2e",
        "trial": {
            "model": str(workload / "seed.keras"),
            "dataset": f"images:{images}",
            "epochs": 1,
            "retrain_epochs": 1,
            "batch_size": 16,
            "steps_per_epoch": 3,
        },
        "algorithms": ["gamma"],
        "targets": ["flops"],
        "strengths": {"decades_below": 0, "decades_above": 0, "points_per_decade": 1},
        "seeds": [0],
        "baseline": {"widths": [0.5]},
        "resources": {"cpus": 1},
        "max_concurrent": 2,
        "retries": 0,
        "early_stop": "off",
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "workdir": str(tmp_path / "work"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    # every way the driver could read an image: Pillow, or the file itself
    opened: list[str] = []
    real_open, real_image_open = builtins.open, PIL.Image.open

    def counting_open(file, *args, **kwargs):
        if str(file).startswith(str(images)):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_image_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_image_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(PIL.Image, "open", counting_image_open)
    os.environ["PYTHONPATH"] = f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"
    assert main(["run", str(path), "--verbose", "0"]) == 0
    assert opened == []
    client = MlflowClient(config["tracking_uri"])
    experiment = client.get_experiment_by_name("real-e2e")
    found = client.search_runs([experiment.experiment_id])
    trials = {r.data.tags[TAG_TRIAL]: r for r in found if r.data.tags.get(TAG_ROLE) == "trial"}
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials.values())
    for run in trials.values():
        # each trial measured the trained seed before learning, on the same validation images
        assert 0 <= run.data.metrics["seed_val_accuracy"] <= 1
        assert run.data.params["model"] == str(workload / "seed.keras")
    accuracies = {r.data.metrics["seed_val_accuracy"] for r in trials.values()}
    assert len(accuracies) == 1
    # the front is shown beside the trained seed it was measured against
    text = format_front(front(SweepStore(config["tracking_uri"], "real-e2e")))
    assert f"accuracy {accuracies.pop():.4g} before learning" in text, text
    # the wires count what they should: an image opened here is counted
    with PIL.Image.open(next(images.rglob("*.png"))):
        pass
    assert opened
