"""Interventions at inference: change the input (or the model) on purpose and watch the decision.

The course's intervenability chapter (AlRegib & Prabhushankar, WACV 2025 tutorial) intervenes
on the input and reads how the decision moves. This module holds those interventions and the
views of one image that the chapter's explorers draw (the evaluation of explanations —
masking, insertion/deletion, structure-wise, sanity checks — is :mod:`tutorial_utils.evaluation`):

========================  ========================================================================
function                  what it does
========================  ========================================================================
region_masks              the top / bottom ``fraction`` of a map's pixels, or the top region
                          moved to a random place inside the image (same shape and area,
                          overlapping the original by at most ``max_overlap``), as boolean masks
placement_overlap         how much of the top region a moved placement still covers
occlusion_interventions   *positive* interventions: occlude each region, read the class score
box_mask, box_landscape   a square "box prompt" and the class probabilities for every placement
attack_sweep              *negative* interventions: accuracy under FGSM / PGD for every ε
attack_view               one image under attack, with its Grad-CAM and ContrastCAM maps
masking_view              one image masked by every method's map thresholded at τ
========================  ========================================================================

Conventions: images ``(B, C, H, W)`` in [0, 1], maps ``(B, H, W)``, ``target`` an int, one
class per image or ``None`` (the prediction on the intact image). Every random choice is drawn
from a local ``torch.Generator`` seeded with ``seed``; the global RNGs are never touched, and a
model passed in is never modified (randomisation works on deep copies).

References
----------
- M. D. Zeiler, R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014.
- I. J. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial examples",
  ICLR 2015; A. Madry et al., "Towards deep learning models resistant to adversarial attacks",
  ICLR 2018.
- J. Quesada, Z. Fowler, M. Alotaibi, M. Prabhushankar, G. AlRegib, "Benchmarking human and
  automated prompting in the Segment Anything Model", IEEE BigData 2024 (PointPrompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils import cam
from tutorial_utils._checks import (
    check_choice,
    check_class,
    check_epsilon,
    check_fraction,
    check_images,
    check_inputs,
    check_int,
    check_maps,
    check_maps_like,
    check_number,
    check_positive_int,
    check_seed,
)
from tutorial_utils.attacks import fgsm, pgd
from tutorial_utils.forward import (
    baseline_image,
    batched_scores,
    logits,
    pixel_ranks,
    predicted_classes,
    predicted_target,
    target_scores,
)

__all__ = [
    "KINDS",
    "MAX_OVERLAP",
    "region_masks",
    "placement_overlap",
    "Interventions",
    "occlusion_interventions",
    "box_mask",
    "box_landscape",
    "AttackSweep",
    "attack_sweep",
    "AttackView",
    "attack_view",
    "masking_view",
]

DEFAULT_BATCH_SIZE = 64  # perturbed images per forward pass (the CPU's sweet spot)

KINDS = ("top", "random", "bottom")
"""The three regions of :func:`occlusion_interventions`: what the map points at, the same
region moved to a random place, and the least important pixels."""


# --------------------------------------------------------------------------------------
# Positive interventions
# --------------------------------------------------------------------------------------


MAX_OVERLAP = 0.25
"""Default largest share of the top region that a moved placement may still cover."""


def _overlaps(top: torch.Tensor) -> torch.Tensor:
    """``|top ∩ top shifted by (dy, dx)|`` for every shift, (B, 2H−1, 2W−1): index
    ``[b, dy + H − 1, dx + W − 1]``. The autocorrelation of each mask, by FFT zero-padded to
    (2H−1, 2W−1) so that nothing wraps (exact integer counts after rounding)."""
    b, h, w = top.shape
    size = (2 * h - 1, 2 * w - 1)
    f = torch.fft.rfft2(top.to(torch.float64), s=size)
    corr = torch.fft.irfft2(f * f.conj(), s=size).round()
    return torch.roll(corr, shifts=(h - 1, w - 1), dims=(1, 2))  # zero shift at (H−1, W−1)


def _inside(top: torch.Tensor) -> torch.Tensor:
    """(B, 2H−1, 2W−1) bool: the shift keeps every pixel of the region inside the image."""
    b, h, w = top.shape
    rows, cols = top.any(2), top.any(1)  # (B, H), (B, W)
    r0, c0 = rows.to(torch.uint8).argmax(1), cols.to(torch.uint8).argmax(1)
    r1 = h - 1 - rows.flip(1).to(torch.uint8).argmax(1)
    c1 = w - 1 - cols.flip(1).to(torch.uint8).argmax(1)
    dy = torch.arange(-(h - 1), h, device=top.device).view(1, -1, 1)
    dx = torch.arange(-(w - 1), w, device=top.device).view(1, 1, -1)
    v = (lambda t: t.view(b, 1, 1))
    return (dy >= -v(r0)) & (dy <= h - 1 - v(r1)) & (dx >= -v(c0)) & (dx <= w - 1 - v(c1))


def _moved(top: torch.Tensor, n: int, max_overlap: float, gen: torch.Generator
           ) -> torch.Tensor:
    """``n`` placements (n, B, H, W) of each image's region ``top`` (B, H, W), translated
    without wrapping: the shift is drawn uniformly among those that keep the whole region
    inside the image and leave at most ``max_overlap`` of its pixels on the original region.
    Where no shift qualifies, the in-image shift of least overlap is used (the region itself
    only when it cannot move at all, e.g. when it spans the image)."""
    b, h, w = top.shape
    overlap = _overlaps(top)
    inside = _inside(top)
    inside[:, h - 1, w - 1] = False  # the zero shift is no move
    k = top.flatten(1).sum(1).to(overlap.dtype).view(b, 1, 1)
    ok = inside & (overlap <= torch.floor(max_overlap * k + 1e-9))
    least = torch.where(inside, overlap, torch.inf).flatten(1).amin(1).view(b, 1, 1)
    fallback = inside & (overlap == least)
    ok = torch.where(ok.flatten(1).any(1).view(b, 1, 1), ok, fallback)
    stuck = ~ok.flatten(1).any(1)  # no in-image shift at all: the region stays where it is
    ok[stuck, h - 1, w - 1] = True
    pick = torch.multinomial(ok.flatten(1).to(torch.float64).cpu(), n, replacement=True,
                             generator=gen).to(top.device).T  # (n, B)
    dy = (pick // (2 * w - 1) - (h - 1))[..., None, None]
    dx = (pick % (2 * w - 1) - (w - 1))[..., None, None]
    rows = torch.arange(h, device=top.device).view(1, 1, h, 1) - dy
    cols = torch.arange(w, device=top.device).view(1, 1, 1, w) - dx
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    src = top[torch.arange(b, device=top.device).view(1, b, 1, 1), rows.clamp(0, h - 1),
              cols.clamp(0, w - 1)]
    return src & valid


def region_masks(maps: torch.Tensor, fraction: float, kind: str = "top", *, n: int = 1,
                 seed: int = 0, max_overlap: float = MAX_OVERLAP) -> torch.Tensor:
    """Boolean masks (B, H, W) — or (n, B, H, W) for ``kind='random'`` — of exactly
    ``k = max(1, round(fraction·H·W))`` pixels per image.

    ``'top'``: the k most important pixels of ``maps`` (ties in raster order, as in
    :func:`~tutorial_utils.evaluation.deletion_curve`); ``'bottom'``: the k least important;
    ``'random'``: the top region **translated** (no wrapping, no rotation) to ``n`` random
    places, each drawn uniformly among the shifts that keep the whole region inside the image
    and leave at most ``max_overlap`` (a share in [0, 1]) of its pixels on the original
    region — the same shape and area in another place. A region too large to move that far
    takes the in-image shift of least overlap (see :func:`placement_overlap` to measure it).
    """
    maps = check_maps(maps, "maps")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    fraction = check_fraction(fraction)
    max_overlap = check_number(max_overlap, "max_overlap", low=0.0, high=1.0)
    b, h, w = maps.shape
    k = max(1, round(fraction * h * w))
    ranks = pixel_ranks(maps.detach()).view(b, h, w)
    if kind == "bottom":
        return ranks >= h * w - k
    top = ranks < k
    if kind == "top":
        return top
    gen = torch.Generator().manual_seed(check_seed(seed))
    return _moved(top, check_positive_int(n, "n"), max_overlap, gen)


def placement_overlap(top: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """Share of each region ``top`` (B, H, W) that a placement ``moved`` (…, B, H, W) still
    covers, in [0, 1], shape (…, B): 0 = moved clear of it, 1 = not moved."""
    if not (isinstance(top, torch.Tensor) and isinstance(moved, torch.Tensor)):
        raise TypeError("top and moved must be boolean tensors (B, H, W) and (..., B, H, W)")
    if top.dim() != 3 or moved.shape[-3:] != top.shape:
        raise ValueError(f"moved must end in top's shape {tuple(top.shape)}, got "
                         f"{tuple(moved.shape)}")
    top, moved = top.bool(), moved.bool()
    return (moved & top).flatten(-2).sum(-1) / top.flatten(-2).sum(-1).clamp_min(1)


class Interventions(NamedTuple):
    """Scores of :func:`occlusion_interventions`: ``clean`` (B,), ``top`` and ``bottom``
    (F, B), ``random`` (F, R, B), one row per entry of ``fractions`` (F,)."""

    fractions: torch.Tensor
    clean: torch.Tensor
    top: torch.Tensor
    random: torch.Tensor
    bottom: torch.Tensor

    def drops(self) -> dict[str, torch.Tensor]:
        """Score drops ``clean − occluded`` (F, B) per kind; ``'random'`` is averaged over R."""
        return {"top": self.clean - self.top, "random": self.clean - self.random.mean(1),
                "bottom": self.clean - self.bottom}


def occlusion_interventions(model: nn.Module, x: torch.Tensor, maps: torch.Tensor, target=None,
                            *, fractions: Sequence[float] = (0.05, 0.1, 0.2), n_random: int = 8,
                            baseline: str | float | torch.Tensor = "mean", seed: int = 0,
                            max_overlap: float = MAX_OVERLAP,
                            batch_size: int = DEFAULT_BATCH_SIZE) -> Interventions:
    """Trial-and-error interventions guided by a map: occlude a region, read ``p_target``.

    For every fraction f, three kinds of region of the same area (:func:`region_masks`) are
    set to the ``baseline`` (default: the data set's mean colour, which carries no evidence):
    the map's top f, ``n_random`` random placements of that region (translated inside the
    image, covering at most ``max_overlap`` of the original; seed ``seed + i`` for the i-th
    fraction), and the map's bottom f. A map that points at the evidence makes the top drop
    largest and the bottom drop ~0.
    All ``B·F·(2 + R)`` images are evaluated ``batch_size`` at a time.
    """
    check_inputs(model, x)
    maps = check_maps_like(maps, x, "maps")
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise TypeError(f"fractions must be a sequence of shares in (0, 1], got "
                        f"{type(fractions).__name__}")
    fr = [check_fraction(f, "fractions") for f in fractions]
    if not fr:
        raise ValueError("fractions must hold at least one share in (0, 1], e.g. (0.05, 0.1)")
    n_random = check_positive_int(n_random, "n_random")
    batch_size = check_positive_int(batch_size, "batch_size")
    b, slots = len(x), 2 + n_random
    masks = torch.stack([torch.cat([region_masks(maps, f, "top")[None],
                                    region_masks(maps, f, "bottom")[None],
                                    region_masks(maps, f, "random", n=n_random,
                                                 seed=seed + i, max_overlap=max_overlap)])
                         for i, f in enumerate(fr)])  # (F, 2 + R, B, H, W)
    target = predicted_target(model, x, target, batch_size)
    base = baseline_image(x, baseline, model)

    def images(idx: torch.Tensor) -> torch.Tensor:
        f, rest = idx // (slots * b), idx % (slots * b)
        m = masks[f, rest // b, rest % b].unsqueeze(1)
        return torch.where(m, base[rest % b], x[rest % b])

    sources = torch.arange(b, device=x.device)
    clean = batched_scores(model, lambda i: x[i], target, sources, batch_size)
    scores = batched_scores(model, images, target, sources.repeat(len(fr) * slots), batch_size)
    scores = scores.view(len(fr), slots, b)
    return Interventions(torch.tensor(fr), clean, scores[:, 0], scores[:, 2:], scores[:, 1])


def _one_image(image: object, name: str = "image") -> torch.Tensor:
    """``image`` (C, H, W) or (1, C, H, W) as a checked batch of one."""
    x = image.unsqueeze(0) if isinstance(image, torch.Tensor) and image.dim() == 3 else image
    check_images(x, name)
    if len(x) != 1:
        raise ValueError(f"{name} must be one image (C, H, W), got a batch of {len(x)}")
    return x


def box_mask(shape: tuple[int, int], centre: tuple[int, int], size: int) -> torch.Tensor:
    """A ``size × size`` square (H, W) bool centred at pixel ``centre = (row, col)``, clipped
    at the border (so near an edge it covers fewer pixels): rows ``row − size//2`` to
    ``row − size//2 + size − 1``, columns likewise."""
    h, w = shape
    size = check_positive_int(size, "size")
    if isinstance(centre, (str, bytes)) or not isinstance(centre, (Sequence, np.ndarray,
                                                                   torch.Tensor)) \
            or len(centre) != 2:
        raise TypeError(f"centre must be a pair of int pixel indices (row, col), got {centre!r}")
    row, col = (check_int(c, "centre") for c in centre)  # 2.7 is refused, never truncated
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"centre {centre} lies outside the image of size {(h, w)}")
    ys, xs = torch.arange(h), torch.arange(w)
    r0, c0 = row - size // 2, col - size // 2
    return ((ys >= r0) & (ys < r0 + size))[:, None] & ((xs >= c0) & (xs < c0 + size))[None, :]


