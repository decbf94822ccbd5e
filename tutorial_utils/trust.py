"""Trust in a prediction (GradTrust) and uncertainty of its explanation (VOICE).

**GradTrust** (Prabhushankar & AlRegib 2024, authors' ``demo.py``) asks how much the last
layer would have to change to make the network undecided. Per image:

1. loss ``MSE(z, 1/K·1)`` between the logits and the uniform vector (mean over the K entries);
2. its gradient ``G = ∂loss/∂W`` with respect to the final ``nn.Linear`` weight (K×D);
3. for each class row k, the variance over D of the squared gradient, ``v_k = var_d G[k,d]²``;
4. ``GradTrust = max_k v_k / mean_k v_k`` in ``[1, K]`` (**higher = more trust**).

For a linear last layer ``G = (2/K)·d·hᵀ`` with ``d = z − 1/K`` and ``h`` the features
entering the layer, so ``v_k = (16/K⁴)·d_k⁴·var_d(h_d²)``: the feature factor is the same for
every row and cancels, and ``GradTrust = max_k d_k⁴ / mean_k d_k⁴`` — **a function of the
logits alone**. The "gradient" reading is therefore a re-weighting of the logits, not
information the forward pass lacks: it rewards one logit standing far from ``1/K`` (often
the predicted class, but a strongly negative logit counts as well). This module computes the
gradient way (per-sample ``torch.func`` gradients of the last layer, batched) and offers the
logit formula (:func:`gradtrust_from_logits`) as its oracle. The score is per sample: the
authors' batch-mean loss would mix the images of a batch into one gradient. When every
``v_k`` is 0 (all logits at ``1/K``, or features with ``var(h²) = 0``) the ratio is 0/0 and
the score is defined as 1 (no class stands out: the bottom of the range).

**VOICE** (Prabhushankar & AlRegib, "Variance of induced contrastive explanations") asks how
uncertain an explanation is. For the prediction P, the explanation is a Grad-CAM map; its
uncertainty is the per-pixel variance of the ContrastCAMs "why P, rather than Q?" over every
Q ≠ P (one :func:`~tutorial_utils.cam.contrast_cam_all` call), min-max normalised per image.
Two numbers summarise them (authors' ``demo.py``): the IoU between explanation and
uncertainty, both thresholded at 0.1, and the SNR = mean/std of the uncertainty map.

==========================  ======================================================
name                        what it returns
==========================  ======================================================
last_layer_gradients        per-sample ``∂MSE(z, 1/K)/∂W`` (B, K, D) and logits
gradtrust                   GradTrust per image (B,), higher = more trust
gradtrust_from_gradients    the score from gradients (B, K, D)
gradtrust_from_logits       the closed form ``max d⁴ / mean d⁴`` (the oracle)
gradtrust_slides            the tutorial slides' definition (predicted vs top-k contrasts)
GradTrustScore              GradTrust as a detector (``fit`` / ``score``)
voice                       :class:`Voice`: explanation, uncertainty, IoU, SNR
explanation_uncertainty     VOICE's uncertainty map from ContrastCAMs of every Q
explanation_iou             IoU of two thresholded map batches (B,)
map_snr                     mean/std of each map (B,), 0 for a constant map
==========================  ======================================================

Trust curves (AUAC / AUFC) live in :mod:`tutorial_utils.metrics` (``auac``, ``aufc``).

References
----------
- M. Prabhushankar, G. AlRegib, "Counterfactual gradients-based quantification of prediction
  trust in neural networks", 2024 (code: github.com/olivesgatech/GradTrust).
- M. Prabhushankar, G. AlRegib, "VOICE: variance of induced contrastive explanations to
  quantify uncertainty in neural network interpretability", IEEE JSTSP 2024.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_classes,
    check_inputs,
    check_maps,
    check_positive_int,
    check_threshold,
)
from tutorial_utils.cam import contrast_cam_all, grad_cam
from tutorial_utils.forward import features_and_logits, final_linear, logits, normalize_maps
from tutorial_utils.gradients import per_sample_gradients
from tutorial_utils.uncertainty import Batch, Detector

__all__ = [
    "last_layer_gradients",
    "gradtrust",
    "gradtrust_from_gradients",
    "gradtrust_from_logits",
    "gradtrust_slides",
    "GradTrustScore",
    "Voice",
    "voice",
    "explanation_uncertainty",
    "explanation_iou",
    "map_snr",
]


# --------------------------------------------------------------------------------------
# GradTrust
# --------------------------------------------------------------------------------------


def last_layer_gradients(model: nn.Module, x: torch.Tensor, layer: nn.Linear | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients ``∂MSE(z_b, 1/K·1)/∂W`` of the final linear layer, batched.

    One forward pass in eval mode captures the features ``h`` (B, D) entering ``layer``
    (default :func:`tutorial_utils.forward.final_linear`), read by
    :func:`tutorial_utils.forward.features_and_logits`; the per-sample engine
    :func:`tutorial_utils.gradients.per_sample_gradients` (``vmap(grad(...))`` over the
    samples) then differentiates ``mean_k (W h_b + bias − 1/K)_k²`` with respect to ``W``.
    This is the full-network gradient of that loss with respect to ``W`` (only ``h`` and ``z``
    enter it),
    exactly what a per-image ``loss.backward()`` leaves in ``layer.weight.grad``, without
    writing any ``.grad`` field.

    Returns ``(grads, logits)``: (B, K, D) and (B, K). Raises ``ValueError`` when the layer's
    output is not the model's output (e.g. an ensemble that averages probabilities), when
    ``K < 2`` or when the layer does not run exactly once.
    """
    check_inputs(model, x)
    layer = final_linear(model) if layer is None else layer
    h, z = features_and_logits(model, x, None, layer=layer)
    k = z.shape[1]
    if k < 2:
        raise ValueError(f"GradTrust needs K >= 2 classes, the model has K={k}")

    def loss(zb: torch.Tensor, _hb: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(zb, torch.full_like(zb, 1.0 / k))

    grads = per_sample_gradients(layer, h, loss, params="weight")
    return grads["weight"], z


def gradtrust_from_gradients(grads: torch.Tensor) -> torch.Tensor:
    """GradTrust from last-layer gradients ``grads`` (B, K, D): ``max_k v_k / mean_k v_k`` with
    ``v_k = var_d grads[b, k, d]²`` (unbiased variance, as ``torch.var`` in the authors'
    code); 1 where every ``v_k`` is 0. Returns (B,) in ``[1, K]``."""
    if not isinstance(grads, torch.Tensor) or grads.dim() != 3:
        raise ValueError("grads must be a (B, K, D) tensor of last-layer gradients, got "
                         f"{getattr(grads, 'shape', type(grads).__name__)}")
    if grads.shape[1] < 2 or grads.shape[2] < 2:
        raise ValueError(f"grads needs K >= 2 classes and D >= 2 features, got shape "
                         f"{tuple(grads.shape)}")
    if not torch.is_floating_point(grads):
        raise TypeError(f"grads must be floating point (got {grads.dtype}); the result "
                        f"would be truncated to integers: use grads.float()")
    if not torch.isfinite(grads).all():
        raise ValueError("grads contains NaN or infinite values")
    v = grads.double().square().var(dim=2)  # (B, K)
    return _max_over_mean(v).to(grads.dtype)


def _max_over_mean(v: torch.Tensor) -> torch.Tensor:
    mean = v.mean(dim=1)
    ok = mean > 0
    return torch.where(ok, v.amax(dim=1) / torch.where(ok, mean, torch.ones_like(mean)),
                       torch.ones_like(mean))


def gradtrust_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The closed form of GradTrust for a linear last layer: ``max_k d_k⁴ / mean_k d_k⁴`` with
    ``d = z − 1/K`` (1 where ``d = 0``). ``logits`` (B, K) with K >= 2; returns (B,)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError("logits must be a (B, K) tensor, got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    if logits.shape[1] < 2:
        raise ValueError(f"logits needs K >= 2 classes, got K={logits.shape[1]}")
    if not torch.is_floating_point(logits):
        raise TypeError(f"logits must be floating point (got {logits.dtype}); the result "
                        f"would be truncated to integers: use logits.float()")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contains NaN or infinite values")
    d4 = (logits.double() - 1.0 / logits.shape[1]).pow(4)
    return _max_over_mean(d4).to(logits.dtype)


def gradtrust_slides(model: nn.Module, x: torch.Tensor, k: int = 3,
                     layer: nn.Linear | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """GradTrust as the tutorial slides define it, per image: ``(ratio (B,), trust (B,))``.

    "Variance of gradients of the predicted class / mean of variance of gradients of the top-k
    counterfactual classes", the gradients "obtained by backpropagating the loss between the
    predicted class and itself (numerator) and between the predicted class and the contrast
    classes (denominator)", the contrasts being the top-k predictions after P. Here: for a
    class c, ``G_c = ∂CE(z, c)/∂W = (p − e_c) hᵀ`` (K×D, the exact last-layer gradient of
    the cross-entropy with label c), ``v_c = var(G_c)`` over all K·D entries, and
    ``ratio = v_P / mean_{c ∈ top-k, c ≠ P} v_c``. Because ``Σ_j (p − e_c)_j = 0`` the entries
    have mean 0 and ``v_c ∝ ‖p − e_c‖²·mean_d h_d²``: the features cancel again, and the ratio
    is ``‖p − e_P‖² / mean_c ‖p − e_c‖²``, a function of the softmax alone.

    As printed the ratio is **small** for a confident prediction (the predicted class needs
    almost no change), so the trust score (higher = more trust, the course's convention) is
    ``trust = 1 / ratio``. ``k`` (1 ≤ k ≤ K−1) counts the contrast classes. Batched, no
    ``.grad`` written.
    """
    check_inputs(model, x)
    layer = final_linear(model) if layer is None else layer
    h, z = features_and_logits(model, x, None, layer=layer)
    n_classes = z.shape[1]
    k = check_positive_int(k, "k")
    if k > n_classes - 1:
        raise ValueError(f"k must be at most K-1 = {n_classes - 1} contrast classes, got {k}")
    p = z.double().softmax(1)
    top = z.topk(k + 1, dim=1).indices  # (B, k+1): P first, then the k contrasts
    eye = torch.eye(n_classes, dtype=p.dtype)
    a = p[:, None, :] - eye[top]  # (B, k+1, K): p − e_c for each class c
    grads = a[..., :, None] * h.double()[:, None, None, :]  # (B, k+1, K, D) = (p − e_c) hᵀ
    v = grads.flatten(2).var(dim=2)  # (B, k+1)
    ratio = v[:, 0] / v[:, 1:].mean(dim=1).clamp_min(1e-300)
    return ratio.to(z.dtype), (1.0 / ratio.clamp_min(1e-300)).to(z.dtype)


def gradtrust(model: nn.Module, x: torch.Tensor, layer: nn.Linear | None = None,
              batch_size: int = 256) -> torch.Tensor:
    """GradTrust of each image (B,), higher = more trust (range ``[1, K]``).

    Per-sample last-layer gradients of ``MSE(z, 1/K·1)`` (:func:`last_layer_gradients`, in
    chunks of ``batch_size``), scored by :func:`gradtrust_from_gradients`. Equals
    :func:`gradtrust_from_logits` of the model's logits up to rounding (the feature factor
    cancels), and does not depend on which other images share the batch.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    check_inputs(model, x)
    return torch.cat([gradtrust_from_gradients(last_layer_gradients(model, xb, layer)[0])
                      for xb in x.split(batch_size)])


class GradTrustScore(Detector):
    """:func:`gradtrust` as a detector: nothing to fit; ``score(x)`` (B,) in ``[1, K]``,
    higher = more trust."""

    def __init__(self, model: nn.Module, layer: nn.Linear | None = None,
                 batch_size: int = 256) -> None:
        super().__init__(model)
        self.layer, self.batch_size = layer, check_positive_int(batch_size, "batch_size")

    def score_batch(self, batch: Batch) -> torch.Tensor:
        return gradtrust(self.model, batch.x, self.layer, self.batch_size)


# --------------------------------------------------------------------------------------
# VOICE
# --------------------------------------------------------------------------------------


class Voice(NamedTuple):
    """VOICE for a batch: ``explanation`` (B, H, W) Grad-CAM of the prediction in [0, 1];
    ``uncertainty`` (B, H, W) per-pixel variance of the ContrastCAMs over Q ≠ P, min-max
    normalised; ``iou`` (B,) overlap of the two thresholded maps; ``snr`` (B,) mean/std of
    the uncertainty map."""

    explanation: torch.Tensor
    uncertainty: torch.Tensor
    iou: torch.Tensor
    snr: torch.Tensor


def explanation_iou(explanation: torch.Tensor, uncertainty: torch.Tensor,
                    threshold: float = 0.1) -> torch.Tensor:
    """IoU of ``explanation > threshold`` and ``uncertainty > threshold`` per image: (B,).

    Both maps (B, H, W) of the same shape; 0 where neither map exceeds the threshold.
    """
    e = check_maps(explanation, "explanation")
    u = check_maps(uncertainty, "uncertainty")
    if e.shape != u.shape:
        raise ValueError(f"explanation and uncertainty must have the same shape, got "
                         f"{tuple(e.shape)} and {tuple(u.shape)}")
    t = check_threshold(threshold)
    a, b = e > t, u > t
    inter = (a & b).sum(dim=(1, 2)).to(e.dtype)
    union = (a | b).sum(dim=(1, 2)).to(e.dtype)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def map_snr(maps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``mean / std`` of each map over all its pixels: (B,).

    Population std (``correction=0``); 0 where the map is constant (std = 0).
    """
    m = check_maps(maps, "maps").flatten(1)
    std = m.std(dim=1, correction=0)
    return torch.where(std > 0, m.mean(dim=1) / std.clamp_min(1e-30), torch.zeros_like(std))


def explanation_uncertainty(contrast_maps: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """VOICE's uncertainty of an explanation: the per-pixel population variance of the
    ContrastCAMs ``contrast_maps`` (B, K, H, W) over every Q ≠ P (``pred`` (B,) the
    predictions), min-max normalised per image (a constant variance map becomes zeros):
    (B, H, W) in [0, 1]."""
    if not isinstance(contrast_maps, torch.Tensor) or contrast_maps.dim() != 4:
        raise ValueError("contrast_maps must be (B, K, H, W) ContrastCAMs, got "
                         f"{getattr(contrast_maps, 'shape', type(contrast_maps).__name__)}")
    b, k = contrast_maps.shape[:2]
    if k < 2:
        raise ValueError(f"VOICE needs K >= 2 classes, the model has K={k}")
    pred = check_classes(pred, b, k, "pred", per_sample=True)  # ints only, one per image
    keep = torch.ones((b, k), dtype=torch.bool, device=contrast_maps.device)
    keep[torch.arange(b, device=keep.device), pred.to(keep.device)] = False
    others = contrast_maps[keep].view(b, k - 1, *contrast_maps.shape[2:])
    return normalize_maps(others.var(dim=1, correction=0))


def voice(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None,
          threshold: float = 0.1) -> Voice:
    """VOICE: the explanation of each prediction and the uncertainty of that explanation.

    Args:
        model: classifier returning logits (B, K), K >= 2 (K >= 3 for a non-zero variance).
        x: images (B, C, H, W), pixels in [0, 1].
        layer: target layer of the CAMs (default: the last conv block).
        threshold: the IoU threshold applied to both maps (authors: 0.1).

    The explanation is the Grad-CAM of the predicted class P; the uncertainty is the
    per-pixel population variance over Q ≠ P of the (min-max normalised) ContrastCAMs of one
    :func:`~tutorial_utils.cam.contrast_cam_all` call, then min-max normalised per image
    (a constant variance map becomes zeros, SNR 0). The model's mode, ``requires_grad``
    flags and hooks are left as they were.
    """
    threshold = check_threshold(threshold)
    check_inputs(model, x)
    pred = logits(model, x, check=False).argmax(dim=1)
    contrast = contrast_cam_all(model, x, layer=layer)  # (B, K, H, W)
    uncertainty = explanation_uncertainty(contrast, pred)
    explanation = grad_cam(model, x, target=pred, layer=layer)
    return Voice(explanation, uncertainty, explanation_iou(explanation, uncertainty, threshold),
                 map_snr(uncertainty))
