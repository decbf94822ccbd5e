"""Uncertainty and out-of-distribution scores: from logits, input gradients, features, parameter
gradients and sampling.

**Sign convention.** Every *score* is a ``(B,)`` tensor with **higher = more in-distribution /
more trustworthy** (pytorch-ood and OpenOOD report the negation: higher = more OOD). The
sampling decompositions (:func:`mc_dropout`, :func:`ensemble_uncertainty`) return
*uncertainties* in nats (higher = less certain); their detectors negate them.

**One detector contract** (as pytorch-ood's ``Detector``, with the sign flipped): every score
is also a :class:`Detector` built on a model, ``det = Detector(model, **options)``, with
``det.fit(x, y=None, ...) -> det`` — ID data first; a no-op for the scores that need no
fitting — and ``det.score(x) -> (B,)``. ``det.score_batch(batch)`` scores a :class:`Batch`,
which computes the logits, the features and the confounding-label norms of a batch once for
every detector that asks. The table of every detector under the names the tables print is
:data:`tutorial_utils.detection.SCORES`.

======================  =====================================================  ================
function                score (higher = in-distribution)                       cost
======================  =====================================================  ================
max_softmax             ``max_k softmax(z/T)_k`` (MSP), in [1/K, 1]            logits
neg_entropy             ``Σ_k p_k log p_k`` in nats, in [−log K, 0]            logits
margin                  top-1 minus top-2 probability, in [0, 1]               logits
neg_nll                 ``log p_P`` of the prediction P (= log MSP), ≤ 0       logits
neg_nll_raw             −NLL on raw logits (GradTrust code) = ``max_k z_k``    logits
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
======================  =====================================================  ================

=====================  =================================================================
detector               score
=====================  =================================================================
LogitScore             any logit score above (``LogitScore(model, max_softmax)``)
ODINScore              :func:`odin`
Mahalanobis            fitted on ID features and labels
GradNormScore          :func:`gradnorm`
ConfoundingNorm        :func:`confounding_score`
ConfoundingDetector    fitted on ID images against one novel set
MCDropoutScore         ``−`` epistemic uncertainty (mutual information) of :func:`mc_dropout`
EnsembleScore          ``−`` epistemic uncertainty of :func:`ensemble_uncertainty`
RandomScore            uniform noise, seeded: the chance floor
=====================  =================================================================

Notation: logits ``z = f(x)`` (B, K), ``p = softmax(z)``, prediction
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

from collections.abc import Callable, Sequence
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils import forward
from tutorial_utils._checks import (
    check_epsilon,
    check_inputs,
    check_labels,
    check_logits,
    check_matrix,
    check_model,
    check_number,
    check_seed,
    check_sign,
)
from tutorial_utils.ensembles import (
    PredictiveUncertainty,
    check_passes,
    ensemble_uncertainty,
    mc_dropout,
)
from tutorial_utils.gradients import (
    GradientNorms,
    check_confounding_loss,
    confounding_gradient_norms,
    confounding_loss,
    input_gradient,
)

__all__ = [
    "max_softmax",
    "neg_entropy",
    "margin",
    "neg_nll",
    "neg_nll_raw",
    "energy",
    "odin",
    "gradnorm",
    "gradnorm_from_features",
    "confounding_score",
    "mc_dropout",
    "ensemble_uncertainty",
    "PredictiveUncertainty",
    "NotFittedError",
    "Batch",
    "Detector",
    "LogitScore",
    "ODINScore",
    "Mahalanobis",
    "GradNormScore",
    "ConfoundingNorm",
    "ConfoundingDetector",
    "MCDropoutScore",
    "EnsembleScore",
    "RandomScore",
]


class NotFittedError(ValueError, AttributeError):
    """A detector was used before ``.fit`` (as scikit-learn's ``NotFittedError``)."""


# --------------------------------------------------------------------------------------
# Logit scores
# --------------------------------------------------------------------------------------


def max_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability ``max_k softmax(z/T)_k`` (B,) in [1/K, 1] (Hendrycks &
    Gimpel 2017). ``logits`` (B, K), K ≥ 2; ``temperature`` T > 0."""
    t = check_number(temperature, "temperature", low=0.0, low_open=True)
    return (check_logits(logits) / t).softmax(1).amax(1)


def neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Negative Shannon entropy ``Σ_k p_k log p_k`` (B,) in nats, in [−log K, 0]
    (0 = one-hot, −log K = uniform)."""
    logp = check_logits(logits).log_softmax(1)
    return (logp.exp() * logp).sum(1)


def margin(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability ``p_(1) − p_(2)`` (B,) in [0, 1]."""
    top2 = check_logits(logits).softmax(1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def neg_nll(logits: torch.Tensor) -> torch.Tensor:
    """Log-probability of the prediction ``log p_P`` (B,) in nats, in [−log K, 0]: the
    negative log-likelihood of the predicted label, negated. It is ``log MSP``, so it ranks
    exactly like :func:`max_softmax` (every AUROC and AUAC equal). For the score the GradTrust
    paper calls NLL see :func:`neg_nll_raw`."""
    return check_logits(logits).log_softmax(1).amax(1)


def neg_nll_raw(logits: torch.Tensor) -> torch.Tensor:
    """The GradTrust authors' "NLL" (B,) in logit units: ``-F.nll_loss(z, P)`` computed on the
    **raw logits** ``z`` (no log-softmax, as in their ``demo.py::get_nll_brier``), with P the
    prediction. ``nll_loss`` just picks ``−z_P``, so the score is the **maximum logit**
    ``max_k z_k`` — not a monotone map of MSP (unbounded, like Energy)."""
    return check_logits(logits).amax(1)


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy ``T·logsumexp(z/T)`` (B,) in logit units (Liu et al. 2020).

    Unbounded; ``max_k z_k ≤ energy ≤ max_k z_k + T log K``, so it tends to the largest logit
    as T → 0. ``temperature`` T must be finite and > 0."""
    t = check_number(temperature, "temperature", low=0.0, low_open=True)
    return t * torch.logsumexp(check_logits(logits) / t, dim=1)


# --------------------------------------------------------------------------------------
# ODIN
# --------------------------------------------------------------------------------------


def odin(model: nn.Module, x: torch.Tensor, temperature: float = 1000.0,
         epsilon: float = 0.0014) -> torch.Tensor:
    """ODIN (Liang et al. 2018): temperature scaling plus a small input perturbation.

    ``x̃ = clamp(x − ε·sign(∇ₓ[−log max_k softmax(z/T)_k]), 0, 1)`` — one targeted FGSM step
    (:func:`tutorial_utils.gradients.input_gradient`) towards the prediction at temperature
    T — and the score is ``max_k softmax(f(x̃)/T)_k`` (B,) in [1/K, 1]. One batched forward + input
    backward + forward.

    **ε is in pixel units** of [0, 1] images, applied *before* the model's own normalisation
    layer — and so is the paper's ε. The original code (facebookresearch/odin ``calData.py``)
    divides the gradient sign by the channel std before stepping in the normalised space, so its
    step in pixel space is exactly ``ε₀``; OpenOOD's ``input_std`` and pytorch-ood's ``norm_std``
    make the same conversion ("so that eps refers to the unnormalized input scale"). The paper's
    ``ε = 0.0014`` is therefore used here as it is, with no rescaling. One deviation: the
    perturbed image is clamped to [0, 1] (the original does not clamp). With ``ε = 0`` and
    ``T = 1`` this is
    :func:`max_softmax`.
    """
    check_inputs(model, x)
    t = check_number(temperature, "temperature", low=0.0, low_open=True)
    eps = check_epsilon(epsilon, "epsilon")  # pixel units: 2 gets "did you mean 2/255?"
    if eps > 0:
        g, _ = input_gradient(model, x, lambda z: -(z / t).log_softmax(1).amax(1), check=False)
        x = (x.detach() - eps * g.sign()).clamp(0, 1)
    return max_softmax(forward.logits(model, x, check=False), t)


# --------------------------------------------------------------------------------------
# Gradient scores
# --------------------------------------------------------------------------------------


def gradnorm_from_features(h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """GradNorm's closed form ``‖p − u‖₁ · ‖h‖₁`` (B,) from features ``h`` (B, D) and logits
    ``z`` (B, K) of the final linear layer (``u = 1/K``, ``p = softmax(z)``)."""
    check_matrix(h, "h", "(B, D)")
    check_logits(z, "z")
    return (z.softmax(1) - 1 / z.shape[1]).abs().sum(1) * h.abs().sum(1)


def gradnorm(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GradNorm (Huang et al. 2021): ``‖∇_W KL(u ‖ softmax(z))‖₁`` (B,), T = 1, ≥ 0.

    ``∂KL/∂z = p − u`` and ``z = W h + b``, so the weight gradient is the outer product
    ``(p − u) hᵀ`` whose L1 norm is ``‖p − u‖₁ · ‖h‖₁`` (:func:`gradnorm_from_features`) —
    computed in closed form from one batched forward (no backward). Higher = in-distribution,
    as in the paper (confident predictions on large features give large gradients). Only
    ``W``, not the bias. ``model`` is any classifier whose logits come from a final
    ``nn.Linear`` (:func:`tutorial_utils.forward.features_and_logits`).
    """
    return gradnorm_from_features(*forward.features_and_logits(model, x))


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
    one_linear = layers is not None and len(layers) == 1 and isinstance(layers[0], nn.Linear)
    fc = forward.final_linear(model) if one_linear else None
    if fc is None or layers[0] is not fc:
        return confounding_gradient_norms(model, x, loss, layers, chunk_size=chunk_size)
    check_confounding_loss(loss)
    h, z = forward.features_and_logits(model, x)
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
    sign = check_sign(sign)
    return sign * _confounding_norms(model, x, loss, layers, chunk_size).norms.sum(1)


# --------------------------------------------------------------------------------------
# The detector contract
# --------------------------------------------------------------------------------------


class Batch:
    """One batch of images ``x`` (B, C, H, W) for ``model``, checked once; what several
    detectors need is computed on first use and shared: ``logits`` (B, K), ``features``
    ``(h, z)`` (:func:`tutorial_utils.forward.features_and_logits`) and the confounding-label
    norms :meth:`norms` (one backward for every detector that reads them)."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.model, self.x = model, check_inputs(model, x)
        self._norms: dict = {}

    @cached_property
    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h (B, D), z (B, K))`` in one forward pass."""
        return forward.features_and_logits(self.model, self.x)

    @cached_property
    def logits(self) -> torch.Tensor:
        """``z`` (B, K), from the same forward pass as :attr:`features` when the model's
        logits are the output of a final ``nn.Linear`` (one pass for both)."""
        try:
            return self.features[1]
        except (TypeError, ValueError):  # no final nn.Linear producing the logits
            return forward.logits(self.model, self.x, check=False)

    def norms(self, loss: str = "sigmoid", layers: Sequence[nn.Module] | None = None
              ) -> torch.Tensor:
        """Per-layer squared confounding-label norms (B, L), computed once per (loss, layers)."""
        key = (loss, None if layers is None else tuple(id(m) for m in layers))
        if key not in self._norms:
            self._norms[key] = _confounding_norms(self.model, self.x, loss, layers).norms
        return self._norms[key]


class Detector:
    """The contract every score follows (as pytorch-ood's ``Detector``, sign flipped).

    ``Detector(model, **options)`` builds it; ``fit(x, y=None, ...)`` learns from
    in-distribution images ``x`` (B, C, H, W) (and labels ``y`` where needed) and returns
    ``self`` — a no-op for scores that need no fitting; ``score(x)`` returns a ``(B,)``
    tensor, **higher = more in-distribution**; ``score_batch(batch)`` does the same for a
    :class:`Batch` (shared forward passes). Calling the detector is ``score``.
    """

    requires_fit = False

    def __init__(self, model: nn.Module) -> None:
        self.model = check_model(model)

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Detector:
        """Nothing to learn for this score; returns ``self``."""
        check_inputs(self.model, x)
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The score (B,) of images ``x`` (B, C, H, W), higher = more in-distribution."""
        return self.score_batch(Batch(self.model, x))

    def score_batch(self, batch: Batch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x)


class LogitScore(Detector):
    """A score of the logits alone, ``fn(z, **options)`` (e.g. :func:`max_softmax`)."""

    def __init__(self, model: nn.Module, fn: Callable[..., torch.Tensor], **options) -> None:
        super().__init__(model)
        self.fn, self.options = fn, options

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return self.fn(batch.logits, **self.options)


class ODINScore(Detector):
    """:func:`odin` with a fixed ``temperature`` and ``epsilon`` (pixel units)."""

    def __init__(self, model: nn.Module, temperature: float = 1000.0,
                 epsilon: float = 0.0014) -> None:
        super().__init__(model)
        self.temperature = check_number(temperature, "temperature", low=0.0, low_open=True)
        self.epsilon = check_epsilon(epsilon, "epsilon")

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return odin(self.model, batch.x, self.temperature, self.epsilon)


class Mahalanobis(Detector):
    """Mahalanobis distance of penultimate features to the closest class (Lee et al. 2018).

    ``fit(x, y)`` estimates class means ``μ_c`` and one tied covariance
    ``Σ = 1/N Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ`` of the features ``h`` (B, D) of in-distribution
    training images (float64; the inverse is a pseudo-inverse that drops eigenvalues below
    ``D·eps(dtype of h)·λ_max``). ``score(x)`` = ``−min_c (h − μ_c)ᵀ Σ⁺ (h − μ_c)`` (B,) — the
    **squared** distance, negated (≤ 0; higher = closer to a class = in-distribution). Purely
    feature-space: no input preprocessing (the paper's optional ODIN-like step is left out).
    ``fit_features`` / ``score_features`` do the same on given features.

    ``h`` is the input of the model's final ``nn.Linear``
    (:func:`tutorial_utils.forward.features_and_logits`).

    Degenerate fits: one class is allowed (the distance to its mean). With fewer images than
    feature dimensions (``N − C < D``) Σ is singular and the pseudo-inverse measures distances
    only inside the span of the training features' within-class variation (directions the
    training set never varies along are ignored: a documented shrinkage, not an error). A fit
    without any within-class variance — one image, one image per class, or identical features
    — is a ``ValueError``: every input would score 0.
    """

    requires_fit = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.classes: torch.Tensor | None = None
        self.whitening: torch.Tensor | None = None  # (D, r): Σ⁺ = whitening @ whitening.T
        self.centres: torch.Tensor | None = None  # (C, r): whitened class means

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Mahalanobis:
        """Fit on in-distribution images ``x`` (N, C, H, W) with labels ``y`` (N,)."""
        if y is None:
            raise TypeError("Mahalanobis.fit needs the labels y (N,) of the in-distribution "
                            "images x: fit(x_train, y_train)")
        check_inputs(self.model, x)
        return self._fit(forward.features_and_logits(self.model, x)[0], y, "x")

    def fit_features(self, h: torch.Tensor, y: torch.Tensor) -> Mahalanobis:
        """Fit on features ``h`` (N, D) with labels ``y`` (N,); returns ``self``."""
        return self._fit(h, y, "h")

    def _fit(self, h: torch.Tensor, y: torch.Tensor, name: str) -> Mahalanobis:
        h64 = check_matrix(h, "h", "(N, D)").double()
        classes, idx = check_labels(y, len(h)).to(h.device).unique(return_inverse=True)
        onehot = F.one_hot(idx, len(classes)).double()  # (N, C)
        means = (onehot.T @ h64) / onehot.sum(0)[:, None]
        centred = h64 - means[idx]
        evals, evecs = torch.linalg.eigh(centred.T @ centred / len(h))
        if not evals.max() > 0:
            raise ValueError(
                f"{name} gives features without any within-class variance ({len(h)} image(s) "
                f"in {len(classes)} class(es)): the covariance is zero and every input would "
                f"score 0; fit on several images per class (N > number of classes)")
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
        if check_matrix(h, "h", "(B, D)").shape[1] != self.whitening.shape[0]:
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
        return super().score(x)

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return self.score_features(batch.features[0])


class GradNormScore(Detector):
    """:func:`gradnorm` from the batch's shared features and logits."""

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return gradnorm_from_features(*batch.features)


class ConfoundingNorm(Detector):
    """:func:`confounding_score`: ``sign · Σ_layers`` squared confounding-label norms."""

    def __init__(self, model: nn.Module, layers: Sequence[nn.Module] | None = None,
                 loss: str = "sigmoid", sign: int = -1) -> None:
        super().__init__(model)
        self.layers, self.loss = layers, check_confounding_loss(loss)
        self.sign = check_sign(sign)

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return self.sign * batch.norms(self.loss, self.layers).sum(1)


class ConfoundingDetector(Detector):
    """A small detector H(·) on confounding-label gradients (Lee & AlRegib 2020, 2023).

    Features: ``log`` of the per-layer squared gradient norms for the all-ones label
    (:func:`~tutorial_utils.gradients.confounding_gradient_norms`), standardised; H is a
    scikit-learn ``LogisticRegression``. ``fit(x_id, x_novel=...)`` trains it on
    in-distribution images (label 1) against **one** challenge / OOD set (label 0);
    ``score(x)`` is P(in-distribution) (B,) in [0, 1].

    Because H has seen that novel set, its AUROC *on that set* is a training score, not a
    detection result: **test it on a different challenge / OOD set** (and on held-out ID data).
    """

    requires_fit = True

    def __init__(self, model: nn.Module, loss: str = "sigmoid",
                 layers: Sequence[nn.Module] | None = None, C: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__(model)
        self.loss = check_confounding_loss(loss)
        self.C = check_number(C, "C", low=0.0, low_open=True)
        self.layers, self.seed = layers, check_seed(seed)
        self.pipeline = None
        self.layer_names: list[str] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``log`` per-layer squared gradient norms (B, L), float64."""
        out = _confounding_norms(self.model, x, self.loss, self.layers)
        self.layer_names = out.names
        return out.norms.double().clamp_min(1e-300).log()

    def fit(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
            x_novel: torch.Tensor | None = None) -> ConfoundingDetector:
        """Train H on in-distribution images ``x`` (label 1) against ``x_novel`` (label 0);
        ``y`` is not used (H tells ID from novel, not classes). Returns ``self``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if x_novel is None:
            raise TypeError("ConfoundingDetector.fit needs the novel images it learns to tell "
                            "apart: fit(x_id, x_novel=x_novel)")
        check_inputs(self.model, x, "x")
        check_inputs(self.model, x_novel, "x_novel")
        feats = torch.cat([self.features(x), self.features(x_novel)]).cpu().numpy()
        labels = [1] * len(x) + [0] * len(x_novel)
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.C, max_iter=1000, random_state=self.seed))
        self.pipeline.fit(feats, labels)
        return self

    def _require_fitted(self) -> None:
        if self.pipeline is None:
            raise NotFittedError("this ConfoundingDetector is not fitted yet: call "
                                 ".fit(x_id, x_novel=x_novel) first")

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """P(in-distribution) (B,) in [0, 1], on ``x``'s device and dtype."""
        self._require_fitted()
        return super().score(x).to(dtype=x.dtype, device=x.device)

    def score_batch(self, batch: Batch) -> torch.Tensor:
        self._require_fitted()
        return self.score_norms(batch.norms(self.loss, self.layers))

    def score_norms(self, norms: torch.Tensor) -> torch.Tensor:
        """P(in-distribution) (B,) from per-layer squared norms (B, L) computed elsewhere (the
        same loss and layers as in ``fit``), so one backward can feed several scores."""
        self._require_fitted()
        feats = norms.double().clamp_min(1e-300).log().cpu().numpy()
        if feats.ndim != 2 or feats.shape[1] != self.pipeline.n_features_in_:
            raise ValueError(f"norms must be (B, {self.pipeline.n_features_in_}) per-layer norms, "
                             f"got {tuple(norms.shape)}")
        return torch.as_tensor(self.pipeline.predict_proba(feats)[:, 1])


class MCDropoutScore(Detector):
    """``−`` the epistemic uncertainty (mutual information, nats) of :func:`mc_dropout` with
    ``passes`` seeded dropout passes."""

    def __init__(self, model: nn.Module, passes: int = 20, seed: int = 0) -> None:
        super().__init__(model)
        self.passes, self.seed = check_passes(passes, "passes"), check_seed(seed)

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return -mc_dropout(self.model, batch.x, self.passes, seed=self.seed).epistemic


class EnsembleScore(Detector):
    """``−`` the epistemic uncertainty (mutual information, nats) over the members of a deep
    ensemble (:func:`ensemble_uncertainty`); ``model`` is the ensemble. The members are
    trained already, so ``fit`` learns nothing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        if not callable(getattr(model, "member_logits", None)):
            raise TypeError("model must be an ensemble (architectures.Ensemble, a module with "
                            "member_logits(x) -> (M, B, K)), e.g. models.load('signs-ensemble')")

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return -ensemble_uncertainty(self.model, batch.x).epistemic


class RandomScore(Detector):
    """Uniform noise in [0, 1) (B,): the chance floor (AUROC 0.5). Call ``n = 1, 2, …`` of the
    detector draws from a CPU generator seeded with ``seed + n``, so runs repeat exactly and
    successive batches get different noise."""

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        super().__init__(model)
        self.seed, self.calls = check_seed(seed), 0

    def score_batch(self, batch: Batch) -> torch.Tensor:
        self.calls += 1
        gen = torch.Generator().manual_seed(self.seed + self.calls)
        return torch.rand(len(batch.x), generator=gen)
