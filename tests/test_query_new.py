"""A neighbour query can be a new input (an image file) embedded on the fly."""

import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.core.resources import sample_data_dir

SAMPLE = sample_data_dir()
HEALTHY = SAMPLE / "checkpoints" / "healthy.pt"
pytestmark = pytest.mark.skipif(not HEALTHY.exists(), reason="sample checkpoints not generated")


def _cos_topk(Z, q, k):
    Z = Z.astype(np.float64)
    s = (Z / np.linalg.norm(Z, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    return np.argsort(-s, kind="stable")[:k], np.sort(s)[::-1][:k]


def test_session_query_new_finds_the_same_image_first(tmp_path):
    from explorer.data import open_dataset
    from explorer.encoders import open_encoder
    from explorer.core.jobs import drain
    from explorer.app.session import Session

    s = Session(tmp_path / "ws.h5")
    s.set_dataset(open_dataset(SAMPLE / "digits"))
    m = s.add_model(open_encoder(HEALTHY))
    key, Z = drain(s.embed_job(m.id))
    s.apply_embedding(m.id, key, Z)
    i = 321
    f = s.dataset.root / s.dataset.files[i]
    (idx, sc), = s.query_new(m.id, [f], k=6)
    exp_idx, exp_sc = _cos_topk(Z, Z[i].astype(np.float64), 6)
    assert idx[0] == i and sc[0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(idx) == sorted(exp_idx)
    np.testing.assert_allclose(sc, exp_sc, atol=1e-5)


def test_cli_query_file(tmp_path, capsys):
    out = tmp_path / "v.npy"
    assert main(["embed", "--data", str(SAMPLE / "digits"), "--encoder", str(HEALTHY),
                 "--workspace", str(tmp_path / "w.h5"), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    Z = np.load(out)
    img = sorted((SAMPLE / "digits" / "7").iterdir())[0]
    assert main(["neighbors", "--vectors", str(out), "-k", "4", "--query-file", str(img),
                 "--encoder", str(HEALTHY), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    q = res["queries"][0]
    assert q["query"] == str(img)
    assert q["similarities"][0] == pytest.approx(1.0, abs=1e-5)
    row = q["neighbors"][0]
    exp_idx, _ = _cos_topk(Z, Z[row].astype(np.float64), 4)
    assert sorted(q["neighbors"]) == sorted(exp_idx)


def test_cli_query_needs_an_encoder(tmp_path, capsys):
    v = tmp_path / "v.npy"
    np.save(v, np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32))
    assert main(["neighbors", "--vectors", str(v), "--query-text", "hello", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--encoder" in err and len(err.splitlines()) == 1
