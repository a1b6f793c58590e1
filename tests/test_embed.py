"""The embedding engine: numbers against a hand-written float64 forward pass, precision,
cancellation, caching, out-of-memory retry, bad images, the CLI and (with a GPU) CUDA."""

import hashlib
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.data.base import Dataset
from explorer.embed import EmbedParams, embed, embed_cached, embedding_key, pool
from explorer.encoders.base import Encoder, Preprocess
from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.store import Workspace


# -- small datasets and encoders built on the contract base classes ----------------------------
class MemImages(Dataset):
    """uint8 (N, S, S, 3) images in memory; ``bad`` rows cannot be read."""

    def __init__(self, x, bad=()):
        super().__init__(name="mem", source=Path("memory"), kind="image", n=len(x),
                         ids=np.array([f"img{i}" for i in range(len(x))], dtype=object))
        self.x, self.bad = x, set(bad)

    def image(self, i, size=None):
        if i in self.bad:
            raise InputError(f"img{i}: cannot read image (truncated).")
        return self.x[i]

    def images(self, indices, size):
        return np.stack([self.image(int(i)) for i in indices])

    def fingerprint(self):
        return hashlib.sha256(self.x.tobytes()).hexdigest()


class MemVectors(Dataset):
    def __init__(self, v):
        super().__init__(name="vecs", source=Path("memory"), kind="vector", n=len(v))
        self.v = v

    def vectors(self, indices=None):
        return self.v if indices is None else self.v[np.asarray(indices)]

    def fingerprint(self):
        return hashlib.sha256(self.v.tobytes()).hexdigest()


def tiny_cnn(seed=0, in_ch=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(in_ch, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 6)).eval()


def images(n=70, size=16, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def reference(module, x, mean, std, grey=False, upto=None, pool_avg=False):
    """Independent float64 forward pass: x uint8 (N, S, S, 3) -> (N, D)."""
    m = module.double()
    t = torch.from_numpy(x.astype(np.float64) / 255.0).permute(0, 3, 1, 2)
    if grey:
        t = 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]
    c = t.shape[1]
    t = (t - torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)) / torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    with torch.no_grad():
        layers = list(m.children())
        for layer in layers[:upto] if upto is not None else layers:
            t = layer(t)
        if pool_avg:
            t = t.mean(dim=(2, 3))
    m.float()
    return t.numpy()


PP = Preprocess(kind="image", size=16, channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def enc(module, layer=None, pooling="auto", pp=PP):
    return Encoder(name="tiny", source=Path("tiny.pt"), format="test", module=module,
                        preprocess=pp, layer=layer, pooling=pooling)


# -- numbers -----------------------------------------------------------------------------------
def test_output_equals_a_manual_forward_row_for_row():
    x = images()
    m = tiny_cnn()
    res = drain(embed(MemImages(x), enc(m), EmbedParams(device="cpu", batch_size=16)))
    ref = reference(m, x, PP.mean, PP.std)
    assert res.vectors.dtype == np.float32 and res.vectors.shape == (70, 6)
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)
    assert res.device == "cpu" and res.skipped == [] and res.batch_size == 16


def test_chosen_layer_with_average_pooling_and_grey_input():
    x = images(n=20)
    m = tiny_cnn(seed=3, in_ch=1)
    pp = Preprocess(kind="image", size=16, channels=1, mean=(0.45,), std=(0.22,))
    res = drain(embed(MemImages(x), enc(m, layer="2", pooling="auto", pp=pp), EmbedParams(device="cpu", batch_size=7)))
    ref = reference(m, x, (0.45,), (0.22,), grey=True, upto=3, pool_avg=True)  # conv, relu, conv
    assert res.vectors.shape == (20, 12)
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)


