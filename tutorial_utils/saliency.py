"""Input-space saliency: gradient methods, occlusion, RISE and SHAPE.

One call style for every method (as captum's ``attribute``)::

    maps = method(model, x, target=None, **options)            # (B, H, W) in [0, 1]
    attr = method(model, x, target=None, raw=True, **options)  # unnormalised attribution

``x`` holds images (B, C, H, W) with pixels in ``[0, 1]`` (normalisation is the model's first
layer); ``target`` is an int, one class per image, or ``None`` for the predicted class. Maps are
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
    check_images,
    check_inputs,
    check_int,
    check_maps,
    check_model,
    check_number,
    check_positive_int,
    check_seed,
    require_autograd,
    resolve_classes,
)
from tutorial_utils.cam import normalize_cams
from tutorial_utils.evaluation import (
    baseline_image,
    batched_scores,
    check_score,
    class_scores,
    logits_of,
    predicted_classes,
)
from tutorial_utils.utils import preserved_state

__all__ = ["METHODS", "saliency_map", "normalize_maps", "vanilla_gradient", "guided_backprop",
           "guided_relus", "smoothgrad", "noisy_copies", "occlusion", "rise", "shape",
           "random_masks"]

DEFAULT_BATCH_SIZE = 128


# --------------------------------------------------------------------------- helpers
def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min-max of maps (B, H, W) to [0, 1]; a (numerically) constant map → zeros
    (:func:`tutorial_utils.cam.normalize_cams`)."""
    return normalize_cams(check_maps(maps, "maps"))


def _gradient_map(attr: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) gradient → (B, H, W) map: max over channels of |·|, min-max."""
    return normalize_maps(attr.abs().amax(dim=1))


def _check_inputs(model: object, x: object, batch_size: object = 1,
                  gradients_of: str | None = None) -> int:
    if gradients_of is not None:
        require_autograd(gradients_of)
    check_inputs(model, x)
    return check_positive_int(batch_size, "batch_size")


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """A CPU generator: ``generator`` itself, or a fresh one seeded with ``seed``."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    return torch.Generator().manual_seed(check_seed(seed))


def _input_gradients(model: nn.Module, x: torch.Tensor, target, batch_size: int
                     ) -> torch.Tensor:
    """∂z_t/∂x (B, C, H, W) for the logit z_t of each image's class, in mini-batches.

    ``target`` is resolved per mini-batch when it is ``None`` (the prediction); otherwise it
    must already be a (B,) class tensor or an int.
    """
    grads = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].detach().clone().requires_grad_(True)
        tb = target[start:start + batch_size] if isinstance(target, torch.Tensor) else target
        with torch.enable_grad():
            logits = logits_of(model, xb)
            classes = resolve_classes(tb, logits.detach())
            (grad,) = torch.autograd.grad(logits.gather(1, classes[:, None]).sum(), xb)
        grads.append(grad)
    return torch.cat(grads)


