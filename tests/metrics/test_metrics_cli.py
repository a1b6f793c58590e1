"""`embedding-explorer diagnose` and `compare` end to end (vectors and workspace)."""

import json

import numpy as np
import pytest

from explorer.cli import main


def test_diagnose_vectors_json(tmp_path, capsys):
    r = np.random.default_rng(0)
    y = r.integers(0, 3, 800)
    Z = (r.standard_normal((800, 4)) @ r.standard_normal((4, 32)) + 4 * np.eye(3, 32)[y]).astype(np.float32)
    np.save(tmp_path / "z.npy", Z)
    np.save(tmp_path / "y.npy", y)
    assert main(["diagnose", "--vectors", str(tmp_path / "z.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("rankme", "alpha_req", "std_l2_normalized", "sigreg", "sigreg_gaussian_reference",
              "sigreg_standardized", "uniformity", "mean_cosine", "twonn_dimension", "mle_dimension",
              "dims_90", "dims_99", "dead_dims", "knn_accuracy", "linear_probe_accuracy"):
        assert k in out
    assert isinstance(out["spectrum"], list) and len(out["spectrum"]) == 32
    assert out["verdict"]["label"] == "dimensional collapse" and out["verdict"]["evidence"]


def test_compare_vectors_json_and_overlap(tmp_path, capsys):
    r = np.random.default_rng(1)
    A = r.standard_normal((600, 16)).astype(np.float32)
    Q, _ = np.linalg.qr(r.standard_normal((16, 16)))
    np.save(tmp_path / "a.npy", A)
    np.save(tmp_path / "b.npy", (A @ Q).astype(np.float32))
    assert main(["compare", "--vectors", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--json",
                 "--quiet", "--overlap-out", str(tmp_path / "ov.npy")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(("linear_cka", "debiased_cka", "rbf_cka", "mutual_knn", "procrustes_similarity", "svcca",
                "knn_jaccard_mean")) <= set(out)
    assert out["linear_cka"] == pytest.approx(1.0, abs=1e-5)
    ov = np.load(tmp_path / "ov.npy")
    assert ov.shape == (600,) and np.all(ov > 0.99)


def test_workspace_diagnose_and_compare(tmp_path, capsys):
    from explorer.store import Workspace

    r = np.random.default_rng(2)
    ws = Workspace(tmp_path / "w.h5")
    Z = r.standard_normal((500, 12)).astype(np.float32)
    ws.put("embeddings", "k1", {"vectors": Z}, {"model": "a", "layer": "head"})
    ws.put("embeddings", "k2", {"vectors": np.tile(Z[:1], (500, 1))}, {"model": "b", "layer": "head"})
    assert main(["diagnose", "--workspace", str(tmp_path / "w.h5"), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["verdict"]["label"] for o in out] == ["no collapse detected", "complete collapse"]
    assert len(ws.list("diagnostics")) == 2
    assert main(["compare", "--workspace", str(tmp_path / "w.h5"), "--models", "a", "a", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mutual_knn"] == 1.0 and len(ws.list("comparisons")) == 1


def test_errors_are_one_line(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((10, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((11, 3), np.float32))
    assert main(["compare", "--vectors", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "rows" in err and "\n" not in err
    assert main(["diagnose", "--vectors", str(tmp_path / "missing.npy")]) == 2
