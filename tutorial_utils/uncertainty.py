"""Uncertainty and out-of-distribution scores: from logits, input gradients, features, parameter
gradients and sampling.

**Sign convention.** Every *score* is a ``(B,)`` tensor with **higher = more in-distribution /
more trustworthy** (pytorch-ood and OpenOOD report the negation: higher = more OOD). The
sampling decompositions (:func:`mc_dropout`, :func:`ensemble_uncertainty`) return
*uncertainties* in nats (higher = less certain); negate one to use it as a score, as
:data:`SCORES` does.

======================  =====================================================  ================
function                score (higher = in-distribution)                       cost
======================  =====================================================  ================
max_softmax             ``max_k softmax(z/T)_k`` (MSP), in [1/K, 1]            logits
neg_entropy             ``Σ_k p_k log p_k`` in nats, in [−log K, 0]            logits
margin                  top-1 minus top-2 probability, in [0, 1]               logits
neg_nll                 ``log p_P`` of the prediction P, in [−log K, 0]        logits
energy                  ``T·logsumexp(z/T)`` (negative free energy)            logits
odin                    MSP at temperature T of an input nudged by ε           fwd+bwd+fwd
Mahalanobis             ``−min_c`` squared Mahalanobis distance of ``h``       forward (fitted)
gradnorm                ``‖∇_W KL(u ‖ softmax(z))‖₁ = ‖p − u‖₁·‖h‖₁``          forward
confounding_score       ``sign·Σ_layers ‖∇_θ L(z, 1)‖²`` (all-ones label)      per-sample grads
ConfoundingDetector     P(in-distribution) from a logistic regression on       per-sample grads
                        log per-layer confounding norms (fitted)
mc_dropout              MC-dropout passes: predictive = aleatoric + epistemic  T passes after
                        (nats) — an uncertainty, not a score (``ensembles``)   the 1st dropout
ensemble_uncertainty    the same decomposition over ensemble members           M forwards
score / SCORES          ``score(name, model, x, **options)`` for a loop
======================  =====================================================  ================

Notation (DESIGN §7): logits ``z = f(x)`` (B, K), ``p = softmax(z)``, prediction
``P = argmax z``, penultimate features ``h`` (B, D) = the input of the final ``nn.Linear``
``W`` (K, D), ``u = 1/K`` the uniform distribution. Images have pixels in ``[0, 1]``; the
course's models normalise inside their first layer. Every function runs the model in eval mode
and restores its mode and ``requires_grad`` flags; none leaves hooks or ``.grad`` behind.

References
----------
- D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and out-of-distribution
  examples in neural networks", ICLR 2017 (MSP).
- S. Liang, Y. Li, R. Srikant, "Enhancing the reliability of out-of-distribution image
  detection in neural networks", ICLR 2018 (ODIN).
- W. Liu, X. Wang, J. Owens, Y. Li, "Energy-based out-of-distribution detection", NeurIPS 2020.
- K. Lee, K. Lee, H. Lee, J. Shin, "A simple unified framework for detecting out-of-distribution
  samples and adversarial attacks", NeurIPS 2018 (Mahalanobis).
- R. Huang, A. Geng, Y. Li, "On the importance of gradients for detecting distributional shifts
  in the wild", NeurIPS 2021 (GradNorm).
- J. Lee, G. AlRegib, "Gradients as a measure of uncertainty in neural networks", ICIP 2020;
  J. Lee, G. AlRegib, "Probing the purview of neural networks via gradient analysis", IEEE
  Access 2023 (confounding labels).
- MC dropout and ensembles: see :mod:`tutorial_utils.ensembles` (defined there, re-exported).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import check_inputs, check_model, check_seed
from tutorial_utils.attacks import input_gradient
from tutorial_utils.ensembles import PredictiveUncertainty, ensemble_uncertainty, mc_dropout
from tutorial_utils.gradients import (
    GradientNorms,
    confounding_gradient_norms,
    confounding_loss,
    final_linear,
)
from tutorial_utils.models import features_and_logits
from tutorial_utils.utils import channels_last, preserved_state

__all__ = [
    "max_softmax", "neg_entropy", "margin", "neg_nll", "energy", "odin", "Mahalanobis",
    "gradnorm", "confounding_score", "ConfoundingDetector", "mc_dropout",
    "ensemble_uncertainty", "PredictiveUncertainty", "NotFittedError", "SCORES", "score",
]


class NotFittedError(ValueError, AttributeError):
    """A detector was used before ``.fit`` (as scikit-learn's ``NotFittedError``)."""


# --------------------------------------------------------------------------- checks
def _check_matrix(value: object, name: str) -> torch.Tensor:
    """A finite, non-empty floating-point tensor of shape (B, K)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, K), "
                        f"got {type(value).__name__}")
    if not torch.is_floating_point(value):
        raise TypeError(f"{name} must be floating point (got {value.dtype}); use {name}.float()")
    if value.dim() != 2:
        hint = f"; add a batch dimension with {name}[None]" if value.dim() == 1 else ""
        raise ValueError(f"{name} must have shape (B, K), got {tuple(value.shape)}{hint}")
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)})")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    return value


def _check_logits(logits: object, name: str = "logits") -> torch.Tensor:
    if _check_matrix(logits, name).shape[1] < 2:
        raise ValueError(f"{name} must hold K >= 2 classes per sample, got K={logits.shape[1]}")
    return logits


def _check_float(value: object, name: str, *, positive: bool) -> float:
    """A finite real number, > 0 (``positive``) or >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value}")
    return value