def box_landscape(model: nn.Module, image: torch.Tensor, sizes: Sequence[int],
                  centres: Sequence[int], *, baseline: str | float | torch.Tensor = "mean",
                  batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Class probabilities (S, N, N, K) with a box of every ``size`` at every centre
    ``(centres[i], centres[j])`` filled with the ``baseline`` — the answer to every possible
    box prompt, computed in one batched pass. ``image`` is (C, H, W) or (1, C, H, W)."""
    x = check_inputs(model, _one_image(image), "image")
    sizes = [check_positive_int(s, "sizes") for s in sizes]
    centres = [check_int(c, "centres", low=0) for c in centres]
    if not sizes or not centres:
        raise ValueError(f"{'sizes' if not sizes else 'centres'} must hold at least one value")
    h, w = x.shape[-2:]
    boxes = torch.stack([box_mask((h, w), (r, c), s) for s in sizes for r in centres
                         for c in centres]).to(x.device)
    base = baseline_image(x, baseline, model)
    batch_size = check_positive_int(batch_size, "batch_size")
    probs = torch.cat([logits(model, torch.where(boxes[i:i + batch_size, None], base, x),
                              check=False).softmax(1)
                       for i in range(0, len(boxes), batch_size)])
    return probs.view(len(sizes), len(centres), len(centres), -1)


# --------------------------------------------------------------------------------------
# Negative interventions
# --------------------------------------------------------------------------------------


class AttackSweep(NamedTuple):
    """:func:`attack_sweep`: ``accuracy[attack]`` (E,) and ``images[attack]`` (E, B, C, H, W)."""

    epsilons: tuple[float, ...]
    accuracy: dict[str, np.ndarray]
    images: dict[str, torch.Tensor]


def attack_sweep(model: nn.Module, x: torch.Tensor, y, epsilons: Sequence[float], *,
                 attacks: Sequence[str] = ("FGSM", "PGD"), pgd_steps: int = 7, seed: int = 0,
                 batch_size: int = 256) -> AttackSweep:
    """Accuracy on ``(x, y)`` under untargeted FGSM and/or PGD (L∞, random start, step
    2.5·ε/steps) for every ε in pixel units (:mod:`tutorial_utils.attacks`), keeping the
    adversarial images. ε = 0 gives the clean accuracy. Each attack sees the whole set at once
    (PGD's random start then does not depend on ``batch_size``, which only splits the final
    evaluation)."""
    check_inputs(model, x)
    epsilons = [check_epsilon(e, "epsilons") for e in epsilons]
    if not epsilons:
        raise ValueError("epsilons must hold at least one ε (pixel units), e.g. [0, 4 / 255]")
    y = predicted_classes(model, x, y, batch_size, name="y")
    run = {"FGSM": lambda xb, yb, e: fgsm(model, xb, yb, e),
           "PGD": lambda xb, yb, e: pgd(model, xb, yb, e, steps=pgd_steps, seed=seed)}
    names = list(attacks)
    unknown = [a for a in names if a not in run]
    if unknown:
        raise ValueError(f"attacks must be among {tuple(run)}, got {unknown}")
    accuracy, images = {}, {}
    for name in names:
        adv = torch.stack([run[name](x, y, e) for e in epsilons])  # the whole set at once
        pred = torch.stack([logits(model, a, batch_size, check=False).argmax(1) for a in adv])
        accuracy[name] = (pred == y).double().mean(1).cpu().numpy()
        images[name] = adv
    return AttackSweep(tuple(float(e) for e in epsilons), accuracy, images)


class AttackView(NamedTuple):
    """:func:`attack_view` of one image: the adversarial image (C, H, W), the class
    probabilities (K,) before and after, and three maps (H, W): Grad-CAM of the clean
    prediction on the clean image, Grad-CAM of the new prediction on the adversarial image, and
    ContrastCAM "why the new prediction, rather than the true class?" on the adversarial image."""

    attack: str
    epsilon: float
    label: int
    image: torch.Tensor
    clean_probs: torch.Tensor
    probs: torch.Tensor
    gradcam_clean: torch.Tensor
    gradcam: torch.Tensor
    contrast: torch.Tensor


def attack_view(model: nn.Module, image: torch.Tensor, label: int, epsilon: float,
                attack: str = "FGSM", *, pgd_steps: int = 7, seed: int = 0) -> AttackView:
    """Attack one image (C, H, W) with ε (pixel units) and explain both decisions."""
    x = check_inputs(model, _one_image(image), "image")
    label = check_class(label, logits(model, x, check=False).shape[1], "label")
    epsilon = check_epsilon(epsilon, "epsilon")
    attack = check_choice(attack, ("FGSM", "PGD"), "attack")
    sweep = attack_sweep(model, x, [label], [epsilon], attacks=(attack,),
                         pgd_steps=pgd_steps, seed=seed)
    adv = sweep.images[attack][0]
    clean_p, adv_p = (logits(model, t, check=False).softmax(1)[0] for t in (x, adv))
    return AttackView(attack, float(epsilon), int(label), adv[0].cpu(), clean_p.cpu(),
                      adv_p.cpu(), cam.grad_cam(model, x)[0].cpu(),
                      cam.grad_cam(model, adv)[0].cpu(),
                      cam.contrast_cam(model, adv, contrast=int(label))[0].cpu())


def masking_view(model: nn.Module, image: torch.Tensor, maps: dict[str, torch.Tensor],
                 threshold: float, target=None, *,
                 baseline: str | float | torch.Tensor = "zeros"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the pixels where each method's map (H, W) is ≥ ``threshold``, set the rest to the
    ``baseline`` (the structure-wise masking of :func:`~tutorial_utils.evaluation.
    structure_wise_curve`): returns the masked images (M, C, H, W), ``p_target`` on each (M,)
    and the share of pixels kept (M,), in the order of ``maps``."""
    x = check_inputs(model, _one_image(image), "image")
    if not isinstance(maps, dict) or not maps:
        raise TypeError("maps must be a non-empty dict {method name: (H, W) map}")
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor):
            raise TypeError(f"maps[{name!r}] must be a torch.Tensor map (H, W), got "
                            f"{type(m).__name__}")
        if m.numel() != x.shape[-2] * x.shape[-1]:
            raise ValueError(f"maps[{name!r}] must be one map of the image's size "
                             f"{tuple(x.shape[-2:])}, got shape {tuple(m.shape)}")
    stack = check_maps_like(torch.stack([m.reshape(x.shape[-2:]) for m in maps.values()]),
                        x.expand(len(maps), -1, -1, -1), "maps")
    keep = (stack >= check_number(threshold, "threshold", low=0.0, high=1.0)).unsqueeze(1)
    target = predicted_target(model, x, target, 1)
    masked = torch.where(keep, x, baseline_image(x, baseline, model))
    rows = torch.zeros(len(maps), dtype=torch.long, device=x.device)
    probs = target_scores(target, logits(model, masked, check=False), rows, "prob")
    return masked, probs, keep.flatten(1).double().mean(1)
