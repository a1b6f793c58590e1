"""Fitting a weights file to an architecture: shape mismatches alone are refused (and the model
keeps its weights), and a ``backbone.`` prefix is stripped with the head's tensors ignored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.encoders import embed_batch, open_encoder
from explorer.encoders.archs import small_cnn
from explorer.encoders.checkpoint import Checkpoint, load_into
from explorer.core.errors import CheckpointError


def randomised(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.2)
    return model.eval()


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_only_wrong_shapes_is_refused_and_loads_nothing(tmp_path):
    # every key of the architecture is present; only the embedding size differs
    sd = randomised(small_cnn(embed_dim=64), 1).state_dict()
    model = small_cnn()
    assert set(sd) == set(model.state_dict())
    wrong = [k for k, v in sd.items() if tuple(v.shape) != tuple(model.state_dict()[k].shape)]
    assert wrong and len(wrong) < len(sd)
    before = snapshot(model)
    with pytest.raises(CheckpointError) as info:
        load_into(model, Checkpoint(tmp_path / "w.pt", state_dict=sd), "small_cnn")
    msg = str(info.value)
    assert msg.startswith("w.pt does not fit small_cnn: ") and "missing" not in msg
    assert f"{len(wrong)} shape mismatch" in msg and "\n" not in msg
    assert unchanged(model, before)                # refused before anything was copied
    # the same through the public entry point
    path = tmp_path / "w.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        open_encoder(path, arch="small_cnn")


def test_every_tensor_of_the_wrong_shape_is_refused(tmp_path):
    sd = randomised(small_cnn(width=8), 2).state_dict()
    model = small_cnn()
    shapes = model.state_dict()
    assert set(sd) == set(shapes)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match="does not fit small_cnn"):
        load_into(model, Checkpoint(tmp_path / "narrow.pt", state_dict=sd), "small_cnn")
    assert unchanged(model, before)


def test_backbone_prefix_is_stripped_and_the_head_ignored(tmp_path):
    cnn = randomised(small_cnn(), 3)
    sd = {f"backbone.{k}": v for k, v in cnn.state_dict().items()}
    sd["head.weight"] = torch.randn(10, 128)
    sd["head.bias"] = torch.zeros(10)
    path = tmp_path / "ssl.pth"
    torch.save(sd, path)
    enc = open_encoder(path, arch="small_cnn")
    assert enc.info["prefix_stripped"] == "backbone."
    assert enc.info["ignored_keys"] == 2
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = cnn(x).double().numpy()
    np.testing.assert_allclose(np.asarray(embed_batch(enc, x), np.float64), ref, rtol=1e-5, atol=1e-5)


# -- metadata and the layouts a state_dict hides in ------------------------------------------
def test_as_preprocess_forms():
    import json

    from explorer.encoders.base import Preprocess
    from explorer.encoders.checkpoint import as_preprocess
    from explorer.core.errors import InputError

    assert as_preprocess(None) is None
    p = Preprocess(kind="image", size=20)
    assert as_preprocess(p) is p
    q = as_preprocess(json.dumps({"kind": "image", "size": 24, "mean": [0.1, 0.2, 0.3], "extra": 1}))
    assert (q.size, q.mean) == (24, (0.1, 0.2, 0.3))
    assert as_preprocess({"size": 12, "channels": 1}).channels == 1
    for bad in ("{not json", 5, {"size": 1, "mean": 3}):
        with pytest.raises(InputError):
            as_preprocess(bad, "x.pt")


def test_sidecar(tmp_path):
    from explorer.encoders.checkpoint import read_sidecar, sidecar_path

    path = tmp_path / "m.pt"
    assert sidecar_path(path) == tmp_path / "m.pt.json"
    assert read_sidecar(path) == {}
    sidecar_path(path).write_text('{"arch": "small_cnn", "epoch": 4}')
    assert read_sidecar(path) == {"arch": "small_cnn", "epoch": 4}
    for text in ("[1, 2]", "{broken"):
        sidecar_path(path).write_text(text)
        with pytest.raises(CheckpointError, match="m.pt.json"):
            read_sidecar(path)


def test_collect_meta_renames_and_converts():
    import argparse

    from explorer.encoders.checkpoint import collect_meta

    obj = {"architecture": "small_cnn", "global_step": torch.tensor(120), "epoch": np.int64(3),
           "preprocess": {"size": 32, "mean": (0.5, 0.5, 0.5)}, "name": object.__name__,
           "arch_kwargs": torch.tensor([1.0, 2.0]), "layer": None, "weights": torch.ones(3)}
    meta = collect_meta(obj)
    assert meta == {"arch": "small_cnn", "step": 120, "epoch": 3,
                    "preprocess": {"size": 32, "mean": [0.5, 0.5, 0.5]}, "name": "object", "layer": None}
    assert isinstance(meta["epoch"], int) and isinstance(meta["step"], int)
    # Lightning keeps them in hyper_parameters (a dict or a Namespace); the top level wins
    hp = collect_meta({"hyper_parameters": argparse.Namespace(arch="a", lr=0.1, pooling="avg")})
    assert hp == {"arch": "a", "pooling": "avg"}
    assert collect_meta({"hparams": {"arch": "a"}, "arch": "b"}) == {"arch": "b"}
    # both spellings present: the short one is kept
    assert collect_meta({"arch": "x", "architecture": "y", "step": 1, "global_step": 2}) == {
        "arch": "x", "architecture": "y", "step": 1, "global_step": 2}
    assert collect_meta([1, 2]) == {}


def test_find_state_dict_layouts(tmp_path):
    from explorer.encoders.checkpoint import find_state_dict

    sd = {"a.weight": torch.ones(2), "a.bias": torch.zeros(2)}
    p = tmp_path / "f.pt"
    assert find_state_dict(sd, p) == (sd, None)
    # half tensors is still a state_dict (a step counter beside the weights); less is not
    got, key = find_state_dict({"w": torch.ones(1), "n": 3}, p)
    assert key is None and list(got) == ["w"]
    got, key = find_state_dict({"w": torch.ones(1), "n": 3, "m": 4, "model": sd}, p)
    assert key == "model" and got == sd
    got, key = find_state_dict({"model": {"ema": sd, "other": 1, "x": 2}, "step": 1}, p)
    assert key == "model.ema" and got == sd
    with pytest.raises(CheckpointError, match="f.pt holds no weights .*top-level keys: epoch, optimizer"):
        find_state_dict({"epoch": 1, "optimizer": {}}, p)
    with pytest.raises(CheckpointError, match="holds a list"):
        find_state_dict([1, 2], p)


class Wrapped(torch.nn.Module):
    """The model nests what was saved: its keys are ``encoder.`` + the file's keys."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_prefix_added_and_what_load_into_reports(tmp_path):
    from explorer.encoders.checkpoint import count_parameters, fits_exactly

    src = randomised(Wrapped().encoder, 5)
    sd = dict(src.state_dict())
    model = Wrapped()
    assert fits_exactly(model, sd)
    del sd["1.num_batches_tracked"]                 # absent from old checkpoints: harmless
    sd["extra.scale"] = torch.ones(1)
    assert not fits_exactly(model, sd)
    info = load_into(model, Checkpoint(tmp_path / "n.pt", state_dict=sd, nested_key="state_dict"), "wrapped")
    assert info == {"nested_key": "state_dict", "prefix_added": "encoder.",
                    "unexpected_keys": ["encoder.extra.scale"]}
    for k, v in src.state_dict().items():
        if k != "1.num_batches_tracked":
            assert torch.equal(model.state_dict()["encoder." + k], v), k
    assert count_parameters(model) == 3 * 4 + 4 + 4 + 4
    assert count_parameters(object()) == 0
    # a missing tensor that matters is refused
    del sd["0.weight"]
    with pytest.raises(CheckpointError, match="1 missing key .*encoder.0.weight"):
        load_into(Wrapped(), Checkpoint(tmp_path / "n.pt", state_dict=sd), "wrapped")


