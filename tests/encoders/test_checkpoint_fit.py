"""Fitting a weights file to an architecture: shape mismatches alone are refused (and the model
keeps its weights), and a ``backbone.`` prefix is stripped with the head's tensors ignored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.encoders import embed_batch, open_encoder
from explorer.encoders.archs import small_cnn
from explorer.encoders.checkpoint import Checkpoint, load_into
from explorer.errors import CheckpointError


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
