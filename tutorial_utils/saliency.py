"""Input-space saliency: gradient methods, occlusion, RISE and SHAPE.

One call style for every method, the same as the CAMs' (as captum's ``attribute``)::

    maps = method(model, x, target=None, layer=None, **options)   # (B, H, W) in [0, 1]
    attr = method(model, x, target, raw=True, **options)          # unnormalised attribution

``x`` holds images (B, C, H, W) with pixels in ``[0, 1]`` (normalisation is the model's first
layer); ``target`` is an int, one class per image, ``None`` for the predicted class, or a
callable on the logits ``fn(z) -> (B,)`` whose input gradient (or perturbation drop) is
explained instead of a class score (:mod:`tutorial_utils.forward`). These methods explain the
input pixels, so ``layer`` must stay ``None`` (it is there for the shared call shape). Maps are
min-max normalised per image (a constant map becomes zeros) and live on ``x``'s device. Each
function runs the model in eval mode, restores its mode and ``requires_grad`` flags, and leaves
no hooks behind, also when it raises.

=================  =========================================================  ==============
method             attribution (``raw=True``)                                 map
=================  =========================================================  ==============
vanilla_gradient   ∂z_t/∂x, signed (B, C, H, W)                               max_c |·|
guided_backprop    ∂z_t/∂x with negative gradients clamped at every ReLU       max_c |·|
smoothgrad         mean over n noisy copies of ∂z_t/∂x, signed (B, C, H, W)   max_c |·|
occlusion          mean drop of the score over windows covering a pixel       ReLU (> 0 part)
rise               Σ_i p_t(x⊙M_i) M_i / (N·E[M]) (B, 1, H, W)                 as is
shape              Σ_i (p_t(x) − p_t(x⊙M_i)) (1−M_i) / (N·E[1−M]) (B, 1, H, W) ReLU
=================  =========================================================  ==============

References
----------
- K. Simonyan, A. Vedaldi, A. Zisserman, "Deep inside convolutional networks: visualising image
  classification models and saliency maps", ICLR workshop 2014 (vanilla gradient).
- J. T. Springenberg, A. Dosovitskiy, T. Brox, M. Riedmiller, "Striving for simplicity: the all
  convolutional net", ICLR workshop 2015 (guided backpropagation).
- D. Smilkov, N. Thorat, B. Kim, F. Viégas, M. Wattenberg, "SmoothGrad: removing noise by
  adding noise", arXiv:1706.03825, 2017.
- M. D. Zeiler, R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014
  (occlusion).
- V. Petsiuk, A. Das, K. Saenko, "RISE: randomized input sampling for explanation of black-box
  models", BMVC 2018.
- P. Chowdhury, M. Prabhushankar, G. AlRegib, M. Deriche, "Are objective explanatory
  evaluation metrics trustworthy? An adversarial analysis" (SHAPE), ICIP 2024 — presented in
  the AlRegib & Prabhushankar tutorials as "almost identical to RISE, but weighting the change
  in probability with the inverse mask": uninterpretable maps that nonetheless score better
  than RISE on insertion/deletion.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_choice,
    check_images,
    check_inputs,
    check_int,
    check_model,
    check_number,
    check_positive_int,
    make_generator,
    require_autograd,
)
from tutorial_utils.forward import (
    SCORE_KINDS,
    ContrastTarget,
    baseline_image,
    batched_scores,
    logits,
    normalize_maps,
    predicted_target,
    target_scores,
)
from tutorial_utils.gradients import input_gradient
from tutorial_utils.utils import preserved_state

__all__ = [
    "vanilla_gradient",
    "guided_backprop",
    "guided_relus",
    "smoothgrad",
    "noisy_copies",
    "occlusion",
    "rise",
    "shape",
    "random_masks",
    "contrast_input_gradient",
]

DEFAULT_BATCH_SIZE = 128


# --------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------


def _gradient_map(attr: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) gradient → (B, H, W) map: max over channels of |·|, min-max."""
    return normalize_maps(attr.abs().amax(dim=1))


def _setup(model: object, x: object, layer: object, batch_size: object,
           gradients_of: str | None = None) -> int:
    """The checks every method starts with; returns the checked ``batch_size``."""
    if gradients_of is not None:
        require_autograd(gradients_of)
    check_inputs(model, x)
    if layer is not None:
        raise ValueError("layer must be None: input-space saliency explains the pixels, not a "
                         "layer (use a CAM from tutorial_utils.cam for a layer)")
    return check_positive_int(batch_size, "batch_size")


def _input_gradients(model: nn.Module, x: torch.Tensor, target, rows: torch.Tensor,
                     batch_size: int) -> torch.Tensor:
    """``∂s_t/∂x`` (N, C, H, W) of the target's logit (or callable score) for images ``x`` whose
    source images are ``rows`` (N,), ``batch_size`` at a time (one forward + one input
    backward each, :func:`tutorial_utils.gradients.input_gradient`)."""
    grads = []
    for start in range(0, len(x), batch_size):
        idx = rows[start:start + batch_size]
        g, _ = input_gradient(model, x[start:start + batch_size],
                              lambda z, idx=idx: target_scores(target, z, idx), check=False)
        grads.append(g)
    return torch.cat(grads)


# --------------------------------------------------------------------------------------
# Gradient methods
# --------------------------------------------------------------------------------------


def vanilla_gradient(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
                     raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2014).

    Returns the map ``max_c |∂z_t/∂x_c|`` (B, H, W) min-max normalised to [0, 1], or with
    ``raw=True`` the signed gradient of the target *logit* z_t (B, C, H, W), in logit units per
    unit of pixel intensity.
    """
    batch_size = _setup(model, x, layer, batch_size, "vanilla_gradient")
    target = predicted_target(model, x, target, batch_size)
    grad = _input_gradients(model, x, target, torch.arange(len(x), device=x.device), batch_size)
    return grad if raw else _gradient_map(grad)


def _clamp_negative(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every ``nn.ReLU`` (and ``nn.GELU``) of ``model`` lets only positive
    gradients through.

    A forward hook on each ReLU registers a tensor hook on its output that clamps the incoming
    gradient at 0; ReLU's own backward then multiplies by ``[input > 0]``, which gives the
    guided rule ``R_in = [input > 0] · max(R_out, 0)`` (Springenberg et al. 2015). A GELU (the
    zoo transformer's MLP) is guided the same way, ``R_in = GELU'(input) · max(R_out, 0)`` —
    the usual extension of the rule to smooth activations. In-place ReLUs are switched to
    out-of-place for the duration. Hooks and ``inplace`` flags are restored on exit, also
    after an exception. ``F.relu`` / ``F.gelu`` calls are *not* affected.
    """
    guided = [m for m in check_model(model).modules() if isinstance(m, (nn.ReLU, nn.GELU))]
    relus = [m for m in guided if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []

    def hook(_module, _inputs, output):
        if output.requires_grad:
            output.register_hook(_clamp_negative)

    try:
        for m in relus:
            m.inplace = False
        for m in guided:
            handles.append(m.register_forward_hook(hook))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in zip(relus, inplace, strict=True):
            m.inplace = flag


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
                    raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015) of the target logit z_t.

    The input gradient with negative gradients zeroed at every ``nn.ReLU`` (see
    :func:`guided_relus`; a GELU module is guided alike). Returns the map ``max_c |·|``
    (B, H, W) in [0, 1], or the signed attribution (B, C, H, W) with ``raw=True``. The model
    must use ``nn.ReLU`` or ``nn.GELU`` modules.
    """
    batch_size = _setup(model, x, layer, batch_size, "guided_backprop")
    if not any(isinstance(m, (nn.ReLU, nn.GELU)) for m in model.modules()):
        raise ValueError("model has no nn.ReLU (or nn.GELU) module, so guided backprop equals "
                         "the vanilla gradient; use vanilla_gradient or build the model with "
                         "nn.ReLU")
    target = predicted_target(model, x, target, batch_size)
    with guided_relus(model):
        grad = _input_gradients(model, x, target, torch.arange(len(x), device=x.device),
                                batch_size)
    return grad if raw else _gradient_map(grad)


def noisy_copies(x: torch.Tensor, n_samples: int = 25, sigma: float = 0.15, *, seed: int = 0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SmoothGrad's inputs: ``x + ε``, ε ~ N(0, (σ·(max x_b − min x_b))²), shape (n, B, C, H, W).

    ``sigma`` is the noise level as a fraction of each image's own intensity range (Smilkov et
    al. 2017 recommend 0.1–0.2). The n unit-noise patterns (n, C, H, W) are drawn once on the
    CPU from ``generator`` (or a fresh generator seeded with ``seed``), moved to x's device and
    used for every image, so an image gets the same copies alone as inside any batch, on every
    device.
    """
    check_images(x)
    n_samples = check_positive_int(n_samples, "n_samples")
    sigma = check_number(sigma, "sigma", low=0.0)
    gen = make_generator(seed, generator)
    noise = torch.randn((n_samples, 1, *x.shape[1:]), generator=gen, dtype=x.dtype).to(x.device)
    spread = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))).view(1, -1, 1, 1, 1)
    return x.detach().unsqueeze(0) + sigma * spread * noise


