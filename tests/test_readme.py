"""The README's library example runs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_using_the_library_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## Using the library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    structure = json.loads((tmp_path / "structure.json").read_text())
    # the example's structure JSON has the documented keys
    assert structure["schema_version"] == 1
    assert structure["cost"]["name"] == "FLOPs"
    assert {layer["original"] for layer in structure["layers"].values()} == {16, 10}
