"""The fine-tuning job: adapt an encoder with one objective, report live probe metrics.

    result = FinetuneResult()
    job = finetune(encoder, data, FinetuneParams(objective="sigreg", epochs=3), labels=y, result=result)
    for p in job: ...            # p.partial: {"step", "epoch", "loss", "lr", ...; probe metrics}
    save_finetuned(result.module, "new.pt", result.sidecar(base="old.pt"), head=result.head)

``encoder`` is an :class:`explorer.encoders.base.Encoder` (its ``layer`` and ``pooling`` give the
embedding that is trained and probed) or a bare ``torch.nn.Module`` (its output, pooled like the
engine does). The module is deep-copied (``copy=True``) so the original stays as it was for the
before/after comparison. ``data``: a :class:`explorer.data.base.Dataset` (image, vector or text
kind), a tensor / array of images (N, C, H, W) or (N, H, W, C) (uint8 or float in [0, 1]) or of
vectors (N, D), a list of strings, or a tuple (X, labels).

Text (SimCSE, Gao, Yao & Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings",
EMNLP 2021, unsupervised): each batch is tokenised once with ``encoder.tokenizer``
(``tok(texts, padding=True, truncation=True, max_length=preprocess.max_length,
return_tensors="pt")``, as the embedding engine does) and the two views are that same batch
fed twice through the encoder in train mode, so only the dropout masks differ (as in the
official code, the batch is duplicated and run as one forward of 2B rows). Pooling uses the
attention mask (masked mean). The self-supervised objectives (simclr = SimCSE's InfoNCE,
vicreg, sigreg, invariance) need a dropout module with p > 0 in the part of the encoder that
trains, else the views would be identical and the job refuses with an InputError; "ce" and
"linear" train on text with labels and no augmentation. Without a tokenizer the model gets the
list of strings itself.

Stopping (``gen.close()``), failing or finishing all leave the latest state in ``result``:
``result.module`` (last weights, eval mode, CPU), ``result.best_state`` (weights at the best
probe, when there is a score to rank by), ``result.history`` and ``result.metrics``.
"""

from __future__ import annotations

import copy as _copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from explorer.core.errors import InputError
from explorer.finetune.augment import ImageAugment, VectorAugment, augment_images, augment_vectors
from explorer.core.jobs import Job, Progress

__all__ = ["FinetuneParams", "FinetuneResult", "finetune", "save_finetuned", "trainable_blocks",
           "probe_metrics"]


@dataclass(frozen=True)
class FinetuneParams:
    """Parameters of :func:`finetune` (frozen).

    objective: "linear", "ce", "simclr", "vicreg", "sigreg" (or "invariance", a collapsing
    baseline). lr / weight_decay: AdamW, linear warm-up over ``warmup`` of the steps then cosine
    decay to lr / 100. last_n_blocks: train only the last N blocks (None: all; ignored for
    "linear", which freezes the encoder). projector_dim: output of the SSL projector head
    (0: the losses act on the embedding itself); projector_bn: BatchNorm in its hidden layer.
    probe_every: steps between live probes (0: at
    the end only). probe_size: items in the fixed probe set. test_fraction: held-out share for
    the accuracy of "linear"/"ce" and for the kNN probe. log_every: steps between progress
    reports (0: every step on CPU, every 10 on a GPU, where reading the loss waits for the GPU).
    amp: bf16 autocast (fp16 + grad scaling where bf16 is missing) on CUDA; ignored on CPU.
    "linear" is a convex problem and is solved to convergence instead of trained by steps
    (:func:`explorer.metrics.probes.linear_probe_job`): frozen features standardised with the
    training split's mean and std, scikit-learn's ``LogisticRegression(C=probe_C)`` objective
    (mean cross-entropy + ||W||^2 / (2 C n_train), intercept not penalised), full-batch
    L-BFGS in float64 until the largest gradient entry is below ``probe_tol`` (at most
    ``probe_max_iter`` iterations); epochs, lr, batch_size and weight_decay do not apply, and
    steps count L-BFGS iterations. The split is fixed by ``seed``, so the same call gives the
    same number. Its metrics carry the split sizes and a 95% Wilson interval
    (``probe_accuracy_ci``, ``probe_train``, ``probe_test``; also for "ce").
    """

    objective: str = "sigreg"
    epochs: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    temperature: float = 0.1
    lambda_: float = 0.05
    num_directions: int = 256
    vicreg_weights: tuple = (25.0, 25.0, 1.0)
    projector_dim: int = 128
    projector_hidden: int = 256
    projector_bn: bool = True
    last_n_blocks: Optional[int] = None
    device: Optional[str] = None
    amp: bool = False
    probe_every: int = 20
    probe_size: int = 512
    test_fraction: float = 0.2
    warmup: float = 0.05
    augment_supervised: bool = True
    image_augment: ImageAugment = field(default_factory=ImageAugment)
    vector_augment: VectorAugment = field(default_factory=VectorAugment)
    log_every: int = 0
    seed: int = 0
    copy: bool = True
    probe_C: float = 1.0
    probe_tol: float = 1e-6
    probe_max_iter: int = 1000


