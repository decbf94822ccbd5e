"""The forward pass, once: logits, targets, class scores, the final layer, hooks, baselines, maps.

Every method of the course starts with a forward pass of a classifier ``f`` over images ``x``
``(B, C, H, W)`` with pixels in ``[0, 1]`` (the course's models normalise inside their first
layer). This module is the one place that runs it and reads what it gives:

=====================  ============================================================================
name                   what it does
=====================  ============================================================================
logits                 ``z = f(x)`` ``(B, K)``: eval mode (restored), no autograd graph,
                       channels-last, in mini-batches, shape checked
capture_layer          context manager: a layer's input and output during a forward pass (hook
                       removed on exit); ``track=True`` makes the output a gradient leaf
final_linear           the ``nn.Linear`` that produces the logits
features_and_logits    penultimate features ``h`` ``(B, D)`` (the input of the final
                       ``nn.Linear``, read by a hook) and the logits, for any such model
resolve_target         a target on the logits of the images it explains: ``(B,)`` classes, or a
                       callable (``predicted_target``: on the logits of ``x``, one pass)
predicted_classes      the ``(B,)`` classes of a class target (``None`` = the prediction on ``x``)
target_scores          the per-row score of a target on logits: a class's logit / probability, or
                       the callable's value
ContrastTarget         the score ``CE(z, Q)`` of "why P, rather than Q?" (``contrast_target``)
class_scores           the target class's softmax probability or logit ``(N,)``
batched_scores         scores ``(N,)`` of N perturbed images, built and run ``batch_size`` at a time
baseline_image         the "removed" value of every pixel: black, grey, the data set's mean colour,
                       a blur, a number or a tensor
normalize_maps         per-map min-max to ``[0, 1]``; a (numerically) constant map becomes zeros
pixel_ranks            the rank of every pixel of a map, most important first
=====================  ============================================================================

**Targets.** Wherever a method explains or scores "a class", ``target`` is one of

* an int (one class for every image), a per-sample sequence / array / 1-d tensor of classes,
* ``None`` — the model's prediction ``P = argmax z`` on the images as given,
* a callable on the logits, ``fn(z) -> (B,)`` — any per-sample score, as in pytorch-grad-cam
  (a callable used by a perturbation method must score every row on its own, because it is
  applied to batches of perturbed images);

:class:`ContrastTarget` is the callable of ContrastCAM: ``CE(z, Q)``, whose gradient with respect
to the logits is ``p − e_Q`` (:func:`tutorial_utils.gradients.contrast_directions`).

Nothing here changes a model: modes and ``requires_grad`` flags are restored, no hook is left
behind, and ``.grad`` fields are never written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    PIXEL_TOL,
    check_choice,
    check_images,
    check_inputs,
    check_maps,
    check_model,
    check_number,
    check_positive_int,
    resolve_classes,
)
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SCORE_KINDS",
    "BASELINES",
    "CONSTANT_RTOL",
    "logits",
    "capture_layer",
    "final_linear",
    "features_and_logits",
    "resolve_target",
    "predicted_target",
    "predicted_classes",
    "target_scores",
    "ContrastTarget",
    "contrast_target",
    "class_scores",
    "batched_scores",
    "baseline_image",
    "normalize_maps",
    "pixel_ranks",
]

DEFAULT_BATCH_SIZE = 512
"""Images per forward pass when a function runs a model over a whole set."""

SCORE_KINDS = ("prob", "logit")
"""How a class is scored: its softmax probability or its logit."""

BASELINES = ("zeros", "grey", "mean", "blur")
"""Named baselines: black (0), mid-grey (0.5), the data-set mean colour, a Gaussian blur of x."""

CONSTANT_RTOL = 1e-5
"""A map whose span is at most this fraction of its largest magnitude counts as constant."""

Target = object  # an int, a per-sample sequence of classes, None or a callable on the logits


# --------------------------------------------------------------------------------------
# Logits of a batch
# --------------------------------------------------------------------------------------


def _layout(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` channels-last (faster convolutions) unless the model says it gains nothing from
    it (``model.prefers_channels_last = False``, e.g. a vision transformer): same values."""
    return channels_last(x) if getattr(model, "prefers_channels_last", True) else x


def _checked_logits(z: object, batch: int) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != batch:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"model must return logits of shape (B, K) = ({batch}, K), got {shape}")
    return z


