"""Acting at test time: test-time augmentation and test-time adaptation (chapter 5).

When the test images drift away from the training data (rain, blur, snow, …), a network can
be helped *at inference*, without labels: average its predictions over harmless variations of
the image (TTA), re-estimate its BatchNorm statistics on the test batch, or go one step further
and follow the gradient of its own uncertainty (TENT).

==================  ===========================================================================
function            what it does
==================  ===========================================================================
tta_predict         mean softmax over fixed, deterministic augmentations ``(B, K)``
augment             the ``(A·B, C, H, W)`` stack of augmented copies that TTA runs
bn_adapt            predict with BatchNorm in batch-statistics mode (no gradient step) ``(B, K)``
tent                minimise the batch's prediction entropy w.r.t. BatchNorm's affine
                    parameters, then predict ``(B, K)`` (optionally with the entropy per step)
restoring           context manager: whatever happens to the model inside is undone on exit
evaluate_by_level   accuracy, confidence and ECE per method × challenge level (DataFrame)
==================  ===========================================================================

Conventions: images ``(B, C, H, W)`` with pixels in [0, 1] on the model's device; the results
are probabilities ``(B, K)`` (rows sum to 1) on that device. Every function leaves the model
**bit-identical** — parameters, buffers (BatchNorm running statistics included), gradients,
train/eval modes and ``requires_grad`` flags — also when it raises; nothing touches the global
random number generators (all augmentations are fixed, there is no sampling).

Augmentations (:data:`AUGMENTATIONS`, defaults in :data:`DEFAULT_TTA`): ``identity``, 2-px
shifts in four directions (border pixels replicated), a 10% zoom in (centre crop, resized) and
a 10% zoom out (resized, border replicated). ``hflip`` exists but is **not** a default: a
mirror image changes the meaning of a traffic sign ("no left turn" becomes "no right turn")
and of some digits — use it only for data whose classes are mirror-symmetric.

TENT, as in Wang et al. (2021): BatchNorm layers normalise with the statistics of the test
batch (train mode for BatchNorm only; dropout stays off), only the BatchNorm scale and shift
are trainable, and ``steps`` optimiser steps minimise ``mean_b H(softmax(f(x_b)))`` (Adam,
lr 1e-3 as in the paper's CIFAR experiments, or SGD with momentum 0.9). Adaptation is online
across chunks of ``batch_size`` images (the adapted parameters carry over, as on a test
stream) unless ``episodic=True``. The returned probabilities come from one extra forward pass
*after* the last step (the authors' code returns the output of the last adaptation forward,
one step behind); so ``tent(steps=0)`` equals :func:`bn_adapt`.

References
----------
- D. Wang, E. Shelhamer, S. Liu, B. Olshausen, T. Darrell, "Tent: fully test-time adaptation
  by entropy minimization", ICLR 2021.
- S. Schneider, E. Rusak, L. Eck, O. Bringmann, W. Brendel, M. Bethge, "Improving robustness
  against common corruptions by covariate shift adaptation", NeurIPS 2020 (BatchNorm
  statistics adaptation; ours is their N = 0 case, pure test-batch statistics).
- D. Shanmugam, D. Blalock, G. Balakrishnan, J. Guttag, "Better aggregation in test-time
  augmentation", ICCV 2021 (TTA by averaging, and when it hurts).
- C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks",
  ICML 2017 (ECE).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_bool,
    check_images,
    check_inputs,
    check_int,
    check_model,
    check_number,
    check_positive_int,
    check_seed,
    require_autograd,
    resolve_classes,
)
from tutorial_utils.challenges import apply_challenge, check_challenge
from tutorial_utils.metrics import expected_calibration_error
from tutorial_utils.models import predict_proba
from tutorial_utils.utils import channels_last, preserved_state
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_TTA",
    "METHODS",
    "augment",
    "tta_predict",
    "restoring",
    "bn_adapt",
    "tent",
    "evaluate_by_level",
]

SHIFT = 2  # pixels
ZOOM = 0.1  # relative size change of zoom_in / zoom_out


# --------------------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------------------


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move the content ``dx`` px right and ``dy`` px down; the border pixels are repeated."""
    p = max(abs(dx), abs(dy))
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


