"""Unreadable items are never a fabricated vector: a corrupt image gets no row anywhere (engine,
workspace, `embed --out`, the session's maps and neighbours), is counted and named, and a
dataset with no readable item is an error. References are direct forward passes of the same
weights on the readable images only, written here in float64."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.cli import main


def _folder(tmp_path, n_good=6, seed=3):
    """a/, b/ class folders of 32 x 32 PNGs (lossless, so the decoded pixels are the ones
    written) plus one garbage and one truncated JPEG. Returns (root, {relpath: uint8 image})."""
    rng = np.random.default_rng(seed)
    root = tmp_path / "imgs"
    good = {}
    for k in range(n_good):
        rel = f"{'ab'[k % 2]}/img{k}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        x = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(x, "RGB").save(root / rel)
        good[rel] = x
    (root / "a" / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB").save(root / "b" / "cut.jpg")
    data = (root / "b" / "cut.jpg").read_bytes()
    (root / "b" / "cut.jpg").write_bytes(data[: len(data) // 3])
    return root, good


def _weights(tmp_path):
    from explorer.encoders.archs import small_cnn

    torch.manual_seed(0)
    torch.save(small_cnn().state_dict(), tmp_path / "cnn.pt")
    return tmp_path / "cnn.pt"


def _reference(weights, x):
    """float64 forward pass of small_cnn on uint8 (B, 32, 32, 3) with its preprocessing."""
    from explorer.encoders import open_encoder

    e = open_encoder(weights, arch="small_cnn")
    pp = e.preprocess
    assert pp.size == 32
    t = torch.from_numpy(x.astype(np.float64) / 255.0).permute(0, 3, 1, 2)
    t = (t - torch.tensor(pp.mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        pp.std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return e.module.double().eval()(t).numpy()


def test_cli_leaves_unreadable_images_out_and_writes_ids(tmp_path, capsys):
    import h5py

    root, good = _folder(tmp_path)
    w = _weights(tmp_path)
    order = sorted(good)  # the folder's order: relative paths, sorted
    ref = _reference(w, np.stack([good[r] for r in order]))
    args = ["embed", "--data", str(root), "--encoder", str(w), "--arch", "small_cnn",
            "--workspace", str(tmp_path / "w.h5"), "--workers", "0", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "v.npy"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n"] == 6 and s["skipped"] == 2
    assert sorted(s["skipped_items"]) == ["a/garbage.jpg", "b/cut.jpg"]
    got = np.load(tmp_path / "v.npy")
    assert got.shape == (6, 128)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert (tmp_path / "v.ids.txt").read_text().splitlines() == order
    # the cache hit gives the same rows and ids, and the summary line names the dropped files
    assert main(args + ["--out", str(tmp_path / "v.h5")]) == 0
    line = capsys.readouterr().out.strip()
    assert "cache hit" in line and "2 unreadable items left out" in line
    assert "a/garbage.jpg" in line and "b/cut.jpg" in line
    with h5py.File(tmp_path / "v.h5", "r") as f:
        np.testing.assert_allclose(f["vectors"][()], ref, rtol=1e-4, atol=1e-4)
        assert [i.decode() for i in f["ids"][()]] == order


def test_a_folder_whose_only_image_is_unreadable_is_an_error(tmp_path, capsys):
    root = tmp_path / "only"
    root.mkdir()
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    w = _weights(tmp_path)
    rc = main(["embed", "--data", str(root), "--encoder", str(w), "--arch", "small_cnn",
               "--workspace", str(tmp_path / "w.h5"), "--out", str(tmp_path / "v.npy"),
               "--workers", "0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert "\n" not in err and "None of the 1 items of only could be read" in err
    assert "bad.jpg" in err and "Traceback" not in err
    assert not (tmp_path / "v.npy").exists()


def test_session_shows_only_readable_items(tmp_path):
    """Maps, neighbours and labels see the 6 readable images; the two bad files are named."""
    from explorer.data import open_dataset
    from explorer.encoders import open_encoder
    from explorer.core.jobs import drain
    from explorer.app.session import Session

    root, good = _folder(tmp_path)
    w = _weights(tmp_path)
    order = sorted(good)
    ref = _reference(w, np.stack([good[r] for r in order]))
    s = Session(tmp_path / "w.h5")
    s.set_dataset(open_dataset(root))
    assert len(s.dataset) == 8
    m = s.add_model(open_encoder(w, arch="small_cnn"))
    key, Z = drain(s.embed_job(m.id))
    s.apply_embedding(m.id, key, Z)
    ds = s.dataset
    assert len(ds) == 6 and list(ds.ids) == order
    assert [ds.label_names[c] for c in ds.labels] == [r.split("/")[0] for r in order]
    assert sorted(p for p, _ in ds.skipped) == ["a/garbage.jpg", "b/cut.jpg"]
    assert len(s.selection.indices) == 0 and s.selection.n == 6
    np.testing.assert_allclose(m.vectors, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ds.image(2, 32), good[order[2]])
    # neighbours against a float64 cosine reference over the readable rows only
    idx, scores = s.neighbors(m.id, 0, k=3)
    r = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    sims = r[1:] @ r[0]
    want = 1 + np.argsort(-sims)[:3]
    assert idx.tolist() == want.tolist()
    np.testing.assert_allclose(scores, np.sort(sims)[::-1][:3], rtol=1e-4, atol=1e-5)
    # a second model on the narrowed dataset: every item readable, nothing more left out
    m2 = s.add_model(open_encoder(w, arch="small_cnn"), name="again")
    key2, Z2 = drain(s.embed_job(m2.id))
    s.apply_embedding(m2.id, key2, Z2)
    assert len(s.dataset) == 6 and Z2.shape == (6, 128)
    assert m.vectors is not None  # the first model still lines up
    # reopening the full folder and applying the stored record narrows it the same way
    s2 = Session(tmp_path / "w.h5")
    s2.set_dataset(open_dataset(root))
    m3 = s2.add_model(open_encoder(w, arch="small_cnn"))
    s2.apply_embedding(m3.id, key, s2.workspace.get("embeddings", key).arrays["vectors"])
    assert list(s2.dataset.ids) == order


def test_records_without_rows_read_as_complete(tmp_path):
    """A record written before rows were stored (every item has its row) opens as before."""
    from explorer.data import open_dataset
    from explorer.embed import embedding_rows
    from explorer.app.session import Session
    from explorer.store import Workspace

    v = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "v.npy", v)
    ws = Workspace(tmp_path / "w.h5")
    ws.put("embeddings", "k0", {"vectors": v}, {"model": "precomputed", "n": 4})
    assert embedding_rows(ws, "k0") is None
    s = Session(tmp_path / "w.h5")
    s.set_dataset(open_dataset(tmp_path / "v.npy"))
    s.apply_embedding("precomputed", "k0", v)
    assert len(s.dataset) == 4
    with pytest.raises(Exception, match="has 3 rows but v has 4 items"):
        s.apply_embedding("precomputed", "k0", v[:3])


@pytest.mark.parametrize("preload", [True, False])
def test_timeline_compares_checkpoints_on_readable_probe_items(tmp_path, preload, monkeypatch):
    """Two checkpoints over a folder with two bad files: every checkpoint's rows are the six
    readable images (float64 reference per checkpoint), labels follow, the bad ones are named."""
    from explorer.data import open_dataset
    from explorer.encoders.archs import small_cnn
    from explorer.core.jobs import drain
    from explorer.app.timeline import TimelineParams, timeline_job

    root, good = _folder(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    for i in (1, 2):
        torch.manual_seed(i)
        torch.save(small_cnn().state_dict(), run / f"epoch_{i}.pt")
    order = sorted(good)
    p = TimelineParams(probe_size=50, arch="small_cnn", device="cpu", map_method="pca",
                       metrics=("rankme", "knn_accuracy"), knn_k=3, batch_size=4)
    ds = open_dataset(root)
    if not preload:  # the engine reads through the probe without the in-memory cache
        import explorer.app.timeline as tl

        monkeypatch.setattr(tl.ProbeDataset, "preload", lambda self, size, max_bytes=0: False)
    res = drain(timeline_job(run, ds, p))
    assert sorted(res.info["left_out"]) == ["a/garbage.jpg", "b/cut.jpg"]
    assert [ds.ids[i] for i in res.probe_indices] == order
    assert [ds.label_names[c] for c in res.labels] == [r.split("/")[0] for r in order]
    for i, Z in zip((1, 2), res.vectors):
        torch.save(torch.load(run / f"epoch_{i}.pt"), tmp_path / "w.pt")
        np.testing.assert_allclose(Z, _reference(tmp_path / "w.pt", np.stack([good[r] for r in order])),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_leaves_the_same_items_out(tmp_path):
    """Pinned batches with unreadable rows removed on the way to the GPU give the CPU rows."""
    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed
    from explorer.encoders import open_encoder
    from explorer.core.jobs import drain

    root, good = _folder(tmp_path, n_good=40)
    w = _weights(tmp_path)
    ds = open_dataset(root)
    cpu = drain(embed(ds, open_encoder(w, arch="small_cnn"), EmbedParams(device="cpu", num_workers=0)))
    gpu = drain(embed(ds, open_encoder(w, arch="small_cnn"), EmbedParams(device="cuda", batch_size=8)))
    assert gpu.rows.tolist() == cpu.rows.tolist() and len(gpu.rows) == 40
    np.testing.assert_allclose(gpu.vectors, cpu.vectors, rtol=1e-3, atol=1e-3)
