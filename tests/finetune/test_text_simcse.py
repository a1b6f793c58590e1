"""Fine-tuning on text: SimCSE dropout views (Gao et al. 2021), refusal without dropout, ce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from explorer.data import open_dataset  # noqa: E402
from explorer.encoders.base import Encoder, Preprocess  # noqa: E402
from explorer.core.errors import InputError  # noqa: E402
from explorer.finetune import FinetuneParams, FinetuneResult, finetune  # noqa: E402
from explorer.core.jobs import drain  # noqa: E402


class CharTokenizer:
    """Tokenizer-shaped callable: characters -> ids 1..127, padded with 0, with an attention mask."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts, padding=True, truncation=True, max_length=128, return_tensors="pt"):
        self.calls.append(max_length)
        rows = [[1 + (ord(c) % 127) for c in t][:max_length] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


class CharEncoder(nn.Module):
    """Embedding over character ids, dropout, linear: (B, T) -> (B, T, 16)."""

    def __init__(self, p: float = 0.1):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(128, 16)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(16, 16)

    def forward(self, input_ids, attention_mask):
        return self.out(self.drop(self.emb(input_ids)))


def _encoder(p: float = 0.1) -> Encoder:
    return Encoder(name="chars", source=Path("chars"), format="test", module=CharEncoder(p),
                   preprocess=Preprocess(kind="text", max_length=16), tokenizer=CharTokenizer())


def _words(rng, letters, k):
    return " ".join("".join(rng.choice(list(letters), size=rng.integers(2, 6))) for _ in range(k))


@pytest.fixture()
def txt(tmp_path):
    rng = np.random.default_rng(0)
    lines = [_words(rng, "abcdefghijklmnopqrstuvwxyz", int(rng.integers(1, 5))) for _ in range(64)]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines) + "\n")
    return open_dataset(path)


def _nt_xent64(z1: np.ndarray, z2: np.ndarray, t: float) -> float:
    """NT-Xent (SimCLR eq. 1 / SimCSE eq. 4 over both directions), float64, written out."""
    u = np.concatenate([z1, z2]).astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    b = len(z1)
    s = u @ u.T / t
    total = 0.0
    for i in range(2 * b):
        pos = (i + b) % (2 * b)
        others = np.array([s[i, k] for k in range(2 * b) if k != i])
        total += -s[i, pos] + np.log(np.exp(others).sum())
    return total / (2 * b)


def test_simcse_views_differ_and_loss_is_nt_xent_of_them(txt):
    assert txt.kind == "text"
    enc = _encoder(0.1)
    seen = []

    def hook(mod, args, kwargs, out):
        if mod.training:
            seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone(), out.detach().clone()))

    enc.module.register_forward_hook(hook, with_kwargs=True)
    params = FinetuneParams(objective="simclr", epochs=6, batch_size=16, lr=1e-2, temperature=0.1,
                            projector_dim=0, probe_every=0, probe_size=64, device="cpu", copy=False)
    res = FinetuneResult()
    drain(finetune(enc, txt, params, result=res))
    assert res.finished and res.steps == 24
    assert enc.tokenizer.calls and set(enc.tokenizer.calls) == {16}

    ids, mask, out = seen[0]                       # the first training forward: 2B rows
    b = ids.shape[0] // 2
    assert b == 16
    assert torch.equal(ids[:b], ids[b:]) and torch.equal(mask[:b], mask[b:])   # same tokenised batch
    assert ids.shape[1] <= 16                      # truncated to max_length
    m = mask.double().unsqueeze(-1)
    z = ((out.double() * m).sum(1) / m.sum(1)).numpy()   # masked mean over tokens
    z1, z2 = z[:b], z[b:]
    assert np.abs(z1 - z2).max() > 1e-3            # dropout made the views differ
    ref = _nt_xent64(z1, z2, 0.1)
    assert res.history[0]["loss"] == pytest.approx(ref, rel=1e-4, abs=1e-5)

    losses = [h["loss"] for h in res.history]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


@pytest.mark.parametrize("objective", ["vicreg", "sigreg"])
def test_other_ssl_objectives_train_on_text_views(txt, objective):
    params = FinetuneParams(objective=objective, epochs=2, batch_size=16, lr=1e-3, projector_dim=8,
                            projector_hidden=16, num_directions=32, probe_every=0, probe_size=64,
                            device="cpu")
    res = FinetuneResult()
    drain(finetune(_encoder(0.1), txt, params, result=res))
    assert res.finished and res.steps == 8
    assert all(np.isfinite(h["loss"]) for h in res.history)


@pytest.mark.parametrize("objective", ["simclr", "vicreg", "sigreg"])
def test_no_dropout_refuses_ssl_on_text(txt, objective):
    with pytest.raises(InputError, match="no dropout, so SimCSE views"):
        drain(finetune(_encoder(0.0), txt, FinetuneParams(objective=objective, epochs=1, batch_size=16,
                                                          device="cpu")))


def test_dropout_only_in_frozen_blocks_refuses(txt):
    # blocks with parameters: emb, out. With only the last one (out) training, the Dropout
    # module is not in the trained part, so the job refuses rather than train on equal views.
    with pytest.raises(InputError, match="no dropout in its last 1 block"):
        drain(finetune(_encoder(0.1), txt, FinetuneParams(objective="simclr", epochs=1, batch_size=16,
                                                          last_n_blocks=1, device="cpu")))


def test_ce_with_labels_from_csv_trains(tmp_path):
    rng = np.random.default_rng(1)
    rows = ["text,label"]
    for i in range(96):
        c = i % 2
        rows.append(f"{_words(rng, 'abcdefghijklm' if c == 0 else 'nopqrstuvwxyz', 3)},{'first' if c == 0 else 'second'}")
    path = tmp_path / "labelled.csv"
    path.write_text("\n".join(rows) + "\n")
    ds = open_dataset(path)
    assert ds.kind == "text" and ds.labels is not None
    enc = _encoder(0.0)                            # no dropout: fine for a supervised objective
    params = FinetuneParams(objective="ce", epochs=8, batch_size=16, lr=1e-2, probe_every=0, probe_size=96,
                            device="cpu")
    res = FinetuneResult()
    drain(finetune(enc, ds, params, result=res))
    assert res.finished
    losses = [h["loss"] for h in res.history]
    assert losses[0] == pytest.approx(np.log(2), abs=0.3)
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert res.metrics["probe_accuracy"] >= 0.85
    # the caller's encoder is untouched (copy=True by default)
    assert torch.equal(enc.module.emb.weight, CharEncoder(0.0).emb.weight)
