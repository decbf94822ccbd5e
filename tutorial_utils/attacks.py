"""Adversarial attacks in pixel space: FGSM and PGD (L∞), and the input gradient they share.

Images are ``(B, C, H, W)`` with pixels in ``[0, 1]``; the course's models normalise inside
their first layer, so **ε is in pixel units**: ``epsilon=8/255`` lets every pixel move by at
most 8 grey levels. Adversarial images are clamped to ``[0, 1]`` (and, for PGD, projected to
the ε-ball around ``x``) so they stay valid images.

==============  ==============================================================================
function        what it returns
==============  ==============================================================================
input_gradient  ``∇ₓ Σ_b loss(f(x))_b`` (B, C, H, W) and the logits; parameters untouched
fgsm            ``clamp(x ± ε·sign(∇ₓ CE(f(x), y)), 0, 1)``: one step (+ untargeted, − targeted)
pgd             FGSM steps of size α from a random start, projected to the ε-ball and [0, 1]
==============  ==============================================================================

``y`` is an int, one class per image, or ``None`` (the model's prediction on the clean
images). Untargeted attacks *raise* the cross-entropy of ``y``; targeted ones *lower* it
(pushing the prediction towards ``y``). Every function runs the model in eval mode, restores
its mode and ``requires_grad`` flags, leaves no ``.grad`` on parameters, and also works when
called under ``torch.no_grad()`` or ``torch.inference_mode()`` (gradients are enabled locally).

References
----------
- I. J. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial examples",
  ICLR 2015 (FGSM).
- A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards deep learning models
  resistant to adversarial attacks", ICLR 2018 (PGD with random start).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_callable,
    check_inputs,
    check_positive_int,
    check_seed,
    resolve_classes,
)
from tutorial_utils.utils import channels_last, preserved_state

__all__ = ["input_gradient", "fgsm", "pgd"]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _check_epsilon(epsilon: object, name: str = "epsilon", *, zero_ok: bool = True) -> float:
    """A finite float in [0, 1] (pixel units); ``zero_ok=False`` also rejects 0."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) and not (
            isinstance(epsilon, torch.Tensor) and epsilon.numel() == 1):
        raise TypeError(f"{name} must be a float in pixel units (e.g. 8/255), "
                        f"got {type(epsilon).__name__}")
    value = float(epsilon)
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound} in pixel units, got {value}")
    if value > 1:
        raise ValueError(f"{name}={value} exceeds the pixel range [0, 1]; ε is in pixel units "
                         f"of [0, 1] images: did you mean {name}={value:g}/255?")
    return value


@contextlib.contextmanager
def _input_grad_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, frozen parameters, gradients on (even inside no_grad / inference_mode)."""
    with torch.inference_mode(False), torch.enable_grad(), preserved_state(model):
        for p in model.parameters():
            p.requires_grad_(False)
        yield


def _gradient(model: nn.Module, x: torch.Tensor, loss_fn: LossFn
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward + one input backward; call inside :func:`_input_grad_mode`."""
    xg = x.detach()
    if torch.is_inference(xg):
        xg = xg.clone()
    xg = channels_last(xg).requires_grad_(True)
    z = model(xg)
    loss = loss_fn(z)
    if not isinstance(loss, torch.Tensor) or loss.shape != (x.shape[0],):
        raise ValueError(f"loss_fn must return one loss per image, shape ({x.shape[0]},)")
    (g,) = torch.autograd.grad(loss.sum(), xg)
    return g, z.detach()