def logits(model: nn.Module, x: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE, *,
           check: bool = True) -> torch.Tensor:
    """Logits ``z = f(x)`` ``(B, K)`` of images ``x`` ``(B, C, H, W)``, on ``x``'s device.

    The model runs in eval mode (every submodule's ``training`` flag and every parameter's
    ``requires_grad`` flag are restored afterwards) under ``torch.inference_mode`` (no autograd
    graph), ``batch_size`` images at a time, in channels-last memory layout (about 1.5x faster
    convolutions on the CPU; the model itself is not changed) unless the model sets
    ``prefers_channels_last = False``. The result is an ordinary
    tensor. ``check=False`` skips the input checks, for callers that validated ``x`` already.
    Raises ``ValueError`` when the model does not return ``(B, K)`` logits.
    """
    if check:
        check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    with preserved_state(model), torch.inference_mode():
        parts = [_checked_logits(model(_layout(model, xb)), len(xb))
                 for xb in x.split(batch_size)]
    return torch.cat(parts) if len(parts) > 1 else parts[0].clone()  # outside inference mode


# --------------------------------------------------------------------------------------
# Hooks and the final linear layer
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def capture_layer(layer: nn.Module, *, track: bool = False) -> Iterator[dict]:
    """Capture ``layer``'s first input and its output during a forward pass.

    Inside the block, every call of ``layer`` stores ``store["input"]`` (its first positional
    argument), ``store["output"]`` and their version counters at that moment,
    ``store["versions"]`` (a later in-place change of either shows as a changed counter), and
    counts ``store["calls"]``. With ``track=True`` the
    captured output is made a graph leaf that requires grad (``output.detach()
    .requires_grad_()``) and the rest of the network receives a *clone* of it: gradients with
    respect to ``store["output"]`` are then exact, the forward pass before the layer builds no
    graph, and in-place operations after the layer (``ReLU(inplace=True)``) cannot overwrite
    the captured tensor. The hook is removed on exit, also when the body raises.
    """
    check_model(layer, "layer")
    store: dict = {"calls": 0}

    def hook(_module: nn.Module, inputs: tuple, output: object) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"layer output must be a tensor, got {type(output).__name__}; "
                            "pick a layer that returns a single tensor")
        store["calls"] += 1
        store["input"] = inputs[0] if inputs else None
        store["versions"] = tuple(_version(t) for t in (store["input"], output))
        if not track:
            store["output"] = output
            return None
        leaf = output.detach().requires_grad_(True)
        store["output"] = leaf
        return leaf.clone()

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _version(t: object) -> int | None:
    """A tensor's version counter (``None`` for an inference tensor, which keeps none)."""
    if not isinstance(t, torch.Tensor) or torch.is_inference(t):
        return None
    return t._version


def final_linear(model: nn.Module) -> nn.Linear:
    """The layer producing the logits: ``model.fc`` if it is an ``nn.Linear`` (every zoo
    classifier, torchvision ResNets), else the last ``nn.Linear`` in ``model.modules()`` order.

    Raises ``TypeError`` for a model without any ``nn.Linear``.
    """
    fc = getattr(check_model(model), "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError(f"model ({type(model).__name__}) has no final nn.Linear layer producing "
                        "the logits; use a classifier that ends in one (e.g. a zoo model)")
    return linears[-1]


