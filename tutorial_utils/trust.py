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
last_linear_layer           the final ``nn.Linear`` (``model.fc`` or the last one)
last_layer_gradients        per-sample ``∂MSE(z, 1/K)/∂W`` (B, K, D) and logits
gradtrust                   GradTrust per image (B,), higher = more trust
gradtrust_from_gradients    the score from gradients (B, K, D)
gradtrust_from_logits       the closed form ``max d⁴ / mean d⁴`` (the oracle)
voice                       :class:`Voice`: explanation, uncertainty, IoU, SNR
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

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import check_inputs, check_model, check_positive_int
from tutorial_utils.cam import contrast_cam_all, grad_cam, normalize_cams
from tutorial_utils.utils import preserved_state

__all__ = [
    "last_linear_layer",
    "last_layer_gradients",
    "gradtrust",
    "gradtrust_from_gradients",
    "gradtrust_from_logits",
    "Voice",
    "voice",
    "explanation_iou",
    "map_snr",
]

# --------------------------------------------------------------------------------------
# GradTrust
# --------------------------------------------------------------------------------------


def last_linear_layer(model: nn.Module) -> nn.Linear:
    """The layer whose weight GradTrust differentiates: ``model.fc`` if it is an ``nn.Linear``
    (every zoo classifier, torchvision ResNets), else the last ``nn.Linear`` in
    ``model.modules()``. Raises ``ValueError`` for a model without one."""
    check_model(model)
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model ({type(model).__name__}) has no nn.Linear layer; GradTrust "
                         "needs a final linear layer (pass layer=<the nn.Linear producing the "
                         "logits>)")
    return linears[-1]


@contextlib.contextmanager
def _capture_input(layer: nn.Module) -> Iterator[dict]:
    """The input and output of ``layer`` during a forward pass (hook removed on exit)."""
    store: dict = {"calls": 0}

    def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        store["calls"] += 1
        store["input"], store["output"] = inputs[0], output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _check_layer(model: nn.Module, layer: nn.Module | None) -> nn.Linear:
    if layer is None:
        return last_linear_layer(model)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"layer must be the model's final nn.Linear, got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a submodule of model (e.g. model.fc)")
    return layer


def last_layer_gradients(model: nn.Module, x: torch.Tensor, layer: nn.Linear | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients ``∂MSE(z_b, 1/K·1)/∂W`` of the final linear layer, batched.

    One forward pass in eval mode captures the features ``h`` (B, D) entering ``layer``
    (default :func:`last_linear_layer`); ``torch.func.vmap(grad(...))`` over the samples then
    differentiates ``mean_k (W h_b + bias − 1/K)_k²`` with respect to ``W``. This is the
    full-network gradient of that loss with respect to ``W`` (only ``h`` and ``z`` enter it),
    exactly what a per-image ``loss.backward()`` leaves in ``layer.weight.grad``, without
    writing any ``.grad`` field.

    Returns ``(grads, logits)``: (B, K, D) and (B, K). Raises ``ValueError`` when the layer's
    output is not the model's output (e.g. an ensemble that averages probabilities), when
    ``K < 2`` or when the layer does not run exactly once.
    """
    from torch.func import functional_call, grad, vmap

    check_inputs(model, x)
    layer = _check_layer(model, layer)
    with preserved_state(model), torch.no_grad(), _capture_input(layer) as store:
        z = model(x)
    if store["calls"] != 1:
        raise ValueError(f"layer must run exactly once in the forward pass, it ran "
                         f"{store['calls']} times")
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError("model must return logits of shape (B, K)")
    if store["output"].shape != z.shape or not torch.equal(store["output"], z):
        raise ValueError("layer's output is not the model's output: GradTrust needs the final "
                         "nn.Linear that produces the logits (pass layer=...)")
    k = z.shape[1]
    if k < 2:
        raise ValueError(f"GradTrust needs K >= 2 classes, the model has K={k}")
    h = store["input"]
    if h.dim() != 2:
        raise ValueError(f"the features entering layer must be (B, D), got {tuple(h.shape)}")
    params = {n: p.detach() for n, p in layer.named_parameters()}

    def loss(weight: torch.Tensor, hb: torch.Tensor) -> torch.Tensor:
        zb = functional_call(layer, {**params, "weight": weight}, (hb[None],))
        return F.mse_loss(zb, torch.full_like(zb, 1.0 / k))

    with torch.enable_grad():
        grads = vmap(grad(loss), in_dims=(None, 0))(params["weight"], h.detach())
    return grads, z


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
    if not torch.isfinite(logits).all():
        raise ValueError("logits contains NaN or infinite values")
    d4 = (logits.double() - 1.0 / logits.shape[1]).pow(4)
    return _max_over_mean(d4).to(logits.dtype)


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


def _check_maps(maps: object, name: str) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, H, W), "
                        f"got {type(maps).__name__}")
    if maps.dim() != 3 or maps.numel() == 0:
        raise ValueError(f"{name} must have shape (B, H, W), got {tuple(maps.shape)}")
    if not torch.is_floating_point(maps):
        raise TypeError(f"{name} must be floating point, got {maps.dtype}")
    if not torch.isfinite(maps).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return maps


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError(f"threshold must be a float in [0, 1), got {type(threshold).__name__}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must lie in [0, 1) (maps are min-max normalised to "
                         f"[0, 1]), got {threshold}")
    return float(threshold)


def explanation_iou(explanation: torch.Tensor, uncertainty: torch.Tensor,
                    threshold: float = 0.1) -> torch.Tensor:
    """IoU of ``explanation > threshold`` and ``uncertainty > threshold`` per image: (B,).

    Both maps (B, H, W) of the same shape; 0 where neither map exceeds the threshold.
    """
    e = _check_maps(explanation, "explanation")
    u = _check_maps(uncertainty, "uncertainty")
    if e.shape != u.shape:
        raise ValueError(f"explanation and uncertainty must have the same shape, got "
                         f"{tuple(e.shape)} and {tuple(u.shape)}")
    t = _check_threshold(threshold)
    a, b = e > t, u > t
    inter = (a & b).sum(dim=(1, 2)).to(e.dtype)
    union = (a | b).sum(dim=(1, 2)).to(e.dtype)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def map_snr(maps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ``mean / std`` of each map over all its pixels: (B,).

    Population std (``correction=0``); 0 where the map is constant (std = 0).
    """
    m = _check_maps(maps, "maps").flatten(1)
    std = m.std(dim=1, correction=0)
    return torch.where(std > 0, m.mean(dim=1) / std.clamp_min(1e-30), torch.zeros_like(std))


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
    threshold = _check_threshold(threshold)
    check_inputs(model, x)
    with preserved_state(model), torch.no_grad():
        pred = model(x).argmax(dim=1)
    contrast = contrast_cam_all(model, x, layer)  # (B, K, H, W)
    k = contrast.shape[1]
    if k < 2:
        raise ValueError(f"VOICE needs K >= 2 classes, the model has K={k}")
    keep = torch.ones(contrast.shape[:2], dtype=torch.bool, device=contrast.device)
    keep[torch.arange(len(pred), device=keep.device), pred] = False
    others = contrast[keep].view(contrast.shape[0], k - 1, *contrast.shape[2:])
    uncertainty = normalize_cams(others.var(dim=1, correction=0))
    explanation = grad_cam(model, x, target=pred, layer=layer)
    return Voice(explanation, uncertainty, explanation_iou(explanation, uncertainty, threshold),
                 map_snr(uncertainty))
