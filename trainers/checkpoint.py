"""A trial's checkpoint: the weights, optimizer state and progress it resumes from, in one directory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TrialConfigError
from .reporting import write_json

# the config fields a resumed trial may change: where it writes, how much it prints, how it
# compiles (nothing else may differ from the run that wrote the checkpoint)
RESUMABLE_CHANGES = frozenset({"output_dir", "verbose", "jit_compile"})
FRESH = "rerun with --no-resume (or remove the directory) to start fresh"


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a trial config a checkpoint belongs to (``RESUMABLE_CHANGES`` left out)."""
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: saved -> now`` for each field the saved config has and the two disagree on (a
    field added since the checkpoint was written is not a difference)."""
    keys = sorted(saved)
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in keys if saved.get(k) != now.get(k)]


class Checkpoint:
    """Weights, optimizer state and progress of a trial, in one directory.

    A process killed while saving must leave the previous checkpoint whole: each save writes its
    weights and optimizer state under new names (``model-<n>.weights.npz``, ``optimizer-<n>.npz``),
    then replaces ``state.json`` (atomically) naming them, and only then removes the older files.
    A kill at any point leaves ``state.json`` naming complete files. The weights are saved by
    variable path and shape (a plain ``.npz``: a tenth of the time of Keras' ``.weights.h5``), so
    a checkpoint of another network is refused by name instead of loaded wrongly.
    """

    FILES = "checkpoint_files"  # the key of state.json naming the weight and optimizer files
    CONFIG = "trial_config"  # the key of state.json holding the config that wrote it

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def state(self) -> dict[str, Any] | None:
        path = self.dir / "state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        state.pop(self.FILES, None)
        return state

    def check_config(self, config: dict[str, Any], fresh: str = FRESH) -> None:
        """Refuse to resume under a config other than the one that wrote the checkpoint.

        Raises:
            TrialConfigError: naming each field that differs and how to start fresh (``fresh``).
        """
        saved = (self.state() or {}).get(self.CONFIG)
        if saved is None:  # no checkpoint, or one from before configs were saved
            return
        changed = differences(identity(saved), identity(config))
        if changed:
            raise TrialConfigError(
                f"the checkpoint in {self.dir} was written by a different trial config "
                f"({'; '.join(changed)}); {fresh}"
            )

    def _files(self) -> tuple[Path, Path, list[list[Any]]]:
        path = self.dir / "state.json"
        named = json.loads(path.read_text()).get(self.FILES) if path.is_file() else None
        if not named:  # a checkpoint from before the files were numbered
            return self.dir / "model.weights.h5", self.dir / "optimizer.npz", []
        return self.dir / named["weights"], self.dir / named["optimizer"], named.get("layout", [])

    def save(self, model: Any, optimizer: Any, state: dict[str, Any]) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        found = (re.fullmatch(r"model-(\d+)\.weights\.\w+", p.name) for p in self.dir.iterdir())
        n = max((int(m[1]) for m in found if m), default=0) + 1
        weights, opt = f"model-{n}.weights.npz", f"optimizer-{n}.npz"
        values = [np.asarray(v) for v in model.weights]
        np.savez(self.dir / weights, **{f"w{i}": a for i, a in enumerate(values)})  # type: ignore[arg-type]
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
        np.savez(self.dir / opt, **arrays)  # type: ignore[arg-type]
        layout = [[v.path, list(a.shape)] for v, a in zip(model.weights, values, strict=True)]
        files = {"weights": weights, "optimizer": opt, "layout": layout}
        write_json(self.dir / "state.json", {**state, self.FILES: files})
        for old in [*self.dir.glob("model*.weights.*"), *self.dir.glob("optimizer*.npz")]:
            if old.name not in (weights, opt):
                old.unlink(missing_ok=True)
        return str(self.dir)

    def restore(self, model: Any, optimizer: Any) -> None:
        """Load the weights and optimizer state into ``model`` and ``optimizer``.

        Raises:
            TrialConfigError: the checkpoint holds another network's weights (the first variable
                that differs is named).
        """
        weights, opt, layout = self._files()
        if weights.suffix == ".h5":  # written before the weights were saved by path
            model.load_weights(str(weights))
        else:
            self._check_layout(model, layout)
            saved = np.load(weights)
            for i, v in enumerate(model.weights):
                v.assign(saved[f"w{i}"])
        optimizer.build(model.trainable_variables)
        state = np.load(opt)
        if len(state.files) != len(optimizer.variables):
            raise TrialConfigError(
                f"the checkpoint in {self.dir} holds {len(state.files)} optimizer variables where "
                f"this trial's optimizer has {len(optimizer.variables)}; {FRESH}"
            )
        for i, v in enumerate(optimizer.variables):
            v.assign(state[f"v{i}"])

    def _check_layout(self, model: Any, layout: list[list[Any]]) -> None:
        """The saved shapes against the model's, in order (layer names may be numbered
        differently in another process, so only the shapes must agree)."""
        now = [[v.path, list(v.shape)] for v in model.weights]
        if [shape for _, shape in now] == [shape for _, shape in layout]:
            return
        for i, (saved, current) in enumerate(zip(layout, now, strict=False)):
            if saved[1] != current[1]:
                what = (
                    f"variable {i}, {current[0]}, is {tuple(current[1])} in this network and "
                    f"{tuple(saved[1])} in the checkpoint"
                )
                break
        else:
            what = f"it holds {len(layout)} variables, this network {len(now)}"
        raise TrialConfigError(
            f"the checkpoint in {self.dir} belongs to another network ({what}); {FRESH}"
        )