def features_and_logits(model: nn.Module, x: torch.Tensor,
                        batch_size: int | None = DEFAULT_BATCH_SIZE, *,
                        layer: nn.Linear | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``h`` ``(B, D)`` and logits ``z`` ``(B, K)`` in one forward pass.

    ``h`` is the input of the final linear layer (``layer``, default :func:`final_linear`),
    read by a forward hook, so ``z = W h + b`` for *any* classifier whose logits are that
    layer's output. Runs like :func:`logits` (eval mode restored, no graph, channels-last),
    ``batch_size`` images at a time (``None``: the whole batch at once). Raises ``ValueError``
    when the layer's output is not the model's output (e.g. an ensemble that averages
    probabilities), when it does not run exactly once per forward pass, or when its input is
    not ``(B, D)``.
    """
    check_inputs(model, x)
    fc = final_linear(model) if layer is None else layer
    if not isinstance(fc, nn.Linear):
        raise TypeError(f"layer must be the model's final nn.Linear, got {type(fc).__name__}")
    if not any(m is fc for m in model.modules()):
        raise ValueError("layer must be a submodule of model (e.g. model.fc)")
    batch_size = len(x) if batch_size is None else check_positive_int(batch_size, "batch_size")
    hs, zs = [], []
    with preserved_state(model), torch.inference_mode():
        for xb in x.split(batch_size):
            with capture_layer(fc) as store:
                z = _checked_logits(model(_layout(model, xb)), len(xb))
            if store["calls"] != 1:
                raise ValueError(f"the final nn.Linear must run exactly once in the forward pass, "
                                 f"it ran {store['calls']} times")
            if store["output"].shape != z.shape or not torch.equal(store["output"], z):
                raise ValueError("the layer's output is not the model's output: the logits must "
                                 "be the output of its final nn.Linear (z = W h + b); pass "
                                 "layer=<the nn.Linear producing the logits>")
            h = store["input"]
            if not isinstance(h, torch.Tensor) or h.dim() != 2:
                raise ValueError(f"the features entering the final nn.Linear must be (B, D), got "
                                 f"{tuple(getattr(h, 'shape', ()))}")
            hs.append(h.contiguous())
            zs.append(z)
    return torch.cat(hs), torch.cat(zs)  # ordinary tensors (cat outside inference mode)


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


class ContrastTarget:
    """The score of ContrastCAM's question "why P, rather than Q?": ``CE(z, Q)`` per row.

    Calling it on logits ``z`` (B, K) returns ``F.cross_entropy(z, Q, reduction="none")`` (B,),
    in nats; its gradient with respect to ``z`` is ``p − e_Q``, no sign flip (Prabhushankar et
    al. 2020). ``contrast`` is Q — an int, one class per image, or ``None``: the most probable
    class other than P. ``target`` is P, the class whose decision is explained (int, one per
    image, or ``None``: the prediction); it chooses the default Q and does not change the
    score otherwise. Q = P asks "why not P with 100% confidence?".
    """

    def __init__(self, contrast: object = None, target: object = None) -> None:
        for name, value in (("contrast", contrast), ("target", target)):
            if callable(value) and not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a class (int, one per image or None), got a "
                                "callable")
        self.contrast, self.target = contrast, target

    def classes(self, z: torch.Tensor) -> torch.Tensor:
        """Q ``(B,)`` on the logits ``z``: ``contrast`` resolved, or the runner-up to P."""
        z = z.detach()
        if self.contrast is not None:
            return resolve_classes(self.contrast, z, "contrast")
        explained = resolve_classes(self.target, z, "target")
        others = z.clone()
        others[torch.arange(len(z), device=z.device), explained] = -torch.inf
        return others.argmax(dim=1)

    def fixed(self, z: torch.Tensor) -> ContrastTarget:
        """The same target with Q fixed to the classes it picks on ``z`` (one per row)."""
        return ContrastTarget(self.classes(z))

    def select(self, rows: torch.Tensor) -> ContrastTarget:
        """The target of the images ``rows`` (a fixed per-sample Q is indexed with them)."""
        if isinstance(self.contrast, torch.Tensor) and self.contrast.dim() == 1:
            return ContrastTarget(self.contrast[rows.to(self.contrast.device)])
        return self

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, self.classes(z), reduction="none")

    def __repr__(self) -> str:
        return f"ContrastTarget(contrast={self.contrast!r}, target={self.target!r})"


def contrast_target(contrast: object = None, target: object = None) -> ContrastTarget:
    """The target ``CE(z, Q)`` of "why P, rather than Q?" (:class:`ContrastTarget`):
    ``grad_cam(model, x, target=contrast_target(q))`` is ContrastCAM."""
    return ContrastTarget(contrast, target)


def _is_score_fn(target: object) -> bool:
    return callable(target) and not isinstance(target, (torch.Tensor, np.ndarray))


def resolve_target(target: Target, z: torch.Tensor, name: str = "target"
                   ) -> torch.Tensor | Callable[[torch.Tensor], torch.Tensor]:
    """Fix ``target`` on the logits ``z`` (B, K) of the images it explains.

    A class target becomes a ``(B,)`` long tensor on ``z``'s device (``None`` = the prediction
    ``argmax z``; ints broadcast; sequences hold one class per image; every class in
    ``[0, K)``; floats and bools are rejected). A :class:`ContrastTarget` gets its Q fixed on
    ``z`` (so "the runner-up" means the runner-up on these images); any other callable is
    returned as it is.
    """
    if isinstance(target, ContrastTarget):
        return target.fixed(z)
    if _is_score_fn(target):
        return target
    return resolve_classes(target, z.detach(), name)


def class_scores(logits: torch.Tensor, classes: torch.Tensor, score: str = "prob"
                 ) -> torch.Tensor:
    """The target class's softmax probability (``score='prob'``) or logit, shape (N,)."""
    values = logits.softmax(dim=1) if score == "prob" else logits
    return values.gather(1, classes.view(-1, 1)).squeeze(1)


