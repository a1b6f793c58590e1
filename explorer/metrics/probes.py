"""Probes and per-class structure, for embeddings with labels.

* :func:`knn_accuracy`: DINO's weighted k-NN classifier (Caron et al., "Emerging Properties in
  Self-Supervised Vision Transformers", ICCV 2021, eval_knn.py): cosine similarity, k=20,
  temperature T=0.07, each of the k neighbours votes for its class with weight exp(s / T).
* :func:`linear_probe` / :func:`linear_probe_accuracy`: multinomial logistic regression with
  scikit-learn's objective and its ``C`` (mean cross-entropy + ||W||^2 / (2 C n), default C = 1,
  intercept not penalised) on features standardised with the TRAINING statistics only, solved
  to convergence by full-batch L-BFGS in float64 (gradient tolerance 1e-6): a convex problem, so
  the same split gives the same number, within rounding of scikit-learn's. The result carries
  the split sizes and a 95% Wilson interval for the accuracy (:func:`wilson_interval`).
* :func:`per_class_effective_rank` and :func:`class_centroid_cosine`.

Both probes train on one part of the points and report the accuracy on the held-out rest:
a random split with a fixed seed (``test_fraction`` of the points held out), subsampled to at
most ``max_train`` / ``max_test`` points when larger (the result says how many were used).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from explorer.core.errors import InputError
from explorer.core.jobs import Job, Progress, drain
from explorer.metrics.collapse import as_tensor, effective_rank, l2_normalize

__all__ = ["encode_labels", "split_indices", "knn_accuracy", "linear_probe_accuracy", "linear_probe",
           "linear_probe_job", "fit_logistic", "wilson_interval", "standardize",
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


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> Tuple[float, float]:
    """Wilson score interval (Wilson, "Probable inference, the law of succession, and statistical
    inference", JASA 1927) for a binomial proportion ``correct / n``; z = 1.96 gives 95%:
    centre (p + z^2 / 2n) / (1 + z^2 / n), half-width z / (1 + z^2 / n) sqrt(p (1 - p) / n + z^2 / 4n^2).
    Returns (low, high); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    den = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def standardize(Xtr, Xte):
    """Standardise both with the TRAINING mean and (population, ddof 0) std only, as
    scikit-learn's ``StandardScaler`` fitted on the training rows: returns (Xtr', Xte', mu, sd),
    sd clamped to 1e-12 for constant features."""
    mu = Xtr.mean(0)
    sd = Xtr.std(0, unbiased=False).clamp_min(1e-12)
    return (Xtr - mu) / sd, (Xte - mu) / sd, mu, sd


def fit_logistic(X, y, n_classes: int, C: float = 1.0, tol: float = 1e-6, max_iter: int = 1000) -> Job:
    """Multinomial logistic regression solved to convergence, as a job -> (W (K, d), b (K,), info).

    Minimises scikit-learn's objective (``LogisticRegression(C=C)``, lbfgs, recent versions):
    mean_i CE(x_i W^T + b, y_i) + ||W||_F^2 / (2 C n), the intercept not penalised. Two classes
    use scikit-learn's binary form (one weight vector w, logits (0, x w + b), penalty
    ||w||^2 / (2 C n)); K > 2 the softmax over K rows. Full-batch L-BFGS in float64 (strong Wolfe
    line search, memory 20) until the largest absolute gradient entry is below ``tol`` (or
    ``max_iter`` iterations), one progress report per iteration (partial: iteration, loss).
    ``info``: iterations, converged, gradient (max abs at the end), loss."""
    import torch

    if not C > 0:
        raise InputError(f"The probe's C must be positive; got {C}.")
    X = X.double()
    dev = X.device
    yt = torch.as_tensor(y, device=dev, dtype=torch.long)
    n, d = X.shape
    K = 1 if n_classes == 2 else n_classes
    W = torch.zeros(K, d, dtype=torch.float64, device=dev, requires_grad=True)
    b = torch.zeros(K, dtype=torch.float64, device=dev, requires_grad=True)
    lam = 1.0 / (C * n)
    # max_iter=1 per step(): one L-BFGS iteration per call (its memory lives in the optimiser's
    # state across calls), so each iteration is reported; each call starts by evaluating the
    # current point and returns at once when its largest gradient entry is below ``tol``
    # (max_eval bounds the line search; its default, 5/4 max_iter, would forbid it here)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=1, max_eval=25, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=tol, tolerance_change=1e-15)

    def logits_of(A):
        z = torch.nn.functional.linear(A, W, b)
        return torch.cat([torch.zeros_like(z), z], 1) if K == 1 else z

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_of(X), yt) + 0.5 * lam * (W * W).sum()
        loss.backward()
        return loss

    def gradient() -> float:
        return float(max(W.grad.abs().max(), b.grad.abs().max()))

    state = opt.state[W]
    it, converged, gmax = 0, False, float("inf")
    with torch.enable_grad():
        while True:
            before = state.get("n_iter", 0)
            loss = float(opt.step(closure).detach())  # the objective at the point after `it` iterations
            done = state.get("n_iter", 0) - before
            if done == 0:  # returned at the entry check: converged here
                converged, gmax = True, gradient()
            if it > 0 or done == 0:
                yield Progress(it, max_iter, f"linear probe (L-BFGS iteration {it})",
                               {"iteration": int(it), "loss": loss})
            if done == 0:
                break
            it += done
            if it >= max_iter:
                loss = float(closure().detach())
                gmax = gradient()
                converged = gmax <= tol
                yield Progress(it, max_iter, f"linear probe (L-BFGS iteration {it})",
                               {"iteration": int(it), "loss": loss})
                break
    Wd, bd = W.detach(), b.detach()
    if K == 1:  # as K = 2 rows: logits (0, x w + b)
        Wd = torch.cat([torch.zeros_like(Wd), Wd])
        bd = torch.cat([torch.zeros_like(bd), bd])
    return Wd, bd, {"iterations": int(it), "converged": bool(gmax <= tol),
                    "gradient": gmax, "loss": loss}


