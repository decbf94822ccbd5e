"""Information at inference: Shannon entropy, mutual information and Fisher information.

The ICIP 2023 tutorial names three kinds of information, each computed here on real outputs:

================================  ==========================================================
function                          what it returns
================================  ==========================================================
entropy                           ``−Σ_k p_k log p_k`` per row of probabilities, nats or bits
information_table                 H(A), H(B), H(A, B) and I(A; B) of two label vectors (bits)
mutual_information                plug-in ``I(X; Y)`` of two scalar variables (2-D histogram)
score_vectors                     per-sample scores ``U = ∇_θ log p(y|x)`` (y sampled or given)
fisher_information                Monte-Carlo ``E[U Uᵀ]`` (diagonal or full)
all_label_scores                  ``U_{b,y}`` for **every** label y, and ``p`` (exact averages)
score_moments                     ``E[U]``, ``Var(U)`` and ``E[U Uᵀ]`` of score vectors
exact_last_layer_fisher           the final linear layer's Fisher in closed form
relative_difference               ``‖A − B‖_F / ‖B‖_F``
================================  ==========================================================

Fisher information is the variance of the score, ``I(θ) = Var(∂/∂θ log p(y|x; θ))``; with
``y`` drawn from the model the mean score is zero, so ``I(θ) = E[U Uᵀ]`` — the mean outer
product of per-sample *gradients*. That identity is why the course reads gradients as
information.

References
----------
- C. E. Shannon, "A mathematical theory of communication", Bell System Technical Journal, 1948.
- T. M. Cover, J. A. Thomas, *Elements of Information Theory*, 2nd ed., Wiley 2006.
- S. Amari, "Natural gradient works efficiently in learning", Neural Computation 1998;
  J. Martens, "New insights and perspectives on the natural gradient method", JMLR 2020
  (Fisher information = E[score scoreᵀ] with y drawn from the model; the empirical Fisher).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import (
    as_array,
    check_inputs,
    check_model,
    check_probabilities,
    check_same_length,
    check_seed,
    check_vector,
    resolve_classes,
)
from tutorial_utils.forward import features_and_logits, logits
from tutorial_utils.gradients import (
    contrast_gradients_autograd,
    per_sample_gradients,
    select_params,
)

__all__ = [
    "entropy",
    "information_table",
    "mutual_information",
    "ScoreVectors",
    "score_vectors",
    "fisher_information",
    "all_label_scores",
    "score_moments",
    "exact_last_layer_fisher",
    "relative_difference",
]

UNITS = ("nats", "bits")


# --------------------------------------------------------------------------------------
# Shannon entropy and mutual information
# --------------------------------------------------------------------------------------


def entropy(probs: object, unit: str = "nats") -> np.ndarray | float:
    """Shannon entropy ``−Σ_k p_k log p_k`` (0 log 0 = 0) in ``unit`` (``"nats"`` or ``"bits"``).

    ``probs`` (N, K) rows of probabilities -> (N,) array; a single (K,) distribution -> float.
    Ranges from 0 (one-hot) to log K (uniform): log₂ K bits, ln K nats.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    single = as_array(probs, "probs").ndim == 1
    p = check_probabilities(as_array(probs, "probs")[None] if single else probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    h = np.maximum(h, 0.0) / (math.log(2) if unit == "bits" else 1.0)
    return float(h[0]) if single else h


def _count_entropy(counts: np.ndarray) -> float:
    """Entropy in bits of the empirical distribution given by ``counts``."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def information_table(a: object, b: object) -> dict[str, float]:
    """``H(A)``, ``H(B)``, the joint ``H(A, B)`` and ``I(A; B) = H(A) + H(B) − H(A, B)`` in bits.

    ``a``, ``b``: (N,) integer labels (e.g. true class and predicted class); plug-in estimates
    from their empirical distributions. The plug-in ``I`` is biased upwards by about
    ``(|A| − 1)(|B| − 1) / (2N ln 2)`` bits for independent labels: compare it with the value
    for shuffled labels (``information_table(a, rng.permutation(b))``) on small N.
    """
    a, b = check_vector(a, "a"), check_vector(b, "b")
    check_same_length(a, b, "a", "b")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError("a and b must hold integer labels")
    _, ca = np.unique(a, return_counts=True)
    _, cb = np.unique(b, return_counts=True)
    _, cab = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)
    ha, hb, hab = _count_entropy(ca), _count_entropy(cb), _count_entropy(cab)
    return {"H(A)": ha, "H(B)": hb, "H(A,B)": hab, "I(A;B)": max(ha + hb - hab, 0.0)}


def mutual_information(x: object, y: object, bins: int | Sequence = 16) -> float:
    """Plug-in mutual information ``I(X; Y)`` in **nats** of two scalar variables.

    ``x``, ``y`` (N,) samples; ``bins`` as in ``np.histogram2d`` (an int, a pair of ints or
    explicit edges). The estimate is biased upwards by roughly ``(Bx − 1)(By − 1) / (2N)`` for
    independent variables, so use N ≫ bins².
    """
    a = check_vector(x, "x").astype(float)
    b = check_vector(y, "y").astype(float)
    check_same_length(a, b, "x", "y")
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool) and bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    joint, _, _ = np.histogram2d(a, b, bins=bins)
    pxy = joint / joint.sum()
    px, py = pxy.sum(axis=1, keepdims=True), pxy.sum(axis=0, keepdims=True)
    nz = pxy > 0
    return float(max((pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])).sum(), 0.0))


# --------------------------------------------------------------------------------------
# Fisher information: score vectors and their moments
# --------------------------------------------------------------------------------------


class ScoreVectors(NamedTuple):
    """``u`` (B, P): per-sample score ``∇_θ log p(y_b|x_b)`` flattened over the parameters
    ``names`` (in order, with ``shapes``); ``labels`` (B,): the y used."""

    u: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    shapes: list[torch.Size]


def _labels(model: nn.Module, x: torch.Tensor, labels: object, seed: int) -> torch.Tensor:
    """Given labels (checked) or y ~ Categorical(softmax(f(x))) with a seeded CPU generator."""
    z = logits(model, x, check=False)
    if labels is not None:
        return resolve_classes(labels, z, "labels")
    gen = torch.Generator().manual_seed(check_seed(seed))
    return torch.multinomial(z.softmax(1).double().cpu(), 1, generator=gen)[:, 0].to(x.device)


def _log_likelihood(z: torch.Tensor, _x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``log softmax(z)[t]`` for one sample's logits (K,) and label ``t`` (vmap-safe); the
    sample's input ``_x`` is not needed."""
    return z.log_softmax(-1).gather(0, t[None])[0]


def score_vectors(model: nn.Module, x: torch.Tensor, params=None, labels=None, *,
                  seed: int = 0, chunk_size: int | None = None) -> ScoreVectors:
    """Per-sample score vectors ``U_b = ∇_θ log p(y_b | x_b)`` (sign: gradient of the
    log-likelihood, i.e. ``−∇_θ CE``).

    ``labels=None`` draws ``y_b ~ p(·|x_b)`` from the model (seeded by ``seed``); then
    ``E_y[U] = Σ_y p_y ∇ log p_y = ∇ Σ_y p_y = 0``, so the Fisher ``E[U Uᵀ]`` is the covariance
    of the score. With given (true) labels ``E[U Uᵀ]`` is the *empirical* Fisher instead.
    ``params`` selects θ as in :func:`contrast_gradients_autograd` (default: the final linear
    layer).
    """
    check_inputs(model, x)
    y = _labels(model, x, labels, seed)
    grads = per_sample_gradients(model, x, _log_likelihood, targets=y, params=params,
                                 chunk_size=chunk_size)
    names = list(grads)
    u = torch.cat([grads[n].flatten(1) for n in names], dim=1)
    return ScoreVectors(u.detach(), y, names, [grads[n].shape[1:] for n in names])


MAX_FULL_FISHER = 20_000


def fisher_information(model: nn.Module, x: torch.Tensor, params=None, labels=None,
                       full: bool = False, *, seed: int = 0) -> torch.Tensor:
    """Monte-Carlo Fisher information ``F = mean_b U_b U_bᵀ`` from :func:`score_vectors`.

    Returns the diagonal ``mean_b U_b²`` (P,) by default, or the full (P, P) matrix with
    ``full=True`` (only for small parameter sets, P ≤ 20 000, e.g. the final linear layer).
    Units: (log-likelihood per parameter unit)². Parameters are flattened in the order of
    ``score_vectors(...).names``.
    """
    check_model(model)
    if full:
        size = sum(p.numel() for p in select_params(model, params)[0].values())
        if size > MAX_FULL_FISHER:
            raise ValueError(f"full=True needs a (P, P) matrix with P = {size} > "
                             f"{MAX_FULL_FISHER}; pass params=<a small layer> or full=False")
    u = score_vectors(model, x, params=params, labels=labels, seed=seed).u
    return u.T @ u / u.shape[0] if full else u.square().mean(0)


def all_label_scores(model: nn.Module, x: torch.Tensor, params=None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Score vectors ``U_{b,y} = ∇_θ log p(y | x_b)`` for **every** label y, and ``p`` (B, K).

    Uses ``gradients.contrast_gradients_autograd`` (one vector-Jacobian product per sample,
    vectorised over the K labels): since ``log p_y = −CE(z, y)``, ``U_{b,y} = −∇_θ CE(z_b, y)``.
    Returns ``u`` (B, K, P) flattened in ``params`` order (default: the final linear layer,
    ``[W.flatten(), b]``) and the model's probabilities, so that expectations over
    ``y ~ p(·|x)`` can be taken exactly instead of by sampling.
    """
    grads = contrast_gradients_autograd(model, x, params=params)
    u = -torch.cat([g.flatten(2) for g in grads.values()], dim=2)
    return u.detach(), logits(model, x).softmax(dim=1)


def score_moments(u: torch.Tensor, weights: torch.Tensor | None = None
                  ) -> dict[str, torch.Tensor]:
    """Mean ``E[U]``, covariance ``Var(U) = E[(U − Ū)(U − Ū)ᵀ]`` and second moment ``E[U Uᵀ]``.

    ``u``: score vectors (N, P), or (N, K, P) with ``weights`` (N, K) that sum to one (e.g.
    ``p / N`` for an exact average over ``x`` and ``y ~ p(·|x)``). Without weights every row
    counts ``1/N``. Computed and returned in float64.
    """
    if not isinstance(u, torch.Tensor) or u.dim() not in (2, 3):
        raise ValueError("u must be a (N, P) or (N, K, P) tensor of score vectors")
    if not torch.isfinite(u).all():
        raise ValueError("u contains NaN or infinite values")
    flat = u.double().reshape(-1, u.shape[-1])
    if weights is None:
        if u.dim() == 3:
            raise ValueError("a (N, K, P) u needs weights (N, K), e.g. probs / N")
        if flat.shape[0] < 2:
            raise ValueError("u must hold at least two score vectors")
        w = torch.full((flat.shape[0],), 1.0 / flat.shape[0], dtype=torch.float64)
    else:
        w = torch.as_tensor(weights).double().reshape(-1)
        if w.numel() != flat.shape[0]:
            raise ValueError(f"weights must have one entry per score vector: got {w.numel()}, "
                             f"expected {flat.shape[0]}")
        if not torch.isfinite(w).all() or (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError("weights must be finite, non-negative and sum to 1")
    mean = w @ flat
    second = (flat * w[:, None]).T @ flat
    centred = flat - mean
    cov = (centred * w[:, None]).T @ centred
    return {"mean": mean, "covariance": cov, "second_moment": second}


def exact_last_layer_fisher(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The Fisher information of the final linear layer, ``E_x E_{y~p(·|x)}[U Uᵀ]``, exactly.

    For ``z = W h + b`` the score is ``U = ∇_θ log p_y = (e_y − p) ⊗ [h, 1]``; the expectation
    over y is taken by enumerating all K classes weighted by ``p_y`` (no sampling). Parameters
    are ordered ``[W.flatten() (row-major), b]`` like ``gradients.score_vectors(params=fc)``.
    Returns (P, P) with ``P = K·D + K``. An ensemble has no single last layer: it is a
    ``TypeError`` (compute it per member, ``[exact_last_layer_fisher(m, x) for m in
    ensemble.members]``).
    """
    if callable(getattr(model, "member_logits", None)):
        raise TypeError("model is an ensemble: its probabilities mix every member, so it has no "
                        "single last layer whose Fisher this formula gives; compute it per "
                        "member: [exact_last_layer_fisher(m, x) for m in model.members]")
    h, z = features_and_logits(model, x)
    p = z.softmax(dim=1).double().cpu()
    h = h.cpu().double()
    n, k = p.shape
    eye = torch.eye(k, dtype=torch.float64)
    e_minus_p = eye[None, :, :] - p[:, None, :]  # (N, y, K): e_y − p
    u_w = e_minus_p[..., None] * h[:, None, None, :]  # (N, y, K, D)
    u = torch.cat([u_w.flatten(2), e_minus_p], dim=2)  # (N, y, P)
    v = (u * p[..., None].sqrt()).reshape(n * k, -1)
    return (v.T @ v / n).float()


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖a − b‖_F / ‖b‖_F`` (``b`` must not be all zero: the ratio would be undefined)."""
    a, b = (torch.as_tensor(as_array(t, n), dtype=torch.float64) for t, n in ((a, "a"), (b, "b")))
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("a and b must be finite")
    norm = torch.linalg.norm(b)
    if norm == 0:
        raise ValueError("b is all zero, so the relative difference is undefined")
    return float(torch.linalg.norm(a - b) / norm)
