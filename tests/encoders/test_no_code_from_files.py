"""Issue 13, doors 1 and 2: an ``arch`` named in a checkpoint's metadata or in its JSON sidecar
is a name, never code. Each payload would create a marker file if it ran; the CLI must refuse it
(exit 2, one line naming the file, the marker never appears), and the same payload given by the
user's own hand (``--factory``) must run, so the tests prove the guard and not a broken loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from explorer.cli import main
from explorer.encoders import open_encoder
from explorer.core.errors import CheckpointError

EVIL = '''
import pathlib
import torch.nn as nn

PREPROCESS = {"kind": "vector"}


def make(marker="MARKER"):
    pathlib.Path(marker).write_text("ran")
    return nn.Linear(4, 3)
'''


def _weights() -> dict:
    torch.manual_seed(0)
    return nn.Linear(4, 3).state_dict()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def scene(tmp_path, monkeypatch):
    """A vector dataset, an evil factory file, and the marker path every payload aims at."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    (tmp_path / "evil.py").write_text(EVIL)
    sub = tmp_path / "sub"
    sub.mkdir()
    return tmp_path, tmp_path / "MARKER"


def _payloads(tmp_path: Path, marker: Path) -> list[dict]:
    sh = ["sh", "-c", f"echo ran > {marker}"]
    return [
        {"arch": "setuptools._distutils.spawn:spawn", "arch_kwargs": {"cmd": sh}},
        {"arch": "os:system", "arch_kwargs": {"command": f"echo ran > {marker}"}},
        {"arch": "subprocess:call", "arch_kwargs": {"args": sh}},
        {"arch": "evil.py:make", "arch_kwargs": {"marker": str(marker)}},  # next to the checkpoint
        {"arch": f"{tmp_path / 'evil.py'}:make", "arch_kwargs": {"marker": str(marker)}},  # absolute
        {"arch": "../evil.py:make", "arch_kwargs": {"marker": str(marker)}},  # from sub/
        {"architecture": "evil:make", "arch_kwargs": {"marker": str(marker)}},  # a module on sys.path (cwd)
    ]


def _refused(capsys, tmp_path, marker, ckpt: Path, named: str) -> None:
    rc, out, err = _cli(capsys, "embed", "--data", str(tmp_path / "x.npy"), "--encoder", str(ckpt),
                        "--workspace", str(tmp_path / "w.h5"), "--quiet")
    assert rc == 2, (out, err)
    assert not marker.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert named in lines[0] and "--factory" in lines[0] and "explicitly" in lines[0], lines[0]


def test_checkpoint_arch_never_runs(scene, capsys):
    tmp_path, marker = scene
    for i, payload in enumerate(_payloads(tmp_path, marker)):
        ckpt = tmp_path / "sub" / f"m{i}.pt"
        torch.save({"state_dict": _weights(), **payload}, ckpt)
        _refused(capsys, tmp_path, marker, ckpt, ckpt.name)
        # the Python API refuses it the same way
        with pytest.raises(CheckpointError, match=ckpt.name):
            open_encoder(ckpt)
        assert not marker.exists()


def test_sidecar_arch_never_runs(scene, capsys):
    tmp_path, marker = scene
    for i, payload in enumerate(_payloads(tmp_path, marker)):
        ckpt = tmp_path / "sub" / f"s{i}.pt"
        torch.save(_weights(), ckpt)
        Path(str(ckpt) + ".json").write_text(json.dumps(payload))
        _refused(capsys, tmp_path, marker, ckpt, f"s{i}.pt.json")


def test_safetensors_metadata_arch_never_runs(scene, capsys):
    tmp_path, marker = scene
    ckpt = tmp_path / "m.safetensors"
    save_file(_weights(), str(ckpt), metadata={"arch": "evil.py:make",
                                               "arch_kwargs": json.dumps({"marker": str(marker)})})
    _refused(capsys, tmp_path, marker, ckpt, "m.safetensors")


def test_the_same_payloads_run_when_the_user_passes_factory(scene, capsys):
    """The guard, not a broken loader: given by hand, the very same callables do run."""
    tmp_path, marker = scene
    ckpt = tmp_path / "m.pt"
    torch.save({"state_dict": _weights(), "arch": "evil.py:make"}, ckpt)
    rc, out, err = _cli(capsys, "embed", "--data", str(tmp_path / "x.npy"), "--encoder", str(ckpt),
                        "--factory", f"{tmp_path / 'evil.py'}:make", "--workspace", str(tmp_path / "w.h5"),
                        "--quiet")
    assert marker.exists() and rc == 0, err
    marker.unlink()
    side = tmp_path / "p.pt"
    torch.save(_weights(), side)
    Path(str(side) + ".json").write_text(json.dumps({"arch": "setuptools._distutils.spawn:spawn"}))
    # spawn(cmd) is the payload; given by hand it runs (and then is not a model: exit 2)
    enc_factory = f"{tmp_path / 'spawn_it.py'}:make"
    (tmp_path / "spawn_it.py").write_text(
        "from setuptools._distutils.spawn import spawn\n"
        f"def make():\n    spawn(['sh', '-c', 'echo ran > {marker}'])\n")
    rc, out, err = _cli(capsys, "embed", "--data", str(tmp_path / "x.npy"), "--encoder", str(side),
                        "--factory", enc_factory, "--workspace", str(tmp_path / "w.h5"), "--quiet")
    assert marker.exists() and rc == 2 and "not a torch.nn.Module" in err


def test_registered_name_in_a_sidecar_still_opens_and_kwargs_are_plain(tmp_path):
    from explorer.encoders.archs import mlp

    torch.manual_seed(1)
    ref = mlp(in_dim=4, hidden=8, out_dim=3, layers=1).eval()
    ckpt = tmp_path / "m.pt"
    torch.save(ref.state_dict(), ckpt)
    Path(str(ckpt) + ".json").write_text(json.dumps(
        {"arch": "mlp", "arch_kwargs": {"in_dim": 4, "hidden": 8, "out_dim": 3, "layers": 1}}))
    enc = open_encoder(ckpt)
    x = torch.randn(6, 4)
    with torch.no_grad():
        want = ref.embed(torch.relu(ref.hidden[0][0](x)))
    assert torch.allclose(enc.module(x), want, atol=1e-6)
    # an unknown name is refused naming the sidecar, not looked up anywhere else
    Path(str(ckpt) + ".json").write_text(json.dumps({"arch": "no_such_net"}))
    with pytest.raises(CheckpointError, match=r"m\.pt\.json names the architecture 'no_such_net'"):
        open_encoder(ckpt)


def test_non_plain_arch_kwargs_in_a_checkpoint_are_refused(tmp_path):
    """A checkpoint's arch_kwargs holding something other than JSON values is refused."""
    ckpt = tmp_path / "m.pt"
    torch.save({"state_dict": nn.Linear(4, 3).state_dict(), "arch": "mlp",
                "arch_kwargs": {"in_dim": torch.zeros(3)}}, ckpt)  # a tensor becomes a list: plain
    with pytest.raises(Exception):
        open_encoder(ckpt)  # mlp(in_dim=[0, 0, 0]) cannot build: an error, never a call elsewhere
    from explorer.encoders.checkpoint import is_plain_json

    assert is_plain_json({"a": [1, 2.5, None, True, {"b": "c"}]})
    assert not is_plain_json({"a": object()}) and not is_plain_json({1: 2})
    deep: list = []
    for _ in range(40):
        deep = [deep]
    assert not is_plain_json(deep)
