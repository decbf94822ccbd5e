"""Target layers: finding them, and gradients with respect to their activations.

Every CAM method (``tutorial_utils.cam``) starts here: one forward pass that captures the
activations ``A`` (B, C, h, w) of a *target layer* and one backward pass that gives the gradient
of a per-sample score with respect to them.

==================================  ==========================================================
function                            what it returns
==================================  ==========================================================
default_target_layer                the module whose output CAM methods explain
resolve_layer                       ``layer`` checked to be a submodule, or the default one
layer_activations_and_gradients     ``A`` and ``∂(Σ_b s_b)/∂A`` for per-sample scores ``s`` (B,)
layer_logit_gradients               ``A`` and ``∂z_k/∂A`` for all K logits at once (one batched
                                    backward)
==================================  ==========================================================

The layer is read with the hook of :func:`tutorial_utils.forward.capture_layer`, and a
``target`` is anything :func:`tutorial_utils.forward.target_scores` scores: an int, one class
per sample, ``None`` (the prediction) or a callable on the logits ``fn(z) -> (B,)``. The model
runs in eval mode (restored afterwards), its parameters are frozen during the pass
(``requires_grad`` flags restored), ``.grad`` fields are never written and no hook is left behind.

References
----------
- R. R. Selvaraju et al., "Grad-CAM: visual explanations from deep networks via gradient-based
  localization", ICCV 2017.
- J. Gildenblat et al., pytorch-grad-cam (target-layer conventions for torchvision models).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tutorial_utils._checks import (
    check_callable,
    check_inputs,
    check_model,
    require_autograd,
)
from tutorial_utils.forward import capture_layer, target_scores
from tutorial_utils.utils import preserved_state

__all__ = [
    "default_target_layer",
    "resolve_layer",
    "layer_activations_and_gradients",
    "layer_logit_gradients",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def _check_layer(model: nn.Module, layer: object) -> nn.Module:
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module (a submodule of model), "
                        f"got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError("layer must be a submodule of model (e.g. model.layer4[-1])")
    return layer


def default_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose output CAM methods explain by default (the last convolutional block).

    * zoo models (:class:`~tutorial_utils.models.SmallCNN`): ``model.target_layer``;
    * ResNet-like models (a ``layer4`` stage): ``model.layer4[-1]``;
    * VGG, MobileNetV2/V3, DenseNet, AlexNet (a ``features`` ``nn.Sequential`` that holds a
      convolution): ``model.features[-1]`` — VGG's last max-pool, MobileNet's last
      conv-BN-activation block, DenseNet's ``norm5``;
    * otherwise the last ``nn.Conv2d`` in ``model.modules()`` order.

    Raises ``ValueError`` ("pass layer=...") for a model without any convolution.
    """
    check_model(model)
    found = getattr(model, "target_layer", None)
    if isinstance(found, nn.Module):
        return found
    stage = getattr(model, "layer4", None)
    if isinstance(stage, nn.Sequential) and len(stage) > 0:
        return stage[-1]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and len(features) > 0 and any(
            isinstance(m, nn.Conv2d) for m in features.modules()):
        return features[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer to explain; pass "
                     "layer=... (the nn.Module whose (B, C, h, w) output the map should use)")


def resolve_layer(model: nn.Module, layer: nn.Module | None) -> nn.Module:
    """``layer`` if it is a submodule of ``model``; ``None`` gives :func:`default_target_layer`."""
    return default_target_layer(model) if layer is None else _check_layer(model, layer)


def _tracked_forward(model: nn.Module, x: torch.Tensor, layer: nn.Module
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and the layer output (a grad-tracking leaf); parameters frozen.

    Call inside ``preserved_state(model)`` (which restores the ``requires_grad`` flags).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    with capture_layer(layer, track=True) as store, torch.enable_grad():
        z = model(x.detach())
    if store["calls"] != 1:
        raise ValueError(f"layer must run exactly once in the forward pass, it ran "
                         f"{store['calls']} times; pass another layer=...")
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError("model must return logits of shape (B, K)")
    return z, store["output"]


def _layer_pass(model: nn.Module, x: torch.Tensor, layer: nn.Module | None, target: object,
                score_fn: ScoreFn | None, caller: str = "layer_activations_and_gradients"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, ∂(Σ_b s_b)/∂A, z): the shared engine of every CAM method (works under no_grad)."""
    require_autograd(caller)
    check_inputs(model, x)
    layer = resolve_layer(model, layer)
    if score_fn is not None and target is not None:
        raise ValueError("give either target or score_fn, not both")
    if score_fn is None:
        def score_fn(z: torch.Tensor) -> torch.Tensor:
            return target_scores(target, z)
    else:
        check_callable(score_fn, "score_fn")
    with preserved_state(model):
        z, act = _tracked_forward(model, x, layer)
        with torch.enable_grad():
            scores = score_fn(z)
            if not isinstance(scores, torch.Tensor) or scores.shape != (x.shape[0],):
                raise ValueError(f"score_fn must return one scalar per sample, shape "
                                 f"({x.shape[0]},)")
            (dact,) = torch.autograd.grad(scores.sum(), act)
    return act.detach(), dact, z.detach()


def layer_activations_and_gradients(model: nn.Module, x: torch.Tensor,
                                    layer: nn.Module | None = None, target=None,
                                    score_fn: ScoreFn | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``A`` of ``layer`` and the gradient of per-sample scores with respect to them.

    Args:
        model: classifier returning logits (B, K); run in eval mode (restored afterwards).
        x: images (B, C, H, W), pixels in [0, 1].
        layer: the module to explain (default :func:`default_target_layer`).
        target: int, one class per sample, or ``None`` (the prediction): the score is the
            logit ``s_b = z_b[target_b]``; or a callable on the logits ``fn(z) -> (B,)``, e.g.
            :func:`tutorial_utils.forward.contrast_target` (``CE(z, Q)``).
        score_fn: the same as a callable ``target`` (kept for calls that name it).

    Returns:
        ``(A, dA)`` both (B, C, h, w) detached, with ``dA = ∂(Σ_b s_b)/∂A`` from one
        ``torch.autograd.grad`` call. In eval mode samples do not interact, so ``dA[b]`` is
        ``∂s_b/∂A[b]`` (units: score per unit activation).
    """
    act, dact, _ = _layer_pass(model, x, layer, target, score_fn)
    return act, dact


def layer_logit_gradients(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A`` (B, C, h, w), ``G`` (B, K, C, h, w) with ``G[b, k] = ∂z_{b,k}/∂A[b]``, logits (B, K).

    One forward pass and **one batched backward** (``is_grads_batched``: the K vector-Jacobian
    products are vectorised with vmap), instead of K backward passes. Any per-sample score
    linear in the logits with weights ``c`` (B, K) then has layer gradient ``Σ_k c_k G[:, k]``.
    """
    require_autograd("layer_logit_gradients (and layer_view, contrast_cam_all)")
    check_inputs(model, x)
    layer = resolve_layer(model, layer)
    with preserved_state(model), torch.enable_grad():
        z, act = _tracked_forward(model, x, layer)
        k = z.shape[1]
        eye = torch.eye(k, dtype=z.dtype, device=z.device)
        seeds = eye[:, None, :].expand(k, z.shape[0], k)  # (K, B, K): one-hot per logit
        try:
            (g,) = torch.autograd.grad(z, act, grad_outputs=seeds, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: fall back to K backwards
            g = torch.stack([torch.autograd.grad(z[:, i].sum(), act, retain_graph=i < k - 1)[0]
                             for i in range(k)])
    return act.detach(), g.transpose(0, 1), z.detach()
