"""Evaluating explanations by intervening on the input: masking, insertion/deletion, Huffman bits.

Three ways to test a saliency map ``S`` (B, H, W) of an image batch ``x`` (B, C, H, W) with pixels
in ``[0, 1]``, in the order of the course's intervenability chapter (AlRegib & Prabhushankar,
"Explanatory paradigms in neural networks", IEEE SPM 2022, and their ICIP/WACV tutorials):

1. **Heatmap masking** :func:`masked_prediction` — the target probability on ``x ⊙ S``, an
   estimate of ``E[Y | S_x]``. It rewards large explanations (more of the image survives).
2. **Pixel-wise deletion / insertion** :func:`deletion_curve`, :func:`insertion_curve` and
   :func:`curve_auc` (Petsiuk, Das & Saenko, "RISE", BMVC 2018): remove the most important
   pixels first (a good map makes the probability fall fast, low AUC, "necessity"), or add
   them first to a blurred image (the probability rises fast, high AUC, "sufficiency").
3. **Structure-wise** :func:`structure_wise_curve` with :func:`huffman_bits` (Prabhushankar &
   AlRegib, "Extracting causal visual features for limited label classification", ICIP 2021):
   threshold the map, keep the pixels above the threshold, and plot the accuracy on the masked
   images against how many Huffman-coded bits they need relative to the original.

Every perturbed image is evaluated in mini-batches of ``batch_size`` images — never one forward
per step — with the model in eval mode; its mode and ``requires_grad`` flags are restored.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import (
    PIXEL_TOL,
    check_images,
    check_inputs,
    check_maps_like,
    check_number,
    check_positive_int,
    resolve_classes,
)
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "BASELINES",
    "Curve",
    "StructureCurve",
    "baseline_image",
    "masked_prediction",
    "deletion_curve",
    "insertion_curve",
    "curve_auc",
    "huffman_bits",
    "structure_wise_curve",
]

BASELINES = ("zeros", "grey", "mean", "blur")
"""Named baselines: black (0), mid-grey (0.5), the data-set mean colour, a Gaussian blur of x."""

SCORES = ("prob", "logit")
DEFAULT_BATCH_SIZE = 64  # CPU sweet spot: larger batches fall out of cache
DEFAULT_THRESHOLDS = tuple(i / 10 for i in range(10))


class Curve(NamedTuple):
    """An insertion or deletion curve: ``fractions`` (S+1,) in [0, 1], ``probs`` (B, S+1)."""

    fractions: torch.Tensor
    probs: torch.Tensor


class StructureCurve(NamedTuple):
    """Structure-wise curve, one entry per threshold (T,): accuracy in [0, 1] and the mean
    ratio ``bits(masked) / bits(original)`` of Huffman-coded sizes."""

    thresholds: torch.Tensor
    accuracy: torch.Tensor
    bits_ratio: torch.Tensor


# --------------------------------------------------------------------------- shared helpers
def check_score(score: str) -> str:
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return score


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be logits of shape (B, K); runs in channels-last layout."""
    z = model(channels_last(x))
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != x.shape[0]:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"model must return logits of shape (B, K) = ({x.shape[0]}, K), "
                         f"got {shape}")
    return z


def class_scores(logits: torch.Tensor, classes: torch.Tensor, score: str = "prob") -> torch.Tensor:
    """The target's softmax probability (``score='prob'``) or logit, shape (N,)."""
    values = logits.softmax(dim=1) if score == "prob" else logits
    return values.gather(1, classes.view(-1, 1)).squeeze(1)


@torch.no_grad()
def batched_scores(model: nn.Module, make_images, classes: torch.Tensor, batch_size: int,
                   score: str = "prob") -> torch.Tensor:
    """Scores (N,) of N virtual images, built and evaluated ``batch_size`` at a time.

    ``make_images(idx)`` returns the images (len(idx), C, H, W) for the flat indices ``idx``;
    ``classes`` (N,) holds their target classes. The model must already be in the wanted mode.
    """
    out = []
    for start in range(0, len(classes), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(classes)), device=classes.device)
        out.append(class_scores(logits_of(model, make_images(idx)), classes[idx], score))
    return torch.cat(out)


def predicted_classes(model: nn.Module, x: torch.Tensor, target, batch_size: int,
                      name: str = "target") -> torch.Tensor:
    """Resolve ``target`` (int, sequence, tensor or ``None`` = prediction on ``x``) to (B,)."""
    with torch.no_grad():
        logits = torch.cat([logits_of(model, x[i:i + batch_size])
                            for i in range(0, len(x), batch_size)])
    return resolve_classes(target, logits, name=name)


