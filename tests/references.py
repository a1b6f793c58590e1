"""Independent references and tiny fixtures shared by several test files: float64 brute-force
neighbours and Jaccard overlaps, a seeded run of small_cnn checkpoints with sidecars, and a
folder of coloured-noise images in three classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def knn64(Z, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest rows by cosine, self excluded (float64, brute force)."""
    Z = np.asarray(Z, np.float64)
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def brute_knn64(X, Q, k, metric, self_rows=None):
    """float64 brute force: (indices, scores) with larger = closer; self_rows excluded."""
    X = X.astype(np.float64)
    Q = Q.astype(np.float64)
    if metric == "cosine":
        S = (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ (X / np.linalg.norm(X, axis=1, keepdims=True)).T
    elif metric == "dot":
        S = Q @ X.T
    else:
        S = -np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    if self_rows is not None:
        S[np.arange(len(Q)), self_rows] = -np.inf
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(S, idx, 1)


def run_steps(job):
    """Run a job to its end: (the Progress steps it yielded, the value it returned)."""
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        return steps, stop.value


def jaccard64(A, B) -> np.ndarray:
    return np.array([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(A, B)])


def write_tiny_run(folder: Path, n: int = 3) -> Path:
    """Seeded small_cnn checkpoints epoch_01.pt ... with JSON sidecars (arch, layer, epoch, step)."""
    import torch

    from explorer.encoders.archs import build

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        torch.manual_seed(i)
        m = build("small_cnn", width=4, embed_dim=16, proj_dim=8)
        torch.save(m.state_dict(), folder / f"epoch_{i:02d}.pt")
        (folder / f"epoch_{i:02d}.pt.json").write_text(json.dumps({
            "arch": "small_cnn", "arch_kwargs": {"width": 4, "embed_dim": 16, "proj_dim": 8},
            "layer": "embed", "epoch": i, "step": 10 * i}))
    return folder


def write_tiny_images(folder: Path, per_class: int = 30) -> Path:
    """32x32 PNGs of coloured noise in class folders 0, 1, 2 (class c has channel c at 200)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        d = folder / str(c)
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            a = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            a[..., c] = 200
            Image.fromarray(a).save(d / f"{j:03d}.png")
    return folder
