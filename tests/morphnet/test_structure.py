"""Structure export: per-layer widths, the JSON form, and the original's flat files (case 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.morphnet.models import L, two_conv_concat_two_heads
from trainers.morphnet import (
    GammaFlopsRegularizer,
    GroupLassoFlopsRegularizer,
    Structure,
    StructureError,
)
from trainers.morphnet.keras3.backend import keras
from trainers.morphnet.structure import LayerStructure, remove_common_prefix, save_alive_counts


def test_structure_of_case1(tmp_path):
    reg = GammaFlopsRegularizer(two_conv_concat_two_heads(), 0.45)
    structure = reg.structure(step=7)
    # alive counts are the groups' alive channels as seen from each conv's output
    assert {n: s.alive for n, s in structure.layers.items()} == {
        "conv1": 7,
        "conv2": 11,
        "conv3": 10,
        "conv4": 17,
    }
    assert structure.layers["conv2"].original == 23
    assert structure.layers["conv1"].alive_channels == tuple(range(7))
    # the original get_cost() (spec case 1) prunes the two conv heads too ...
    assert structure.cost_name == "FLOPs" and structure.morphnet_cost == 985404
    # ... the learned cost is the rebuilt model's, where conv3 and conv4, the model's outputs,
    # keep every channel: 22610*3*7 + 646*3*11 + 1620*18*29 + 646*18*31
    assert structure.learned_cost == 474810 + 21318 + 845640 + 360468
    assert structure.cost_definition == "rebuild" and structure.rebuild_min_channels == 0
    # seed cost: every channel alive
    assert structure.seed_cost == 22610 * 3 * 13 + 646 * 3 * 23 + 1620 * 36 * 29 + 646 * 36 * 31
    data = structure.to_dict()
    assert data["schema_version"] == 1 and data["step"] == 7
    assert data["cost"] == {
        "name": "FLOPs",
        "seed": structure.seed_cost,
        "learned": 1702236.0,
        "definition": "rebuild",
        "rebuild_min_channels": 0,
        "morphnet": 985404.0,
    }
    assert data["flat"] == {
        "conv1/Conv2D": 7,
        "conv2/Conv2D": 11,
        "conv3/Conv2D": 10,
        "conv4/Conv2D": 17,
    }
    path = structure.save(tmp_path / "s.json")
    assert Structure.load(path) == structure


def test_every_prunable_layer_is_exported():
    img = keras.Input((8, 8, 3), name="image")
    x = L.SeparableConv2D(6, 3, name="sep")(img)
    x = L.Conv2DTranspose(5, 3, name="convt")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(4, name="fc")(x)
    structure = GroupLassoFlopsRegularizer(keras.Model(img, x), 0.0).structure()
    # SeparableConv2D (pointwise), Conv2DTranspose and Dense are exported, unlike the original
    assert sorted(structure.layers) == ["convt", "fc", "sep"]
    assert structure.flat() == {
        "convt/conv2d_transpose": 5,
        "fc/MatMul": 4,
        "sep/separable_conv2d": 6,
    }


def test_case12_alive_files(tmp_path):
    first = {"X/c1/Conv2D": 3, "X/c2/Conv2D": 0, "X/c4/Conv3D": 1, "X/c3/conv2d_transpose": 5}
    second = {"X/c1/Conv2D": 1, "X/c2/Conv2D": 4, "X/c4/Conv3D": 2, "X/c3/conv2d_transpose": 1}
    p19 = save_alive_counts(first, tmp_path, 19)
    p1009 = save_alive_counts(second, tmp_path, 1009)
    # learned_structure/alive_<step>, no extension, sorted keys, two-space indent; both kept
    assert p19 == tmp_path / "learned_structure" / "alive_19"
    assert json.loads(p19.read_text()) == first
    assert json.loads(p1009.read_text()) == second
    assert p19.read_text() == json.dumps(first, indent=2, sort_keys=True)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["", ""], ["", ""]),
        (["a", "a"], ["a", "a"]),
        (["/", "/"], ["", ""]),
        (["/x", "/x"], ["x", "x"]),
        (["a/x", "a/x"], ["x", "x"]),
        (["abc/", "abc/", "abc/"], ["", "", ""]),
        (["abc/x", "abc/x", "abd/x"], ["abc/x", "abc/x", "abd/x"]),
        (["abc/x", "abc/y", "abc/z"], ["x", "y", "z"]),
        (["abc/x/", "abc/y", "abc/z/"], ["x/", "y", "z/"]),
    ],
)
def test_case12_remove_common_prefix(names, expected):
    assert remove_common_prefix(names) == expected


def test_structure_rejects_bad_json(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        Structure.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StructureError, match="not valid JSON"):
        Structure.load(bad)
    bad.write_text(json.dumps({"schema_version": 99, "layers": {}}))
    with pytest.raises(StructureError, match="schema_version"):
        Structure.load(bad)
    with pytest.raises(StructureError, match="alive=5 outside"):
        LayerStructure.from_dict("conv", {"alive": 5, "original": 3})


def test_flat_round_trip():
    structure = Structure.from_flat({"conv1/Conv2D": 3}, originals={"conv1": 8})
    assert structure.layers["conv1"].original == 8 and structure.flat() == {"conv1/Conv2D": 3}
    assert np.array_equal(structure.layers["conv1"].alive_channels, (0, 1, 2))
