"""Adversarial attacks in pixel space: FGSM and PGD (L∞).

Images are ``(B, C, H, W)`` with pixels in ``[0, 1]``; the course's models normalise inside
their first layer, so **ε is in pixel units**: ``epsilon=8/255`` lets every pixel move by at
most 8 grey levels. Adversarial images are clamped to ``[0, 1]`` (and, for PGD, projected to
the ε-ball around ``x``) so they stay valid images.

==============  ==============================================================================
function        what it returns
==============  ==============================================================================
fgsm            ``clamp(x ± ε·sign(∇ₓ CE(f(x), y)), 0, 1)``: one step (+ untargeted, − targeted)
pgd             FGSM steps of size α from a random start, projected to the ε-ball and [0, 1]
==============  ==============================================================================

Both take the input gradient of :func:`tutorial_utils.gradients.input_gradient`. ``y`` is an
int, one class per image, or ``None`` (the model's prediction on the clean
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

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_bool,
    check_epsilon,
    check_inputs,
    check_positive_int,
    check_seed,
    resolve_classes,
)
from tutorial_utils.forward import logits
from tutorial_utils.gradients import LossFn, input_gradient, input_gradient_mode

__all__ = [
    "fgsm",
    "pgd",
]


def _ce(y: object) -> LossFn:
    def loss(z: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z, resolve_classes(y, z.detach(), "y"), reduction="none")

    return loss


def _check_targeted(targeted: object, y: object) -> int:
    """+1 (untargeted: ascend the loss of y) or −1 (targeted: descend it)."""
    check_bool(targeted, "targeted")
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
    eps = check_epsilon(epsilon)
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
    eps = check_epsilon(epsilon)
    steps = check_positive_int(steps, "steps")
    step = 2.5 * eps / steps if alpha is None else check_epsilon(alpha, "alpha", zero_ok=False)
    check_bool(random_start, "random_start")
    seed = check_seed(seed)
    if eps == 0:
        return x.detach().clone()
    with input_gradient_mode(model):  # every tensor of the loop is made outside inference mode
        x0 = x.detach().clone() if torch.is_inference(x) else x.detach()
        y = logits(model, x0, len(x0), check=False).argmax(1) if y is None else y
        low, high = (x0 - eps).clamp_min(0), (x0 + eps).clamp_max(1)
        x_adv = x0.clone()
        if random_start:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x_adv = (x0 + (2 * noise - 1) * eps).clamp(0, 1)
        loss = _ce(y)
        for _ in range(steps):
            g, _ = input_gradient(model, x_adv, loss, check=False)
            x_adv = torch.minimum(torch.maximum(x_adv + direction * step * g.sign(), low), high)
    return x_adv.detach()
