"""Clusters of a map against independent references: scikit-learn's own HDBSCAN call on the
same data, a brute-force numpy nearest-sampled-point assignment, Counter majorities, and
scikit-learn's TfidfVectorizer for the text names; the density grid against np.histogram2d;
the CLI's --json; a cancelled job stops and caches nothing."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest

from explorer.core.errors import Cancelled, InputError
from explorer.core.jobs import CancelToken, drain
from explorer.maps.clusters import (ClusterParams, cached_clusters, cluster_column, find_clusters,
                                    majority_values, name_clusters, top_terms)


def _blobs(n, k=6, seed=0, scale=10.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 2)) * scale
    y = rng.integers(0, k, n)
    widths = rng.uniform(0.4, 1.2, k)
    X = centres[y] + rng.normal(size=(n, 2)) * widths[y, None]
    noise = rng.uniform(X.min(0), X.max(0), size=(n // 20, 2))
    return np.vstack([X, noise]), np.concatenate([y, np.full(len(noise), -1)])


def _sk_hdbscan(X, mcs, ms):
    from sklearn.cluster import HDBSCAN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit(np.asarray(X, np.float64)).labels_


def _same_partition(a, b):
    """Equal up to renaming the clusters, with the same noise points."""
    from sklearn.metrics import adjusted_rand_score

    assert np.array_equal(a < 0, b < 0)
    assert adjusted_rand_score(a, b) == 1.0
    # and a one-to-one renaming (ARI 1 alone allows nothing else, but say it plainly)
    pairs = set(zip(a[a >= 0].tolist(), b[b >= 0].tolist()))
    assert len(pairs) == len(set(a[a >= 0].tolist())) == len(set(b[b >= 0].tolist()))


@pytest.mark.parametrize("mcs,ms", [(20, 5), (40, None), (15, 15)])
def test_below_the_sample_size_it_is_sklearns_hdbscan(mcs, ms):
    X, _ = _blobs(2500, seed=mcs)
    res = drain(find_clusters(X.astype(np.float32), ClusterParams(min_cluster_size=mcs, min_samples=ms)))
    ref = _sk_hdbscan(X.astype(np.float32), mcs, ms if ms is not None else min(mcs, 10))
    assert res.sample is None and res.info["sampled"] is None
    _same_partition(res.labels, ref)
    assert res.n_clusters == len(set(ref.tolist()) - {-1}) >= 3
    # renumbered by size, largest first
    assert np.all(np.diff(res.sizes) <= 0)
    np.testing.assert_array_equal(res.sizes, np.bincount(res.labels[res.labels >= 0]))


def test_above_the_sample_size_every_point_joins_its_nearest_sampled_point():
    X, _ = _blobs(40_000, k=8, seed=3)
    p = ClusterParams(min_cluster_size=400, min_samples=8, sample_size=3000, seed=7)
    res = drain(find_clusters(X, p))
    idx = res.sample
    assert idx is not None and len(idx) == 3000 and len(np.unique(idx)) == 3000
    # the sample is clustered by sklearn, min cluster size scaled to the sample
    ref_s = _sk_hdbscan(X[idx], round(400 * 3000 / len(X)), 8)
    _same_partition(res.labels[idx], ref_s)
    # every point: the label of its nearest sampled point, by brute force in float64
    S = X[idx]
    nearest = np.empty(len(X), np.int64)
    for a in range(0, len(X), 2000):
        d = ((X[a:a + 2000, None, :] - S[None, :, :]) ** 2).sum(-1)
        nearest[a:a + 2000] = d.argmin(1)
    expected = res.labels[idx][nearest]
    expected[idx] = res.labels[idx]
    np.testing.assert_array_equal(res.labels, expected)
    assert res.info["sampled"] == 3000 and res.n_clusters >= 5


def test_majority_values_and_names_against_a_counter():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 5, 3000)
    values = rng.choice(np.array(["cat", "dog", "eel", ""], dtype=object), 3000, p=[0.5, 0.3, 0.1, 0.1])
    got = majority_values(labels, values, 5)
    for k in range(5):
        members = values[labels == k]
        c = Counter(v for v in members.tolist() if v != "")
        top = max(c.values())
        best = sorted(v for v, n in c.items() if n == top)[0]
        assert got[k][0] == best
        assert got[k][1] == pytest.approx(top / len(members))
    # numbers with NaN as missing
    nums = np.where(rng.random(3000) < 0.2, np.nan, rng.integers(0, 3, 3000).astype(float))
    for k, (v, s) in enumerate(majority_values(labels, nums, 5)):
        m = nums[labels == k]
        c = Counter(m[np.isfinite(m)].tolist())
        assert v == max(c, key=lambda x: (c[x], -x)) and s == pytest.approx(c[v] / len(m))


def test_names_from_a_datasets_labels():
    from explorer.data.base import Dataset

    labels = np.array([0, 0, 0, 1, 1, -1, 1, 0])
    ds = Dataset(name="d", source=".", kind="image", n=8, labels=np.array([2, 2, 1, 0, 0, 1, 0, -1]),
                 label_names=["zero", "one", "two"])
    names, how = name_clusters(labels, ds)
    assert names == ["two (50%)", "zero (100%)"]  # 2 of its 4 points; one unlabelled and how["by"] == "label"
    col = cluster_column(labels, names)
    assert col.tolist() == ["0: two (50%)"] * 3 + ["1: zero (100%)"] * 2 + ["noise", "1: zero (100%)", "0: two (50%)"]


TEXTS = [
    "The striker scored a late goal and the team won the match",
    "A penalty goal decided the football match for the home team",
    "The goalkeeper saved a penalty; the match ended in a draw",
    "Stocks fell as the central bank raised interest rates",
    "Bond yields rose after the bank signalled higher rates",
    "Investors sold stocks and bought bonds as rates climbed",
    "The recipe needs butter, flour and sugar for the cake",
    "Bake the cake with sugar and butter until golden",
    "Whisk flour and eggs, then add sugar to the batter",
    "Markets and stocks rallied while the team celebrated",
]


def test_top_terms_are_tfidf_vectorizers_on_the_clusters_documents():
    from sklearn.feature_extraction.text import TfidfVectorizer

    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, -1])
    got = top_terms(labels, TEXTS, n_terms=4)
    docs = [" ".join(t for t, lab in zip(TEXTS, labels) if lab == k) for k in range(3)]
    vec = TfidfVectorizer(stop_words="english")
    W = vec.fit_transform(docs).toarray()
    vocab = vec.get_feature_names_out()
    for k in range(3):
        ranked = sorted(range(len(vocab)), key=lambda j: (-round(W[k, j], 12), vocab[j]))
        assert got[k] == [vocab[j] for j in ranked[:4]]
    assert "goal" in got[0] and "stocks" in got[1] and "sugar" in got[2]


def test_text_dataset_is_named_by_its_terms(tmp_path):
    from explorer.data import open_dataset

    p = tmp_path / "t.txt"
    p.write_text("\n".join(TEXTS), encoding="utf-8")
    ds = open_dataset(p)
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, -1])
    names, how = name_clusters(labels, ds, n_terms=2)
    assert how["by"] == "tf-idf" and names == [", ".join(t) for t in top_terms(labels, TEXTS, 2)]


def test_clusters_are_cached_in_the_workspace(tmp_path):
    from explorer.store import CLUSTERS, Workspace

    ws = Workspace(tmp_path / "w.h5")
    X, _ = _blobs(1500, seed=2)
    p = ClusterParams(min_cluster_size=30)
    key, a = drain(cached_clusters(ws, "layoutkey", X, p))
    assert ws.has(CLUSTERS, key) and "cached" not in a.info
    key2, b = drain(cached_clusters(ws, "layoutkey", X, p))
    assert key2 == key and b.info.get("cached") is True
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centres, b.centres)
    key3, _ = drain(cached_clusters(ws, "layoutkey", X, ClusterParams(min_cluster_size=31)))
    assert key3 != key and len(ws.list(CLUSTERS)) == 2


def test_a_cancelled_job_stops_and_caches_nothing(tmp_path):
    from explorer.store import CLUSTERS, Workspace

    ws = Workspace(tmp_path / "w.h5")
    X, _ = _blobs(400_000, k=5, seed=4)
    token = CancelToken()
    seen = []

    def on_progress(p):
        seen.append(p.message)
        if p.message.startswith("assigning points"):  # after the first assigned block
            token.cancel()

    job = cached_clusters(ws, "L", X, ClusterParams(sample_size=2000), recompute=True)
    with pytest.raises(Cancelled):
        drain(job, on_progress, token)
    assert sum(m.startswith("assigning points") for m in seen) == 1  # no block after the cancel
    assert job.gi_frame is None  # closed
    assert not ws.has(CLUSTERS, "L") and ws.list(CLUSTERS) == []


def test_bad_parameters_are_one_sentence():
    X, _ = _blobs(100)
    with pytest.raises(InputError, match="more than the"):
        drain(find_clusters(X, ClusterParams(min_cluster_size=10_000)))
    with pytest.raises(InputError, match="at least 2"):
        drain(find_clusters(X[:1]))
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        drain(find_clusters(bad))


def test_density_grid_is_a_smoothed_histogram2d_and_levels_hold_their_mass():
    from explorer.maps.density import density_grid, mass_levels

    X, _ = _blobs(20_000, seed=5)
    g = density_grid(X, bins=64, sigma=0.0, pad=0.0)
    edges_x = g.x0 + g.dx * np.arange(65)
    edges_y = g.y0 + g.dy * np.arange(65)
    H, _, _ = np.histogram2d(X[:, 0], X[:, 1], bins=[edges_x, edges_y])
    assert np.abs(g.values - H).sum() <= 4  # points on a bin edge may fall either side (float rounding)
    assert g.values.sum() == pytest.approx(len(X))
    s = density_grid(X, bins=128, sigma=2.0)
    levels = mass_levels(s.values, (0.9, 0.5, 0.1))
    assert levels[0] < levels[1] < levels[2]
    for m, t in zip((0.9, 0.5, 0.1), levels):
        share = s.values[s.values >= t].sum() / s.values.sum()
        assert m <= share <= m + 0.02


def test_cli_json(tmp_path, capsys):
    from explorer.cli import main

    X, y = _blobs(3000, k=4, seed=6)
    names = np.array(["ant", "bee", "cow", "dog", "none"])[y]
    np.save(tmp_path / "xy.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", names)
    out = tmp_path / "c.npy"
    rc = main(["clusters", "--coords", str(tmp_path / "xy.npy"), "--labels", str(tmp_path / "y.npy"),
               "--min-cluster-size", "40", "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    js = json.loads(capsys.readouterr().out)
    ref = _sk_hdbscan(X.astype(np.float32), 40, 10)
    labels = np.load(out)
    _same_partition(labels, ref)
    assert js["n"] == len(X) and js["n_clusters"] == len(set(ref.tolist()) - {-1}) and js["named_by"] == "label"
    assert js["noise"] == int((ref < 0).sum())
    for c in js["clusters"]:
        members = names[labels == c["cluster"]]
        value, count = Counter(members.tolist()).most_common(1)[0]
        assert c["size"] == len(members) and c["value"] == value
        assert c["share"] == pytest.approx(count / len(members))
        assert c["name"] == f"{value} ({count / len(members):.0%})"


def test_cli_workspace_caches_the_map_and_the_clusters(tmp_path, capsys):
    from explorer.cli import main
    from explorer.store import CLUSTERS, EMBEDDINGS, Workspace

    X, y = _blobs(600, k=3, seed=8)
    Z = np.hstack([X, np.random.default_rng(0).normal(size=(len(X), 6)) * 0.05]).astype(np.float32)
    ws = Workspace(tmp_path / "w.h5")
    ws.put(EMBEDDINGS, "e1", {"vectors": Z}, {"model": "m", "layer": None, "dataset": "d"})
    args = ["clusters", "--workspace", str(tmp_path / "w.h5"), "--method", "pca", "--min-cluster-size", "20",
            "--json", "--quiet"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["clusters_key"] == second["clusters_key"] and ws.has(CLUSTERS, first["clusters_key"])
    assert first["clusters"] == second["clusters"] and first["layout_key"]


def test_cli_refusals_are_one_line(tmp_path, capsys):
    from explorer.cli import main

    np.save(tmp_path / "xy.npy", np.zeros((10, 2), np.float32))
    assert main(["clusters", "--coords", str(tmp_path / "xy.npy"), "--min-cluster-size", "50", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than the 10 points" in err
