"""The loss landscape around the trained parameters, seen from one input.

For one image ``x`` and the cross-entropy ``L(θ) = CE(f_θ(x), label)`` against a label (by
default the network's own prediction: there is no ground truth at inference):

======================  ===============================================================
function                what it returns
======================  ===============================================================
directional_change      ``L(θ + δ) − L(θ)`` along ``−∇_θ L`` and along random directions of
                        the same length, with the first-order prediction ``−α‖g‖²``
loss_plane              the loss on the plane of ``−∇_θ L`` and a random direction made
                        orthogonal to it (Gram–Schmidt)
plane_value             a value of that plane read off by bilinear interpolation
======================  ===============================================================

``params`` selects θ as in :func:`tutorial_utils.gradients.select_params` (default: the final
linear layer). All losses of a sweep are evaluated in one vectorised call (``torch.func.vmap``).

References
----------
- H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of neural
  nets", NeurIPS 2018.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from tutorial_utils._checks import (
    check_class,
    check_inputs,
    check_int,
    check_model,
    check_number,
    check_seed,
)
from tutorial_utils.gradients import select_params
from tutorial_utils.utils import preserved_state

__all__ = [
    "DirectionalChange",
    "directional_change",
    "LossPlane",
    "loss_plane",
    "plane_value",
]


def _loss_setup(model: nn.Module, image: torch.Tensor, label: int | None, params):
    """(selected params, loss(params) -> scalar, label) for one image, CE against ``label``."""
    check_model(model)
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image[None]
    check_inputs(model, image, "image")
    if image.shape[0] != 1:
        raise ValueError("image must be one image (C, H, W)")
    selected, rest = select_params(model, params)
    with preserved_state(model), torch.no_grad():
        z = model(image)
    label = int(z.argmax()) if label is None else check_class(label, z.shape[1], "label")
    target = torch.tensor([label], device=image.device)

    def loss(prm: dict) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, {**prm, **rest}, (image,)), target)

    return selected, loss, label


def _loss_and_gradient(model: nn.Module, loss, selected: dict) -> tuple[float, torch.Tensor, float]:
    """Loss value, flat gradient ``g`` w.r.t. the selected parameters, and ``‖g‖``."""
    with preserved_state(model):
        g = _flat(grad(loss)(selected))
        return float(loss(selected)), g, float(torch.linalg.norm(g))


def _flat(d: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in d.values()])


def _unflat(vec: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vec[start:start + v.numel()].view_as(v)
        start += v.numel()
    return out


@dataclass(frozen=True)
class DirectionalChange:
    """Loss changes ``L(θ + δ) − L(θ)`` for steps ``δ`` of length ``α·‖g‖``.

    ``alphas`` (A,); ``gradient`` (A,) for ``δ = −α g``; ``first_order`` (A,) the Taylor
    prediction ``−α‖g‖²``; ``random`` (R, A) for random directions of the same length;
    ``loss`` the loss at θ; ``grad_norm`` ‖g‖; ``label`` the class the loss is taken against.
    """

    alphas: np.ndarray
    gradient: np.ndarray
    first_order: np.ndarray
    random: np.ndarray
    loss: float
    grad_norm: float
    label: int


def directional_change(model: nn.Module, image: torch.Tensor, label: int | None = None,
                       alphas: Sequence[float] | None = None, n_random: int = 32,
                       params=None, seed: int = 0) -> DirectionalChange:
    """How the loss ``L(θ) = CE(f_θ(x), label)`` changes along ``−∇_θ L`` vs random directions.

    ``label=None`` uses the prediction (no ground truth at inference). ``alphas=None`` takes 16
    step lengths ``α‖g‖`` from 0.001 to 10 times ``L/‖g‖``. ``params`` selects θ
    (default: the final linear layer; see ``gradients.per_sample_gradients``). Each random
    direction is a Gaussian vector rescaled to the gradient's norm, so every step has the same
    length ``α‖g‖``. The first-order (Taylor) prediction along ``−α g`` is ``−α‖g‖²``.
    """
    n_random = check_int(n_random, "n_random", low=1)
    seed = check_seed(seed)
    selected, loss, label = _loss_setup(model, image, label, params)
    l0, g, gnorm = _loss_and_gradient(model, loss, selected)
    if alphas is None:  # step lengths from 1e-3 to 10 times the first-order "distance" L/|g|
        alphas = np.geomspace(1e-3, 10, 16) * l0 / max(gnorm, 1e-12) ** 2
    try:
        alphas = np.asarray(alphas, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"alphas must be a sequence of numbers, got {alphas!r}") from None
    if alphas.ndim != 1 or alphas.size == 0 or not (np.isfinite(alphas) & (alphas >= 0)).all():
        raise ValueError("alphas must be a non-empty 1-D sequence of finite, non-negative step "
                         f"sizes, got {alphas}")
    with preserved_state(model):
        gen = torch.Generator().manual_seed(seed)
        r = torch.randn(n_random, g.numel(), generator=gen).to(g)
        r = r / torch.linalg.norm(r, dim=1, keepdim=True) * gnorm
        dirs = torch.cat([-g[None], r])  # (1 + R, P), all of norm ‖g‖
        a = torch.as_tensor(alphas, dtype=g.dtype, device=g.device)
        steps = (a[:, None, None] * dirs[None]).reshape(-1, g.numel())  # (A·(1+R), P)
        theta = _flat(selected)

        def at(delta: torch.Tensor) -> torch.Tensor:
            return loss(_unflat(theta + delta, selected))

        with torch.no_grad():
            vals = vmap(at, chunk_size=256)(steps).reshape(len(alphas), -1).cpu().numpy() - l0
    return DirectionalChange(alphas, vals[:, 0], -alphas * gnorm**2, vals[:, 1:].T, l0, gnorm,
                             label)


@dataclass(frozen=True)
class LossPlane:
    """``L(θ + a·d₁ + b·d₂) − L(θ)`` on a grid; ``d₁ = −g/‖g‖``, ``d₂`` a random unit vector
    orthogonal to it. ``coords`` (S,), ``values`` (S, S) indexed ``[b, a]``."""

    coords: np.ndarray
    values: np.ndarray
    loss: float
    grad_norm: float


def loss_plane(model: nn.Module, image: torch.Tensor, label: int | None = None,
               span: float | None = None, steps: int = 41, params=None, seed: int = 0
               ) -> LossPlane:
    """The loss landscape of one input on the plane of ``−∇_θ L`` and a random direction.

    ``span=None`` takes ``2·L/‖g‖``, twice the distance at which the first-order model of the
    loss would reach zero, so the plot shows where the linear picture holds and where not.
    """
    steps = check_int(steps, "steps", low=3)
    seed = check_seed(seed)
    if span is not None:
        span = check_number(span, "span", low=0.0, low_open=True)
    selected, loss, label = _loss_setup(model, image, label, params)
    l0, g, gnorm = _loss_and_gradient(model, loss, selected)
    span = 2 * l0 / max(gnorm, 1e-12) if span is None else span
    with preserved_state(model):
        d1 = -g / max(gnorm, 1e-30)
        gen = torch.Generator().manual_seed(seed)
        d2 = torch.randn(g.numel(), generator=gen).to(g)
        d2 = d2 - (d2 @ d1) * d1
        d2 = d2 / torch.linalg.norm(d2)
        c = torch.linspace(-span, span, steps, dtype=g.dtype)
        bb, aa = torch.meshgrid(c, c, indexing="ij")
        deltas = aa.reshape(-1, 1) * d1 + bb.reshape(-1, 1) * d2
        theta = _flat(selected)
        with torch.no_grad():
            vals = vmap(lambda d: loss(_unflat(theta + d, selected)), chunk_size=512)(deltas)
    return LossPlane(c.numpy(), vals.reshape(steps, steps).cpu().numpy() - l0, l0, gnorm)


def plane_value(plane: LossPlane, a: float, b: float) -> float:
    """``L(θ + a·d₁ + b·d₂) − L(θ)`` read off the grid by bilinear interpolation."""
    from scipy.interpolate import RegularGridInterpolator

    if not isinstance(plane, LossPlane):
        raise TypeError(f"plane must be a LossPlane from loss_plane(...), got "
                        f"{type(plane).__name__}")
    a, b = check_number(a, "a"), check_number(b, "b")
    lim = float(plane.coords.max())
    for name, v in (("a", a), ("b", b)):
        if abs(v) > lim:
            raise ValueError(f"{name} must lie inside the grid [-{lim:.3g}, {lim:.3g}], got {v}")
    interp = RegularGridInterpolator((plane.coords, plane.coords), plane.values)
    return float(interp([[b, a]])[0])
