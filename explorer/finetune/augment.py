"""Augmentations written in torch, applied to whole batches on the device.

Images: random resized crop (+ horizontal flip) in one ``grid_sample``, colour jitter
(brightness, contrast, saturation), grey-scale and Gaussian blur, each with its own probability
and per-sample random parameters, as in SimCLR (Chen et al. 2020) but without any vision package.
Vectors: Gaussian noise scaled by each feature's batch std and feature dropout.

Inputs are float tensors: images (B, C, H, W) in [0, 1] *before* normalisation; vectors (B, D).
All randomness comes from ``generator`` (a ``torch.Generator`` on the batch's device) when given,
else from torch's global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["ImageAugment", "VectorAugment", "augment_images", "augment_vectors"]


@dataclass(frozen=True)
class ImageAugment:
    """Parameters of the image views. Probabilities are per sample."""

    crop_scale: tuple = (0.35, 1.0)   # area fraction of the random resized crop
    crop_ratio: tuple = (3 / 4, 4 / 3)
    flip: float = 0.5                 # horizontal flip probability
    jitter: float = 0.8               # probability of colour jitter
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    grey: float = 0.2                 # grey-scale probability
    blur: float = 0.5                 # Gaussian blur probability
    blur_sigma: tuple = (0.1, 1.5)    # in pixels


@dataclass(frozen=True)
class VectorAugment:
    """Parameters of the vector views: x + noise * std_batch * N(0,1), then feature dropout."""

    noise: float = 0.1
    dropout: float = 0.1


def _rand(n: int, device, generator: Optional[torch.Generator], dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, device=device, generator=generator, dtype=dtype)


def _uniform(n, lo, hi, device, generator):
    return lo + (hi - lo) * _rand(n, device, generator)


def random_resized_crop(x: torch.Tensor, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), flip: float = 0.5,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-sample random crop (area fraction in ``scale``, aspect ratio in ``ratio``), resized
    back to (H, W) bilinearly, flipped horizontally with probability ``flip``. (B,C,H,W)->(B,C,H,W)."""
    b, dev = x.shape[0], x.device
    area = _uniform(b, scale[0], scale[1], dev, generator)
    logr = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), dev, generator)
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)  # fraction of the width
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - w) * (2 * _rand(b, dev, generator) - 1)  # centre in [-(1-w), 1-w] (normalised coords)
    cy = (1 - h) * (2 * _rand(b, dev, generator) - 1)
    sx = torch.where(_rand(b, dev, generator) < flip, -w, w)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True).expand_as(x)
    g = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return g.expand_as(x)


def colour_jitter(x: torch.Tensor, p: float = 0.8, brightness: float = 0.4, contrast: float = 0.4,
                  saturation: float = 0.4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors in [1-s, 1+s], applied with
    probability ``p`` (factors 1 otherwise); result clamped to [0, 1].

    brightness b then contrast c around the mean grey level m of the image is one affine map,
    y = b c x + (1 - c) b m; saturation s then blends with the grey image g: s y + (1 - s) g."""
    b, dev = x.shape[0], x.device
    on = _rand(b, dev, generator) < p

    def factor(s):
        f = 1 + s * (2 * _rand(b, dev, generator) - 1)
        return torch.where(on, f, torch.ones_like(f)).to(x.dtype).view(b, 1, 1, 1)

    fb, fc, fs = factor(brightness), factor(contrast), factor(saturation)
    m = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    y = torch.addcmul((1 - fc) * fb * m, x, fb * fc)
    if saturation > 0:
        y = torch.lerp(_grey(y), y, fs)
    return y.clamp_(0, 1)


def random_grey(x: torch.Tensor, p: float = 0.2, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Convert each sample to grey (luma, kept at C channels) with probability ``p``."""
    b = x.shape[0]
    on = (_rand(b, x.device, generator) < p).to(x.dtype).view(b, 1, 1, 1)
    return on * _grey(x) + (1 - on) * x


def gaussian_blur(x: torch.Tensor, p: float = 0.5, sigma=(0.1, 1.5),
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma, applied with probability ``p``
    (one grouped convolution for the whole batch; kernel radius ceil(2 * max sigma))."""
    b, c, hh, ww = x.shape
    dev = x.device
    s = _uniform(b, sigma[0], sigma[1], dev, generator)
    on = _rand(b, dev, generator) < p
    idx = on.nonzero().flatten()
    if idx.numel() == 0:
        return x
    k_ = idx.numel()
    radius = max(1, int(math.ceil(2 * sigma[1])))
    t = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / s[idx, None].to(x.dtype)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)   # (k_*C, K)
    y = x[idx].reshape(1, k_ * c, hh, ww)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(k_ * c, 1, 1, -1), groups=k_ * c)
    y = F.conv2d(y, k.view(k_ * c, 1, -1, 1), groups=k_ * c)
    out = x.clone()
    out[idx] = y.view(k_, c, hh, ww)
    return out


def augment_images(x: torch.Tensor, params: ImageAugment = ImageAugment(),
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One random view of each image. x: (B, C, H, W) float in [0, 1] -> same shape, in [0, 1]."""
    if x.dim() != 4:
        raise ValueError(f"augment_images expects (B, C, H, W) images, got shape {tuple(x.shape)}")
    y = random_resized_crop(x, params.crop_scale, params.crop_ratio, params.flip, generator)
    if params.jitter > 0:
        y = colour_jitter(y, params.jitter, params.brightness, params.contrast, params.saturation, generator)
    if params.grey > 0:
        y = random_grey(y, params.grey, generator)
    if params.blur > 0:
        y = gaussian_blur(y, params.blur, params.blur_sigma, generator)
    return y


def augment_vectors(x: torch.Tensor, params: VectorAugment = VectorAugment(),
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One random view of each row. x: (B, D) -> (B, D): add ``noise`` x (per-feature std over
    the batch) x N(0, 1), then zero each feature with probability ``dropout`` (rescaled by
    1/(1-dropout), as in dropout)."""
    if x.dim() != 2:
        raise ValueError(f"augment_vectors expects (B, D) rows, got shape {tuple(x.shape)}")
    y = x
    if params.noise > 0:
        std = x.std(0, keepdim=True) if x.shape[0] > 1 else x.abs().mean(0, keepdim=True)
        y = y + params.noise * std * torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype)
    if params.dropout > 0:
        keep = (torch.rand(x.shape, device=x.device, generator=generator) >= params.dropout).to(x.dtype)
        y = y * keep / (1 - params.dropout)
    return y