def test_grey_input_with_an_rgb_mean_and_std_uses_their_luma_weights():
    """A one-channel encoder given ImageNet's three-channel mean/std: the grey image is
    0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) and it is normalised with the same weighting of
    the mean and of the std."""
    x = images(n=12)
    m = tiny_cnn(seed=4, in_ch=1)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pp = Preprocess(kind="image", size=16, channels=1, mean=mean, std=std)
    res = drain(embed(MemImages(x), enc(m, pp=pp), EmbedParams(device="cpu", batch_size=5)))
    w = np.array([0.299, 0.587, 0.114])
    ref = reference(m, x, (float(w @ mean),), (float(w @ std),), grey=True)
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)
    # not the same as normalising with the red channel's values alone
    wrong = reference(m, x, (mean[0],), (std[0],), grey=True)
    assert np.abs(wrong - ref).max() > 1e-2


@pytest.mark.parametrize("channels, mean, std, ref_mean, ref_std", [
    (3, 0.5, 0.25, (0.5,) * 3, (0.25,) * 3),            # one number for every channel
    (3, (0.45,), (0.2,), (0.45,) * 3, (0.2,) * 3),      # a one-value tuple, broadcast
    (1, (0.3, 0.7), (0.2, 0.9), (0.3,), (0.2,)),        # two values for one channel: the first
])
def test_mean_and_std_broadcast_to_the_channels(channels, mean, std, ref_mean, ref_std):
    x = images(n=6)
    m = tiny_cnn(seed=5, in_ch=channels)
    pp = Preprocess(kind="image", size=16, channels=channels, mean=mean, std=std)
    res = drain(embed(MemImages(x), enc(m, pp=pp), EmbedParams(device="cpu", batch_size=6)))
    ref = reference(m, x, ref_mean, ref_std, grey=channels == 1)
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)


def test_pooling_definitions():
    h = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(pool(h, "cls").numpy(), h[:, 0].numpy())
    np.testing.assert_allclose(pool(h, "mean").numpy(), h.numpy().mean(1))
    np.testing.assert_allclose(pool(h, "mean", mask=mask).numpy(),
                               np.stack([h[0, :2].numpy().mean(0), h[1, 0].numpy()]))
    np.testing.assert_allclose(pool(h, "auto", has_cls=True).numpy(), h[:, 0].numpy())
    fm = torch.randn(2, 5, 3, 3)
    np.testing.assert_allclose(pool(fm, "auto").numpy(), fm.numpy().mean((2, 3)), rtol=1e-5, atol=1e-6)
    assert pool(fm, "flatten").shape == (2, 45)
    with pytest.raises(InputError):
        pool(fm, "none")


def test_bf16_is_close_to_fp32():
    x = images(n=40)
    m = tiny_cnn()
    a = drain(embed(MemImages(x), enc(m), EmbedParams(device="cpu", precision="fp32"))).vectors
    b = drain(embed(MemImages(x), enc(m), EmbedParams(device="cpu", precision="bf16"))).vectors
    assert b.dtype == np.float32
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    assert np.median(rel) < 0.02 and rel.max() < 0.06
    assert not np.array_equal(a, b)  # autocast really ran in bf16
    # fp16 on the CPU: this PyTorch build autocasts matrix products to float16 on the CPU (the
    # app checks with one small product and refuses plainly where a build cannot)
    with torch.autocast("cpu", dtype=torch.float16):
        supported = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    if supported:
        h = drain(embed(MemImages(x), enc(m), EmbedParams(device="cpu", precision="fp16"))).vectors
        rel = np.linalg.norm(a - h, axis=1) / np.linalg.norm(a, axis=1)
        assert h.dtype == np.float32 and np.median(rel) < 0.01 and not np.array_equal(a, h)


def test_vector_dataset_with_an_mlp_encoder():
    v = np.random.default_rng(0).standard_normal((33, 10)).astype(np.float32)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(10, 7), nn.Tanh()).eval()
    e = Encoder(name="mlp", source=Path("m.pt"), format="test", module=m, preprocess=Preprocess(kind="vector"))
    res = drain(embed(MemVectors(v), e, EmbedParams(device="cpu", batch_size=8)))
    w, bias = m[0].weight.detach().double().numpy(), m[0].bias.detach().double().numpy()
    np.testing.assert_allclose(res.vectors, np.tanh(v.astype(np.float64) @ w.T + bias), rtol=1e-5, atol=1e-6)


