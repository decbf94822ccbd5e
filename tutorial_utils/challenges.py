"""CURE-TSR's 12 challenge types at levels 0–5, as pure batched tensor functions.

``apply_challenge(x, kind, level, seed)`` degrades a batch of images ``(B, C, H, W)`` with
pixels in [0, 1]. Every challenge is deterministic for a seed (the random pattern — rain
streaks, snow flakes, noise, a shadow's edge — is drawn once and only its *strength* grows with
the level), so the distance to the clean image grows monotonically with the level; level 0 is
the clean image.

References
----------
- D. Temel, G. Kwon, M. Prabhushankar, G. AlRegib, "CURE-TSR: challenging unreal and real
  environments for traffic sign recognition", NeurIPS Workshop 2017.
- D. Hendrycks, T. Dietterich, "Benchmarking neural network robustness to common corruptions
  and perturbations", ICLR 2019 (CIFAR-10-C / ImageNet-C, the same idea for natural images).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tutorial_utils._checks import check_images, check_seed

__all__ = [
    "CHALLENGES",
    "MAX_LEVEL",
    "check_challenge",
    "apply_challenge",
    "challenge_stack",
]

CHALLENGES: tuple[str, ...] = (
    "decolorization",
    "lens blur",
    "codec error",
    "darkening",
    "dirty lens",
    "exposure",
    "gaussian blur",
    "noise",
    "rain",
    "shadow",
    "snow",
    "haze",
)
"""CURE-TSR's 12 challenge types; each takes a level in 0..5 (0 = clean)."""

MAX_LEVEL = 5


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _depthwise(x: torch.Tensor, kernel2d: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = kernel2d.to(x)[None, None].expand(c, 1, *kernel2d.shape)
    pad = kernel2d.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), k, groups=c)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gaussian_kernel(sigma)
    return _depthwise(x, torch.outer(k, k))


def _disk_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    r = math.ceil(radius)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    dist = torch.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
    disk = (radius + 0.5 - dist).clamp(0, 1)  # anti-aliased disk
    return _depthwise(x, disk / disk.sum())


def _uniform_field(x: torch.Tensor, gen: torch.Generator, channels: int = 1) -> torch.Tensor:
    b, _, h, w = x.shape
    return torch.rand(b, channels, h, w, generator=gen).to(x)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114]).to(x).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def _codec(x: torch.Tensor, s: float, gen: torch.Generator) -> torch.Tensor:
    """JPEG-like block coding: 8x8 DCT, quantisation that coarsens with frequency and ``s``."""
    b, c, h, w = x.shape
    ph, pw = (-h) % 8, (-w) % 8
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
    blocks = xp.unfold(2, 8, 8).unfold(3, 8, 8)  # (B, C, H/8, W/8, 8, 8)
    d = _dct_matrix().to(x)
    coef = d @ blocks @ d.T
    freq = torch.arange(8, dtype=torch.float32).to(x)
    step = s**1.5 * (0.3 + 2.5 * (1 + freq[:, None] + freq[None, :]) / 15)
    quant = torch.round(coef / step) * step
    rec = d.T @ quant @ d
    out = rec.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h + ph, w + pw)
    return out[:, :, :h, :w]


def _streaks(field: torch.Tensor, density: float, length: int) -> torch.Tensor:
    """Sparse seeds where ``field < density`` smeared along a slanted line (rain)."""
    seeds = (field < density).float()
    k = torch.zeros(length, length)
    idx = torch.arange(length)
    k[idx, (idx * 0.35).long()] = 1.0
    return _depthwise(seeds, k).clamp(0, 1) if length > 1 else seeds