@dataclass
class FinetuneResult:
    """What the job leaves behind (also when stopped or failed): see the module docstring."""

    module: Any = None
    encoder: Any = None              # the Encoder wrapping ``module`` when one was given
    head: Any = None                 # linear/ce classifier head (standardisation folded in)
    projector: Any = None
    params: Optional[FinetuneParams] = None
    history: list = field(default_factory=list)     # per logged step: step, epoch, loss, lr, parts
    probes: list = field(default_factory=list)      # per probe: step + probe metrics
    metrics: dict = field(default_factory=dict)     # final metrics (probe_accuracy for linear/ce)
    best_state: Optional[dict] = None
    best_step: Optional[int] = None
    best_score: Optional[float] = None
    monitor: Optional[str] = None
    steps: int = 0
    total_steps: int = 0
    finished: bool = False
    stopped_reason: Optional[str] = None   # None, "cancelled" or "error: ..."
    train_indices: Optional[np.ndarray] = None
    test_indices: Optional[np.ndarray] = None
    probe_indices: Optional[np.ndarray] = None
    seconds: float = 0.0

    def sidecar(self, base: Optional[str] = None, extra: Optional[dict] = None) -> dict:
        """The JSON sidecar for :func:`save_finetuned`."""
        p = self.params
        hp = {k: v for k, v in asdict(p).items() if k not in ("image_augment", "vector_augment")} if p else {}
        if p is not None:
            hp["image_augment"] = asdict(p.image_augment)
            hp["vector_augment"] = asdict(p.vector_augment)
        return {"base_checkpoint": base, "objective": p.objective if p else None, "hyperparameters": hp,
                "steps": self.steps, "total_steps": self.total_steps, "finished": self.finished,
                "stopped_reason": self.stopped_reason, "metrics": self.metrics,
                "best_step": self.best_step, "best_score": self.best_score, "monitor": self.monitor,
                "seconds": round(self.seconds, 2), **(extra or {})}


# --------------------------------------------------------------------------- helpers

def trainable_blocks(module) -> list:
    """The encoder's blocks, input to output, for ``last_n_blocks``: ``module.finetune_blocks()``
    when it has it, else its top-level children with parameters (descending through a single
    wrapping child), the last block first to be unfrozen."""
    if hasattr(module, "finetune_blocks"):
        return list(module.finetune_blocks())
    m = module
    while True:
        kids = [c for c in m.children() if any(True for _ in c.parameters())]
        if len(kids) == 1 and any(True for _ in kids[0].children()):
            m = kids[0]
            continue
        return kids or [module]


def _as_tensor(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))