# --------------------------------------------------------------------------- gradient methods
def vanilla_gradient(model: nn.Module, x: torch.Tensor, target=None, *, raw: bool = False,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2014).

    Returns the map ``max_c |∂z_t/∂x_c|`` (B, H, W) min-max normalised to [0, 1], or with
    ``raw=True`` the signed gradient of the target *logit* z_t (B, C, H, W), in logit units per
    unit of pixel intensity.
    """
    batch_size = _check_inputs(model, x, batch_size, "vanilla_gradient")
    with preserved_state(model):
        classes = predicted_classes(model, x, target, batch_size)
        grad = _input_gradients(model, x, classes, batch_size)
    return grad if raw else _gradient_map(grad)


def _clamp_negative(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every ``nn.ReLU`` of ``model`` lets only positive gradients through.

    A forward hook on each ReLU registers a tensor hook on its output that clamps the incoming
    gradient at 0; ReLU's own backward then multiplies by ``[input > 0]``, which gives the
    guided rule ``R_in = [input > 0] · max(R_out, 0)`` (Springenberg et al. 2015). In-place
    ReLUs are switched to out-of-place for the duration. Hooks and ``inplace`` flags are
    restored on exit, also after an exception. ``F.relu`` calls are *not* affected.
    """
    relus = [m for m in check_model(model).modules() if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []

    def hook(_module, _inputs, output):
        if output.requires_grad:
            output.register_hook(_clamp_negative)

    try:
        for m in relus:
            m.inplace = False
            handles.append(m.register_forward_hook(hook))
        yield model
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in zip(relus, inplace, strict=True):
            m.inplace = flag


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, *, raw: bool = False,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015) of the target logit z_t.

    The input gradient with negative gradients zeroed at every ``nn.ReLU`` (see
    :func:`guided_relus`). Returns the map ``max_c |·|`` (B, H, W) in [0, 1], or the signed
    attribution (B, C, H, W) with ``raw=True``. The model must use ``nn.ReLU`` modules.
    """
    batch_size = _check_inputs(model, x, batch_size, "guided_backprop")
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError("model has no nn.ReLU module, so guided backprop equals the vanilla "
                         "gradient; use vanilla_gradient or build the model with nn.ReLU")
    with preserved_state(model):
        classes = predicted_classes(model, x, target, batch_size)
        with guided_relus(model):
            grad = _input_gradients(model, x, classes, batch_size)
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
    gen = _generator(seed, generator)
    noise = torch.randn((n_samples, 1, *x.shape[1:]), generator=gen, dtype=x.dtype).to(x.device)
    spread = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))).view(1, -1, 1, 1, 1)
    return x.detach().unsqueeze(0) + sigma * spread * noise


def smoothgrad(model: nn.Module, x: torch.Tensor, target=None, *, n_samples: int = 25,
               sigma: float = 0.15, seed: int = 0, generator: torch.Generator | None = None,
               raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the input gradient averaged over noisy copies.

    ``raw`` attribution (B, C, H, W) = ``mean_i ∂z_t/∂x (x + ε_i)`` over the ``n_samples``
    copies of :func:`noisy_copies` (signed, logit units); the map is ``max_c |·|`` of that mean,
    min-max normalised. ``target=None`` is the prediction on the *clean* image. All n·B copies
    are differentiated ``batch_size`` at a time. Deterministic for a ``seed``/``generator``, and
    an image's result does not depend on the rest of the batch.
    """
    batch_size = _check_inputs(model, x, batch_size, "smoothgrad")
    copies = noisy_copies(x, n_samples, sigma, seed=seed, generator=generator)
    with preserved_state(model):
        classes = predicted_classes(model, x, target, batch_size)
        flat = copies.reshape(-1, *x.shape[1:])
        grads = _input_gradients(model, flat, classes.repeat(n_samples), batch_size)
    grad = grads.view_as(copies).mean(dim=0)
    return grad if raw else _gradient_map(grad)


# --------------------------------------------------------------------------- occlusion
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