def _challenge(x: torch.Tensor, kind: str, s: float, gen: torch.Generator) -> torch.Tensor:
    """One challenge at severity ``s = level / 5`` in (0, 1]."""
    if kind == "decolorization":
        return (1 - s) * x + s * _gray(x)
    if kind == "lens blur":
        return _disk_blur(x, 0.6 * s * MAX_LEVEL)
    if kind == "codec error":
        return _codec(x, s, gen)
    if kind == "darkening":
        return x * (1 - 0.17 * s * MAX_LEVEL) ** 1.2
    if kind == "dirty lens":
        blobs = (_uniform_field(x, gen) < 0.03).float()
        smudge = (_gaussian_blur(blobs, 2.5) * 25).clamp(0, 1)
        return x * (1 - 0.95 * s * smudge) + 0.15 * s * smudge
    if kind == "exposure":
        return 1 - (1 - x) * (1 - 0.16 * s * MAX_LEVEL)
    if kind == "gaussian blur":
        return _gaussian_blur(x, 0.45 * s * MAX_LEVEL)
    if kind == "noise":
        noise = torch.randn(x.shape, generator=gen).to(x)
        return x + 0.05 * s * MAX_LEVEL * noise
    if kind == "rain":
        rain = _streaks(_uniform_field(x, gen), 0.03 * s, 7)
        return x * (1 - 0.1 * s) + 0.7 * rain * (1 - x * (1 - 0.1 * s))
    if kind == "shadow":
        b, _, h, w = x.shape
        angle = torch.rand(b, generator=gen).to(x) * 2 * math.pi
        offset = (torch.rand(b, generator=gen).to(x) - 0.5) * 0.6
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h).to(x), torch.linspace(-1, 1, w).to(x),
                                indexing="ij")
        side = torch.cos(angle)[:, None, None] * xx + torch.sin(angle)[:, None, None] * yy
        mask = torch.sigmoid((side - offset[:, None, None]) * 12).unsqueeze(1)
        return x * (1 - 0.17 * s * MAX_LEVEL * mask)
    if kind == "snow":
        flakes = (_uniform_field(x, gen) < 0.06 * s).float()
        flakes = _gaussian_blur(flakes, 0.7).clamp(0, 1) * 2.5
        return (x * (1 - 0.08 * s) + 0.08 * s + flakes).clamp(0, 1)
    if kind == "haze":
        t = 1 - 0.16 * s * MAX_LEVEL
        return x * t + 0.8 * (1 - t)
    raise AssertionError(kind)  # pragma: no cover - validated by apply_challenge


def check_challenge(kind: object, level: object, *, level_name: str = "level"
                    ) -> tuple[str, int]:
    """Validate a challenge name and level; returns ``(kind, int(level))``.

    Raises ``ValueError`` for an unknown kind (listing the valid ones) or a level outside
    0..5, ``TypeError`` for a non-integer level (the messages call it ``level_name``).
    """
    if not isinstance(kind, str) or kind not in CHALLENGES:
        raise ValueError(f"unknown challenge kind {kind!r}; valid kinds: {', '.join(CHALLENGES)}")
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise TypeError(f"{level_name} must be an int in 0..{MAX_LEVEL}, got "
                        f"{type(level).__name__} {level!r}"[:200])
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"{level_name} must be in 0..{MAX_LEVEL} (0 = clean), got {level}")
    return kind, int(level)


def apply_challenge(x: torch.Tensor, kind: str, level: int, seed: int = 0) -> torch.Tensor:
    """Apply a CURE-TSR challenge to a batch of images.

    Args:
        x: images ``(B, C, H, W)`` with pixels in [0, 1], C in {1, 3}.
        kind: one of :data:`CHALLENGES`.
        level: severity 0..5; 0 returns a copy of ``x`` (clean).
        seed: seeds the random pattern (rain streaks, noise, shadow, ...); the pattern is the
            same for every level, only its strength grows, so the distance to the clean image
            grows with the level.

    Returns:
        A new tensor like ``x``, clamped to [0, 1], on ``x``'s device. Pure: ``x`` is not modified.
    """
    check_images(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels, got {x.shape[1]} in shape {tuple(x.shape)}")
    kind, level = check_challenge(kind, level)
    seed = check_seed(seed)
    if level == 0:
        return x.clone()
    gen = torch.Generator().manual_seed(seed)
    return _challenge(x, kind, level / MAX_LEVEL, gen).clamp(0, 1)


def challenge_stack(image: torch.Tensor, kinds: tuple[str, ...] = CHALLENGES,
                    levels: tuple[int, ...] = tuple(range(MAX_LEVEL + 1)),
                    seed: int = 0) -> torch.Tensor:
    """One image under every challenge kind and level: ``(T, L, C, H, W)``."""
    x = image[None] if isinstance(image, torch.Tensor) and image.dim() == 3 else image
    check_images(x, "image")
    if x.shape[0] != 1:
        raise ValueError(f"image must be a single image (C, H, W), got {tuple(image.shape)}")
    if isinstance(kinds, str) or not isinstance(kinds, (tuple, list)) or not kinds:
        raise TypeError(f"kinds must be a non-empty sequence of challenge names, got {kinds!r}")
    if isinstance(levels, (int, np.integer, str)) or not hasattr(levels, "__len__") \
            or len(levels) == 0:
        raise TypeError(f"levels must be a non-empty sequence of levels 0..5, got {levels!r}")
    return torch.stack([torch.cat([apply_challenge(x, k, lvl, seed=seed) for lvl in levels])
                        for k in kinds])