def linear_probe_job(Z, labels, test_fraction: float = 0.2, seed: int = 0,
                     max_train: Optional[int] = None, max_test: Optional[int] = None,
                     C: float = 1.0, tol: float = 1e-6, max_iter: int = 1000, device=None,
                     split=None) -> Job:
    """Linear probe as a job -> dict. The split (``split_indices`` with ``seed``, or ``split`` =
    (train, test) index arrays), the features standardised with the training mean and std only,
    then :func:`fit_logistic` (scikit-learn's ``LogisticRegression(C=C)`` objective, solved to
    ``tol``) on the training rows. The dict: accuracy on the test rows, correct, n_train, n_test,
    ci_low / ci_high (95% Wilson interval of the accuracy), C, iterations, converged, and W, b,
    mu, sd (torch; logits = ((z - mu) / sd) W^T + b, row r for the label ``classes[r]``, the
    labels present in the training rows). Fewer than two classes in the training rows (or no
    test rows): accuracy None."""
    import torch

    X = as_tensor(Z, device)
    y, classes = encode_labels(labels, X.shape[0])
    if split is None:
        tr, te = split_indices(X.shape[0], test_fraction, seed, max_train, max_test)
    else:
        tr, te = (np.asarray(a, dtype=np.int64) for a in split)
    dev = X.device
    Xtr = X[torch.from_numpy(tr).to(dev)].double()
    Xte = X[torch.from_numpy(te).to(dev)].double()
    Xtr, Xte, mu, sd = standardize(Xtr, Xte)
    out = {"accuracy": None, "correct": None, "n_train": int(len(tr)), "n_test": int(len(te)),
           "ci_low": None, "ci_high": None, "C": float(C), "iterations": 0, "converged": None}
    ytr = y[tr]
    present = np.unique(ytr)
    if len(present) < 2 or len(te) == 0:
        return out
    # classes absent from the training rows can never be predicted; fit on those present
    remap = np.full(len(classes), -1, np.int64)
    remap[present] = np.arange(len(present))
    W, b, info = yield from fit_logistic(Xtr, remap[ytr], len(present), C, tol, max_iter)
    with torch.no_grad():
        pred = present[torch.nn.functional.linear(Xte, W, b).argmax(1).cpu().numpy()]
    correct = int((pred == y[te]).sum())
    lo, hi = wilson_interval(correct, len(te))
    out.update({"accuracy": correct / len(te), "correct": correct, "ci_low": lo, "ci_high": hi,
                "iterations": info["iterations"], "converged": info["converged"],
                "W": W, "b": b, "mu": mu, "sd": sd, "classes": classes[present]})
    return out


def linear_probe(Z, labels, test_fraction: float = 0.2, seed: int = 0,
                 max_train: Optional[int] = None, max_test: Optional[int] = None,
                 C: float = 1.0, tol: float = 1e-6, max_iter: int = 1000, device=None) -> dict:
    """:func:`linear_probe_job` run to the end; the JSON-ready part of its dict (no tensors)."""
    r = drain(linear_probe_job(Z, labels, test_fraction, seed, max_train, max_test, C, tol, max_iter, device))
    return {k: v for k, v in r.items() if k not in ("W", "b", "mu", "sd", "classes")}


def linear_probe_accuracy(Z, labels, test_fraction: float = 0.2, seed: int = 0,
                          max_train: Optional[int] = None, max_test: Optional[int] = None,
                          C: float = 1.0, tol: float = 1e-6, max_iter: int = 1000, device=None) -> float:
    """Held-out accuracy of :func:`linear_probe` (multinomial logistic regression on features
    standardised with the training statistics, scikit-learn's objective with ``C``, solved by
    full-batch L-BFGS to ``tol``); 1.0 when there is a single class (nothing to separate)."""
    r = linear_probe(Z, labels, test_fraction, seed, max_train, max_test, C, tol, max_iter, device)
    return 1.0 if r["accuracy"] is None else float(r["accuracy"])


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
