"""Layer hooks, pooling and layer shapes, checked against manual computations (float64 numpy
or a hand-written forward through the submodules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from explorer.encoders import (Encoder, embed_batch, forward_layer, layer_shapes, open_encoder, pool,
                               pooled_dim, set_layer)
from explorer.encoders.archs import small_cnn
from explorer.core.errors import InputError


def _enc(module, layer=None, pooling="auto"):
    return Encoder(name="m", source=Path("m.pt"), format="test", module=module.eval(), layer=layer,
                   pooling=pooling)


class ConvOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Tokens(nn.Module):
    """(B, T, D) token output; ``with_cls`` adds a cls_token parameter like ViT."""

    def __init__(self, with_cls: bool):
        super().__init__()
        self.proj = nn.Linear(5, 7)
        if with_cls:
            self.cls_token = nn.Parameter(torch.randn(1, 1, 7))

    def forward(self, x):
        h = self.proj(x)
        if hasattr(self, "cls_token"):
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        return h


def test_auto_pooling_of_a_feature_map_is_the_spatial_mean():
    torch.manual_seed(0)
    m = ConvOut()
    x = torch.randn(3, 3, 8, 5)
    got = embed_batch(_enc(m), x).numpy()
    with torch.no_grad():
        fmap = m.conv(x).double().numpy()  # (B, C, H, W)
    expected = fmap.sum(axis=(2, 3)) / (fmap.shape[2] * fmap.shape[3])
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    flat = embed_batch(_enc(m, pooling="flatten"), x).numpy()
    np.testing.assert_allclose(flat, fmap.reshape(3, -1), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="Pooling 'none' needs"):
        embed_batch(_enc(m, pooling="none"), x)


def test_token_outputs_mean_without_cls_and_token0_with_cls():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 5)
    plain = Tokens(with_cls=False)
    with torch.no_grad():
        h = plain(x).double().numpy()
    got = embed_batch(_enc(plain), x).numpy()
    np.testing.assert_allclose(got, h.sum(axis=1) / h.shape[1], rtol=1e-5, atol=1e-6)

    vit = Tokens(with_cls=True)
    with torch.no_grad():
        h = vit(x).double().numpy()
    got = embed_batch(_enc(vit), x).numpy()
    np.testing.assert_allclose(got, h[:, 0, :], rtol=1e-6, atol=1e-6)  # token 0 = the CLS token
    forced = embed_batch(_enc(vit, pooling="mean"), x).numpy()
    np.testing.assert_allclose(forced, h.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_masked_mean_skips_padding():
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    got = pool(h, "mean", mask=mask).numpy()
    hd = h.double().numpy()
    expected = np.stack([(hd[0, 0] + hd[0, 1]) / 2, hd[1, 0]])
    np.testing.assert_allclose(got, expected)


def test_vector_outputs_are_kept_and_other_ranks_flatten():
    torch.manual_seed(2)
    lin = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    with torch.no_grad():
        ref = lin(x).double().numpy()
    np.testing.assert_allclose(embed_batch(_enc(lin), x).numpy(), ref, rtol=1e-6, atol=1e-6)
    five = torch.randn(2, 3, 2, 2, 2)
    assert pool(five).shape == (2, 24)
    np.testing.assert_allclose(pool(five).numpy(), five.reshape(2, -1).numpy())
    with pytest.raises(InputError, match="Pooling 'avg' needs a sequence or feature map"):
        pool(torch.randn(2, 3), "avg")
    with pytest.raises(InputError, match="Unknown pooling 'max'"):
        pool(torch.randn(2, 3), "max")


def test_hook_on_an_intermediate_layer_equals_a_manual_forward():
    torch.manual_seed(3)
    model = small_cnn().eval()
    x = torch.randn(2, 3, 32, 32)
    enc = _enc(model, layer="features.block2")
    got = embed_batch(enc, x).numpy()
    with torch.no_grad():
        h = model.features.block2(model.features.block1(x)).double().numpy()  # (B, 32, 8, 8)
    assert h.shape == (2, 32, 8, 8)
    np.testing.assert_allclose(got, h.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    # the forward stops after the chosen layer: later blocks do not run
    ran = []
    handle = model.features.block3.register_forward_hook(lambda *a: ran.append(1))
    try:
        forward_layer(enc, x)
    finally:
        handle.remove()
    assert ran == []
    # the projector runs inside forward although its output is discarded: hook sees it
    proj = embed_batch(_enc(model, layer="projector"), x).numpy()
    with torch.no_grad():
        emb = model(x)
        ref = model.projector(emb).double().numpy()
    np.testing.assert_allclose(proj, ref, rtol=1e-5, atol=1e-6)


def test_layer_choice_is_checked(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(small_cnn().state_dict(), path)
    enc = open_encoder(path, arch="small_cnn", layer="features.block3")
    assert enc.layer == "features.block3"
    assert "features.block1.conv" in enc.layers() and enc.layers()[0] == "features"
    with pytest.raises(InputError, match="has no layer 'features.blok3'; did you mean features.block3"):
        set_layer(enc, "features.blok3")
    set_layer(enc, "")
    assert enc.layer is None


def test_layer_shapes_of_small_cnn():
    enc = _enc(small_cnn())
    shapes = layer_shapes(enc, torch.randn(3, 32, 32))
    assert shapes["features.block1"] == (16, 16, 16)
    assert shapes["features.block4"] == (128, 2, 2)
    assert shapes["pool"] == (128, 1, 1)
    assert shapes["embed"] == (128,)
    assert shapes["projector"] == (64,)
    assert shapes[""] == (128,)
    assert list(shapes)[:2] == ["features", "features.block1"]  # model order
    assert pooled_dim(shapes["features.block1"]) == 16
    assert pooled_dim((10, 7), has_cls=True) == 7 and pooled_dim((10, 7), "flatten") == 70
    assert pooled_dim((3, 4, 5), "none") is None
    # a batch of one gives the same shapes
    assert layer_shapes(enc, torch.randn(1, 3, 32, 32)) == shapes