def target_scores(target: Target, z: torch.Tensor, rows: torch.Tensor | None = None,
                  score: str = "logit") -> torch.Tensor:
    """Per-row scores ``(N,)`` of ``target`` on logits ``z`` (N, K).

    ``target`` is a target as given to a method (resolved on ``z`` itself, so ``None`` is the
    prediction on these logits) or the result of :func:`resolve_target` for B source images,
    with ``rows`` (N,) naming the source image of every row of ``z`` (perturbed copies). A
    class is scored by its logit (``score='logit'``) or softmax probability (``'prob'``); a
    callable target *is* the score (``score`` does not apply to it).
    """
    if isinstance(target, ContrastTarget):
        target = target.select(rows) if rows is not None else target
    elif not _is_score_fn(target):
        if not isinstance(target, torch.Tensor) or target.dtype != torch.long or rows is None:
            target = resolve_target(target, z)
        if rows is not None:
            target = target[rows.to(target.device)]
        return class_scores(z, target.to(z.device), score)
    values = target(z)
    if not isinstance(values, torch.Tensor) or values.shape != (z.shape[0],):
        raise ValueError(f"a callable target must return one score per sample, shape "
                         f"({z.shape[0]},), got {getattr(values, 'shape', type(values).__name__)}")
    return values


@torch.no_grad()
def batched_scores(model: nn.Module, make_images: Callable[[torch.Tensor], torch.Tensor],
                   target: Target, rows: torch.Tensor, batch_size: int,
                   score: str = "prob") -> torch.Tensor:
    """Scores (N,) of N virtual images, built and evaluated ``batch_size`` at a time.

    ``make_images(idx)`` returns the images (len(idx), C, H, W) for the flat indices ``idx``;
    ``rows`` (N,) names the source image of each, and ``target`` is resolved on the source
    images (:func:`resolve_target`). Images are assumed valid (built from checked ones).
    """
    out = []
    for start in range(0, len(rows), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(rows)), device=rows.device)
        z = logits(model, make_images(idx), len(idx), check=False)
        out.append(target_scores(target, z, rows[idx], score))
    return torch.cat(out)


def predicted_target(model: nn.Module, x: torch.Tensor, target: Target,
                     batch_size: int = DEFAULT_BATCH_SIZE, name: str = "target"
                     ) -> torch.Tensor | Callable[[torch.Tensor], torch.Tensor]:
    """:func:`resolve_target` on the logits of ``x`` (one no-graph pass, only when needed)."""
    if _is_score_fn(target) and not isinstance(target, ContrastTarget):
        return target
    return resolve_target(target, logits(model, x, batch_size, check=False), name)


def predicted_classes(model: nn.Module, x: torch.Tensor, target: object,
                      batch_size: int = DEFAULT_BATCH_SIZE, name: str = "target"
                      ) -> torch.Tensor:
    """Classes ``(B,)`` of a class target (int, sequence, tensor or ``None`` = the prediction on
    ``x``); a callable is refused with a ``TypeError`` naming ``name``."""
    if _is_score_fn(target):
        raise TypeError(f"{name} must be a class (an int, one per image or None), got a callable")
    return resolve_classes(target, logits(model, x, batch_size, check=False), name)


# --------------------------------------------------------------------------------------
# Baselines and maps
# --------------------------------------------------------------------------------------


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
    max(H, W)/16), a number (Python or NumPy), or a tensor broadcastable to ``x`` (pixel
    space, [0, 1]).
    """
    check_images(x)
    if isinstance(baseline, str):
        check_choice(baseline, BASELINES, name, extra="a number or a tensor")
        if baseline == "blur":
            return _blur(x, blur_sigma)
        value = {"zeros": lambda: torch.zeros(1), "grey": lambda: torch.full((1,), 0.5),
                 "mean": lambda: _dataset_mean(model, x)}[baseline]()
    elif isinstance(baseline, (int, float, np.integer, np.floating)) and not isinstance(
            baseline, (bool, np.bool_)):
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


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max each map over its last two dims to [0, 1]: ``(..., H, W)`` in, same shape out.

    A constant map becomes zeros — also one that is constant only up to rounding (span ≤
    :data:`CONSTANT_RTOL` × its largest magnitude), such as a 1×1 layer's map after bilinear
    upsampling, which would otherwise be stretched into noise.
    """
    check_maps(maps, "maps", dims=tuple(range(2, 9)), shape="(..., H, W)")
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    span = high - low
    constant = span <= CONSTANT_RTOL * torch.maximum(high.abs(), low.abs())
    safe = torch.where(constant, torch.ones_like(span), span)
    return torch.where(constant, torch.zeros_like(maps), (maps - low) / safe)


def pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank (B, H·W) of every pixel of maps (B, H, W), 0 = most important; ties go to the lower
    raster index (the order in which deletion removes pixels)."""
    flat = saliency.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks
