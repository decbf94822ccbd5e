"""Evaluating explanations: masking, insertion/deletion, Huffman bits, sanity checks.

Four ways to test a saliency map ``S`` (B, H, W) of an image batch ``x`` (B, C, H, W) with pixels
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
   images against how many Huffman-coded bits they need relative to the original
   (:meth:`StructureCurve.accuracy_at` reads it at one bit budget).
4. **Sanity check** :func:`sanity_check` (Adebayo et al., "Sanity checks for saliency maps",
   NeurIPS 2018): re-initialise the model's layers from the top down
   (:func:`randomized_models`) and measure how much the maps change (Spearman's ρ,
   :func:`tutorial_utils.metrics.rank_correlation`). A method whose maps survive random
   weights does not explain what the model learned.

Every method is given as an explainer ``fn(model, x, target=None, layer=None, **options)``
(the contract of :mod:`tutorial_utils.explainers`) or by its name in that registry.

Every perturbed image is evaluated in mini-batches of ``batch_size`` images — never one forward
per step — with the model in eval mode; its mode and ``requires_grad`` flags are restored.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils import explainers
from tutorial_utils._checks import (
    check_callable,
    check_choice,
    check_images,
    check_inputs,
    check_int,
    check_maps_like,
    check_number,
    check_positive_int,
    check_seed,
)
from tutorial_utils.forward import (
    SCORE_KINDS,
    baseline_image,
    batched_scores,
    logits,
    pixel_ranks,
    predicted_classes,
    predicted_target,
)
from tutorial_utils.metrics import rank_correlation
from tutorial_utils.utils import preserved_state

__all__ = [
    "Curve",
    "StructureCurve",
    "masked_prediction",
    "deletion_curve",
    "insertion_curve",
    "curve_auc",
    "least_certain_grey",
    "huffman_code_lengths",
    "huffman_bits",
    "structure_wise_curve",
    "randomization_layers",
    "randomized_models",
    "SanityCheck",
    "sanity_check",
]

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

    def accuracy_at(self, budget: float) -> float:
        """The accuracy at a bits ratio of ``budget`` (e.g. 0.7 = 70% of the original bits),
        linearly interpolated between the thresholds (held constant beyond them)."""
        budget = check_number(budget, "budget", low=0.0)
        order = np.argsort(self.bits_ratio.cpu().numpy())
        return float(np.interp(budget, self.bits_ratio.cpu().numpy()[order],
                               self.accuracy.cpu().numpy()[order]))


# --------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------


def _setup(model: object, x: object, batch_size: object) -> int:
    check_inputs(model, x)
    return check_positive_int(batch_size, "batch_size")


# --------------------------------------------------------------------------------------
# 1. Heatmap masking
# --------------------------------------------------------------------------------------


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
    check_choice(score, SCORE_KINDS, "score")
    keep = maps.unsqueeze(1).to(x.dtype)
    target = predicted_target(model, x, target, batch_size)
    masked = x * keep + baseline_image(x, baseline, model) * (1 - keep)
    return batched_scores(model, lambda i: masked[i], target,
                          torch.arange(len(x), device=x.device), batch_size, score)


# --------------------------------------------------------------------------------------
# 2. Insertion and deletion
# --------------------------------------------------------------------------------------


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

    target = predicted_target(model, x, target, batch_size)
    rows = torch.arange(b, device=x.device).repeat_interleave(steps + 1)
    probs = batched_scores(model, make_images, target, rows, batch_size, score)
    return Curve(counts.to(x.dtype) / (h * w), probs.view(b, steps + 1))


def _curve_args(model, x, saliency, steps, batch_size, score):
    batch_size = _setup(model, x, batch_size)
    saliency = check_maps_like(saliency, x, "saliency")
    steps = check_positive_int(steps, "steps")
    if steps > x.shape[2] * x.shape[3]:
        raise ValueError(f"steps must be <= the number of pixels H*W = {x.shape[2] * x.shape[3]}, "
                         f"got {steps}")
    check_choice(score, SCORE_KINDS, "score")
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


def least_certain_grey(model: nn.Module, like: torch.Tensor, levels: int = 101) -> float:
    """The grey level g in [0, 1] whose uniform image the model is least sure about.

    The course's rule for a "removed" pixel in deletion/insertion: the baseline should carry
    no evidence, i.e. the model should read the baseline image as uncertain (softmax close to
    uniform). Black or the data-set mean can read as a class (the digit model calls the mean
    grey a "0" and black a "1"), which makes deletion end, and insertion start, at a confident
    wrong class. This evaluates the ``levels`` uniform images ``g·1`` (shape of one image of
    ``like`` (B, C, H, W)) in one batch and returns the g of largest predictive entropy.
    """
    check_images(like)
    levels = check_int(levels, "levels", low=2, high=10_001)
    grey = torch.linspace(0, 1, levels, device=like.device, dtype=like.dtype)
    images = grey.view(-1, 1, 1, 1) * torch.ones_like(like[:1])
    with preserved_state(model), torch.no_grad():
        p = logits(model, images, levels, check=False).softmax(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(1)
    return float(grey[int(entropy.argmax())])


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


# --------------------------------------------------------------------------------------
# 3. Structure-wise
# --------------------------------------------------------------------------------------


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
    if isinstance(counts, (str, bytes)) or not hasattr(counts, "__iter__"):
        raise TypeError(f"counts must be a sequence of non-negative ints, got "
                        f"{type(counts).__name__}")
    counts = [check_int(c, "counts", low=0) for c in counts]  # a negative count is an error
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
                         direction: str = "insertion",
                         batch_size: int = DEFAULT_BATCH_SIZE) -> StructureCurve:
    """Structure-wise evaluation (Prabhushankar & AlRegib 2021): accuracy vs Huffman bits.

    For each threshold τ: keep the pixels with ``maps ≥ τ`` (all channels), set the others to
    the ``baseline`` (default black), classify the masked images, and compare their Huffman
    size with the original's. ``maps`` (B, H, W) in [0, 1]; ``labels`` (B,) true classes (or
    ``None``: agreement with the prediction on the intact image).

    Returns ``StructureCurve(thresholds (T,), accuracy (T,), bits_ratio (T,))``, where
    ``bits_ratio`` is the mean over images of ``huffman_bits(masked) / huffman_bits(x)``; the
    ideal explanation keeps accuracy high at a small ratio.

    ``direction='deletion'`` runs the test the other way round: *remove* the pixels with
    ``maps ≥ τ`` and keep the rest; a faithful map then loses the decision while much of the
    image (many bits) is still there, i.e. low accuracy at a large ratio.
    """
    check_choice(direction, ("insertion", "deletion"), "direction")
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
        if direction == "deletion":
            keep = ~keep
        masked = torch.where(keep, x.unsqueeze(0), base.unsqueeze(0)).clamp(0, 1)
        flat = masked.reshape(t * b, *x.shape[1:])
        predicted = logits(model, flat, batch_size, check=False).argmax(1)
    correct = (predicted.view(t, b) == labels.view(1, b)).to(x.dtype)
    original = [huffman_bits(img.clamp(0, 1)) for img in x]
    ratios = torch.tensor([[huffman_bits(masked[i, j]) / original[j] for j in range(b)]
                           for i in range(t)], dtype=x.dtype)
    return StructureCurve(thr, correct.mean(1), ratios.mean(1).to(x.device))


# --------------------------------------------------------------------------------------
# 4. Sanity check: cascading model-parameter randomisation
# --------------------------------------------------------------------------------------


_OWNERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.LayerNorm, nn.MultiheadAttention)


def randomization_layers(model: nn.Module) -> list[str]:
    """Names of the model's layers, **top (output) first**, for cascading randomisation.

    A layer is a convolution or linear module together with the parameterised modules that
    follow it before the next one (e.g. its BatchNorm); it is named by the common prefix of
    their names when that module holds exactly them (``'last_conv.1'`` for ``last_conv.1.0`` +
    ``last_conv.1.1``), otherwise by their names joined with ``+`` (a torchvision ResNet's
    ``'layer4.1.conv2+layer4.1.bn2'``: the block ``layer4.1`` holds two such layers), so every
    name is unique and :func:`randomized_models` re-initialises exactly that layer. In a
    transformer every attention (``nn.MultiheadAttention`` with its ``out_proj``), MLP linear
    and ``LayerNorm`` is a layer of its own (the class token and position embedding, owned by
    the model itself, are not randomised).
    """
    groups: list[list[str]] = []
    modules = list(model.named_modules())
    inside_attention = {id(m.out_proj) for _, m in modules if isinstance(m, nn.MultiheadAttention)}
    for name, module in modules:
        is_leaf = next(module.children(), None) is None
        owns_parameters = next(module.parameters(recurse=False), None) is not None
        if id(module) in inside_attention:
            continue  # re-initialised with its attention
        if not ((is_leaf or isinstance(module, nn.MultiheadAttention)) and owns_parameters):
            continue
        if isinstance(module, _OWNERS) or not groups:
            groups.append([name])
        else:
            groups[-1].append(name)
    if not groups:
        raise ValueError("model has no layer with parameters to randomise")
    owned = {}  # module name -> its parameterised leaves, to test whether a prefix is the group
    leaves = [n for g in groups for n in g]
    names = []
    for group in groups:
        parts = [g.split(".") for g in group]
        common = []
        for p in zip(*parts, strict=False):
            if len(set(p)) != 1:
                break
            common.append(p[0])
        prefix = ".".join(common)
        if len(group) > 1 and prefix:
            if prefix not in owned:
                owned[prefix] = [n for n in leaves if n.startswith(prefix + ".")]
            # the prefix names the group only if it holds nothing else (a ResNet block holds
            # two conv + BN groups: they become 'layer4.1.conv2+layer4.1.bn2' etc.)
            names.append(prefix if owned[prefix] == group else "+".join(group))
        else:
            names.append(group[0])
    return names[::-1]


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
          nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def _reinitialise(module: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every parameter below ``module`` as PyTorch would at construction, but
    from ``gen``: weights and biases of conv/linear layers ~ U(±1/√fan_in); norm layers back
    to weight 1, bias 0 and fresh running statistics (mean 0, variance 1)."""
    for m in module.modules():
        if isinstance(m, _NORMS):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            continue
        weight = getattr(m, "weight", getattr(m, "in_proj_weight", None))
        fan_in = weight[0].numel() if isinstance(weight, torch.Tensor) and weight.dim() > 1 else 1
        bound = 1 / math.sqrt(fan_in)
        for p in m.parameters(recurse=False):
            draw = (torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 1) * bound
            p.copy_(draw.to(p.device))


