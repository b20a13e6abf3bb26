"""A trial's checkpoint: the weights, optimizer state and progress it resumes from, in one directory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .reporting import write_json


class Checkpoint:
    """Weights, optimizer state and progress of a trial, in one directory.

    A process killed while saving must leave the previous checkpoint whole: each save writes its
    weights and optimizer state under new names (``model-<n>.weights.h5``, ``optimizer-<n>.npz``),
    then replaces ``state.json`` (atomically) naming them, and only then removes the older files.
    A kill at any point leaves ``state.json`` naming complete files.
    """

    FILES = "checkpoint_files"  # the key of state.json naming the weight and optimizer files

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def state(self) -> dict[str, Any] | None:
        path = self.dir / "state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        state.pop(self.FILES, None)
        return state

    def _files(self) -> tuple[Path, Path]:
        path = self.dir / "state.json"
        named = json.loads(path.read_text()).get(self.FILES) if path.is_file() else None
        if not named:  # a checkpoint from before the files were numbered
            return self.dir / "model.weights.h5", self.dir / "optimizer.npz"
        return self.dir / named["weights"], self.dir / named["optimizer"]

    def save(self, model: Any, optimizer: Any, state: dict[str, Any]) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        found = (re.fullmatch(r"model-(\d+)\.weights\.h5", p.name) for p in self.dir.iterdir())
        n = max((int(m[1]) for m in found if m), default=0) + 1
        weights, opt = f"model-{n}.weights.h5", f"optimizer-{n}.npz"
        model.save_weights(str(self.dir / weights))
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
        np.savez(self.dir / opt, **arrays)  # type: ignore[arg-type]
        write_json(
            self.dir / "state.json", {**state, self.FILES: {"weights": weights, "optimizer": opt}}
        )
        for old in [*self.dir.glob("model*.weights.h5"), *self.dir.glob("optimizer*.npz")]:
            if old.name not in (weights, opt):
                old.unlink(missing_ok=True)
        return str(self.dir)

    def restore(self, model: Any, optimizer: Any) -> None:
        weights, opt = self._files()
        model.load_weights(str(weights))
        optimizer.build(model.trainable_variables)
        saved = np.load(opt)
        for i, v in enumerate(optimizer.variables):
            v.assign(saved[f"v{i}"])