def test_kind_mismatch_is_one_sentence():
    v = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="vecs holds vector items but encoder tiny takes image input"):
        drain(embed(MemVectors(v), enc(tiny_cnn()), EmbedParams(device="cpu")))


def test_unreadable_images_are_skipped_counted_and_named():
    x = images(n=30)
    res = drain(embed(MemImages(x, bad={4, 17}), enc(tiny_cnn()), EmbedParams(device="cpu", batch_size=8)))
    assert res.vectors.shape == (28, 6)  # no row for an unreadable item, never a blank's vector
    assert res.skipped_indices.tolist() == [4, 17]
    assert [s[0] for s in res.skipped] == ["img4", "img17"]
    assert "truncated" in res.skipped[0][1]
    good = [i for i in range(30) if i not in (4, 17)]
    assert res.rows.tolist() == good
    ref = reference(tiny_cnn(), x[good], PP.mean, PP.std)
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-4, atol=1e-5)


def test_no_readable_item_is_an_error():
    x = images(n=5)
    with pytest.raises(InputError, match=r"None of the 5 items of mem could be read; img0: cannot read image \(truncated\)\.$"):
        drain(embed(MemImages(x, bad=set(range(5))), enc(tiny_cnn()), EmbedParams(device="cpu", batch_size=2)))


# -- out of memory -----------------------------------------------------------------------------
class OOMAbove(nn.Module):
    """A real module that behaves like a GPU with room for at most ``limit`` images."""

    def __init__(self, inner, limit):
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_halves_the_batch_and_retries():
    x = images(n=50)
    inner = tiny_cnn()
    m = OOMAbove(inner, limit=8)
    job = embed(MemImages(x), enc(m), EmbedParams(device="cpu", batch_size=32))
    messages = []
    res = drain(job, lambda p: messages.append(p.message))
    np.testing.assert_allclose(res.vectors, reference(inner, x, PP.mean, PP.std), rtol=1e-4, atol=1e-5)
    assert res.batch_size == 8
    assert m.sizes[:3] == [32, 16, 8]  # halved twice, then every pass fits
    assert max(m.sizes[3:]) <= 8
    assert any("retrying with 8" in s for s in messages)


def test_out_of_memory_at_batch_one_is_an_error():
    m = OOMAbove(tiny_cnn(), limit=0)
    with pytest.raises(InputError, match="even with a batch of 1"):
        drain(embed(MemImages(images(n=5)), enc(m), EmbedParams(device="cpu", batch_size=4)))


# -- workspace: cache, cancel ------------------------------------------------------------------
def count_forwards(module):
    calls = []
    module.register_forward_pre_hook(lambda mod, inp: calls.append(len(inp[0])))
    return calls


