"""Interventions at inference: change the input (or the model) on purpose and watch the decision.

The course's intervenability chapter (AlRegib & Prabhushankar, WACV 2025 tutorial) reads one
idea through several lenses. This module holds the experiments that are not already a method
of another module:

========================  ========================================================================
function                  what it does
========================  ========================================================================
region_masks              the top / bottom ``fraction`` of a map's pixels, or the top region
                          moved to a random place (same shape and area), as boolean masks
occlusion_interventions   *positive* interventions: occlude each region, read the class score
box_mask, box_landscape   a square "box prompt" and the class probabilities for every placement
attack_sweep              *negative* interventions: accuracy under FGSM / PGD for every ε
attack_view               one image under attack, with its Grad-CAM and ContrastCAM maps
masking_view              one image masked by every method's map thresholded at τ
randomization_layers      the layers of a model from the top down (a conv and its BatchNorm
                          form one layer)
randomized_models         copies of a model with its top layers re-initialised, cascading down
rank_correlation          Spearman's ρ between two maps, per image (ties get average ranks)
sanity_check              the model-parameter randomisation test of an explanation method
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
- J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim, "Sanity checks for
  saliency maps", NeurIPS 2018 (cascading model-parameter randomisation, Spearman ρ).
- J. Quesada, Z. Fowler, M. Alotaibi, M. Prabhushankar, G. AlRegib, "Benchmarking human and
  automated prompting in the Segment Anything Model", IEEE BigData 2024 (PointPrompt).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import (
    check_callable,
    check_class,
    check_images,
    check_inputs,
    check_maps,
    check_maps_like,
    check_number,
    check_positive_int,
)
from tutorial_utils.evaluation import (
    DEFAULT_BATCH_SIZE,
    baseline_image,
    batched_scores,
    logits_of,
    pixel_ranks,
    predicted_classes,
)
from tutorial_utils.utils import preserved_state

__all__ = ["KINDS", "region_masks", "Interventions", "occlusion_interventions", "box_mask",
           "box_landscape", "AttackSweep", "attack_sweep", "AttackView", "attack_view",
           "masking_view", "randomization_layers", "randomized_models", "rank_correlation",
           "SanityCheck", "sanity_check"]

KINDS = ("top", "random", "bottom")
"""The three regions of :func:`occlusion_interventions`: what the map points at, the same
region moved to a random place, and the least important pixels."""


def _fraction(value: object, name: str = "fraction") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1], got {type(value).__name__}")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must lie in (0, 1] (a share of the pixels), got {value}")
    return float(value)


def _generator(seed: object) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))


# --------------------------------------------------------------------------- positive interventions
def _shifted(top: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` copies (n, B, H, W) of each mask rolled by a random non-zero offset (wrapping)."""
    b, h, w = top.shape
    offsets = torch.randint(1, h * w, (n, b), generator=gen).to(top.device)  # 0 = no move
    dy, dx = (offsets // w)[..., None, None], (offsets % w)[..., None, None]
    rows = (torch.arange(h, device=top.device).view(1, 1, h, 1) - dy) % h
    cols = (torch.arange(w, device=top.device).view(1, 1, 1, w) - dx) % w
    return top[torch.arange(b, device=top.device).view(1, b, 1, 1), rows, cols]


def region_masks(maps: torch.Tensor, fraction: float, kind: str = "top", *, n: int = 1,
                 seed: int = 0) -> torch.Tensor:
    """Boolean masks (B, H, W) — or (n, B, H, W) for ``kind='random'`` — of exactly
    ``k = max(1, round(fraction·H·W))`` pixels per image.

    ``'top'``: the k most important pixels of ``maps`` (ties in raster order, as in
    :func:`~tutorial_utils.evaluation.deletion_curve`); ``'bottom'``: the k least important;
    ``'random'``: the top region rolled (wrapping around the border) by ``n`` random non-zero
    offsets per image — the same shape and area in another place.
    """
    maps = check_maps(maps, "maps")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    fraction = _fraction(fraction)
    b, h, w = maps.shape
    k = max(1, round(fraction * h * w))
    ranks = pixel_ranks(maps.detach()).view(b, h, w)
    if kind == "bottom":
        return ranks >= h * w - k
    top = ranks < k
    if kind == "top":
        return top
    return _shifted(top, check_positive_int(n, "n"), _generator(seed))


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
                            batch_size: int = DEFAULT_BATCH_SIZE) -> Interventions:
    """Trial-and-error interventions guided by a map: occlude a region, read ``p_target``.

    For every fraction f, three kinds of region of the same area (:func:`region_masks`) are
    set to the ``baseline`` (default: the data set's mean colour, which carries no evidence):
    the map's top f, ``n_random`` random placements of that region, and the map's bottom f. A
    map that points at the evidence makes the top drop largest and the bottom drop ~0.
    All ``B·F·(2 + R)`` images are evaluated ``batch_size`` at a time.
    """
    check_inputs(model, x)
    maps = check_maps_like(maps, x, "maps")
    fr = [_fraction(f, "fractions") for f in fractions]
    n_random = check_positive_int(n_random, "n_random")
    batch_size = check_positive_int(batch_size, "batch_size")
    b, slots = len(x), 2 + n_random
    masks = torch.stack([torch.cat([region_masks(maps, f, "top")[None],
                                    region_masks(maps, f, "bottom")[None],
                                    region_masks(maps, f, "random", n=n_random,
                                                 seed=seed + i)])
                         for i, f in enumerate(fr)])  # (F, 2 + R, B, H, W)
    with preserved_state(model), torch.no_grad():
        classes = predicted_classes(model, x, target, batch_size)
        base = baseline_image(x, baseline, model)

        def images(idx: torch.Tensor) -> torch.Tensor:
            f, rest = idx // (slots * b), idx % (slots * b)
            m = masks[f, rest // b, rest % b].unsqueeze(1)
            return torch.where(m, base[rest % b], x[rest % b])

        clean = batched_scores(model, lambda i: x[i], classes, batch_size)
        scores = batched_scores(model, images, classes.repeat(len(fr) * slots), batch_size)
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
    row, col = (int(c) for c in centre)
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
    h, w = x.shape[-2:]
    boxes = torch.stack([box_mask((h, w), (r, c), s) for s in sizes for r in centres
                         for c in centres]).to(x.device)
    with preserved_state(model), torch.no_grad():
        base = baseline_image(x, baseline, model)
        probs = torch.cat([logits_of(model, torch.where(boxes[i:i + batch_size, None],
                                                        base, x)).softmax(1)
                           for i in range(0, len(boxes), batch_size)])
    return probs.view(len(sizes), len(centres), len(centres), -1)


# --------------------------------------------------------------------------- negative interventions
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
    from tutorial_utils import attacks as A

    check_inputs(model, x)
    epsilons = [check_number(e, "epsilons", low=0, high=1) for e in epsilons]
    if not epsilons:
        raise ValueError("epsilons must hold at least one ε (pixel units), e.g. [0, 4 / 255]")
    y = predicted_classes(model, x, y, batch_size, name="y")
    run = {"FGSM": lambda xb, yb, e: A.fgsm(model, xb, yb, e),
           "PGD": lambda xb, yb, e: A.pgd(model, xb, yb, e, steps=pgd_steps, seed=seed)}
    unknown = [a for a in attacks if a not in run]
    if unknown:
        raise ValueError(f"attacks must be among {tuple(run)}, got {unknown}")
    accuracy, images = {}, {}
    for name in attacks:
        adv = torch.stack([run[name](x, y, e) for e in epsilons])  # the whole set at once
        with preserved_state(model), torch.no_grad():
            pred = torch.stack([torch.cat([logits_of(model, a[i:i + batch_size]).argmax(1)
                                           for i in range(0, len(x), batch_size)]) for a in adv])
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
    from tutorial_utils import cam

    x = check_inputs(model, _one_image(image), "image")
    with preserved_state(model), torch.no_grad():
        label = check_class(label, logits_of(model, x).shape[1], "label")
    sweep = attack_sweep(model, x, [label], [epsilon], attacks=(attack,),
                         pgd_steps=pgd_steps, seed=seed)
    adv = sweep.images[attack][0]
    with preserved_state(model), torch.no_grad():
        clean_p, adv_p = (logits_of(model, t).softmax(1)[0] for t in (x, adv))
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
    stack = check_maps_like(torch.stack([m.reshape(x.shape[-2:]) for m in maps.values()]),
                        x.expand(len(maps), -1, -1, -1), "maps")
    keep = (stack >= threshold).unsqueeze(1)
    with preserved_state(model), torch.no_grad():
        classes = predicted_classes(model, x, target, 1).expand(len(maps))
        masked = torch.where(keep, x, baseline_image(x, baseline, model))
        probs = logits_of(model, masked).softmax(1).gather(1, classes[:, None])[:, 0]
    return masked, probs, keep.flatten(1).double().mean(1)


# --------------------------------------------------------------------------- sanity check
_OWNERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def randomization_layers(model: nn.Module) -> list[str]:
    """Names of the model's layers, **top (output) first**, for cascading randomisation.

    A layer is a convolution or linear module together with the parameterised modules that
    follow it before the next one (e.g. its BatchNorm); it is named by the common prefix of
    their names (``'last_conv.1'`` for ``last_conv.1.0`` + ``last_conv.1.1``).
    """
    groups: list[list[str]] = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or not any(True for _ in
                                                                module.parameters(False)):
            continue
        if isinstance(module, _OWNERS) or not groups:
            groups.append([name])
        else:
            groups[-1].append(name)
    if not groups:
        raise ValueError("model has no layer with parameters to randomise")
    names = []
    for group in groups:
        parts = [g.split(".") for g in group]
        common = [p[0] for p in zip(*parts, strict=False) if len(set(p)) == 1]
        names.append(".".join(common) if len(group) > 1 and common else group[0])
    return names[::-1]


@torch.no_grad()
def _reinitialise(module: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every parameter below ``module`` as PyTorch would at construction, but
    from ``gen``: weights and biases of conv/linear layers ~ U(±1/√fan_in); norm layers back
    to weight 1, bias 0 and fresh running statistics (mean 0, variance 1)."""
    for m in module.modules():
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            continue
        weight = getattr(m, "weight", None)
        fan_in = weight[0].numel() if isinstance(weight, torch.Tensor) and weight.dim() > 1 else 1
        bound = 1 / math.sqrt(fan_in)
        for p in m.parameters(recurse=False):
            draw = (torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * bound
            p.copy_(draw.to(p.device))


def randomized_models(model: nn.Module, layers: Sequence[str] | None = None, *, seed: int = 0,
                      cascade: bool = True) -> list[tuple[str, nn.Module]]:
    """``[(layer name, model copy)]``: with ``cascade`` (Adebayo et al. 2018), copy i has
    layers ``0..i`` of ``layers`` (default :func:`randomization_layers`, top first)
    re-initialised; without it, only layer i. ``model`` itself is never modified; each copy is
    in ``model``'s mode. Deterministic for ``seed`` (a local generator)."""
    layers = randomization_layers(model) if layers is None else list(layers)
    known = dict(model.named_modules())
    missing = [n for n in layers if n not in known]
    if missing:
        raise ValueError(f"unknown layer name(s) {missing}; valid: randomization_layers(model)")
    gen = _generator(seed)
    out, current = [], copy.deepcopy(model)
    for name in layers:
        target = current if cascade else copy.deepcopy(model)
        _reinitialise(dict(target.named_modules())[name], gen)
        out.append((name, copy.deepcopy(target) if cascade else target))
    return out


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's ρ between maps ``a`` and ``b`` (B, …) per image, shape (B,).

    Ranks with ties averaged (``scipy.stats.rankdata``), then Pearson's r of the ranks — the
    same as ``scipy.stats.spearmanr``. Two identical maps give 1 (also constant ones); a
    constant map against a varying one shares no ordering and gives 0.
    """
    from scipy.stats import rankdata

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        raise ValueError("a and b must be tensors of the same shape (B, ...)")
    fa, fb = (t.detach().double().cpu().flatten(1).numpy() for t in (a, b))
    ra, rb = (rankdata(f, axis=1) for f in (fa, fb))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    rho = np.divide((ra * rb).sum(1), den, out=np.zeros(len(fa)), where=den > 0)
    rho[(fa == fb).all(1)] = 1.0
    return torch.from_numpy(np.clip(rho, -1.0, 1.0))


class SanityCheck(NamedTuple):
    """:func:`sanity_check`: ``stages`` ('original', then each layer randomised so far),
    ``correlation`` (S+1, B) Spearman ρ with the original map, ``maps`` (S+1, B, H, W)."""

    stages: list[str]
    correlation: torch.Tensor
    maps: torch.Tensor


def sanity_check(model: nn.Module, x: torch.Tensor, explain: Callable[..., torch.Tensor],
                 target=None, layers: Sequence[str] | None = None, *, seed: int = 0,
                 cascade: bool = True) -> SanityCheck:
    """Model-parameter randomisation test (Adebayo et al. 2018) of one explanation method.

    ``explain(model, x, target)`` returns maps (B, H, W). The maps of ``model`` are compared
    (Spearman ρ, :func:`rank_correlation`) with those of copies whose layers are re-initialised
    from the top down (:func:`randomized_models`). ``target`` is fixed to the *original*
    model's prediction, so every map explains the same class. A method whose maps barely
    change once the weights are random cannot be explaining what the model learned.
    """
    check_inputs(model, x)
    check_callable(explain, "explain")
    with preserved_state(model):
        classes = predicted_classes(model, x, target, DEFAULT_BATCH_SIZE)
    stages = [("original", model)] + randomized_models(model, layers, seed=seed, cascade=cascade)
    maps = torch.stack([explain(m, x, classes).detach() for _, m in stages]).cpu()
    corr = torch.stack([rank_correlation(maps[0], m) for m in maps])
    return SanityCheck([name for name, _ in stages], corr, maps)
