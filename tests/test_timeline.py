"""Timeline of a training run: step parsing, the probe set, metric series against independent
float64 formulas, aligned maps, the workspace record and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from references import write_tiny_images, write_tiny_run

from explorer.core.errors import InputError
from explorer.core.jobs import drain
from explorer.app.timeline import (ProbeDataset, TimelineParams, checkpoint_step, interpolate_layouts, layout_at,
                               list_checkpoints, probe_indices, timeline_job)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RUN = ROOT / "sample_data" / "checkpoints" / "run"
SAMPLE_DIGITS = ROOT / "sample_data" / "digits"
PROBE = 150


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    if len(list(SAMPLE_RUN.glob("*.pt"))) >= 3:
        return SAMPLE_RUN
    return write_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from explorer.data import open_dataset

    path = SAMPLE_DIGITS if SAMPLE_DIGITS.is_dir() else write_tiny_images(tmp_path_factory.mktemp("imgs"))
    return open_dataset(path)


@pytest.fixture(scope="module")
def timeline(run_dir, dataset, tmp_path_factory):
    from explorer.store import Workspace

    ws = Workspace(tmp_path_factory.mktemp("ws") / "w.h5")
    params = TimelineParams(probe_size=PROBE, seed=3, device="cpu")
    res = drain(timeline_job(run_dir, dataset, params, ws))
    return res, ws, params


# ------------------------------------------------------------------ independent formulas
def _cka64(X, Y) -> float:
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    return float(np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def _rankme64(Z) -> float:
    s = np.linalg.svd(np.asarray(Z, np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def _mutual_knn64(X, Y, k) -> float:
    def nn(Z):
        Z = np.asarray(Z, np.float64)
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        S = Z @ Z.T
        np.fill_diagonal(S, -np.inf)
        return np.argsort(-S, axis=1, kind="stable")[:, :k]

    a, b = nn(X), nn(Y)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(len(a))]))


def _similarity_fit_residual(A, B) -> float:
    """Relative residual of the best similarity transform (scale, orthogonal, shift) A -> B."""
    A0, B0 = A - A.mean(0), B - B.mean(0)
    U, S, Vt = np.linalg.svd(A0.T @ B0)
    R = U @ Vt
    s = S.sum() / (A0 ** 2).sum()
    return float(np.linalg.norm(s * A0 @ R - B0) / np.linalg.norm(B0))


# ------------------------------------------------------------------ steps and files
@pytest.mark.parametrize("name, expected", [
    ("epoch_03.pt", (3, "epoch (file name)")),
    ("step-1200.ckpt", (1200, "step (file name)")),
    ("ckpt_000500.pth", (500, "step (file name)")),
    ("epoch=3-step=1200.ckpt", (1200, "step (file name)")),
    ("ep7.safetensors", (7, "epoch (file name)")),
    ("model_final7.bin", (7, "number (file name)")),
    ("model.pt", (None, "none")),
])
def test_step_from_file_name(tmp_path, name, expected):
    p = tmp_path / name
    p.write_bytes(b"not a checkpoint")  # unreadable contents: the name decides
    assert checkpoint_step(p) == expected


def test_step_from_sidecar_and_checkpoint(tmp_path):
    import torch

    p = tmp_path / "epoch_03.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 420, "epoch": 3}, p)
    assert checkpoint_step(p) == (420, "step (checkpoint)")
    assert checkpoint_step(p, prefer="epoch") == (3, "epoch (checkpoint)")
    (tmp_path / "epoch_03.pt.json").write_text(json.dumps({"epoch": 2, "step": 99}))
    assert checkpoint_step(p) == (99, "step (sidecar)")


def test_list_checkpoints_order_and_errors(tmp_path):
    for n in ("ep10.pt", "ep2.pt", "ep1.pt", "notes.txt", "ep3.pt.json"):
        (tmp_path / n).write_bytes(b"x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ep1.pt", "ep2.pt", "ep10.pt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no checkpoint files"):
        list_checkpoints(empty)
    with pytest.raises(InputError, match="not a folder"):
        list_checkpoints(tmp_path / "missing")


def test_probe_dataset_indexes_the_original(dataset):
    idx = probe_indices(len(dataset), 50, seed=1)
    assert idx.shape == (50,) and np.all(np.diff(idx) > 0) and idx.max() < len(dataset)
    assert np.array_equal(idx, probe_indices(len(dataset), 50, seed=1))
    assert not np.array_equal(idx, probe_indices(len(dataset), 50, seed=2))
    assert np.array_equal(probe_indices(10, 50), np.arange(10))
    pr = ProbeDataset(dataset, idx)
    assert len(pr) == 50 and np.array_equal(pr.labels, dataset.labels[idx])
    assert np.array_equal(pr.image(4, 32), dataset.image(int(idx[4]), 32))
    assert pr.preload(32)
    assert np.array_equal(pr.images([4, 7], 32), dataset.images(idx[[4, 7]], 32))
    assert pr.fingerprint() != ProbeDataset(dataset, idx[:-1]).fingerprint()


def test_interpolation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    np.testing.assert_allclose(interpolate_layouts(a, b, 0.25), 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(interpolate_layouts(a, b, 0.0), a, rtol=1e-6)
    np.testing.assert_allclose(interpolate_layouts(a, b, 7.0), b, rtol=1e-6)
    with pytest.raises(InputError):
        interpolate_layouts(a, b[:5], 0.5)


# ------------------------------------------------------------------ the job
def test_timeline_steps_and_vectors(timeline, run_dir, dataset):
    import torch

    from explorer.encoders import open_encoder

    res, _, params = timeline
    files = sorted(run_dir.glob("*.pt"))
    T = len(files)
    assert res.names == [f.name for f in files]
    side = [json.loads(Path(str(f) + ".json").read_text()) for f in files]
    assert res.axis == "step" and res.steps.tolist() == [s["step"] for s in side]
    assert res.probe_indices.tolist() == probe_indices(len(dataset), PROBE, 3).tolist()
    assert len(res.vectors) == T and all(v.shape[0] == min(PROBE, len(dataset)) for v in res.vectors)
    # the first checkpoint's vectors are its embedding of the probe images (hand forward)
    enc = open_encoder(files[0])
    x = dataset.images(res.probe_indices, 32).astype(np.float32) / 255.0
    x = torch.from_numpy((x - 0.5) / 0.5).permute(0, 3, 1, 2)
    feats = {}
    h = dict(enc.module.named_modules())["embed"].register_forward_hook(lambda m, i, o: feats.setdefault("z", o))
    with torch.no_grad():
        enc.module.eval()(x)
    h.remove()
    np.testing.assert_allclose(res.vectors[0], feats["z"].numpy(), rtol=1e-4, atol=1e-4)


def test_timeline_metrics_against_float64(timeline):
    res, _, _ = timeline
    last = res.vectors[-1]
    for i, Z in enumerate(res.vectors):
        m = res.metrics[i]
        assert m["linear_cka"] == pytest.approx(_cka64(Z, last), abs=1e-6)
        assert m["rankme"] == pytest.approx(_rankme64(Z), rel=1e-4)
        assert m["mutual_knn"] == pytest.approx(_mutual_knn64(Z, last, 10), abs=1e-9)
        assert m["knn_accuracy"] is not None and 0.0 <= m["knn_accuracy"] <= 1.0
        assert np.isfinite(m["sigreg"]) and m["sigreg"] >= 0
    assert res.metrics[-1]["linear_cka"] == pytest.approx(1.0, abs=1e-9)
    assert res.metrics[-1]["mutual_knn"] == 1.0
    cka = res.series("linear_cka")
    if len(res) >= 3 and res.paths[0].startswith(str(SAMPLE_RUN)):
        # the sample run converges: its early checkpoints are further from the final one
        assert cka[0] < cka[-2] < cka[-1]
    rows = res.table()
    assert [r["step"] for r in rows] == res.steps.tolist() and rows[0]["axis"] == "step"


def test_timeline_layouts_are_aligned(timeline):
    res, _, _ = timeline
    prev = None
    for i, Z in enumerate(res.vectors):
        Z = np.asarray(Z, np.float64)
        Zc = Z - Z.mean(0)
        _, _, Vt = np.linalg.svd(Zc, full_matrices=False)
        raw = Zc @ Vt[:2].T  # exact PCA, computed here
        L = np.asarray(res.layouts[i], np.float64)
        # each aligned map is a similarity transform of that checkpoint's PCA map
        assert _similarity_fit_residual(raw, L) < 1e-3
        if prev is not None:
            aligned_gap = np.linalg.norm(L - prev)
            raw_gap = np.linalg.norm(raw - raw.mean(0) + prev.mean(0) - prev)
            assert aligned_gap <= raw_gap + 1e-6
            assert aligned_gap < 0.9 * raw_gap or aligned_gap < 1e-3 * np.linalg.norm(prev)
        prev = L
    assert len(res.info["procrustes_rmsd"]) == len(res)


def test_timeline_position_interpolates(timeline):
    res, _, _ = timeline
    np.testing.assert_allclose(layout_at(res, 1.5), 0.5 * res.layouts[1] + 0.5 * res.layouts[2], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layout_at(res, len(res) + 3), res.layouts[-1])


def test_timeline_workspace_record_and_reload(timeline, run_dir, dataset):
    from explorer.app.timeline import TIMELINE_GROUP

    res, ws, params = timeline
    keys = dict(ws.list(TIMELINE_GROUP))
    assert res.key in keys and keys[res.key]["kind"] == "timeline"
    again = drain(timeline_job(run_dir, dataset, params, ws))
    assert again.info.get("cache_hit") is True
    assert again.steps.tolist() == res.steps.tolist()
    for a, b in zip(again.layouts, res.layouts):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(again.vectors, res.vectors):
        np.testing.assert_array_equal(a, b)
    assert again.metrics == res.metrics


def test_timeline_cancel_writes_nothing(run_dir, dataset, tmp_path):
    from explorer.store import Workspace
    from explorer.app.timeline import TIMELINE_GROUP

    ws = Workspace(tmp_path / "c.h5")
    gen = timeline_job(run_dir, dataset, TimelineParams(probe_size=40, device="cpu"), ws)
    next(gen)
    next(gen)
    gen.close()
    assert ws.list(TIMELINE_GROUP) == []


def test_timeline_bad_params():
    with pytest.raises(InputError, match="alignment"):
        TimelineParams(align="tsne")
    with pytest.raises(InputError, match="metric"):
        TimelineParams(metrics=("rankme", "accuracy"))


# ------------------------------------------------------------------ CLI
def test_cli_json(timeline, run_dir, capsys, tmp_path):
    from explorer.cli import main

    res, ws, _ = timeline
    out = tmp_path / "lay.npy"
    data = str(SAMPLE_DIGITS) if res.paths[0].startswith(str(SAMPLE_RUN)) else None
    if data is None:
        pytest.skip("sample digits not present")
    rc = main(["timeline", str(run_dir), "--data", data, "--probe-size", str(PROBE), "--seed", "3",
               "--device", "cpu", "--workspace", str(ws.path), "--json", "--quiet", "--layouts-out", str(out)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == res.steps.tolist()
    assert [r["name"] for r in rows] == res.names
    assert rows[-1]["linear_cka"] == pytest.approx(1.0)
    assert rows[0]["linear_cka"] == pytest.approx(_cka64(res.vectors[0], res.vectors[-1]), abs=1e-6)
    assert np.load(out).shape == (len(res), len(res.probe_indices), 2)


def test_cli_errors(tmp_path, capsys):
    from explorer.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["timeline", str(tmp_path / "empty"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_every_registered_timeline_metric_is_in_every_checkpoint(timeline):
    from explorer.metrics import registry

    res, _, _ = timeline
    keys = registry.keys("timeline")
    assert set(keys) == {"rankme", "sigreg", "knn_accuracy", "linear_cka", "mutual_knn"}
    for row in res.metrics:
        assert set(keys) <= set(row)