def test_cache_hit_calls_no_model_and_a_changed_weight_misses(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    x = images(n=40)
    m = tiny_cnn()
    calls = count_forwards(m)
    ds, e = MemImages(x), enc(m)
    key1, v1 = drain(embed_cached(ws, ds, e, EmbedParams(device="cpu", batch_size=16)))
    assert sum(calls) == 40
    rec = ws.get("embeddings", key1)
    np.testing.assert_array_equal(rec.arrays["vectors"], v1)
    for name in ("model", "layer", "dataset", "dataset_fingerprint", "encoder_fingerprint",
                 "preprocess", "n", "dim", "created"):
        assert name in rec.attrs
    assert rec.attrs["n"] == 40 and rec.attrs["dim"] == 6 and rec.attrs["preprocess"]["size"] == 16

    calls.clear()
    key2, v2 = drain(embed_cached(ws, MemImages(x.copy()), enc(m), EmbedParams(device="cpu")))
    assert calls == [] and key2 == key1
    np.testing.assert_array_equal(v2, v1)

    with torch.no_grad():
        m[0].weight[0, 0, 0, 0] += 0.5
    key3, v3 = drain(embed_cached(ws, ds, enc(m), EmbedParams(device="cpu")))
    assert key3 != key1 and sum(calls) == 40
    assert not np.allclose(v3, v1)
    assert len(ws.list("embeddings")) == 2


def test_a_stored_record_says_which_items_were_left_out_and_where_everything_came_from(tmp_path):
    # the workspace is read later, by other processes (the timeline, an export): the record
    # alone must say which items have no row and which model, data and format made it
    from explorer.embed import embedding_rows

    ws = Workspace(tmp_path / "w.h5")
    x = images(n=30)
    key, v = drain(embed_cached(ws, MemImages(x, bad={4, 17}), enc(tiny_cnn()), EmbedParams(device="cpu", batch_size=8)))
    rec = ws.get("embeddings", key)
    good = [i for i in range(30) if i not in (4, 17)]
    assert rec.arrays["skipped"].tolist() == [4, 17]
    assert embedding_rows(ws, key).tolist() == good
    a = rec.attrs
    assert (a["n"], a["n_items"], a["dim"]) == (28, 30, 6)
    assert (a["model"], a["encoder_source"], a["encoder_format"]) == ("tiny", "tiny.pt", "test")
    assert (a["dataset"], a["dataset_source"]) == ("mem", "memory")
    assert a["layer"] is None and a["pooling"] == "auto"
    np.testing.assert_allclose(v, reference(tiny_cnn(), x[good], PP.mean, PP.std), rtol=1e-4, atol=1e-5)
    # a record with every item read has no rows array: its rows are 0..N-1
    key2, _ = drain(embed_cached(ws, MemImages(images(n=30, seed=2)), enc(tiny_cnn()), EmbedParams(device="cpu")))
    assert embedding_rows(ws, key2) is None and "skipped" not in ws.get("embeddings", key2).arrays


def test_a_different_layer_or_data_is_a_different_key():
    x = images(n=4)
    m = tiny_cnn()
    k = embedding_key(MemImages(x), enc(m))
    assert embedding_key(MemImages(x), enc(m, layer="2")) != k
    x2 = x.copy()
    x2[0, 0, 0, 0] ^= 1
    assert embedding_key(MemImages(x2), enc(m)) != k


def test_cancel_mid_run_leaves_the_workspace_unchanged(tmp_path):
    ws = Workspace(tmp_path / "w.h5")
    drain(embed_cached(ws, MemVectors(np.ones((5, 3), np.float32)), None))
    before = (tmp_path / "w.h5").read_bytes()
    ds, e = MemImages(images(n=64)), enc(tiny_cnn())
    job = embed_cached(ws, ds, e, EmbedParams(device="cpu", batch_size=8))
    steps = [next(job), next(job)]
    assert steps[1].done == 16 and steps[1].total == 64
    job.close()
    assert (tmp_path / "w.h5").read_bytes() == before
    assert not ws.has("embeddings", embedding_key(ds, e))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".w.h5.lock")) == ["w.h5"]


class FileLikeImages(MemImages):
    """Pretends to decode image files, so the engine picks worker processes."""

    decodes_files = True


def test_worker_processes_give_the_same_rows_and_stop_on_cancel():
    x = images(n=48)
    m = tiny_cnn()
    res = drain(embed(FileLikeImages(x), enc(m), EmbedParams(device="cpu", batch_size=8, num_workers=2)))
    np.testing.assert_allclose(res.vectors, reference(m, x, PP.mean, PP.std), rtol=1e-4, atol=1e-5)
    calls = count_forwards(m)
    job = embed(FileLikeImages(x), enc(m), EmbedParams(device="cpu", batch_size=8, num_workers=2))
    first = next(job)
    assert first.done == 8 and sum(calls) == 8           # one batch of 8 computed so far
    assert len(multiprocessing.active_children()) >= 1   # the worker processes are running
    job.close()
    assert sum(calls) == 8                                # no batch after the cancel
    assert multiprocessing.active_children() == []        # and the workers were shut down


def test_precomputed_vectors_are_stored_as_they_are(tmp_path):
    v = np.random.default_rng(0).standard_normal((25, 9)).astype(np.float32)
    ws = Workspace(tmp_path / "w.h5")
    key, out = drain(embed_cached(ws, MemVectors(v), None))
    np.testing.assert_array_equal(out, v)
    assert out.dtype == np.float32
    # float64 or integer vectors come back float32 (what every engine takes)
    w = drain(embed(MemVectors(v.astype(np.float64)), None)).vectors
    assert w.dtype == np.float32 and np.array_equal(w, v)
    rec = ws.get("embeddings", key)
    np.testing.assert_array_equal(rec.arrays["vectors"], v)
    assert rec.attrs["model"] == "precomputed" and rec.attrs["n"] == 25 and rec.attrs["dim"] == 9


