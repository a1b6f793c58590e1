"""Layer sweep: every layer's vectors from one pass equal the layer computed by hand (numpy) or
by the single-layer path, and the metrics follow (issue 19)."""

import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.jobs import drain
from explorer.core.resources import sample_data_dir

torch = pytest.importorskip("torch")

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"


def _mlp_encoder(tmp_path):
    from explorer.encoders.base import Encoder, Preprocess

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3),
                              torch.nn.Sequential(torch.nn.Linear(3, 2)))
    return Encoder("mlp", tmp_path / "mlp.pt", "test", net.eval(), Preprocess(kind="vector"))


def _rankme64(Z):
    s = np.linalg.svd(Z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def test_one_pass_gives_every_layer(tmp_path):
    from explorer.data import open_dataset
    from explorer.embed import EmbedParams
    from explorer.metrics.layers import default_layers, embed_layers, layer_sweep, projector_starts

    X = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    ds = open_dataset(tmp_path / "x.npy")
    enc = _mlp_encoder(tmp_path)
    assert default_layers(enc.module) == ["0", "1", "2", "3.0"]
    got = drain(embed_layers(ds, enc, ["0", "1", "2", "3.0"], EmbedParams(device="cpu", batch_size=64)))
    W = [m.weight.detach().double().numpy() for m in (enc.module[0], enc.module[2], enc.module[3][0])]
    b = [m.bias.detach().double().numpy() for m in (enc.module[0], enc.module[2], enc.module[3][0])]
    h0 = X.astype(np.float64) @ W[0].T + b[0]
    h1 = np.maximum(h0, 0)
    h2 = h1 @ W[1].T + b[1]
    h3 = h2 @ W[2].T + b[2]
    for name, ref in (("0", h0), ("1", h1), ("2", h2), ("3.0", h3)):
        np.testing.assert_allclose(got[name], ref, atol=1e-5)
    y = (X[:, 0] > 0).astype(int)
    res = drain(layer_sweep(ds, enc, ["0", "2"], labels=y, params=EmbedParams(device="cpu")))
    assert [r["dim"] for r in res["layers"]] == [5, 3]
    assert res["layers"][0]["rankme"] == pytest.approx(_rankme64(h0), rel=1e-3)
    assert res["layers"][1]["rankme"] == pytest.approx(_rankme64(h2), rel=1e-3)
    assert all(r["knn_accuracy"] is not None for r in res["layers"])
    assert projector_starts(["features.block1", "embed", "projector.0"]) == 2
    assert projector_starts(["backbone.layer4", "head"]) == 1 and projector_starts(["a", "b"]) is None


@pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")
def test_sample_cnn_layers_match_the_single_layer_path(tmp_path, capsys):
    import dataclasses

    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed
    from explorer.encoders import open_encoder
    from explorer.metrics.layers import embed_layers

    ds = open_dataset(SAMPLE / "digits")
    enc = open_encoder(HEALTHY)
    p = EmbedParams(device="cpu")
    got = drain(embed_layers(ds, enc, ["features.block2", "projector.2"], p))
    for name in ("features.block2", "projector.2"):
        one = drain(embed(ds, dataclasses.replace(enc, layer=name), p)).vectors
        np.testing.assert_allclose(got[name], one, rtol=1e-4, atol=1e-5)
    # the CLI: JSON rows in the order asked, the projector marked; a wrong layer is one line, exit 2
    assert main(["layers", "--data", str(SAMPLE / "digits"), "--encoder", str(HEALTHY), "--layers",
                 "features.block2", "projector.2", "--device", "cpu", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in out["layers"]] == ["features.block2", "projector.2"]
    assert out["projector_starts"] == 1 and out["layers"][1]["dim"] == got["projector.2"].shape[1]
    assert main(["layers", "--data", str(SAMPLE / "digits"), "--encoder", str(HEALTHY), "--layers", "nosuch",
                 "--quiet"]) == 2
    assert "nosuch" in capsys.readouterr().err