def _check_sign(sign: object) -> int:
    if isinstance(sign, bool) or sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (smaller gradient = more in-distribution) or +1 "
                         f"(larger gradient = more in-distribution), got {sign!r}")
    return int(sign)


def _logits(model: nn.Module, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Logits (B, K) in eval mode: one batched forward, no graph (``check=False``: ``x`` was
    validated already)."""
    if check:
        check_inputs(model, x)
    with preserved_state(model), torch.inference_mode():
        z = model(channels_last(x))
    if not isinstance(z, torch.Tensor) or z.shape[:1] != x.shape[:1] or z.dim() != 2:
        raise ValueError("model must return logits of shape (B, K)")
    return z.clone()  # an ordinary tensor (cloned outside inference mode)


# --------------------------------------------------------------------------- logit scores
def max_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability ``max_k softmax(z/T)_k`` (B,) in [1/K, 1] (Hendrycks &
    Gimpel 2017). ``logits`` (B, K), K ≥ 2; ``temperature`` T > 0."""
    t = _check_float(temperature, "temperature", positive=True)
    return (_check_logits(logits) / t).softmax(1).amax(1)


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Negative Shannon entropy ``Σ_k p_k log p_k`` (B,) in nats, in [−log K, 0]
    (0 = one-hot, −log K = uniform)."""
    logp = _check_logits(logits).log_softmax(1)
    return (logp.exp() * logp).sum(1)


def margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability ``p_(1) − p_(2)`` (B,) in [0, 1]."""
    top2 = _check_logits(logits).softmax(1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def neg_nll(logits: torch.Tensor) -> torch.Tensor:
    """Log-probability of the prediction ``log p_P`` (B,) in nats, in [−log K, 0]: the
    negative log-likelihood of the predicted label, negated (a monotone map of MSP)."""
    return _check_logits(logits).log_softmax(1).amax(1)


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T·logsumexp(z/T)`` (B,) in logit units (Liu et al. 2020).

    Unbounded; ``max_k z_k ≤ energy ≤ max_k z_k + T log K``, so it tends to the largest logit
    as T → 0. ``temperature`` T must be finite and > 0."""
    t = _check_float(temperature, "temperature", positive=True)
    return t * torch.logsumexp(_check_logits(logits) / t, dim=1)


# --------------------------------------------------------------------------- ODIN
def odin(model: nn.Module, x: torch.Tensor, temperature: float = 1000.0,
         epsilon: float = 0.0014) -> torch.Tensor:
    """ODIN (Liang et al. 2018): temperature scaling plus a small input perturbation.

    ``x̃ = clamp(x − ε·sign(∇ₓ[−log max_k softmax(z/T)_k]), 0, 1)`` — one targeted FGSM step
    (:func:`tutorial_utils.attacks.fgsm`) towards the prediction at temperature T — and the
    score is ``max_k softmax(f(x̃)/T)_k`` (B,) in [1/K, 1]. One batched forward + input
    backward + forward.

    **ε is in pixel units** of [0, 1] images, applied *before* the model's own normalisation
    layer. The original ODIN perturbs the normalised input ``(x − mean)/std``; since ``std > 0``
    the gradient signs agree and only the step differs: a paper value ``ε₀`` corresponds to
    ``ε = ε₀·std`` here (per channel; e.g. 0.0014 at std 0.25 is 0.00035 pixel units), the
    conversion OpenOOD / pytorch-ood's ``norm_std`` make. With ``ε = 0`` and ``T = 1`` this is
    :func:`max_softmax`.
    """
    check_inputs(model, x)
    t = _check_float(temperature, "temperature", positive=True)
    eps = _check_float(epsilon, "epsilon", positive=False)
    if eps > 0:
        g, _ = input_gradient(model, x, lambda z: -(z / t).log_softmax(1).amax(1))
        x = (x.detach() - eps * g.sign()).clamp(0, 1)
    return max_softmax(_logits(model, x, check=False), t)


# --------------------------------------------------------------------------- Mahalanobis
def _check_labels(y: object, n: int) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError("y must be a tensor of integer class labels (N,)")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one label per image, got {tuple(y.shape)}")
    return y


class Mahalanobis:
    """Mahalanobis distance of penultimate features to the closest class (Lee et al. 2018).

    ``fit(x, y)`` estimates class means ``μ_c`` and one tied covariance
    ``Σ = 1/N Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ`` of the features ``h`` (B, D) of in-distribution
    training images (float64; the inverse is a pseudo-inverse that drops eigenvalues below
    ``D·eps(dtype of h)·λ_max``). ``score(x)`` = ``−min_c (h − μ_c)ᵀ Σ⁺ (h − μ_c)`` (B,) — the
    **squared** distance, negated (≤ 0; higher = closer to a class = in-distribution). Purely
    feature-space: no input preprocessing (the paper's optional ODIN-like step is left out).
    ``fit_features`` / ``score_features`` do the same on given features.

    ``model`` must expose ``penultimate(x)`` and ``fc`` (every zoo ``SmallCNN`` does).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = check_model(model)
        self.classes: torch.Tensor | None = None
        self.whitening: torch.Tensor | None = None  # (D, r): Σ⁺ = whitening @ whitening.T
        self.centres: torch.Tensor | None = None  # (C, r): whitened class means

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> Mahalanobis:
        """Fit on in-distribution images ``x`` (N, C, H, W) with labels ``y`` (N,)."""
        check_inputs(self.model, x)
        return self.fit_features(features_and_logits(self.model, x)[0], y)

    def fit_features(self, h: torch.Tensor, y: torch.Tensor) -> Mahalanobis:
        """Fit on features ``h`` (N, D) with labels ``y`` (N,); returns ``self``."""
        h64 = _check_matrix(h, "h").double()
        classes, idx = _check_labels(y, len(h)).to(h.device).unique(return_inverse=True)
        onehot = F.one_hot(idx, len(classes)).double()  # (N, C)
        means = (onehot.T @ h64) / onehot.sum(0)[:, None]
        centred = h64 - means[idx]
        evals, evecs = torch.linalg.eigh(centred.T @ centred / len(h))
        keep = evals > evals.max() * h.shape[1] * torch.finfo(h.dtype).eps
        self.whitening = evecs[:, keep] / evals[keep].sqrt()
        self.classes, self.centres = classes, means @ self.whitening
        return self

    def _require_fitted(self) -> None:
        if self.whitening is None:
            raise NotFittedError("this Mahalanobis detector is not fitted yet: call "
                                 ".fit(x_train, y_train) on in-distribution images first")

    def distances(self, h: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distances (B, C) of features ``h`` (B, D) to every class mean."""
        self._require_fitted()
        if _check_matrix(h, "h").shape[1] != self.whitening.shape[0]:
            raise ValueError(f"h has {h.shape[1]} features per sample but the detector was "
                             f"fitted on {self.whitening.shape[0]}")
        a = h.double() @ self.whitening
        c = self.centres
        d2 = a.square().sum(1, keepdim=True) - 2 * a @ c.T + c.square().sum(1)
        return d2.clamp_min(0)

    def score_features(self, h: torch.Tensor) -> torch.Tensor:
        """``−min_c`` squared distance (B,) for features ``h`` (B, D), in ``h``'s dtype."""
        return -self.distances(h).amin(1).to(h.dtype)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``−min_c`` squared Mahalanobis distance (B,) of images ``x`` (B, C, H, W)."""
        self._require_fitted()
        check_inputs(self.model, x)
        return self.score_features(features_and_logits(self.model, x)[0])


# --------------------------------------------------------------------------- gradient scores
def gradnorm(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GradNorm (Huang et al. 2021): ``‖∇_W KL(u ‖ softmax(z))‖₁`` (B,), T = 1, ≥ 0.

    ``∂KL/∂z = p − u`` and ``z = W h + b``, so the weight gradient is the outer product
    ``(p − u) hᵀ`` whose L1 norm is ``‖p − u‖₁ · ‖h‖₁`` — computed in closed form from one
    batched forward (no backward). Higher = in-distribution, as in the paper (confident
    predictions on large features give large gradients). Only ``W``, not the bias. ``model``
    must expose ``penultimate`` and ``fc`` (every zoo ``SmallCNN`` does).
    """
    check_inputs(model, x)
    h, z = features_and_logits(model, x)
    return (z.softmax(1) - 1 / z.shape[1]).abs().sum(1) * h.abs().sum(1)


def _confounding_norms(model: nn.Module, x: torch.Tensor, loss: str,
                       layers: Sequence[nn.Module] | None, chunk_size: int | None = None
                       ) -> GradientNorms:
    """:func:`confounding_gradient_norms`; for the final linear layer alone in closed form.

    With ``g = ∂L/∂z`` (B, K) per sample, ``∇_W L = g hᵀ`` and ``∇_b L = g``, so the layer's
    squared norm is ``‖g‖²·(‖h‖² + 1)``: one forward instead of per-sample backward passes.
    """
    if layers is not None and (isinstance(layers, nn.Module) or not isinstance(layers, Sequence)):
        raise TypeError(f"layers must be a list of nn.Modules (e.g. [model.fc]), got "
                        f"{type(layers).__name__}")
    closed = isinstance(model, nn.Module) and hasattr(model, "penultimate") and layers is not None
    fc = final_linear(model) if closed else None
    if fc is None or len(layers) != 1 or layers[0] is not fc or not hasattr(model, "penultimate"):
        return confounding_gradient_norms(model, x, loss, layers, chunk_size=chunk_size)
    check_inputs(model, x)
    h, z = features_and_logits(model, x)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(confounding_loss(z, loss).sum(), z)
    norms = g.square().sum(1) * (h.square().sum(1) + float(fc.bias is not None))
    name = next(n for n, m in model.named_modules() if m is fc)
    return GradientNorms(norms[:, None], [name])


def confounding_score(model: nn.Module, x: torch.Tensor, layers: Sequence[nn.Module] | None = None,
                      loss: str = "sigmoid", sign: int = -1, *,
                      chunk_size: int | None = None) -> torch.Tensor:
    """Confounding-label score ``sign · Σ_l ‖∇_{θ_l} L(f(x), 1)‖²`` (B,), units of loss².

    The per-layer squared gradient norms for the all-ones label come from
    :func:`tutorial_utils.gradients.confounding_gradient_norms` (``loss`` = ``"sigmoid"``:
    Σ_k BCE(σ(z_k), 1), Lee & AlRegib 2020; ``"softmax"``: −Σ_k log p_k = K·GradNorm's loss),
    summed over ``layers`` (default: every layer with parameters). For ``layers=[model.fc]``
    alone the norm has a closed form, ``‖g‖²·(‖h‖² + 1)`` with ``g = ∂L/∂z``: one forward.

    The sign is a modelling choice, not a law: ``sign=-1`` (default) reads a *small* gradient
    as in-distribution (Lee & AlRegib: the model needs little change), ``sign=+1`` a *large*
    one (GradNorm's reading; with the softmax loss ``∂L/∂z = K·p − 1`` grows with confidence).
    Chapter 3 checks empirically which orientation separates ID from novel data for each loss.
    """
    sign = _check_sign(sign)
    return sign * _confounding_norms(model, x, loss, layers, chunk_size).norms.sum(1)


class ConfoundingDetector:
    """A small detector H(·) on confounding-label gradients (Lee & AlRegib 2020, 2023).

    Features: ``log`` of the per-layer squared gradient norms for the all-ones label
    (:func:`~tutorial_utils.gradients.confounding_gradient_norms`), standardised; H is a
    scikit-learn ``LogisticRegression``. ``fit(model, x_id, x_novel)`` trains it on
    in-distribution images (label 1) against **one** challenge / OOD set (label 0);
    ``score(x)`` is P(in-distribution) (B,) in [0, 1].

    Because H has seen that novel set, its AUROC *on that set* is a training score, not a
    detection result: **test it on a different challenge / OOD set** (and on held-out ID data).
    """

    def __init__(self, loss: str = "sigmoid", layers: Sequence[nn.Module] | None = None,
                 C: float = 1.0, seed: int = 0) -> None:
        confounding_loss(torch.zeros(1, 2), loss)  # validates the loss name
        C = _check_float(C, "C", positive=True)
        self.loss, self.layers, self.C, self.seed = loss, layers, C, check_seed(seed)
        self.model: nn.Module | None = None
        self.pipeline = None
        self.layer_names: list[str] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``log`` per-layer squared gradient norms (B, L), float64."""
        if self.model is None:
            raise NotFittedError("this ConfoundingDetector is not fitted yet: call "
                                 ".fit(model, x_id, x_novel) first")
        out = _confounding_norms(self.model, x, self.loss, self.layers)
        self.layer_names = out.names
        return out.norms.double().clamp_min(1e-300).log()

    def fit(self, model: nn.Module, x_id: torch.Tensor, x_novel: torch.Tensor
            ) -> ConfoundingDetector:
        """Train H on ``x_id`` (label 1) vs ``x_novel`` (label 0); returns ``self``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = check_model(model)
        check_inputs(model, x_id, "x_id")
        check_inputs(model, x_novel, "x_novel")
        feats = torch.cat([self.features(x_id), self.features(x_novel)]).cpu().numpy()
        labels = [1] * len(x_id) + [0] * len(x_novel)
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.C, max_iter=1000, random_state=self.seed))
        self.pipeline.fit(feats, labels)
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """P(in-distribution) (B,) in [0, 1], on ``x``'s device and dtype."""
        if self.pipeline is None:
            raise NotFittedError("this ConfoundingDetector is not fitted yet: call "
                                 ".fit(model, x_id, x_novel) first")
        return self.score_norms(_confounding_norms(self.model, x, self.loss, self.layers).norms
                                ).to(dtype=x.dtype, device=x.device)

    def score_norms(self, norms: torch.Tensor) -> torch.Tensor:
        """P(in-distribution) (B,) from per-layer squared norms (B, L) computed elsewhere (the
        same loss and layers as in ``fit``), so one backward can feed several scores."""
        if self.pipeline is None:
            raise NotFittedError("this ConfoundingDetector is not fitted yet: call "
                                 ".fit(model, x_id, x_novel) first")
        feats = norms.double().clamp_min(1e-300).log().cpu().numpy()
        if feats.ndim != 2 or feats.shape[1] != self.pipeline.n_features_in_:
            raise ValueError(f"norms must be (B, {self.pipeline.n_features_in_}) per-layer norms, "
                             f"got {tuple(norms.shape)}")
        return torch.as_tensor(self.pipeline.predict_proba(feats)[:, 1])


# --------------------------------------------------------------------------- registry
def _from_logits(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(model: nn.Module, x: torch.Tensor, **options) -> torch.Tensor:
        return fn(_logits(model, x), **options)

    run.__doc__ = fn.__doc__
    return run


SCORES: dict[str, Callable[..., torch.Tensor]] = {
    "msp": _from_logits(max_softmax),
    "neg_entropy": _from_logits(neg_entropy),
    "margin": _from_logits(margin),
    "neg_nll": _from_logits(neg_nll),
    "energy": _from_logits(energy),
    "odin": odin,
    "gradnorm": gradnorm,
    "confounding": confounding_score,
    "mc_dropout": lambda model, x, **options: -mc_dropout(model, x, **options).epistemic,
    "ensemble": lambda model, x: -ensemble_uncertainty(model, x).epistemic,
}
"""Every unfitted score as ``fn(model, x, **options) -> (B,)``, higher = in-distribution
(``mc_dropout`` / ``ensemble``: minus the mutual information)."""


def score(name: str, model: nn.Module, x: torch.Tensor, **options) -> torch.Tensor:
    """``SCORES[name](model, x, **options)``: one call for a loop over scores (B,).

    Fitted detectors (:class:`Mahalanobis`, :class:`ConfoundingDetector`) are not listed: fit
    one, then call its ``.score(x)``.
    """
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}: name must be one of {', '.join(SCORES)} "
                         f"(fitted detectors: Mahalanobis(model).fit(x, y).score(x))")
    return SCORES[name](model, x, **options)