def input_gradient(model: nn.Module, x: torch.Tensor, loss_fn: LossFn
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``∇ₓ Σ_b loss_fn(f(x))_b`` and the logits ``f(x)``: one forward, one input backward.

    ``loss_fn(z)`` maps logits (B, K) to one loss per image (B,). In eval mode images do not
    interact, so ``g[b] = ∂ loss_b / ∂x_b`` (units: loss per pixel intensity). Parameters are
    frozen during the pass, so no parameter gradient is computed or stored.

    Returns ``(g (B, C, H, W), z (B, K))``, both detached, on ``x``'s device.
    """
    check_inputs(model, x)
    check_callable(loss_fn, "loss_fn")
    with _input_grad_mode(model):
        return _gradient(model, x, loss_fn)


def _ce(y: object) -> LossFn:
    def loss(z: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, resolve_classes(y, z.detach(), "y"), reduction="none")

    return loss


def _clean_prediction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with preserved_state(model), torch.no_grad():
        return model(channels_last(x)).argmax(1)


def _check_targeted(targeted: object, y: object) -> int:
    """+1 (untargeted: ascend the loss of y) or −1 (targeted: descend it)."""
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be True or False, got {type(targeted).__name__}")
    if targeted and y is None:
        raise ValueError("a targeted attack needs y, the target class(es) to push towards")
    return -1 if targeted else 1


def fgsm(model: nn.Module, x: torch.Tensor, y: object, epsilon: float,
         targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015).

    ``x_adv = clamp(x + ε·sign(∇ₓ CE(f(x), y)), 0, 1)`` (untargeted: raises the loss of the
    true / predicted class ``y``); with ``targeted=True`` the step is ``−ε·sign(…)``, towards
    class ``y``. One forward and one input backward.

    Args:
        model: classifier returning logits (B, K).
        x: images (B, C, H, W) in [0, 1].
        y: int, one class per image, or ``None`` (the model's prediction on ``x``).
        epsilon: step size in pixel units (``8/255`` ≈ 0.031); 0 returns ``x`` unchanged.
        targeted: step towards ``y`` instead of away from it.

    Returns:
        adversarial images (B, C, H, W) in [0, 1], ``|x_adv − x| ≤ ε`` everywhere, detached.
    """
    check_inputs(model, x)
    direction = _check_targeted(targeted, y)
    eps = _check_epsilon(epsilon)
    if eps == 0:
        return x.detach().clone()
    g, _ = input_gradient(model, x, _ce(y))
    return (x.detach() + direction * eps * g.sign()).clamp(0, 1)


def pgd(model: nn.Module, x: torch.Tensor, y: object, epsilon: float, alpha: float | None = None,
        steps: int = 10, random_start: bool = True, targeted: bool = False,
        seed: int = 0) -> torch.Tensor:
    """Projected gradient descent in the L∞ ball (Madry et al. 2018).

    Start from ``x + U(−ε, ε)`` (``random_start``, drawn from a local generator seeded with
    ``seed``; the global RNG is untouched) clipped to [0, 1]; then ``steps`` times: take an
    FGSM step of size ``alpha`` and project back to ``[x − ε, x + ε] ∩ [0, 1]``. The whole batch
    moves at once (one forward + one input backward per step). Returns the last iterate.

    Args:
        y: int, one class per image, or ``None`` (the prediction on the clean ``x``).
        epsilon: radius of the L∞ ball in pixel units; 0 returns ``x`` unchanged.
        alpha: step size in pixel units (default ``2.5·ε / steps``, Madry et al.'s choice).
        steps: number of gradient steps (≥ 1).
        targeted: descend the cross-entropy of ``y`` instead of ascending it.

    Returns:
        adversarial images (B, C, H, W) in [0, 1] with ``|x_adv − x| ≤ ε``, detached.
    """
    check_inputs(model, x)
    direction = _check_targeted(targeted, y)
    eps = _check_epsilon(epsilon)
    steps = check_positive_int(steps, "steps")
    step = 2.5 * eps / steps if alpha is None else _check_epsilon(alpha, "alpha", zero_ok=False)
    if not isinstance(random_start, bool):
        raise TypeError(f"random_start must be True or False, got {type(random_start).__name__}")
    seed = check_seed(seed)
    if eps == 0:
        return x.detach().clone()
    with _input_grad_mode(model):  # every tensor of the loop is made outside inference mode
        x0 = x.detach().clone() if torch.is_inference(x) else x.detach()
        y = _clean_prediction(model, x0) if y is None else y
        low, high = (x0 - eps).clamp_min(0), (x0 + eps).clamp_max(1)
        x_adv = x0.clone()
        if random_start:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x_adv = (x0 + (2 * noise - 1) * eps).clamp(0, 1)
        loss = _ce(y)
        for _ in range(steps):
            g, _ = _gradient(model, x_adv, loss)
            x_adv = torch.minimum(torch.maximum(x_adv + direction * step * g.sign(), low), high)
    return x_adv.detach()
