"""``embedding-explorer formats`` lists what the registries hold."""

from __future__ import annotations

import json

from explorer.cli import main


def test_formats_lists_encoders_architectures_and_datasets(capsys):
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "Encoder formats" in out and "Built-in architectures" in out
    for name in ("torchscript", "state_dict", "safetensors", "hf", "onnx", "small_cnn"):
        assert f"  {name} " in out
    assert "--factory path/to/file.py:function" in out


def test_formats_json(capsys):
    assert main(["formats", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    enc = {r["name"]: r for r in info["encoders"]}
    assert ".safetensors" in enc["safetensors"]["extensions"]
    assert enc["hf"]["folder"] and enc["hf"]["extra"] == "hf"
    archs = {a["name"]: a for a in info["architectures"]}
    assert archs["small_cnn"]["preprocess"]["size"] == 32
    assert isinstance(info["datasets"], list)