def _zoom_in(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h / (1 + ZOOM))), max(1, round(w / (1 + ZOOM)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _zoom_out(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    sh, sw = max(1, round(h * (1 - ZOOM))), max(1, round(w * (1 - ZOOM)))
    small = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False,
                          antialias=True).clamp(0, 1)
    top, left = (h - sh) // 2, (w - sw) // 2
    return F.pad(small, (left, w - sw - left, top, h - sh - top), mode="replicate")


AUGMENTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "shift_left": lambda x: _shift(x, -SHIFT, 0),
    "shift_right": lambda x: _shift(x, SHIFT, 0),
    "shift_up": lambda x: _shift(x, 0, -SHIFT),
    "shift_down": lambda x: _shift(x, 0, SHIFT),
    "zoom_in": _zoom_in,
    "zoom_out": _zoom_out,
    "hflip": lambda x: x.flip(-1),
}
"""Named, deterministic augmentations ``(B, C, H, W) -> (B, C, H, W)``, pixels stay in [0, 1]."""

DEFAULT_TTA: tuple[str, ...] = ("identity", "shift_left", "shift_right", "shift_up",
                                "shift_down", "zoom_in", "zoom_out")
"""TTA's default set: every augmentation except ``hflip`` (mirroring swaps "no left" and
"no right")."""


def _augmentations(augmentations: object) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if isinstance(augmentations, str) or callable(augmentations):
        augmentations = (augmentations,)
    if not isinstance(augmentations, Sequence) or len(augmentations) == 0:
        raise TypeError(f"augmentations must be a non-empty sequence of names from "
                        f"{sorted(AUGMENTATIONS)} or callables, got {augmentations!r}")
    out = []
    for a in augmentations:
        if isinstance(a, str):
            if a not in AUGMENTATIONS:
                raise ValueError(f"unknown augmentation {a!r} in augmentations; valid names: "
                                 f"{', '.join(AUGMENTATIONS)} (or pass a callable)")
            out.append(AUGMENTATIONS[a])
        elif callable(a):
            out.append(a)
        else:
            raise TypeError(f"augmentations must hold names or callables, got "
                            f"{type(a).__name__}")
    return out


def augment(x: torch.Tensor, augmentations: object = DEFAULT_TTA) -> torch.Tensor:
    """All augmented copies of ``x`` ``(B, C, H, W)`` stacked augmentation-major:
    ``(A·B, C, H, W)``, rows ``a·B … a·B + B − 1`` holding augmentation ``a``."""
    check_images(x)
    return _stack(x, _augmentations(augmentations))


def _stack(x: torch.Tensor, fns: list[Callable[[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    copies = []
    for fn in fns:
        out = fn(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise ValueError(f"augmentation {getattr(fn, '__name__', fn)!r} must return a "
                             f"tensor of the input's shape {tuple(x.shape)}, got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        copies.append(out)
    return torch.cat(copies)


@torch.no_grad()
def tta_predict(model: nn.Module, x: torch.Tensor, augmentations: object = DEFAULT_TTA,
                batch_size: int = 256, per_augmentation: bool = False) -> torch.Tensor:
    """Test-time augmentation: ``p(x) = mean_a softmax(f(T_a(x)))``.

    Args:
        model: a classifier returning logits; run in eval mode (modes restored).
        x: images ``(B, C, H, W)`` in [0, 1] on the model's device.
        augmentations: names from :data:`AUGMENTATIONS` and/or callables ``(B, C, H, W) ->
            (B, C, H, W)``; default :data:`DEFAULT_TTA` (7 copies, no flip).
        batch_size: images per forward pass; each pass holds all augmented copies of
            ``batch_size // A`` images (at least one image).
        per_augmentation: also return every copy's probabilities.

    Returns:
        ``(B, K)`` mean probabilities; with ``per_augmentation=True`` a pair
        ``(mean (B, K), per-copy (A, B, K))``.
    """
    check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    per_augmentation = check_bool(per_augmentation, "per_augmentation")
    fns = _augmentations(augmentations)
    chunk = max(1, batch_size // len(fns))
    parts = []
    with preserved_state(model):
        for start in range(0, len(x), chunk):
            xb = x[start:start + chunk]
            logits = model(channels_last(_stack(xb, fns)))
            parts.append(logits.softmax(dim=1).view(len(fns), len(xb), -1))
    probs = torch.cat(parts, dim=1)
    mean = probs.mean(dim=0)
    return (mean, probs) if per_augmentation else mean


# --------------------------------------------------------------------------------------
# Adaptation
# --------------------------------------------------------------------------------------


_BN = nn.modules.batchnorm._BatchNorm


@contextlib.contextmanager
def restoring(model: nn.Module) -> Iterator[nn.Module]:
    """Undo everything done to ``model`` inside the block, also when the block raises.

    Saves copies of every parameter, buffer (BatchNorm running statistics and batch counters
    included) and gradient, every submodule's train/eval flag and every ``requires_grad``
    flag; on exit copies the values back *in place* (the parameter objects stay the same, so
    optimisers and references held by the caller stay valid). The model is then bit-identical
    to what it was, ``state_dict`` and all.
    """
    params = {n: (p.detach().clone(), None if p.grad is None else p.grad.clone(),
                  p.requires_grad) for n, p in check_model(model).named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {n: m.training for n, m in model.named_modules()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                value, grad, flag = params[n]
                p.copy_(value)
                p.grad = grad
                p.requires_grad_(flag)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        for n, m in model.named_modules():
            m.training = modes[n]


def _bn_layers(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, _BN)]
    if not layers:
        raise ValueError("model has no BatchNorm layer; bn_adapt and tent adapt BatchNorm "
                         "(use tta_predict for a model without one)")
    return layers


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` per row ``(B,)``."""
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def tent(model: nn.Module, x: torch.Tensor, steps: int = 1, lr: float = 1e-3,
         batch_size: int = 128, optimizer: str = "adam", episodic: bool = False,
         return_history: bool = False):
    """TENT (Wang et al. 2021): adapt BatchNorm's affine parameters to the test batch by
    minimising the mean prediction entropy, then predict; the model is restored afterwards.

    Args:
        model: a classifier with BatchNorm layers (every zoo model).
        x: test images ``(N, C, H, W)`` in [0, 1] on the model's device (no labels needed).
        steps: optimiser steps per chunk (0 = no gradient step: :func:`bn_adapt`).
        lr: learning rate (Adam's 1e-3 is the paper's CIFAR setting; the paper's ImageNet
            setting is SGD, momentum 0.9, lr 2.5e-4 at batch size 64).
        batch_size: images per adaptation batch; BatchNorm normalises with the statistics of
            each chunk, so small chunks give noisy statistics (the paper uses 128 / 64).
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        episodic: reset the model before every chunk instead of adapting online.
        return_history: also return the mean entropy of ``x`` (nats) before each step and
            after the last one, a ``(steps + 1,)`` tensor (for a multi-chunk ``x``: the
            size-weighted mean over chunks at the same step).

    Returns:
        ``(N, K)`` probabilities from the adapted model in batch-statistics mode (or the
        pair ``(probs, history)``). The caller's model is bit-identical afterwards.
    """
    check_inputs(model, x)
    steps = check_int(steps, "steps")  # a NumPy int too; a float is refused, never truncated
    if steps < 0:
        raise ValueError(f"steps must be >= 0 (0 = BatchNorm statistics only), got {steps}")
    lr = check_number(lr, "lr", low=0.0, low_open=True)
    batch_size = check_positive_int(batch_size, "batch_size")
    episodic, return_history = check_bool(episodic, "episodic"), check_bool(return_history,
                                                                          "return_history")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if steps > 0:
        require_autograd("tent")
    layers = _bn_layers(model)
    params = [p for bn in layers for p in (bn.weight, bn.bias) if p is not None]
    if steps > 0 and not params:
        raise ValueError("the model's BatchNorm layers have no affine parameters "
                         "(affine=False): use steps=0 (bn_adapt)")

    def new_optimizer():
        if optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    probs, history = [], torch.zeros(steps + 1, dtype=torch.float64)
    with restoring(model), torch.enable_grad():
        model.eval()
        for bn in layers:
            bn.train()  # normalise with the test batch's statistics
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = new_optimizer() if steps else None
        for start in range(0, len(x), batch_size):
            xb = channels_last(x[start:start + batch_size])
            with restoring(model) if episodic else contextlib.nullcontext():
                if episodic and steps:
                    opt = new_optimizer()
                for s in range(steps):
                    loss = _entropy(model(xb)).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    history[s] += loss.detach().double().cpu() * len(xb)
                with torch.no_grad():
                    logits = model(xb)
                history[steps] += _entropy(logits).sum().double().cpu()
                probs.append(logits.softmax(dim=1))
    probs = torch.cat(probs)
    return (probs, history / len(x)) if return_history else probs


def bn_adapt(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """BatchNorm statistics adaptation (Schneider et al. 2020, N = 0): predict ``x`` with every
    BatchNorm layer normalising by the mean and variance of the test chunk (``batch_size``
    images) instead of the training running averages. No gradient step, no labels; dropout
    off; the model is bit-identical afterwards. Returns ``(N, K)`` probabilities."""
    return tent(model, x, steps=0, batch_size=batch_size)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


METHODS: tuple[str, ...] = ("none", "tta", "bn", "tent")
"""The methods :func:`evaluate_by_level` compares: the plain model, TTA, BN adaptation, TENT."""


def evaluate_by_level(model: nn.Module, x: torch.Tensor, y: object, kind: str,
                      levels: Sequence[int] = range(6), methods: Sequence[str] = METHODS, *,
                      seed: int = 0, tent_steps: int = 1, tent_lr: float = 1e-3,
                      batch_size: int = 128, augmentations: object = DEFAULT_TTA,
                      n_bins: int = 15, shuffle: bool = True, progress: bool = True):
    """Accuracy and calibration of each test-time method under one challenge, level by level.

    Every level is challenged with :func:`tutorial_utils.data.apply_challenge` (pattern
    ``seed``) and run through every method on the unadapted model (TENT and BN adaptation
    start afresh at each level). Deterministic.

    BN adaptation and TENT normalise with the statistics of each chunk of ``batch_size``
    images, so they depend on which images share a chunk: with ``shuffle=True`` (default) the
    test images arrive in a random order drawn once with ``seed`` (a local generator), as an
    i.i.d. test stream would; ``shuffle=False`` keeps ``x``'s order — a test set sorted by
    class then gives chunks of two or three classes, whose statistics are biased, and both
    methods lose accuracy even on clean images (a known failure of BatchNorm adaptation on
    non-i.i.d. streams).

    Args:
        model, x: the classifier and its clean test images ``(N, C, H, W)`` in [0, 1].
        y: the true classes ``(N,)``.
        kind: a challenge type (:data:`tutorial_utils.challenges.CHALLENGES`).
        levels: challenge levels in 0..5 (0 = clean).
        methods: a subset of :data:`METHODS`.
        tent_steps, tent_lr, batch_size, augmentations: passed to :func:`tent`,
            :func:`bn_adapt` and :func:`tta_predict`.
        n_bins: bins of the ECE.
        shuffle: present the test images in a seeded random order (see above).
        progress: show a ``tqdm.auto`` progress bar.

    Returns:
        A pandas DataFrame with one row per (level, method): ``kind``, ``level``, ``method``,
        ``accuracy`` (top-1, in [0, 1]), ``confidence`` (mean max-probability) and ``ece``
        (:func:`tutorial_utils.metrics.expected_calibration_error`, lower is better).
    """
    import pandas as pd


    check_inputs(model, x)
    if isinstance(methods, str):
        methods = (methods,)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods!r}")
    levels = [check_challenge(kind, lv, level_name="levels")[1] for lv in levels]
    if not levels:
        raise ValueError("levels is empty; pass e.g. range(6)")
    labels = resolve_classes(y, predict_proba(model, x[:1]).expand(len(x), -1), "y")
    seed = check_seed(seed)
    order = (torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
             if shuffle else torch.arange(len(x)))
    labels = labels[order.to(labels.device)].cpu()
    run = {
        "none": lambda xc: predict_proba(model, xc),
        "tta": lambda xc: tta_predict(model, xc, augmentations),
        "bn": lambda xc: bn_adapt(model, xc, batch_size),
        "tent": lambda xc: tent(model, xc, tent_steps, tent_lr, batch_size),
    }
    rows = []
    bar = progress_bar(total=len(levels) * len(methods), desc=f"{kind}", enabled=progress)
    for level in levels:
        xc = apply_challenge(x, kind, level, seed=seed)[order.to(x.device)]
        for method in methods:
            p = run[method](xc).detach().cpu()
            conf, pred = p.max(dim=1)
            rows.append(dict(kind=kind, level=level, method=method,
                             accuracy=float((pred == labels).double().mean()),
                             confidence=float(conf.double().mean()),
                             ece=expected_calibration_error(p.double(), labels, n_bins)))
            bar.update()
    bar.close()
    return pd.DataFrame(rows)