def smoothgrad(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
               n_samples: int = 25, sigma: float = 0.15, seed: int = 0,
               generator: torch.Generator | None = None, raw: bool = False,
               batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the input gradient averaged over noisy copies.

    ``raw`` attribution (B, C, H, W) = ``mean_i ∂z_t/∂x (x + ε_i)`` over the ``n_samples``
    copies of :func:`noisy_copies` (signed, logit units); the map is ``max_c |·|`` of that mean,
    min-max normalised. ``target=None`` is the prediction on the *clean* image. All n·B copies
    are differentiated ``batch_size`` at a time. Deterministic for a ``seed``/``generator``, and
    an image's result does not depend on the rest of the batch.
    """
    batch_size = _setup(model, x, layer, batch_size, "smoothgrad")
    copies = noisy_copies(x, n_samples, sigma, seed=seed, generator=generator)
    target = predicted_target(model, x, target, batch_size)
    flat = copies.reshape(-1, *x.shape[1:])
    rows = torch.arange(len(x), device=x.device).repeat(n_samples)
    grads = _input_gradients(model, flat, target, rows, batch_size)
    grad = grads.view_as(copies).mean(dim=0)
    return grad if raw else _gradient_map(grad)


# --------------------------------------------------------------------------------------
# Occlusion
# --------------------------------------------------------------------------------------


def _pair(value: object, name: str) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
    return tuple(check_positive_int(v, name) for v in values)  # type: ignore[return-value]


def _window_starts(size: int, window: int, stride: int) -> torch.Tensor:
    """Top/left corners ``0, stride, …`` plus a last one flush with the border if needed."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return torch.tensor(starts)


def occlusion(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
              window: int | tuple = 8,
              stride: int | tuple = 4, baseline: str | float | torch.Tensor = "mean",
              score: str = "prob", raw: bool = False,
              batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014).

    A ``window`` (h, w) patch slides over the image with ``stride``; the windows start at
    ``0, stride, 2·stride, …`` plus one flush with the right/bottom border when the stride
    does not reach it, so every pixel is covered (``stride ≤ window`` is required). Inside
    the patch all channels are replaced by the ``baseline``. The rule: the patch must carry no
    evidence *for this data*, so the default ``'mean'`` is the data set's mean colour (stored in
    the model's ``Normalize`` layer): 0.13, nearly the black ground, for MNIST digits, a
    muted mid colour for the signs. Mid-grey 0.5 (``'grey'``) would be +1.2σ for the digit
    model — bright "ink" pasted on the background. See ``forward.baseline_image``.

    The attribution of a pixel is the drop ``s(x) − s(x_occluded)`` of the target's score
    (``'prob'`` softmax probability, or ``'logit'``), averaged over the windows that cover it:
    positive = occluding it hurts the class. ``raw=True`` returns it as (B, C, H, W) (equal
    over channels, as captum's ``Occlusion`` with a full-depth window); the map is its positive
    part, min-max normalised. All B × (#windows) occluded images are evaluated in batches.
    """
    batch_size = _setup(model, x, layer, batch_size)
    check_choice(score, SCORE_KINDS, "score")
    b, c, h, w = x.shape
    (wh, ww), (sh, sw) = _pair(window, "window"), _pair(stride, "stride")
    if wh > h or ww > w:
        raise ValueError(f"window {(wh, ww)} is larger than the image {(h, w)}")
    if sh > wh or sw > ww:
        raise ValueError(f"stride {(sh, sw)} must not exceed window {(wh, ww)}, "
                         "or some pixels would never be occluded")
    rows = _window_starts(h, wh, sh).to(x.device)
    cols = _window_starts(w, ww, sw).to(x.device)
    r0 = rows.repeat_interleave(len(cols))
    c0 = cols.repeat(len(rows))
    n_win = len(r0)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)

    def windows(p: torch.Tensor) -> torch.Tensor:  # (n,) → (n, H, W) bool
        in_rows = (ys >= r0[p, None]) & (ys < r0[p, None] + wh)
        in_cols = (xs >= c0[p, None]) & (xs < c0[p, None] + ww)
        return in_rows[:, :, None] & in_cols[:, None, :]

    def images(i: torch.Tensor) -> torch.Tensor:  # flat index → (n, C, H, W) occluded
        return torch.where(windows(i % n_win)[:, None], base[i // n_win], x[i // n_win])

    base = baseline_image(x, baseline, model)
    target = predicted_target(model, x, target, batch_size)
    sources = torch.arange(b, device=x.device)
    clean = batched_scores(model, lambda i: x[i], target, sources, batch_size, score)
    occluded = batched_scores(model, images, target, sources.repeat_interleave(n_win),
                              batch_size, score)
    drop = (clean.repeat_interleave(n_win) - occluded).view(b, n_win)
    masks = windows(torch.arange(n_win, device=x.device)).to(x.dtype)  # (P, H, W)
    attr = torch.einsum("bp,phw->bhw", drop, masks) / masks.sum(0)
    if raw:
        return attr.unsqueeze(1).expand(b, c, h, w).clone()
    return normalize_maps(attr.clamp(min=0))


# --------------------------------------------------------------------------------------
# RISE and SHAPE
# --------------------------------------------------------------------------------------


def random_masks(n_masks: int, size: tuple[int, int], *, cells: int = 8, p_keep: float = 0.5,
                 seed: int = 0, generator: torch.Generator | None = None
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """RISE masks (Petsiuk et al. 2018) as a function ``masks(idx) → (len(idx), H, W)``.

    Mask i: a ``cells × cells`` grid of independent Bernoulli(``p_keep``) cells (1 = keep),
    upsampled bilinearly to ``(cells+1)·⌈H/cells⌉ × (cells+1)·⌈W/cells⌉`` and cropped at a
    random offset in ``[0, ⌈H/cells⌉) × [0, ⌈W/cells⌉)``; values in [0, 1]. All grids and
    offsets are drawn up front on the CPU (so the masks do not depend on how they are batched)
    and the masks are built lazily on demand.
    """
    n_masks = check_positive_int(n_masks, "n_masks")
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise TypeError(f"size must be a pair (H, W), got {size!r}")
    h, w = (check_positive_int(v, "size") for v in size)
    cells = check_int(cells, "cells", low=1, high=min(h, w))
    p_keep = check_number(p_keep, "p_keep", low=0.0, high=1.0, low_open=True, high_open=True)
    gen = make_generator(seed, generator)
    ch, cw = math.ceil(h / cells), math.ceil(w / cells)
    grids = (torch.rand(n_masks, 1, cells, cells, generator=gen) < p_keep).float()
    dy = torch.randint(0, ch, (n_masks,), generator=gen)
    dx = torch.randint(0, cw, (n_masks,), generator=gen)
    ys, xs = torch.arange(h), torch.arange(w)

    def masks(idx: torch.Tensor) -> torch.Tensor:
        idx = idx.cpu()
        up = F.interpolate(grids[idx], size=((cells + 1) * ch, (cells + 1) * cw),
                           mode="bilinear", align_corners=False)[:, 0]
        rows = (dy[idx, None] + ys)[:, :, None]
        cols = (dx[idx, None] + xs)[:, None, :]
        return up[torch.arange(len(idx))[:, None, None], rows, cols].clamp(0, 1)

    return masks


def _masked_scores(model: nn.Module, x: torch.Tensor, target, *, n_masks: int, cells: int,
                   p_keep: float, seed: int, generator: torch.Generator | None,
                   baseline: str | float | torch.Tensor, score: str, batch_size: int
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(masks (m, H, W), scores (m, B), clean scores (B,))`` chunk by chunk.

    ``scores[i, b]`` is the target score of ``x_b ⊙ M_i + baseline ⊙ (1 − M_i)``; every chunk
    holds ``max(1, batch_size // B)`` masks, i.e. about ``batch_size`` images.
    """
    check_choice(score, SCORE_KINDS, "score")
    b, _, h, w = x.shape
    masks_of = random_masks(n_masks, (h, w), cells=cells, p_keep=p_keep, seed=seed,
                            generator=generator)
    per_chunk = max(1, batch_size // b)
    base = baseline_image(x, baseline, model)
    target = predicted_target(model, x, target, batch_size)
    sources = torch.arange(b, device=x.device)
    clean = batched_scores(model, lambda i: x[i], target, sources, batch_size, score)
    with preserved_state(model), torch.no_grad():
        for start in range(0, n_masks, per_chunk):
            m = masks_of(torch.arange(start, min(start + per_chunk, n_masks))).to(x)
            keep = m[:, None, None]  # (m, 1, 1, H, W)
            images = (x * keep + base * (1 - keep)).reshape(-1, *x.shape[1:])
            z = logits(model, images, len(images), check=False)
            yield m, target_scores(target, z, sources.repeat(len(m)), score).view(len(m), b), clean


def rise(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
         n_masks: int = 1000, cells: int = 8,
         p_keep: float = 0.5, seed: int = 0, generator: torch.Generator | None = None,
         baseline: str | float | torch.Tensor = "zeros", score: str = "prob",
         raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """RISE (Petsiuk et al. 2018): masks weighted by the class probability they preserve.

    ``S_b = Σ_i p_t(x_b ⊙ M_i) · M_i / (N · E[M])`` with the N = ``n_masks`` masks of
    :func:`random_masks` (E[M] = ``p_keep``), i.e. a Monte-Carlo estimate of
    ``E[p_t(x ⊙ M) | M(pixel) = 1]`` (the paper uses 4000–8000 masks for ImageNet; the small
    course images need fewer). The removed part is set to ``baseline`` (default black, the
    paper's ``x ⊙ M``). The same masks serve every image, so results do not depend on the
    batch. ``raw=True`` returns S (B, 1, H, W) in probability units; the map is S min-max'd.
    """
    batch_size = _setup(model, x, layer, batch_size)
    total = x.new_zeros(x.shape[0], *x.shape[2:])
    for masks, scores, _ in _masked_scores(model, x, target, n_masks=n_masks, cells=cells,
                                           p_keep=p_keep, seed=seed, generator=generator,
                                           baseline=baseline, score=score,
                                           batch_size=batch_size):
        total += torch.einsum("mb,mhw->bhw", scores, masks)
    sal = total / (n_masks * p_keep)
    return sal.unsqueeze(1) if raw else normalize_maps(sal)


def shape(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
          n_masks: int = 1000, cells: int = 8,
          p_keep: float = 0.5, seed: int = 0, generator: torch.Generator | None = None,
          baseline: str | float | torch.Tensor = "zeros", score: str = "prob",
          raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """SHAPE (Chowdhury, Prabhushankar, AlRegib & Deriche 2024): RISE turned into "necessity".

    ``N_b = Σ_i (p_t(x_b) − p_t(x_b ⊙ M_i)) · (1 − M_i) / (N · E[1 − M])`` with the same masks
    as :func:`rise` (E[1 − M] = 1 − ``p_keep``): a Monte-Carlo estimate of the expected *drop*
    of the target probability when a pixel is *removed*, ``E[p_t(x) − p_t(x ⊙ M) | M(pixel) =
    0]``. Differences from RISE: the weight is the change in probability, not the probability,
    and it multiplies the inverse mask (the removed region). ``raw=True`` returns N
    (B, 1, H, W), signed (negative = removing the pixel *raises* p_t); the map is its positive
    part, min-max'd. The tutorials use SHAPE to show that insertion/deletion can prefer a
    human-uninterpretable map.
    """
    batch_size = _setup(model, x, layer, batch_size)
    total = x.new_zeros(x.shape[0], *x.shape[2:])
    for masks, scores, clean in _masked_scores(model, x, target, n_masks=n_masks, cells=cells,
                                               p_keep=p_keep, seed=seed, generator=generator,
                                               baseline=baseline, score=score,
                                               batch_size=batch_size):
        total += torch.einsum("mb,mhw->bhw", clean[None] - scores, 1 - masks)
    sal = total / (n_masks * (1 - p_keep))
    return sal.unsqueeze(1) if raw else normalize_maps(sal.clamp(min=0))


# --------------------------------------------------------------------------------------
# "Why P, rather than Q?" in the input
# --------------------------------------------------------------------------------------


def contrast_input_gradient(model: nn.Module, x: torch.Tensor, target=None, layer: None = None,
                            *, contrast=None, raw: bool = False,
                            batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """The input-space analogue of ContrastCAM: ``max_c |∂CE(f(x), Q)/∂x_c|``, min-max'd.

    "Why P, rather than Q?" as a one-shot perturbation: ``∂CE/∂x = Σ_k (p_k − e_Q,k) ∂z_k/∂x``
    — the :func:`vanilla_gradient` of the target
    :class:`~tutorial_utils.forward.ContrastTarget` ``(contrast, target)``. ``target`` is P
    (default the prediction), ``contrast`` is Q (default the runner-up to P). Returns
    (B, H, W) maps in [0, 1], or the signed gradient (B, C, H, W) with ``raw=True`` (nats per
    unit of pixel intensity). One forward and one backward per ``batch_size`` images.
    """
    return vanilla_gradient(model, x, ContrastTarget(contrast, target), layer, raw=raw,
                            batch_size=batch_size)
