"""The bundled sample data is there, loads, and its checkpoints are what they claim.

Claims are checked with numpy computations written here (SVD of the embeddings of 300 sample
images), independently of the diagnostics module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from explorer.encoders.archs import ARCHITECTURES, default_preprocess  # noqa: E402
from explorer.core.resources import sample_data_dir  # noqa: E402

SD = sample_data_dir()
CK = SD / "checkpoints"
NAMES = ["healthy", "collapsed", "dimcollapsed"] + [f"run/epoch_{i:02d}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def table():
    with open(SD / "digits_metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def images(table):
    """300 sample images (every 6th row), as the model sees them, and their labels."""
    from PIL import Image

    rows = table[::6][:300]
    x = np.stack([np.asarray(Image.open(SD / r["path"]).convert("RGB")) for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    pre = default_preprocess("small_cnn")
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    t = (t - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)
    return t, y


def load(name):
    path = CK / f"{name}.pt"
    side = json.loads(Path(str(path) + ".json").read_text())
    model = ARCHITECTURES.get(side["arch"]).func(**side["arch_kwargs"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval(), side


def embed(name, images):
    model, _ = load(name)
    with torch.no_grad():
        return model(images[0]).double().numpy()


def test_dataset_files(table):
    assert len(table) == 1797
    assert {"path", "label", "split", "ink", "mean_intensity"} <= set(table[0])
    folders = sorted(p.name for p in (SD / "digits").iterdir() if p.is_dir())
    assert folders == [str(i) for i in range(10)]
    pngs = list((SD / "digits").rglob("*.png"))
    assert len(pngs) == 1797
    for r in table[::97]:
        p = SD / r["path"]
        assert p.parent.name == r["label"]
        from PIL import Image

        im = Image.open(p)
        assert im.size == (32, 32) and im.mode == "RGB"
    counts = np.bincount([int(r["label"]) for r in table])
    assert counts.min() > 150  # load_digits has ~180 per class
    total = sum(p.stat().st_size for p in SD.rglob("*") if p.is_file())
    assert total < 10 * 2**20


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_weights_only(name):
    model, side = load(name)
    assert side["arch"] == "small_cnn"
    assert {"objective", "seed", "preprocess", "arch_kwargs"} <= set(side)
    assert "epoch" in side or "step" in side
    out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 128)


def _spectrum(z):
    c = z - z.mean(0)
    return np.linalg.svd(c, compute_uv=False) ** 2


def _eff_rank(ev):
    """Entropy effective rank (Roy & Vetterli 2007) of the centred singular values."""
    s = np.sqrt(ev)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _relative_spread(z):
    return float(np.sqrt(((z - z.mean(0)) ** 2).sum(1).mean()) / np.linalg.norm(z, axis=1).mean())


def _loo_1nn_accuracy(z, y):
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = zn @ zn.T
    np.fill_diagonal(s, -np.inf)
    return float((y[s.argmax(1)] == y).mean())


def test_healthy_is_healthy(images):
    z = embed("healthy", images)
    ev = _spectrum(z)
    assert _eff_rank(ev) > 8
    assert np.searchsorted(np.cumsum(ev) / ev.sum(), 0.99) + 1 > 10
    assert _relative_spread(z) > 0.3
    assert _loo_1nn_accuracy(z, images[1]) > 0.9


def test_collapsed_is_one_point(images):
    z = embed("collapsed", images)
    assert _relative_spread(z) < 1e-3
    s = np.linalg.svd(z, compute_uv=False)  # RankMe on the uncentred embeddings
    p = s / s.sum() + 1e-7
    assert np.exp(-(p * np.log(p)).sum()) < 1.1


def test_dimcollapsed_is_low_dimensional_not_complete(images):
    z = embed("dimcollapsed", images)
    ev = _spectrum(z)
    k99 = int(np.searchsorted(np.cumsum(ev) / ev.sum(), 0.99) + 1)
    assert 2 <= k99 <= 4
    assert ev[4:].sum() / ev.sum() < 1e-6       # exactly a 4-dimensional subspace
    assert _relative_spread(z) > 0.2            # not a single point
    assert _loo_1nn_accuracy(z, images[1]) > 0.5


def test_run_is_one_training_run(images):
    sides = [load(f"run/epoch_{i:02d}")[1] for i in range(1, 6)]
    assert [s["epoch"] for s in sides] == [1, 2, 3, 4, 5]
    assert len({s["objective"] for s in sides}) == 1
    steps = [s["step"] for s in sides]
    assert steps == sorted(steps) and len(set(steps)) == 5
    z1, z5 = embed("run/epoch_01", images), embed("run/epoch_05", images)
    assert not np.allclose(z1, z5)
    assert _loo_1nn_accuracy(z5, images[1]) >= _loo_1nn_accuracy(z1, images[1]) - 0.02