class Custom:
    """A class of the test module: pickling it makes a checkpoint that needs code to load."""

    def __init__(self):
        self.x = 1


def test_refusal_names_only_the_code_it_would_run(tmp_path):
    import argparse

    path = tmp_path / "mixed.pt"
    torch.save({"state_dict": small_cnn().state_dict(), "hp": argparse.Namespace(lr=0.1),
                "metric": np.float64(0.5), "arr": np.arange(3.0), "obj": Custom(),
                "layer": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(CheckpointError) as info:
        open_encoder(path, arch="small_cnn")
    msg = str(info.value)
    listed = msg.split("pickled Python objects: ")[1].split(")")[0]
    assert listed == f"{__name__}.Custom"
    # the safe data alone loads without --trust
    ok = tmp_path / "ok.pt"
    torch.save({"state_dict": small_cnn().state_dict(), "hp": argparse.Namespace(arch="small_cnn"),
                "metric": np.float64(0.5), "arr": np.arange(3.0)}, ok)
    assert open_encoder(ok).info["arch"] == "small_cnn"


def test_nothing_matches_lists_at_most_four_names_of_each(tmp_path):
    sd = {"conv.weight": torch.ones(1), "conv.bias": torch.ones(1), "fc.weight": torch.ones(1),
          "fc.bias": torch.ones(1)}
    model = small_cnn()
    first4 = ", ".join(list(model.state_dict())[:4])
    with pytest.raises(CheckpointError) as info:
        load_into(model, Checkpoint(tmp_path / "o.pt", state_dict=sd), "small_cnn")
    assert str(info.value) == (
        f"o.pt does not fit small_cnn: none of its 4 tensors match the architecture's "
        f"{len(model.state_dict())} (file has conv.weight, conv.bias, fc.weight, fc.bias; "
        f"small_cnn expects {first4}, ...).")


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.lin = torch.nn.Linear(2, 2)


def test_a_scalar_against_a_vector_is_named_as_such(tmp_path):
    sd = dict(Scaled().state_dict())
    sd["scale"] = torch.tensor(2.0)
    with pytest.raises(CheckpointError) as info:
        load_into(Scaled(), Checkpoint(tmp_path / "s.pt", state_dict=sd), "scaled")
    assert str(info.value) == ("s.pt does not fit scaled: 1 shape mismatch "
                               "(scale scalar in the file vs 1 in the model).")


def test_a_tie_between_key_mappings_goes_to_the_smallest_change():
    # the model has fc.* and head.fc.*: the checkpoint's fc.* fits both as they are and with
    # "head." added (same hits, nothing unexpected): the keys as they are must win
    from explorer.encoders.checkpoint import match_state_dict

    w, b = torch.ones(3, 2), torch.zeros(3)
    model = {"fc.weight": torch.empty(3, 2), "fc.bias": torch.empty(3),
             "head.fc.weight": torch.empty(3, 2), "head.fc.bias": torch.empty(3)}
    fit = match_state_dict({"fc.weight": w, "fc.bias": b}, model)
    assert (fit.strip, fit.add) == ("", "")
    assert sorted(fit.mapped) == ["fc.bias", "fc.weight"] and sorted(fit.missing) == ["head.fc.bias", "head.fc.weight"]
