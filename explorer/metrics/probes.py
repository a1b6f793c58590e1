"""Probes and per-class structure, for embeddings with labels.

* :func:`knn_accuracy`: DINO's weighted k-NN classifier (Caron et al., "Emerging Properties in
  Self-Supervised Vision Transformers", ICCV 2021, eval_knn.py): cosine similarity, k=20,
  temperature T=0.07, each of the k neighbours votes for its class with weight exp(s / T).
* :func:`linear_probe_accuracy`: multinomial logistic regression (softmax cross-entropy with an
  L2 penalty on the weights) on standardised features, fitted full-batch with L-BFGS in torch.
* :func:`per_class_effective_rank` and :func:`class_centroid_cosine`.

Both probes train on one part of the points and report the accuracy on the held-out rest:
a random split with a fixed seed (``test_fraction`` of the points held out), subsampled to at
most ``max_train`` / ``max_test`` points when larger (the result says how many were used).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from explorer.errors import InputError
from explorer.metrics.collapse import as_tensor, effective_rank, l2_normalize

__all__ = ["encode_labels", "split_indices", "knn_accuracy", "linear_probe_accuracy",
           "per_class_effective_rank", "class_centroid_cosine"]


def encode_labels(labels, n: int):
    """(codes (n,) int64 in 0..C-1, classes (C,)) for any 1-D label array of length n."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(f"The labels must be one value per point ({n}); got shape {y.shape}.")
    classes, codes = np.unique(y, return_inverse=True)
    return codes.astype(np.int64), classes


def split_indices(n: int, test_fraction: float = 0.2, seed: int = 0,
                  max_train: Optional[int] = None, max_test: Optional[int] = None):
    """Random train/test split of range(n) with a fixed seed: (train (a,), test (b,)) sorted."""
    if not 0 < test_fraction < 1:
        raise InputError(f"The held-out fraction must be between 0 and 1; got {test_fraction}.")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    if max_test is not None:
        test = test[:max_test]
    if max_train is not None:
        train = train[:max_train]
    return np.sort(train), np.sort(test)


def _weighted_knn_predict(Xtr, ytr, Xte, n_classes: int, k: int, T: float, block: int = 1024):
    import torch

    Xtr = l2_normalize(Xtr.float())
    Xte = l2_normalize(Xte.float())
    ytr_t = torch.as_tensor(ytr, device=Xtr.device)
    k = min(k, Xtr.shape[0])
    pred = np.empty(Xte.shape[0], dtype=np.int64)
    for i in range(0, Xte.shape[0], block):
        S = Xte[i:i + block] @ Xtr.T
        s, j = S.topk(k, dim=1)
        w = (s.double() / T).exp()
        votes = torch.zeros(s.shape[0], n_classes, dtype=torch.float64, device=S.device)
        votes.scatter_add_(1, ytr_t[j], w)
        pred[i:i + block] = votes.argmax(1).cpu().numpy()
    return pred


def knn_accuracy(Z, labels, k: int = 20, temperature: float = 0.07, test_fraction: float = 0.2,
                 seed: int = 0, max_train: Optional[int] = None, max_test: Optional[int] = None,
                 device=None) -> float:
    """DINO weighted k-NN accuracy: for each held-out point, the k training points of highest
    cosine similarity s_j vote for their class with weight exp(s_j / T); the prediction is the
    class with the largest total. Z (n, d), labels (n,). Returns the held-out accuracy."""
    import torch

    with torch.no_grad():
        X = as_tensor(Z, device)
        y, classes = encode_labels(labels, X.shape[0])
        tr, te = split_indices(X.shape[0], test_fraction, seed, max_train, max_test)
        dev = X.device
        pred = _weighted_knn_predict(X[torch.from_numpy(tr).to(dev)], y[tr],
                                     X[torch.from_numpy(te).to(dev)], len(classes), k, temperature)
        return float((pred == y[te]).mean())


def linear_probe_accuracy(Z, labels, test_fraction: float = 0.2, seed: int = 0,
                          max_train: Optional[int] = None, max_test: Optional[int] = None,
                          weight_decay: float = 1e-4, max_iter: int = 100, device=None) -> float:
    """Linear-probe accuracy: multinomial logistic regression minimising
    mean cross-entropy(x W + b, y) + weight_decay / 2 ||W||_F^2 on the training split, the
    features standardised with the training mean and std; full-batch L-BFGS (strong Wolfe line
    search, at most ``max_iter`` iterations) in float32. Returns the held-out accuracy."""
    import torch

    X = as_tensor(Z, device)
    y, classes = encode_labels(labels, X.shape[0])
    tr, te = split_indices(X.shape[0], test_fraction, seed, max_train, max_test)
    dev = X.device
    Xtr = X[torch.from_numpy(tr).to(dev)].float()
    Xte = X[torch.from_numpy(te).to(dev)].float()
    mu = Xtr.mean(0)
    sd = Xtr.std(0).clamp_min(1e-12)
    Xtr = (Xtr - mu) / sd
    Xte = (Xte - mu) / sd
    C = len(classes)
    if C < 2:
        return 1.0
    ytr = torch.as_tensor(y[tr], device=dev)
    # weight stored (C, d) and applied with F.linear: its gradient G^T X is 4-8x faster on the
    # CPU than the X^T G that autograd runs for X @ W with W (d, C) (measured, 10000 x 2048)
    W = torch.zeros(C, Xtr.shape[1], device=dev).requires_grad_(True)
    b = torch.zeros(C, device=dev).requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(torch.nn.functional.linear(Xtr, W, b), ytr)
                + 0.5 * weight_decay * (W * W).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = torch.nn.functional.linear(Xte, W, b).argmax(1).cpu().numpy()
    return float((pred == y[te]).mean())


def per_class_effective_rank(Z, labels, max_per_class: Optional[int] = 512, seed: int = 0,
                             device=None) -> dict:
    """Effective rank (RankMe's formula: exp of the entropy of the normalised singular values,
    epsilon 1e-7) of each class's embeddings centred on the class mean, on at most
    ``max_per_class`` random points of the class (the value is at most that number minus 1).
    Returns {str(class): float}; classes with fewer than 2 points get NaN."""
    X = as_tensor(Z, device)
    y, classes = encode_labels(labels, X.shape[0])
    rng = np.random.default_rng(seed)
    out = {}
    for c, name in enumerate(classes):
        idx = np.flatnonzero(y == c)
        if max_per_class is not None and idx.size > max_per_class:
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        out[str(name)] = effective_rank(X[idx], center=True) if idx.size >= 2 else float("nan")
    return out


def class_centroid_cosine(Z, labels, device=None):
    """Cosine similarity between class centroids, the centroid of class c being the mean of its
    L2-normalised rows: ((C, C) float64 numpy, classes (C,))."""
    import torch

    with torch.no_grad():
        X = l2_normalize(as_tensor(Z, device)).double()
        y, classes = encode_labels(labels, X.shape[0])
        C = len(classes)
        sums = torch.zeros(C, X.shape[1], dtype=torch.float64, device=X.device)
        sums.index_add_(0, torch.as_tensor(y, device=X.device), X)
        cent = l2_normalize(sums)
        return (cent @ cent.T).cpu().numpy(), classes