def _blur(x: torch.Tensor, sigma: float | None) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    h, w = x.shape[-2:]
    sigma = max(h, w) / 16 if sigma is None else check_number(sigma, "blur_sigma", low=0.0,
                                                               low_open=True)
    size = [min(2 * round(3 * sigma) + 1, 2 * ((n - 1) // 2) + 1) for n in (h, w)]
    return gaussian_blur(x, kernel_size=[size[1], size[0]], sigma=[sigma, sigma])


def _dataset_mean(model: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean colour: the model's ``Normalize`` statistics (1, C, 1, 1), else each
    image's own mean colour (B, C, 1, 1) — never the batch's, so an image's result does not
    depend on what else is in the batch."""
    if model is not None:
        for module in model.modules():
            mean = getattr(module, "mean", None)
            if isinstance(mean, torch.Tensor) and mean.numel() == x.shape[1]:
                return mean.detach().to(x).view(1, -1, 1, 1)
    return x.mean(dim=(2, 3), keepdim=True)


def baseline_image(x: torch.Tensor, baseline: str | float | torch.Tensor = "zeros",
                   model: nn.Module | None = None, blur_sigma: float | None = None,
                   name: str = "baseline") -> torch.Tensor:
    """The "removed" value of every pixel, a tensor of ``x``'s shape (B, C, H, W).

    ``baseline`` is ``'zeros'`` (black), ``'grey'`` (0.5), ``'mean'`` (the data-set mean colour
    stored in the model's ``Normalize`` layer; without one, each image's own mean colour),
    ``'blur'`` (``torchvision`` Gaussian blur of x, σ = ``blur_sigma`` px, default
    max(H, W)/16), a number, or a tensor broadcastable to ``x`` (pixel space, [0, 1]).
    """
    check_images(x)
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"{name} must be one of {BASELINES}, a number or a tensor; "
                             f"got {baseline!r}")
        if baseline == "blur":
            return _blur(x, blur_sigma)
        value = {"zeros": lambda: torch.zeros(1), "grey": lambda: torch.full((1,), 0.5),
                 "mean": lambda: _dataset_mean(model, x)}[baseline]()
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        value = torch.tensor(float(baseline))
    elif isinstance(baseline, torch.Tensor):
        value = baseline.detach()
    else:
        raise TypeError(f"{name} must be a name in {BASELINES}, a number or a tensor, "
                        f"got {type(baseline).__name__}")
    value = value.to(device=x.device, dtype=x.dtype)
    try:
        out = value.expand_as(x) if value.dim() <= x.dim() else None
    except RuntimeError:
        out = None
    if out is None:
        raise ValueError(f"{name} of shape {tuple(value.shape)} does not broadcast to x's "
                         f"shape {tuple(x.shape)}")
    low, high = (float(v) for v in torch.aminmax(out)) if out.numel() else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if low < -PIXEL_TOL or high > 1 + PIXEL_TOL:
        raise ValueError(f"{name} must be a pixel value in [0, 1] like the images, got values in "
                         f"[{low:.3g}, {high:.3g}]" + ("; divide by 255" if high > 2 else ""))
    return out


def _setup(model: object, x: object, batch_size: object) -> int:
    check_inputs(model, x)
    return check_positive_int(batch_size, "batch_size")


# --------------------------------------------------------------------------- 1. heatmap masking
def masked_prediction(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target=None, *,
                      baseline: str | float | torch.Tensor = "zeros", score: str = "prob",
                      batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Heatmap masking: the target's probability on ``x ⊙ S + b ⊙ (1 − S)``, shape (B,).

    ``maps`` S (B, H, W) in [0, 1] weight every pixel (1 = kept); with the default black
    baseline b = 0 this is ``p_target(x ⊙ S)``, the per-image term of ``E[Y | S_x]``.
    ``target=None`` uses the class predicted on the *unmasked* image.
    """
    batch_size = _setup(model, x, batch_size)
    maps = check_maps_like(maps, x, "maps", unit=True)
    check_score(score)
    keep = maps.unsqueeze(1).to(x.dtype)
    with preserved_state(model):
        classes = predicted_classes(model, x, target, batch_size)
        masked = x * keep + baseline_image(x, baseline, model) * (1 - keep)
        return batched_scores(model, lambda i: masked[i], classes, batch_size, score)


# ------------------------------------------------------------------ 2. insertion / deletion
def pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank (B, H·W) of every pixel, 0 = most important; ties go to the lower raster index."""
    flat = saliency.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def _pixel_curve(model, x, saliency, target, steps, start, end, batch_size, score) -> Curve:
    """Move pixels from ``start`` to ``end`` images in rank order; probabilities at S+1 steps.

    Step k shows ``end`` at the ``n_k = ⌊k·H·W / S⌋`` highest-ranked pixels and ``start``
    elsewhere; all B·(S+1) images are built lazily and evaluated in mini-batches.
    """
    b, c, h, w = x.shape
    counts = (torch.arange(steps + 1, device=x.device) * (h * w)) // steps
    ranks = pixel_ranks(saliency).view(b, 1, h, w)

    def make_images(idx: torch.Tensor) -> torch.Tensor:
        img, step = idx // (steps + 1), idx % (steps + 1)
        moved = ranks[img] < counts[step].view(-1, 1, 1, 1)
        return torch.where(moved, end[img], start[img])

    classes = predicted_classes(model, x, target, batch_size)
    flat_classes = classes.repeat_interleave(steps + 1)
    probs = batched_scores(model, make_images, flat_classes, batch_size, score)
    return Curve(counts.to(x.dtype) / (h * w), probs.view(b, steps + 1))


def _curve_args(model, x, saliency, steps, batch_size, score):
    batch_size = _setup(model, x, batch_size)
    saliency = check_maps_like(saliency, x, "saliency")
    steps = check_positive_int(steps, "steps")
    if steps > x.shape[2] * x.shape[3]:
        raise ValueError(f"steps must be <= the number of pixels H*W = {x.shape[2] * x.shape[3]}, "
                         f"got {steps}")
    check_score(score)
    return saliency, steps, batch_size


def deletion_curve(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target=None, *,
                   steps: int = 100, baseline: str | float | torch.Tensor = "zeros",
                   blur_sigma: float | None = None, score: str = "prob",
                   batch_size: int = DEFAULT_BATCH_SIZE) -> Curve:
    """Pixel-wise deletion (Petsiuk et al. 2018): remove the most important pixels first.

    Args:
        x: images (B, C, H, W) in [0, 1]; saliency: importance (B, H, W) (any real scale,
            only the order matters; ties are removed in raster order).
        target: class per image, or ``None`` for the prediction on the intact image.
        steps: S ≥ 1; step k replaces the ``⌊k·H·W/S⌋`` most important pixels (all channels)
            by the ``baseline`` (see :func:`baseline_image`).

    Returns:
        ``Curve(fractions (S+1,), probs (B, S+1))``: the fraction of pixels removed, from 0 to
        1, and the target's probability (or logit, ``score='logit'``). Lower AUC = better map.
    """
    saliency, steps, batch_size = _curve_args(model, x, saliency, steps, batch_size, score)
    with preserved_state(model):
        end = baseline_image(x, baseline, model, blur_sigma)
        return _pixel_curve(model, x, saliency, target, steps, x, end, batch_size, score)


def insertion_curve(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, target=None, *,
                    steps: int = 100, baseline: str | float | torch.Tensor = "blur",
                    blur_sigma: float | None = None, score: str = "prob",
                    batch_size: int = DEFAULT_BATCH_SIZE) -> Curve:
    """Pixel-wise insertion (Petsiuk et al. 2018): add the most important pixels first.

    Starts from the ``baseline`` image (default: a Gaussian blur of x, see
    :func:`baseline_image`) and pastes x's pixels in order of decreasing saliency; arguments
    and return value as in :func:`deletion_curve` (``fractions`` = fraction inserted).
    Higher AUC = better map.
    """
    saliency, steps, batch_size = _curve_args(model, x, saliency, steps, batch_size, score)
    with preserved_state(model):
        start = baseline_image(x, baseline, model, blur_sigma)
        return _pixel_curve(model, x, saliency, target, steps, start, x, batch_size, score)


def _as_float_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a sequence, array or tensor of numbers, got str")
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float64) if not isinstance(
            value, torch.Tensor) else value).detach().double().cpu()
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence, array or tensor of numbers, got "
                        f"{type(value).__name__}") from None


def curve_auc(fractions, values) -> torch.Tensor:
    """Area under a curve by the trapezoid rule, x-axis rescaled to [0, 1].

    ``fractions`` (S+1,) non-decreasing; ``values`` (S+1,) or (B, S+1). Returns a 0-d tensor
    or a (B,) tensor; a constant curve c has AUC c, the identity line 0.5.
    """
    f, v = (_as_float_tensor(a, n) for a, n in ((fractions, "fractions"), (values, "values")))
    if f.dim() != 1 or f.numel() < 2:
        raise ValueError(f"fractions must have shape (S+1,) with S >= 1, got {tuple(f.shape)}")
    if v.dim() not in (1, 2) or v.shape[-1] != f.numel():
        raise ValueError(f"values must have shape (S+1,) or (B, S+1) with S+1 = {f.numel()}, "
                         f"got {tuple(v.shape)}")
    if not (torch.isfinite(f).all() and torch.isfinite(v).all()):
        raise ValueError("fractions and values must be finite")
    if (f.diff() < 0).any() or f[-1] <= f[0]:
        raise ValueError("fractions must be non-decreasing with fractions[-1] > fractions[0]")
    f = (f - f[0]) / (f[-1] - f[0])
    return torch.trapezoid(v, f, dim=-1)


# --------------------------------------------------------------------------- 3. structure-wise
def _as_uint8(image) -> np.ndarray:
    """8-bit values of an image: ints 0..255 as they are, floats in [0, 1] → round(255·x)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a tensor or NumPy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError("image is empty")
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ValueError("a floating-point image must be finite with values in [0, 1]")
        return np.rint(image * 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer) or image.dtype == bool:
        if image.min() < 0 or image.max() > 255:
            raise ValueError("an integer image must hold 8-bit values 0..255")
        return image.astype(np.uint8)
    raise TypeError(f"image must hold integers or floats, got dtype {image.dtype}")


def huffman_code_lengths(counts: Sequence[int]) -> dict[int, int]:
    """Code length in bits of every symbol with a non-zero count (Huffman 1952, via heapq).

    Ties are broken by the smallest symbol in a subtree, so the code is deterministic. A single
    symbol gets a 1-bit code (a decoder still needs one bit per pixel to count them).
    """
    heap = [(int(c), s, [s]) for s, c in enumerate(counts) if c > 0]
    if not heap:
        raise ValueError("counts must contain a positive entry")
    lengths = {s: 0 for _, s, _ in heap}
    if len(heap) == 1:
        return {heap[0][1]: 1}
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, k1, s1 = heapq.heappop(heap)
        c2, k2, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, min(k1, k2), s1 + s2))
    return lengths


def huffman_bits(image) -> int:
    """Total size in bits of the Huffman code of an image's 8-bit pixel values.

    ``image``: any shape (H, W), (C, H, W), …; uint8/int values 0..255 or floats in [0, 1]
    (quantised to ``round(255·x)``). All values form one symbol stream; the code is built from
    their histogram, so ``bits = Σ_v count(v) · len(v)`` (code table not counted). An image of a
    single value costs 1 bit per pixel. Example: [a, a, a, b] → 4 bits; four equally frequent
    values → 2 bits each.
    """
    counts = np.bincount(_as_uint8(image).ravel(), minlength=256)
    return int(sum(counts[s] * n for s, n in huffman_code_lengths(counts).items()))


def structure_wise_curve(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, labels,
                         thresholds: Sequence[float] | torch.Tensor = DEFAULT_THRESHOLDS,
                         *, baseline: str | float | torch.Tensor = "zeros",
                         batch_size: int = DEFAULT_BATCH_SIZE) -> StructureCurve:
    """Structure-wise evaluation (Prabhushankar & AlRegib 2021): accuracy vs Huffman bits.

    For each threshold τ: keep the pixels with ``maps ≥ τ`` (all channels), set the others to
    the ``baseline`` (default black), classify the masked images, and compare their Huffman
    size with the original's. ``maps`` (B, H, W) in [0, 1]; ``labels`` (B,) true classes (or
    ``None``: agreement with the prediction on the intact image).

    Returns ``StructureCurve(thresholds (T,), accuracy (T,), bits_ratio (T,))``, where
    ``bits_ratio`` is the mean over images of ``huffman_bits(masked) / huffman_bits(x)``; the
    ideal explanation keeps accuracy high at a small ratio.
    """
    batch_size = _setup(model, x, batch_size)
    maps = check_maps_like(maps, x, "maps", unit=True)
    thr = _as_float_tensor(thresholds, "thresholds").to(x).reshape(-1)
    if thr.numel() == 0 or not torch.isfinite(thr).all():
        raise ValueError("thresholds must be a non-empty sequence of finite numbers")
    b, t = len(x), thr.numel()
    with preserved_state(model):
        labels = predicted_classes(model, x, labels, batch_size, name="labels")
        base = baseline_image(x, baseline, model)
        keep = maps.unsqueeze(0).unsqueeze(2) >= thr.view(t, 1, 1, 1, 1)  # (T, B, 1, H, W)
        masked = torch.where(keep, x.unsqueeze(0), base.unsqueeze(0)).clamp(0, 1)
        flat = masked.reshape(t * b, *x.shape[1:])
        with torch.no_grad():
            predicted = torch.cat([logits_of(model, flat[i:i + batch_size]).argmax(1)
                                   for i in range(0, t * b, batch_size)])
    correct = (predicted.view(t, b) == labels.view(1, b)).to(x.dtype)
    original = [huffman_bits(img.clamp(0, 1)) for img in x]
    ratios = torch.tensor([[huffman_bits(masked[i, j]) / original[j] for j in range(b)]
                           for i in range(t)], dtype=x.dtype)
    return StructureCurve(thr, correct.mean(1), ratios.mean(1).to(x.device))