def _load_data(data, labels, preprocess):
    """-> (X: cpu tensor of uint8/float images (N,C,H,W) or float32 vectors (N,D), or a list of
    N strings; y int64 (N,) or None; kind "image" / "vector" / "text")."""
    import torch

    from explorer.data.base import Dataset

    if isinstance(data, tuple) and len(data) == 2:
        data, labels = data if labels is None else (data[0], labels)
    if isinstance(data, Dataset):
        ds = data
        if labels is None and ds.labels is not None:
            labels = ds.labels
        if ds.kind == "image":
            size = int(getattr(preprocess, "size", 32) or 32)
            chunks = [ds.images(range(i, min(ds.n, i + 512)), size) for i in range(0, ds.n, 512)]
            X = torch.from_numpy(np.concatenate(chunks)).permute(0, 3, 1, 2).contiguous()
            kind = "image"
        elif ds.kind == "vector":
            X = torch.from_numpy(np.asarray(ds.vectors(), np.float32))
            kind = "vector"
        elif ds.kind == "text":
            X = [str(t) for t in ds.texts(range(ds.n))]
            kind = "text"
        else:
            raise InputError(f"{ds.source}: fine-tuning works on image, vector and text datasets, not {ds.kind}.")
    elif isinstance(data, (list, tuple)) and data and all(isinstance(t, str) for t in data):
        X = list(data)
        kind = "text"
    else:
        X = _as_tensor(data)
        if X.dim() == 4:
            if X.shape[1] not in (1, 3) and X.shape[-1] in (1, 3, 4):
                X = X[..., :3].permute(0, 3, 1, 2).contiguous()
            if X.shape[1] == 1:
                X = X.expand(-1, 3, -1, -1).contiguous()
            if X.dtype != torch.uint8:
                X = X.float()
            kind = "image"
        elif X.dim() == 2:
            X = X.float()
            kind = "vector"
        else:
            raise InputError(f"Fine-tuning needs images (N, C, H, W) or vectors (N, D); got shape {tuple(X.shape)}.")
    if len(X) < 4:
        raise InputError(f"Fine-tuning needs at least 4 items; got {len(X)}.")
    y = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 1 or len(lab) != len(X):
            raise InputError(f"The labels must be one value per item ({len(X)}); got shape {lab.shape}.")
        if lab.dtype.kind in "iu":
            y = torch.from_numpy(lab.astype(np.int64))
        else:
            classes, codes = np.unique(lab.astype(str), return_inverse=True)
            y = torch.from_numpy(codes.astype(np.int64))
    return X, y, kind


def probe_metrics(Z, labels=None, seed: int = 0) -> dict:
    """Live-panel metrics of probe embeddings Z (P, D): RankMe (Garrido et al. 2023), std of
    the L2-normalised embeddings (Chen & He 2021), SIGReg (LeJEPA; 256 directions, seed 0) and,
    with labels, the DINO weighted kNN accuracy (k=20, T=0.07, 20% held out)."""
    import torch

    from explorer.metrics.collapse import rankme, std_l2_normalized
    from explorer.metrics.sigreg import sigreg

    Z = Z.detach().float()
    out = {"rankme": float(rankme(Z)), "std_l2_normalized": float(std_l2_normalized(Z)),
           "sigreg": float(sigreg(Z, 256, seed=0))}
    if labels is not None:
        from explorer.metrics.probes import knn_accuracy

        y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if y.min() >= 0 and len(np.unique(y)) > 1:
            out["knn_accuracy"] = float(knn_accuracy(Z, y, k=20, temperature=0.07, test_fraction=0.2, seed=seed))
    return out


def _verdict_metrics(Z) -> dict:
    """The few numbers :func:`explorer.metrics.diagnose.verdict` needs, and its label."""
    from explorer.metrics.collapse import (covariance_eigenvalues, dead_dims, dims_for_variance,
                                           mean_cosine, rankme, std_l2_normalized)
    from explorer.metrics.diagnose import verdict

    Z = Z.detach().float()
    ev = covariance_eigenvalues(Z)
    m = {"n": int(Z.shape[0]), "dim": int(Z.shape[1]), "std_l2_normalized": float(std_l2_normalized(Z)),
         "mean_cosine": float(mean_cosine(Z)), "dims_99": int(dims_for_variance(ev, 0.99)),
         "dims_90": int(dims_for_variance(ev, 0.90)), "dead_dims": int(dead_dims(Z)),
         "rankme": float(rankme(Z)), "spectrum": [float(e) for e in ev]}
    v = verdict(m)  # the same rule as the diagnostics panel (numerical rank from the spectrum)
    return {"dims_99": m["dims_99"], "mean_cosine": m["mean_cosine"], "verdict": v["label"],
            "verdict_summary": v["summary"]}


# --------------------------------------------------------------------------- the job

