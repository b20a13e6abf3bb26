"""The learned structure: surviving widths per prunable layer, and its JSON form.

JSON (``schema_version`` 1)::

    {
      "schema_version": 1,
      "model": {"name": "resnet", "fingerprint": "3f2a..."},
      "regularizer": "GammaFlops",
      "step": 1200,
      "cost": {"name": "FLOPs", "seed": 1.2e8, "learned": 7.9e7, "definition": "rebuild",
               "rebuild_min_channels": 0, "morphnet": 7.6e7},
      "layers": {"conv1": {"alive": 12, "original": 16, "class": "Conv2D",
                           "alive_channels": [0, 1, 3, ...], "op": "conv1/Conv2D"}},
      "flat": {"conv1/Conv2D": 12}
    }

``cost.learned`` is the cost of the model ``apply_structure`` rebuilds from the structure
(``definition: "rebuild"``): output layers at full width, and, when a layer pruned to zero cuts
the network (the rebuild then needs ``min_channels=1``, ``rebuild_min_channels``), every layer
at least one channel wide. ``cost.morphnet``, when present, is the original MorphNet's
``get_cost()`` at export: the regularized network pruned to its alive channels, the logits
included. Structures made by hand or by older versions have no ``definition``.

``flat`` is the original MorphNet's ``{op name: alive count}`` view; ``save_alive_counts`` also
writes it as ``<dir>/learned_structure/alive_<step>`` for users coming from MorphNet.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import StructureError
from .graph import Graph

SCHEMA_VERSION = 1
ALIVE_FILENAME = "alive"


@dataclass(frozen=True)
class LayerStructure:
    """Alive and original output channels of one prunable layer."""

    alive: int
    original: int
    alive_channels: tuple[int, ...] = ()
    layer_class: str = ""
    op_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "alive": self.alive,
            "original": self.original,
            "class": self.layer_class,
            "alive_channels": list(self.alive_channels),
            "op": self.op_name,
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> LayerStructure:
        try:
            alive, original = int(data["alive"]), int(data["original"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StructureError(
                f"layer {name!r} of the structure needs integer 'alive' and 'original', got {data!r}"
            ) from exc
        if not 0 <= alive <= original:
            raise StructureError(
                f"layer {name!r} has alive={alive} outside [0, original={original}]"
            )
        channels = tuple(int(c) for c in data.get("alive_channels", range(alive)))
        return cls(alive, original, channels, str(data.get("class", "")), str(data.get("op", "")))


@dataclass(frozen=True)
class Structure:
    """A learned structure, keyed by Keras layer name."""

    layers: Mapping[str, LayerStructure]
    cost_name: str = ""
    seed_cost: float = 0.0
    learned_cost: float = 0.0
    regularizer: str = ""
    model_name: str = ""
    fingerprint: str = ""
    step: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    cost_definition: str = ""  # "rebuild": learned_cost is the rebuilt model's cost
    rebuild_min_channels: int = 0  # the min_channels that rebuild needs (and learned_cost counts)
    morphnet_cost: float | None = None  # the original get_cost() semantics, at export

    def flat(self) -> dict[str, int]:
        """The original exporter's view: ``{op name: alive count}``, sorted by name."""
        return dict(sorted((s.op_name or name, s.alive) for name, s in self.layers.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": {"name": self.model_name, "fingerprint": self.fingerprint},
            "regularizer": self.regularizer,
            "step": self.step,
            "cost": self._cost_dict(),
            "layers": {name: s.to_dict() for name, s in self.layers.items()},
            "flat": self.flat(),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    def _cost_dict(self) -> dict[str, Any]:
        cost: dict[str, Any] = {
            "name": self.cost_name,
            "seed": self.seed_cost,
            "learned": self.learned_cost,
        }
        if self.cost_definition:
            cost["definition"] = self.cost_definition
            cost["rebuild_min_channels"] = self.rebuild_min_channels
        if self.morphnet_cost is not None:
            cost["morphnet"] = self.morphnet_cost
        return cost

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Structure:
        if not isinstance(data, Mapping) or "layers" not in data:
            raise StructureError(
                "a structure must be a JSON object with 'schema_version' and 'layers'; "
                "for a flat MorphNet alive file use Structure.from_flat(counts)"
            )
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StructureError(
                f"structure schema_version {version!r} is not supported (this version reads "
                f"{SCHEMA_VERSION}); re-export it with this version of morphsweep"
            )
        model = data.get("model") or {}
        cost = data.get("cost") or {}
        return cls(
            layers={n: LayerStructure.from_dict(n, d) for n, d in data["layers"].items()},
            cost_name=str(cost.get("name", "")),
            seed_cost=float(cost.get("seed", 0.0)),
            learned_cost=float(cost.get("learned", 0.0)),
            regularizer=str(data.get("regularizer", "")),
            model_name=str(model.get("name", "")),
            fingerprint=str(model.get("fingerprint", "")),
            step=data.get("step"),
            extra=dict(data.get("extra") or {}),
            cost_definition=str(cost.get("definition", "")),
            rebuild_min_channels=int(cost.get("rebuild_min_channels", 0)),
            morphnet_cost=float(cost["morphnet"]) if cost.get("morphnet") is not None else None,
        )

    @classmethod
    def from_flat(
        cls, counts: Mapping[str, int], originals: Mapping[str, int] | None = None
    ) -> Structure:
        """A structure from the original's ``{"<layer>/Conv2D": count}`` file (layer = key prefix)."""
        layers = {}
        for key, count in counts.items():
            name = key.rsplit("/", 1)[0] if "/" in key else key
            original = int((originals or {}).get(name, count))
            layers[name] = LayerStructure(
                int(count), original, tuple(range(int(count))), op_name=key
            )
        return cls(layers=layers)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically (a temporary file renamed over ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Structure:
        path = Path(path)
        if path.is_dir():
            raise StructureError(f"structure file {str(path)!r} is a directory; give the JSON file")
        if not path.is_file():
            raise StructureError(f"structure file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StructureError(
                f"structure file {str(path)!r} is not a text file (byte {exc.start} is not UTF-8)"
            ) from exc
        except ValueError as exc:  # not JSON, or a number too long to read
            raise StructureError(f"structure file {str(path)!r} is not valid JSON: {exc}") from exc
        except OSError as exc:
            raise StructureError(
                f"structure file {str(path)!r} cannot be read ({exc.strerror})"
            ) from exc
        try:
            return cls.from_dict(data)
        except StructureError as exc:
            raise StructureError(f"structure file {str(path)!r}: {exc}") from None

    def save_alive_counts(self, base_dir: str | os.PathLike[str], step: int) -> Path:
        """Write the flat view to ``<base_dir>/learned_structure/alive_<step>``, as the original."""
        return save_alive_counts(self.flat(), base_dir, step)


def save_alive_counts(
    counts: Mapping[str, int], base_dir: str | os.PathLike[str], step: int
) -> Path:
    """``json.dumps(counts, indent=2, sort_keys=True)`` into ``learned_structure/alive_<step>``."""
    directory = Path(base_dir) / "learned_structure"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ALIVE_FILENAME}_{step}"
    path.write_text(json.dumps(dict(counts), indent=2, sort_keys=True, default=str))
    return path


def remove_common_prefix(names: Sequence[str]) -> list[str]:
    """Strip the first name's text up to its first '/' from every name, if all share it."""
    if not names:
        return []
    first = names[0]
    if "/" not in first:
        return list(names)
    prefix = first[: first.index("/") + 1]
    if all(n.startswith(prefix) for n in names):
        return [n[len(prefix) :] for n in names]
    return list(names)


def graph_fingerprint(graph: Graph) -> str:
    """A short hash of the prunable layers (name, class, width) and the input shapes."""
    parts = [repr(graph.ops[i].shape) for i in graph.inputs]
    for name in sorted(graph.layers):
        info = graph.layers[name]
        if info.prunable_op is not None:
            parts.append(f"{name}:{info.class_name}:{graph.ops[info.prunable_op].size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
