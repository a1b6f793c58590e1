"""The bundled sample checkpoints, embedded on the bundled digits, get the verdict they were
made to show (healthy / complete collapse / dimensional collapse)."""

from pathlib import Path

import pytest

from explorer.core.jobs import drain
from explorer.metrics.diagnose import diagnose

ROOT = Path(__file__).resolve().parents[2] / "sample_data"
CKPTS = ROOT / "checkpoints"


@pytest.fixture(scope="module")
def digits():
    from explorer.data import open_dataset

    return open_dataset(str(ROOT / "digits"))


@pytest.mark.parametrize("name,label", [("healthy", "no collapse detected"),
                                        ("collapsed", "complete collapse"),
                                        ("dimcollapsed", "dimensional collapse")])
def test_sample_checkpoint_verdict(digits, name, label):
    from explorer.embed import EmbedParams, embed
    from explorer.encoders import open_encoder

    path = CKPTS / f"{name}.pt"
    assert (CKPTS / f"{name}.pt.json").exists()
    enc = open_encoder(path)
    Z = drain(embed(digits, enc, EmbedParams(device="cpu", batch_size=512))).vectors
    assert Z.shape[0] == len(digits) == 1797
    res = drain(diagnose(Z, digits.labels))
    assert res["verdict"]["label"] == label, res["verdict"]
    if name == "healthy":
        assert res["knn_accuracy"] > 0.8
    if name == "collapsed":
        assert res["rankme"] < 2
    if name == "healthy":       # smooth spectrum: (almost) every direction has some variance
        assert res["numerical_rank"] > 0.5 * Z.shape[1]
    if name == "dimcollapsed":  # a rank-4 bottleneck (+ bias): the other eigenvalues vanish
        assert res["dims_99"] <= 5 and res["numerical_rank"] <= 5