def occlusion(model: nn.Module, x: torch.Tensor, target=None, *, window: int | tuple = 8,
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
    model — bright "ink" pasted on the background. See ``evaluation.baseline_image``.

    The attribution of a pixel is the drop ``s(x) − s(x_occluded)`` of the target's score
    (``'prob'`` softmax probability, or ``'logit'``), averaged over the windows that cover it:
    positive = occluding it hurts the class. ``raw=True`` returns it as (B, C, H, W) (equal
    over channels, as captum's ``Occlusion`` with a full-depth window); the map is its positive
    part, min-max normalised. All B × (#windows) occluded images are evaluated in batches.
    """
    batch_size = _check_inputs(model, x, batch_size)
    check_score(score)
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

    with preserved_state(model):
        base = baseline_image(x, baseline, model)
        classes = predicted_classes(model, x, target, batch_size)
        with torch.no_grad():
            clean = batched_scores(model, lambda i: x[i], classes, batch_size, score)
            images = lambda i: torch.where(windows(i % n_win)[:, None], base[i // n_win],
                                           x[i // n_win])
            occluded = batched_scores(model, images, classes.repeat_interleave(n_win),
                                      batch_size, score)
    drop = (clean.repeat_interleave(n_win) - occluded).view(b, n_win)
    masks = windows(torch.arange(n_win, device=x.device)).to(x.dtype)  # (P, H, W)
    attr = torch.einsum("bp,phw->bhw", drop, masks) / masks.sum(0)
    if raw:
        return attr.unsqueeze(1).expand(b, c, h, w).clone()
    return normalize_maps(attr.clamp(min=0))


# --------------------------------------------------------------------------- RISE and SHAPE
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
    gen = _generator(seed, generator)
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


def _masked_scores(model, x, target, n_masks, cells, p_keep, seed, generator, baseline, score,
                   batch_size) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(masks (m, H, W), scores (m, B), clean scores (B,))`` chunk by chunk.

    ``scores[i, b]`` is the target score of ``x_b ⊙ M_i + baseline ⊙ (1 − M_i)``; every chunk
    holds ``max(1, batch_size // B)`` masks, i.e. about ``batch_size`` images.
    """
    b, _, h, w = x.shape
    masks_of = random_masks(n_masks, (h, w), cells=cells, p_keep=p_keep, seed=seed,
                            generator=generator)
    per_chunk = max(1, batch_size // b)
    with preserved_state(model), torch.no_grad():
        base = baseline_image(x, baseline, model)
        classes = predicted_classes(model, x, target, batch_size)
        clean = batched_scores(model, lambda i: x[i], classes, batch_size, score)
        for start in range(0, n_masks, per_chunk):
            m = masks_of(torch.arange(start, min(start + per_chunk, n_masks))).to(x)
            keep = m[:, None, None]  # (m, 1, 1, H, W)
            images = (x * keep + base * (1 - keep)).reshape(-1, *x.shape[1:])
            logits = logits_of(model, images)
            yield m, class_scores(logits, classes.repeat(len(m)), score).view(len(m), b), clean


def _mask_method_args(model, x, batch_size, score):
    batch_size = _check_inputs(model, x, batch_size)
    check_score(score)
    return batch_size


def rise(model: nn.Module, x: torch.Tensor, target=None, *, n_masks: int = 1000, cells: int = 8,
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
    batch_size = _mask_method_args(model, x, batch_size, score)
    total = x.new_zeros(x.shape[0], *x.shape[2:])
    for masks, scores, _ in _masked_scores(model, x, target, n_masks, cells, p_keep, seed,
                                           generator, baseline, score, batch_size):
        total += torch.einsum("mb,mhw->bhw", scores, masks)
    sal = total / (n_masks * p_keep)
    return sal.unsqueeze(1) if raw else normalize_maps(sal)


def shape(model: nn.Module, x: torch.Tensor, target=None, *, n_masks: int = 1000, cells: int = 8,
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
    batch_size = _mask_method_args(model, x, batch_size, score)
    total = x.new_zeros(x.shape[0], *x.shape[2:])
    for masks, scores, clean in _masked_scores(model, x, target, n_masks, cells, p_keep, seed,
                                               generator, baseline, score, batch_size):
        total += torch.einsum("mb,mhw->bhw", clean[None] - scores, 1 - masks)
    sal = total / (n_masks * (1 - p_keep))
    return sal.unsqueeze(1) if raw else normalize_maps(sal.clamp(min=0))


# --------------------------------------------------------------------------- dispatcher
METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "vanilla_gradient": vanilla_gradient,
    "guided_backprop": guided_backprop,
    "smoothgrad": smoothgrad,
    "occlusion": occlusion,
    "rise": rise,
    "shape": shape,
}
"""Every saliency method by name, for :func:`saliency_map` and the dashboard."""


def saliency_map(model: nn.Module, x: torch.Tensor, method: str = "vanilla_gradient",
                 target=None, **options) -> torch.Tensor:
    """Run the saliency ``method`` named in :data:`METHODS`; ``options`` go to that function."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[method](model, x, target, **options)