def finetune(encoder, data, params: FinetuneParams = FinetuneParams(), labels=None, preprocess=None,
             result: Optional[FinetuneResult] = None) -> Job:
    """Job: fine-tune ``encoder`` on ``data`` with ``params.objective``; returns ``result``
    (a :class:`FinetuneResult`, the one passed in or a new one). See the module docstring."""
    from explorer.finetune.objectives import OBJECTIVES

    if params.objective not in OBJECTIVES:
        raise InputError(f"Unknown objective {params.objective!r}; use one of {', '.join(OBJECTIVES)}.")
    if params.epochs < 1 or params.batch_size < 2 or params.lr <= 0:
        raise InputError("Fine-tuning needs epochs >= 1, batch_size >= 2 and a positive learning rate.")
    res = result if result is not None else FinetuneResult()
    return _run(encoder, data, params, labels, preprocess, res)


def _run(encoder, data, params, labels, preprocess, res):  # noqa: C901  (one training loop)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from explorer.core.device import resolve_device
    from explorer.encoders.base import Encoder, Preprocess
    from explorer.finetune.objectives import (OBJECTIVES, Projector, invariance, lejepa_sigreg,
                                              nt_xent, vicreg)

    obj = OBJECTIVES[params.objective]
    t_start = time.perf_counter()
    res.params = params
    dev = resolve_device(params.device)

    # ---- model ------------------------------------------------------------------------
    is_enc = isinstance(encoder, Encoder)
    module = encoder.module if is_enc else encoder
    if not isinstance(module, nn.Module):
        raise InputError("Fine-tuning needs a PyTorch model (this encoder format cannot be trained).")
    if params.copy:
        module = _copy.deepcopy(module)
    if is_enc:
        import dataclasses

        enc = dataclasses.replace(encoder, module=module)
        pre = preprocess or encoder.preprocess
    else:
        enc = Encoder(name=type(module).__name__, source=Path("."), format="module", module=module)
        pre = preprocess
    if isinstance(pre, dict):
        pre = Preprocess.from_dict(pre)
    res.module, res.encoder = module, (enc if is_enc else None)

    from collections.abc import Mapping

    from explorer.encoders.hooks import forward_layer, has_cls_token, pool

    has_cls = has_cls_token(module)

    def embed(x):
        mask = x.get("attention_mask") if isinstance(x, Mapping) else None
        return pool(forward_layer(enc, x), enc.pooling, has_cls, mask)

    # ---- data -------------------------------------------------------------------------
    X, y, kind = _load_data(data, labels, pre)
    text = kind == "text"
    if pre is None:
        pre = Preprocess(kind=kind) if kind in ("vector", "text") else Preprocess()
    if obj.needs_labels and y is None:
        raise InputError(f"The {params.objective} objective needs labels (give --labels or a labelled dataset).")
    if text and obj.two_views:
        _check_dropout(module, None if params.objective == "linear" else params.last_n_blocks,
                       enc.name, params.objective)
    module.to(dev)
    n = len(X)
    rng = np.random.default_rng(params.seed)
    perm = rng.permutation(n)
    if y is not None:
        known = perm[y.numpy()[perm] >= 0]
        n_test = max(1, int(round(len(known) * params.test_fraction)))
        test_idx = np.sort(known[:n_test])
        # supervised objectives hold the test split out; self-supervised ones train on everything
        train_idx = np.sort(known[n_test:]) if obj.needs_labels else np.sort(perm)
    else:
        train_idx, test_idx = np.sort(perm), np.array([], dtype=np.int64)
    res.train_indices, res.test_indices = train_idx, test_idx
    probe_idx = np.sort(rng.permutation(n)[: min(n, params.probe_size)])
    res.probe_indices = probe_idx
    on_gpu = dev.type == "cuda"
    if text:
        pass  # strings stay on the host; each batch is tokenised and its tensors moved
    elif on_gpu and X.element_size() * X.numel() < 2 ** 30:
        X = X.to(dev, non_blocking=True)
    elif on_gpu:
        X = X.pin_memory()
    y_dev = y.to(dev) if y is not None else None

    mean = torch.tensor(pre.mean, dtype=torch.float32, device=dev).view(1, -1, 1, 1) if kind == "image" else None
    std = torch.tensor(pre.std, dtype=torch.float32, device=dev).view(1, -1, 1, 1) if kind == "image" else None
    gen_aug = torch.Generator(device=dev).manual_seed(params.seed) if dev.type in ("cpu", "cuda") else None
    gen_dir = torch.Generator().manual_seed(params.seed + 1)

    def to_float(xb):
        xb = xb.to(dev, non_blocking=True)
        if kind == "image":
            return xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()
        return xb.float()

    def normalise(xf):
        if kind != "image":
            return xf
        if pre.channels == 1:
            xf = (0.299 * xf[:, 0:1] + 0.587 * xf[:, 1:2] + 0.114 * xf[:, 2:3])
            return (xf - mean[:, :1]) / std[:, :1]
        return (xf - mean) / std

    def view(xf):
        if kind == "image":
            return augment_images(xf, params.image_augment, gen_aug)
        return augment_vectors(xf, params.vector_augment, gen_aug)

    tok = enc.tokenizer if text else None
    max_length = int(getattr(pre, "max_length", 128) or 128)

    def tokenize(texts):
        """Model input for a list of strings: the tokenizer's tensors on the device (the engine's
        call), or the strings themselves when the encoder has no tokenizer."""
        if tok is None:
            return texts
        out = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: (v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                for k, v in dict(out).items()}

    def inputs(idx):
        """Un-augmented model input for the items ``idx`` (1-D ints)."""
        if text:
            return tokenize([X[int(i)] for i in idx])
        return normalise(to_float(X[torch.as_tensor(idx)]))

    def twice(xb):
        """SimCSE views: the same tokenised batch stacked twice (2B rows); dropout differs."""
        if isinstance(xb, Mapping):
            return {k: (torch.cat([v, v]) if isinstance(v, torch.Tensor) and v.dim() >= 1 else v)
                    for k, v in xb.items()}
        return list(xb) + list(xb)

    # ---- what trains --------------------------------------------------------------------
    for p in module.parameters():
        p.requires_grad_(False)
    frozen_eval: list = []
    if params.objective != "linear":
        blocks = trainable_blocks(module)
        chosen = blocks if not params.last_n_blocks else blocks[-int(params.last_n_blocks):]
        if params.last_n_blocks:
            for b in blocks[: len(blocks) - len(chosen)]:
                frozen_eval.append(b)
            for b in chosen:
                for p in b.parameters():
                    p.requires_grad_(True)
        else:
            for p in module.parameters():
                p.requires_grad_(True)

    def train_mode():
        module.train(params.objective != "linear")
        for b in frozen_eval:
            b.eval()

    with torch.no_grad():
        module.eval()
        d = embed(inputs(probe_idx[:2])).shape[1]
    n_classes = int(y.max()) + 1 if y is not None else 0
    head = nn.Linear(d, n_classes).to(dev) if obj.needs_labels else None
    projector = None
    if obj.uses_projector and params.projector_dim > 0:
        projector = Projector(d, params.projector_hidden, params.projector_dim, params.projector_bn).to(dev)
    res.head, res.projector = head, projector

    # linear probe: frozen features once, standardised with the training mean/std
    feats = None
    if params.objective == "linear":
        module.eval()
        with torch.no_grad():
            feats = torch.cat([embed(inputs(np.arange(i, min(n, i + 512))))
                               for i in range(0, n, 512)]).float()
        feats_raw = feats
        tr = torch.as_tensor(train_idx, device=dev)
        # the training rows' mean and (population) std, as the probe solver standardises
        f_mu, f_sd = feats[tr].mean(0), feats[tr].std(0, unbiased=False).clamp_min(1e-12)
        feats = (feats - f_mu) / f_sd

    train_params = [p for p in module.parameters() if p.requires_grad]
    for extra in (head, projector):
        if extra is not None:
            train_params += list(extra.parameters())
    decay = [p for p in train_params if p.ndim > 1]
    no_decay = [p for p in train_params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=params.lr)
    bs = min(params.batch_size, len(train_idx))
    steps_per_epoch = max(1, len(train_idx) // bs)
    total = steps_per_epoch * params.epochs if feats is None else int(params.probe_max_iter)
    res.total_steps = total
    warm = max(1, int(params.warmup * total))

    def lr_at(step):  # step 0-based
        if step < warm:
            return params.lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return params.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    amp_dtype = None
    scaler = None
    if params.amp and on_gpu:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if amp_dtype == torch.float16:
            scaler = torch.amp.GradScaler("cuda")
    log_every = params.log_every or (10 if on_gpu else 1)
    monitor = ("probe_accuracy" if obj.needs_labels else ("knn_accuracy" if y is not None else None))
    res.monitor = monitor
    probe_x = torch.as_tensor(probe_idx)
    probe_y = y[probe_idx] if y is not None else None

    def probe_embeddings():
        """The probe set's embeddings now (call in eval mode, under no_grad)."""
        if feats is not None:
            return feats[torch.as_tensor(probe_idx, device=dev)] * f_sd + f_mu
        return torch.cat([embed(inputs(probe_x[i:i + 512]))
                          for i in range(0, len(probe_idx), 512)]).float()

    def run_probe(step):
        module.eval()
        if projector is not None:
            projector.eval()
        with torch.no_grad():
            Zp = probe_embeddings()
            m = probe_metrics(Zp, probe_y, params.seed)
            if head is not None and len(test_idx):
                te = test_idx[:4096]
                if feats is not None:
                    logits = head(feats[torch.as_tensor(te, device=dev)])
                else:
                    logits = torch.cat([head(embed(inputs(te[i:i + 512])))
                                        for i in range(0, len(te), 512)])
                from explorer.metrics.probes import wilson_interval

                correct = int((logits.argmax(1).cpu() == y[torch.as_tensor(te)]).sum())
                m["probe_accuracy"] = correct / len(te)
                m["probe_accuracy_ci"] = list(wilson_interval(correct, len(te)))
                m["probe_train"], m["probe_test"] = int(len(train_idx)), int(len(te))
        train_mode()
        if projector is not None:
            projector.train()
        m["step"] = step
        res.probes.append(m)
        score = m.get(monitor) if monitor else None
        if score is not None and (res.best_score is None or score > res.best_score):
            if feats is not None:  # linear probe: the encoder does not change, the head is the result
                res.best_score, res.best_step = score, step
                return m, Zp
            res.best_score, res.best_step = score, step
            res.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        return m, Zp

    g_shuffle = torch.Generator().manual_seed(params.seed)
    train_idx_t = torch.as_tensor(train_idx)
    step = 0
    pending = []
    try:
        train_mode()
        m0, Zp = run_probe(0)
        yield Progress(0, total, f"{params.objective}: starting", {"step": 0, "epoch": 0, "loss": None,
                                                                    "lr": lr_at(0), **m0,
                                                                    "probe_embeddings": Zp.cpu().numpy()})
        if feats is not None:
            yield from _solve_linear(feats_raw, y, train_idx, test_idx, head, params, res, run_probe)
        for epoch in range(params.epochs if feats is None else 0):
            order = train_idx_t[torch.randperm(len(train_idx_t), generator=g_shuffle)]
            for b in range(steps_per_epoch):
                idx = order[b * bs:(b + 1) * bs]
                lr = lr_at(step)
                for gp in opt.param_groups:
                    gp["lr"] = lr
                parts = {}
                with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    if feats is not None:
                        ib = idx.to(dev)
                        loss = F.cross_entropy(head(feats[ib]), y_dev[ib])
                    elif obj.needs_labels:
                        if text:  # no augmentation for text; dropout is on in train mode
                            xb = inputs(idx)
                        else:
                            xf = to_float(X[idx])
                            if params.augment_supervised:
                                xf = view(xf)
                            xb = normalise(xf)
                        loss = F.cross_entropy(head(embed(xb)).float(), y_dev[idx.to(dev)])
                    else:
                        if text:
                            v = twice(inputs(idx))
                        else:
                            xf = to_float(X[idx])
                            v = torch.cat([normalise(view(xf)), normalise(view(xf))])
                        z = embed(v)
                        if projector is not None:
                            z = projector(z)
                        z1, z2 = z.float().chunk(2)
                        if params.objective == "simclr":
                            loss = nt_xent(z1, z2, params.temperature)
                        elif params.objective == "vicreg":
                            iw, vw, cw = params.vicreg_weights
                            loss, parts = vicreg(z1, z2, iw, vw, cw)
                        elif params.objective == "sigreg":
                            loss, parts = lejepa_sigreg(z1, z2, params.lambda_, params.num_directions,
                                                        generator=gen_dir)
                        else:
                            loss = invariance(z1, z2)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                step += 1
                res.steps = step
                pending.append((step, epoch, lr, loss.detach(), parts))
                probe_now = params.probe_every and step % params.probe_every == 0 and step < total
                if step % log_every == 0 or probe_now or step == total:
                    partial = _flush(pending, res)
                    pending = []
                    msg = f"{params.objective} epoch {epoch + 1}/{params.epochs} loss {partial['loss']:.4g}"
                    if probe_now or step == total:
                        m, Zp = run_probe(step)
                        partial.update(m)
                        partial["probe_embeddings"] = Zp.cpu().numpy()
                    yield Progress(step, total, msg, partial)
        res.finished = True
        Zf = None
        if res.probes:
            last = dict(res.probes[-1])
            last.pop("step", None)
            res.metrics.update(last)
        module.eval()
        with torch.no_grad():
            Zf = probe_embeddings()
        res.metrics.update(_verdict_metrics(Zf))
        if res.history:
            res.metrics["final_loss"] = res.history[-1]["loss"]
        return res
    except GeneratorExit:
        res.stopped_reason = "cancelled"
        raise
    except Exception as exc:
        res.stopped_reason = f"error: {exc}"
        raise
    finally:
        if pending:
            try:
                _flush(pending, res)
            except Exception:
                pass
        if head is not None and feats is not None:
            # fold the standardisation into the head: logits = ((f - mu) / sd) W^T + b
            with torch.no_grad():
                w = head.weight / f_sd
                head.bias.sub_((head.weight * (f_mu / f_sd)).sum(1))
                head.weight.copy_(w)
        for m in (module, head, projector):
            if m is not None:
                m.eval()
                m.to("cpu")
        for p in module.parameters():
            p.requires_grad_(True)
        res.seconds = time.perf_counter() - t_start


def _solve_linear(feats, y, train_idx, test_idx, head, params, res, run_probe) -> Job:
    """The "linear" objective: the probe solved to convergence on the frozen features
    (:func:`explorer.metrics.probes.linear_probe_job`, same split as the job), its weights put in
    ``head`` (standardised space; the job folds the standardisation in at the end). Progress per
    L-BFGS iteration, one final probe whose accuracy is the solver's on the whole test split."""
    import torch

    from explorer.metrics.probes import linear_probe_job

    job = linear_probe_job(feats, y.numpy(), split=(train_idx, test_idx), C=params.probe_C,
                           tol=params.probe_tol, max_iter=params.probe_max_iter)
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            out = stop.value
            break
        part = p.partial or {}
        step = int(part.get("iteration", p.done))
        res.steps = step
        if step == 0:  # already converged at the start: nothing to log
            continue
        row = {"step": step, "epoch": 1, "loss": float(part.get("loss", float("nan"))), "lr": 0.0}
        res.history.append(row)
        yield Progress(step, p.total, f"linear probe: L-BFGS iteration {step}, loss {row['loss']:.4g}", dict(row))
    res.total_steps = res.steps
    if out["accuracy"] is not None:
        with torch.no_grad():
            W = torch.zeros_like(head.weight)
            b = torch.full_like(head.bias, -1e9)  # classes absent from the training split
            cls = torch.as_tensor(np.asarray(out["classes"], np.int64), device=W.device)
            W[cls] = out["W"].to(W)
            b[cls] = out["b"].to(b)
            head.weight.copy_(W)
            head.bias.copy_(b)
    m, Zp = run_probe(res.steps)
    solved = {"probe_accuracy": out["accuracy"], "probe_accuracy_ci": [out["ci_low"], out["ci_high"]],
              "probe_train": out["n_train"], "probe_test": out["n_test"], "probe_correct": out["correct"],
              "probe_C": out["C"], "probe_iterations": out["iterations"], "probe_converged": out["converged"]}
    m.update(solved)
    res.probes[-1].update(solved)
    # no loss here: the last iteration's row was reported already
    yield Progress(res.steps, max(1, res.steps), f"linear probe solved in {res.steps} iterations",
                   {**m, "epoch": 1, "probe_embeddings": Zp.cpu().numpy()})


def _check_dropout(module, last_n_blocks, name: str, objective: str) -> None:
    """Refuse the two-view objectives on text (SimCSE views) when no dropout module with p > 0
    sits in the part of ``module`` that trains (all of it, or its last ``last_n_blocks`` blocks:
    the frozen blocks run in eval mode, where dropout is off)."""
    from torch.nn.modules.dropout import _DropoutNd

    scope = [module]
    if last_n_blocks:
        scope = trainable_blocks(module)[-int(last_n_blocks):]
    if any(isinstance(m, _DropoutNd) and float(m.p) > 0 for b in scope for m in b.modules()):
        return
    where = f" in its last {int(last_n_blocks)} block(s)" if last_n_blocks else ""
    raise InputError(f"{name}: the encoder has no dropout{where}, so SimCSE views for {objective} would be "
                     f"identical; use ce/linear or add dropout.")


def _flush(pending, res) -> dict:
    """Turn the pending steps' detached losses into floats (one device sync), record them."""
    import torch

    losses = torch.stack([p[3].float() for p in pending]).cpu().tolist()
    for (step, epoch, lr, _, parts), loss in zip(pending, losses):
        row = {"step": step, "epoch": epoch + 1, "loss": float(loss), "lr": lr}
        row.update({k: float(v) for k, v in parts.items()})
        res.history.append(row)
    return dict(res.history[-1])


def save_finetuned(module, path, sidecar: dict, head=None) -> Path:
    """Write ``module``'s weights-only ``state_dict`` to ``path`` (``torch.save``, atomically:
    temporary file then rename) and the JSON sidecar ``<path>.json``; ``head`` (a linear probe
    or classifier) goes to ``<stem>.head.pt`` and is named in the sidecar. Returns ``path``."""
    import torch

    path = Path(path)
    if path.suffix.lower() not in (".pt", ".pth"):
        raise InputError(f"{path}: save fine-tuned weights as a .pt or .pth file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    side = dict(sidecar)

    from explorer.store import atomic_file

    def atomic_save(obj, p: Path, text: bool = False):
        with atomic_file(p) as tmp:
            if text:
                tmp.write_text(obj)
            else:
                torch.save(obj, tmp)

    def cpu_state(m):
        return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in m.state_dict().items()}

    if head is not None:
        hp = path.with_name(path.stem + ".head.pt")
        atomic_save(cpu_state(head), hp)
        side["head"] = {"file": hp.name, "in_features": head.in_features, "out_features": head.out_features}
    atomic_save(cpu_state(module), path)
    atomic_save(json.dumps(side, indent=2, sort_keys=True, default=_json_default) + "\n",
                Path(str(path) + ".json"), text=True)
    return path


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def probe_logits_module(encoder, head):
    """An ``nn.Module`` giving the linear probe's logits: head(pooled embedding of ``encoder``)."""
    import dataclasses

    import torch.nn as nn

    from explorer.encoders.hooks import forward_layer, has_cls_token, pool

    class ProbeLogits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder.module
            self.head = head
            self._has_cls = has_cls_token(encoder.module)

        def forward(self, x):
            enc = dataclasses.replace(encoder, module=self.encoder)
            return self.head(pool(forward_layer(enc, x), encoder.pooling, self._has_cls))

    return ProbeLogits().eval()


def save_job(result, which: str, out: Path, sidecar: dict):
    """Job (Qt-free): save the run's weights (``which``: "last" or "best") -> (module, path)."""
    import copy


    yield Progress(0, 1, f"Saving {out.name}")
    module = result.module
    if which == "best" and result.best_state is not None:
        module = copy.deepcopy(result.module)
        module.load_state_dict(result.best_state)
        sidecar = {**sidecar, "weights": f"best probe (step {result.best_step})"}
    else:
        sidecar = {**sidecar, "weights": f"last (step {result.steps})"}
    path = save_finetuned(module, out, sidecar, head=result.head)
    yield Progress(1, 1, f"Saved {out.name}")
    return module, path