def test_image_dataset_without_encoder_is_refused():
    with pytest.raises(InputError, match="choose an encoder"):
        drain(embed(MemImages(images(n=2)), None))


# -- the command line --------------------------------------------------------------------------
def test_cli_missing_data_file_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["embed", "--data", str(tmp_path / "nope.npy"), "--workspace", str(tmp_path / "w.h5")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().count("\n") == 0 and "nope.npy: no such file or folder." in err
    assert "Traceback" not in err


def test_cli_not_a_workspace_is_one_line_exit_2(tmp_path, capsys):
    v = tmp_path / "v.npy"
    np.save(v, np.ones((3, 2), np.float32))
    bad = tmp_path / "w.h5"
    bad.write_bytes(b"not hdf5")
    rc = main(["embed", "--data", str(v), "--workspace", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == ("embedding-explorer: error: w.h5 is not an HDF5 file, so it is not "
                                       "an Embedding Explorer workspace.")
    assert bad.read_bytes() == b"not hdf5"


def test_cli_precomputed_vectors_to_workspace_and_out(tmp_path, capsys):
    import json

    import h5py

    v = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    np.save(tmp_path / "v.npy", v)
    args = ["embed", "--data", str(tmp_path / "v.npy"), "--workspace", str(tmp_path / "w.h5"), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "o.npy"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["n"] == 12 and first["dim"] == 5 and first["cache_hit"] is False
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), v)
    assert main(args + ["--out", str(tmp_path / "o.h5")]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "cache hit" in line and "12 x 5" in line
    with h5py.File(tmp_path / "o.h5", "r") as f:
        np.testing.assert_array_equal(f["vectors"][()], v)


# -- CUDA --------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x = images(n=300)
    m = tiny_cnn()
    cpu = drain(embed(MemImages(x), enc(m), EmbedParams(device="cpu")))
    gpu = drain(embed(MemImages(x), enc(m), EmbedParams(device="cuda", batch_size=64)))
    assert gpu.device.startswith("cuda")
    np.testing.assert_allclose(gpu.vectors, cpu.vectors, rtol=1e-3, atol=1e-4)
    half = drain(embed(MemImages(x), enc(m), EmbedParams(device="cuda", precision="fp16")))
    np.testing.assert_allclose(half.vectors, cpu.vectors, rtol=5e-2, atol=5e-2)


def test_cli_images_with_a_weights_file_and_built_in_architecture(tmp_path, capsys):
    """End to end through the real npy and state_dict formats; rows checked against a float64
    forward pass of the same weights with the encoder's own preprocessing values."""
    from explorer.encoders import open_encoder
    from explorer.encoders.archs import small_cnn

    x = images(n=40, size=32, seed=5)
    np.save(tmp_path / "imgs.npy", x)
    torch.manual_seed(0)
    torch.save(small_cnn().state_dict(), tmp_path / "cnn.pt")
    rc = main(["embed", "--data", str(tmp_path / "imgs.npy"), "--encoder", str(tmp_path / "cnn.pt"),
               "--arch", "small_cnn", "--workspace", str(tmp_path / "w.h5"), "--out", str(tmp_path / "v.npy"),
               "--batch-size", "16", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    got = np.load(tmp_path / "v.npy")
    e = open_encoder(tmp_path / "cnn.pt", arch="small_cnn")
    pp = e.preprocess
    assert pp.size == 32 and pp.channels == 3
    m = e.module.double().eval()
    t = torch.from_numpy(x.astype(np.float64) / 255.0).permute(0, 3, 1, 2)
    t = (t - torch.tensor(pp.mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(pp.std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = m(t).numpy()
    assert got.shape == ref.shape == (40, 128)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


class MemTexts(Dataset):
    def __init__(self, lines):
        super().__init__(name="lines", source=Path("memory"), kind="text", n=len(lines))
        self.lines = lines

    def text(self, i):
        return self.lines[i]

    def fingerprint(self):
        return hashlib.sha256("\n".join(self.lines).encode()).hexdigest()


class CharTokenizer:
    """Tokenizer-shaped callable: characters -> ids, padded with 0, with an attention mask."""

    def __call__(self, texts, padding=True, truncation=True, max_length=128, return_tensors="pt"):
        rows = [[1 + (ord(c) % 50) for c in t][:max_length] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(51, 5)

    def forward(self, input_ids, attention_mask):
        return self.emb(input_ids)  # (B, T, 5); padding is left to the pooling's mask


def test_text_with_tokenizer_and_masked_mean_pooling():
    lines = ["hello", "a", "embedding explorer", "xyz" * 3]
    m = TokenModel().eval()
    e = Encoder(name="tok", source=Path("t"), format="test", module=m, pooling="mean",
                     preprocess=Preprocess(kind="text", max_length=8), tokenizer=CharTokenizer())
    res = drain(embed(MemTexts(lines), e, EmbedParams(device="cpu", batch_size=3)))
    table = m.emb.weight.detach().double().numpy()
    ref = np.stack([table[[1 + (ord(c) % 50) for c in t][:8]].mean(0) for t in lines])
    np.testing.assert_allclose(res.vectors, ref, rtol=1e-5, atol=1e-6)


def test_off_main_thread_workers_use_threads_and_match(tmp_path):
    """Run from a worker thread (as the GUI does), the engine reads with threads, never forks,
    and gives the same vectors as the single-process path."""
    import threading

    from PIL import Image

    from explorer.data import open_dataset
    from explorer.embed import EmbedParams, embed
    from explorer.encoders.base import Encoder, Preprocess
    from explorer.core.jobs import drain

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(40):
            Image.fromarray(rng.integers(0, 255, (20 + i % 5, 24, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = open_dataset(tmp_path)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    enc = Encoder("t", tmp_path, "test", net, Preprocess(kind="image", size=16))
    ref = drain(embed(ds, enc, EmbedParams(num_workers=0, batch_size=16))).vectors
    box = {}
    import multiprocessing

    before = len(multiprocessing.active_children())

    def work():
        box["r"] = drain(embed(ds, enc, EmbedParams(num_workers=2, batch_size=16)))
        box["children"] = len(multiprocessing.active_children())

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert not t.is_alive()
    np.testing.assert_allclose(box["r"].vectors, ref, rtol=1e-5, atol=1e-6)
    assert box["children"] == before


def test_an_empty_dataset_gives_no_rows_and_an_unnamed_item_is_named_by_its_number():
    for ds, e in ((MemVectors(np.zeros((0, 4), np.float32)), None), (MemImages(images(n=0)), enc(tiny_cnn()))):
        r = drain(embed(ds, e, EmbedParams(device="cpu")))
        assert r.vectors.shape == (0, 0) and r.vectors.dtype == np.float32 and len(r.skipped) == 0
    ds = MemImages(images(n=12), bad={3})
    ds.ids = None  # a dataset without item names: the message gives the item's number
    r = drain(embed(ds, enc(tiny_cnn()), EmbedParams(device="cpu", batch_size=4)))
    assert [s[0] for s in r.skipped] == ["3"] and r.vectors.shape == (11, 6)


def test_resize_then_centre_crop_matches_pixel_replication():
    # nearest-neighbour resizing by exactly 2 replicates each pixel 2 x 2; the centre crop then
    # takes torchvision's offsets round((w - size) / 2): written here with numpy
    from explorer.embed import read_images_for

    x = images(n=3, size=10)
    x = np.concatenate([x, x[:, :, ::-1]], axis=2)  # 10 x 20 (h x w) images
    got, ok = read_images_for(MemImages(x), np.arange(3), size=16, resize=20, interpolation="nearest")
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)  # 20 x 40
    top, left = round((20 - 16) / 2), round((40 - 16) / 2)
    assert ok.all() and got.dtype == np.uint8
    np.testing.assert_array_equal(got, big[:, top:top + 16, left:left + 16])