def randomized_models(model: nn.Module, layers: Sequence[str] | None = None, *, seed: int = 0,
                      cascade: bool = True) -> list[tuple[str, nn.Module]]:
    """``[(layer name, model copy)]``: with ``cascade`` (Adebayo et al. 2018), copy i has
    layers ``0..i`` of ``layers`` (default :func:`randomization_layers`, top first)
    re-initialised (a name ``'a+b'`` re-initialises modules ``a`` and ``b``); without it, only
    layer i. ``model`` itself is never modified; each copy is
    in ``model``'s mode. Deterministic for ``seed`` (a local generator)."""
    layers = randomization_layers(model) if layers is None else list(layers)
    known = dict(model.named_modules())
    missing = [n for n in layers if not isinstance(n, str)
               or any(part not in known for part in n.split("+"))]
    if missing:
        raise ValueError(f"layers: unknown layer name(s) {missing}; valid: "
                         f"randomization_layers(model) = {randomization_layers(model)}"[:400])
    gen = torch.Generator().manual_seed(check_seed(seed))
    out = []
    current = copy.deepcopy(model) if cascade else None  # randomised further at every stage
    for name in layers:
        stage = current if cascade else copy.deepcopy(model)
        modules = dict(stage.named_modules())
        for part in name.split("+"):  # 'a+b': the modules of one layer (conv + its norm)
            _reinitialise(modules[part], gen)
        out.append((name, copy.deepcopy(stage) if cascade else stage))
    return out


class SanityCheck(NamedTuple):
    """:func:`sanity_check`: ``stages`` ('original', then each layer randomised so far),
    ``correlation`` (S+1, B) Spearman ρ with the original map, ``maps`` (S+1, B, H, W)."""

    stages: list[str]
    correlation: torch.Tensor
    maps: torch.Tensor


def sanity_check(model: nn.Module, x: torch.Tensor, explain: str | Callable[..., torch.Tensor],
                 target=None, layers: Sequence[str] | None = None, *, seed: int = 0,
                 cascade: bool = True, options: dict | None = None) -> SanityCheck:
    """Model-parameter randomisation test (Adebayo et al. 2018) of one explanation method.

    ``explain`` is an explainer ``fn(model, x, target)`` returning maps (B, H, W) — any entry
    of :data:`tutorial_utils.explainers.EXPLAINERS`, called positionally as every explainer can
    be — or the name of one (``options`` then go to it, e.g. ``{"window": 7}``). The maps of
    ``model`` are compared (Spearman ρ, :func:`tutorial_utils.metrics.rank_correlation`) with
    those of copies whose layers are re-initialised from the top down
    (:func:`randomized_models`). ``target`` is fixed to the *original* model's prediction, so
    every map explains the same class. A method whose maps barely change once the weights are
    random cannot be explaining what the model learned.
    """
    check_inputs(model, x)
    if isinstance(explain, str):
        if explain not in explainers.EXPLAINERS:
            raise ValueError(f"explain must be a callable or one of {tuple(explainers.EXPLAINERS)}"
                             f"; got {explain!r}")
        explain = explainers.bind(explain, **(options or {}))
    elif options:
        raise TypeError("options go with an explainer's name; bind them into the callable "
                        "instead (explainers.bind(name, **options))")
    check_callable(explain, "explain")
    classes = predicted_classes(model, x, target, DEFAULT_BATCH_SIZE)
    stages = [("original", model)] + randomized_models(model, layers, seed=seed, cascade=cascade)
    maps = torch.stack([explain(m, x, classes).detach() for _, m in stages]).cpu()
    finite = torch.isfinite(maps.flatten(1)).all(1) if maps.is_floating_point() else None
    if finite is not None and not finite.all():
        stage = stages[int((~finite).nonzero()[0])][0]
        raise ValueError(f"explain returned NaN or infinite maps (at stage {stage!r}); a map "
                         f"without a ranking cannot pass or fail the sanity check")
    corr = torch.stack([rank_correlation(maps[0], m) for m in maps])
    return SanityCheck([name for name, _ in stages], corr, maps)
