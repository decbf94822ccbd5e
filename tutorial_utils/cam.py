"""Class activation maps: Grad-CAM, Grad-CAM++, CounterfactualCAM and ContrastCAM.

One call style for every map, ``fn(model, x, target=None, layer=None, **options)`` (as
pytorch-grad-cam / captum)::

    maps = grad_cam(model, x, target=None, layer=None)            # (B, H, W) in [0, 1]
    raw = grad_cam(model, x, target, raw=True)                    # (B, h, w) >= 0
    why_not = contrast_cam(model, x, contrast=q)                  # "why P, rather than q?"
    same = grad_cam(model, x, target=contrast_target(q))          # ContrastCAM, spelt out
    every_q = contrast_cam_all(model, x)                          # (B, K, H, W), one backward

``target`` is the class whose decision is explained: an int, one class per image, ``None`` (the
prediction) or a callable on the logits ``fn(z) -> (B,)`` whose gradient is explained instead
of a logit (:mod:`tutorial_utils.forward`; pytorch-grad-cam's "targets"). ContrastCAM is
Grad-CAM of the callable :func:`~tutorial_utils.forward.contrast_target` ``CE(z, Q)``.

Every map is ``ReLU(Σ_c α_c A_c)`` over the channels of the target layer's activations
``A`` (B, C, h, w) (default layer: :func:`~tutorial_utils.layers.default_target_layer`);
only the channel weights ``α`` (B, C) differ:

==================  ============================================  ================================
method              α_c                                           question
==================  ============================================  ================================
grad_cam            ``mean_uv ∂z_t/∂A_c``                         "why t?"
counterfactual_cam  ``−mean_uv ∂z_t/∂A_c``                        "what if this region were
                                                                  absent?"
contrast_cam        ``mean_uv ∂CE(z, Q)/∂A_c`` (no sign flip)     "why P, rather than Q?"
grad_cam_pp         ``Σ_uv a_c(u,v) ReLU(∂z_t/∂A_c(u,v))`` with   "why t?" (several instances)
                    ``a = g² / (2g² + (Σ_uv A_c) g³)``
==================  ============================================  ================================

For one image, :func:`layer_view` keeps the activations and the gradients of *every* logit
(one forward, one batched backward), so every map above — for any target or contrast class —
is a cheap linear combination (:class:`LayerView`); :func:`gradcam_steps` returns every
intermediate of the Grad-CAM recipe for the figure that shows it.

**Transformers: CAMs on the token grid.** A transformer block outputs tokens (B, N, C), not
a map. Every function here takes ``reshape=``, a callable turning the target layer's output —
and, identically, its gradient — into (B, C, h, w) (pytorch-grad-cam's ``reshape_transform``).
``reshape=None`` (the default) uses the model's own ``tokens_to_map`` when the model has a
``token_grid`` (the zoo's :class:`~tutorial_utils.architectures.SignViT`: drop the class token,
lay the h·w patch tokens out row-major) and no reshape otherwise (a CNN layer already is a map);
:func:`resolve_reshape` says which one a call uses.

``raw=True`` returns the layer-resolution map after the ReLU; otherwise it is upsampled
bilinearly (``align_corners=False``) to the input size and min-max normalised per image (a
constant map becomes zeros). Maps are on the input's device; the model's mode,
``requires_grad`` flags and hooks are left as they were.

References
----------
- R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh, D. Batra, "Grad-CAM: visual
  explanations from deep networks via gradient-based localization", ICCV 2017
  (Grad-CAM; the counterfactual explanation with negated gradients).
- A. Chattopadhay, A. Sarkar, P. Howlader, V. N. Balasubramanian, "Grad-CAM++: generalized
  gradient-based visual explanations for deep convolutional networks", WACV 2018.
- M. Prabhushankar, G. Kwon, D. Temel, G. AlRegib, "Contrastive explanations in neural
  networks", ICIP 2020 (ContrastCAM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_class,
    check_images,
    require_autograd,
    resolve_classes,
)
from tutorial_utils.forward import ContrastTarget, contrast_target, normalize_maps
from tutorial_utils.gradients import contrast_directions
from tutorial_utils.layers import layer_activations_and_gradients, layer_logit_gradients

__all__ = [
    "grad_cam",
    "grad_cam_pp",
    "counterfactual_cam",
    "contrast_cam",
    "contrast_cam_all",
    "contrast_target",
    "cam_from_weights",
    "resolve_reshape",
    "gradcam_weights",
    "gradcam_pp_weights",
    "LayerView",
    "layer_view",
    "gradcam_steps",
]

WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Reshape = Callable[[torch.Tensor], torch.Tensor]


def resolve_reshape(model: nn.Module, reshape: Reshape | None) -> Reshape | None:
    """The reshape transform a CAM call uses: ``reshape`` if given (checked callable),
    else ``model.tokens_to_map`` for a model with a ``token_grid`` (zoo transformers), else
    ``None`` (the layer output is used as it is)."""
    if reshape is not None:
        if not callable(reshape):
            raise TypeError(f"reshape must be a callable (B, N, C) -> (B, C, h, w) or None, got "
                            f"{type(reshape).__name__}")
        return reshape
    if getattr(model, "token_grid", None) is not None and callable(
            getattr(model, "tokens_to_map", None)):
        return model.tokens_to_map
    return None


def _apply_reshape(fn: Reshape | None, t: torch.Tensor, lead: int = 1) -> torch.Tensor:
    """``fn`` on a layer tensor whose first ``lead`` dims are batch-like (1: (B, ...);
    2: (B, K, ...) of per-logit gradients), checked to give (…, C, h, w)."""
    if fn is None:
        return t
    flat = t.flatten(0, lead - 1) if lead > 1 else t
    out = fn(flat)
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != flat.shape[0]:
        raise ValueError(f"reshape must return a (B, C, h, w) tensor, got "
                         f"{getattr(out, 'shape', type(out).__name__)} from input "
                         f"{tuple(flat.shape)}")
    return out.unflatten(0, t.shape[:lead]) if lead > 1 else out


# --------------------------------------------------------------------------------------
# Base machinery
# --------------------------------------------------------------------------------------


def _check_acts_alpha(acts: object, alpha: object) -> None:
    if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
        raise ValueError(f"acts must be layer activations of shape (B, C, h, w), got "
                         f"{getattr(acts, 'shape', type(acts).__name__)}")
    if not isinstance(alpha, torch.Tensor) or alpha.dim() not in (2, 3) or \
            alpha.shape[0] != acts.shape[0] or alpha.shape[-1] != acts.shape[1]:
        raise ValueError(f"alpha must be channel weights (B, C) or (B, M, C) with B, C = "
                         f"{tuple(acts.shape[:2])}, got "
                         f"{getattr(alpha, 'shape', type(alpha).__name__)}")


def cam_from_weights(acts: torch.Tensor, alpha: torch.Tensor, size: tuple[int, int] | None,
                     raw: bool = False) -> torch.Tensor:
    """``ReLU(Σ_c α_c A_c)`` for activations ``acts`` (B, C, h, w) and weights ``alpha``.

    ``alpha`` is (B, C) -> maps (B, ·, ·), or (B, M, C) -> M maps per image (B, M, ·, ·).
    ``raw=True`` stops after the ReLU (layer resolution); otherwise the maps are upsampled
    bilinearly (``align_corners=False``) to ``size`` and min-max normalised.
    """
    _check_acts_alpha(acts, alpha)
    several = alpha.dim() == 3
    a = alpha if several else alpha[:, None]
    maps = torch.relu(torch.einsum("bmc,bchw->bmhw", a, acts))
    if not raw:
        maps = normalize_maps(F.interpolate(maps, size=size, mode="bilinear",
                                            align_corners=False))
    return maps if several else maps[:, 0]


def _check_spatial(acts: torch.Tensor) -> None:
    """A CAM needs a layer with a spatial map: (B, C, h, w) with h·w > 1."""
    if acts.dim() != 4:
        raise ValueError(f"layer output must be (B, C, h, w) for a CAM, got {tuple(acts.shape)}; "
                         "pass layer=<a convolutional block> or reshape=<tokens -> map>")
    if acts.shape[-2] * acts.shape[-1] == 1:
        raise ValueError(f"layer has a 1x1 output {tuple(acts.shape)}: its map is one number, "
                         "which the upsampling and normalisation would stretch into a constant "
                         "picture; pass layer=<a convolutional block before the pooling>")


def _cam(model: nn.Module, x: torch.Tensor, layer: nn.Module | None, target,
         weigh: WeightFn, raw: bool, caller: str, reshape: Reshape | None = None
         ) -> torch.Tensor:
    """Shared engine: one forward, one backward, weights ``weigh(A, dA)`` (B, C), the map."""
    require_autograd(caller)
    fn = resolve_reshape(model, reshape)
    acts, grads = layer_activations_and_gradients(model, x, layer, target)
    acts, grads = _apply_reshape(fn, acts), _apply_reshape(fn, grads)
    _check_spatial(acts)
    return cam_from_weights(acts, weigh(acts, grads), x.shape[-2:], raw)


def _check_acts_grads(acts: object, grads: object) -> None:
    for name, t in (("acts", acts), ("grads", grads)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a (B, C, h, w) tensor, got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    if acts.shape[1:] != grads.shape[1:] or acts.shape[0] not in (1, grads.shape[0]):
        raise ValueError(f"grads must have the shape of acts {tuple(acts.shape)} (acts may have "
                         f"a batch of 1), got {tuple(grads.shape)}")


def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's ``α_c = mean_{u,v} ∂y/∂A_c(u, v)``: (B, C)."""
    _check_acts_grads(acts, grads)
    return grads.mean(dim=(2, 3))


def gradcam_pp_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ weights (Chattopadhay et al. 2018, closed form under ``Y = exp(S)``).

    With ``g = ∂S/∂A_c(u, v)``, the higher derivatives of ``exp(S)`` reduce to powers of g:
    ``a_c(u, v) = g² / (2 g² + (Σ_{u',v'} A_c(u', v')) g³)`` (0 where ``g = 0``) and
    ``α_c = Σ_{u,v} a_c(u, v) ReLU(g)``: (B, C).
    """
    _check_acts_grads(acts, grads)
    g2 = grads.square()
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads
    ok = (grads != 0) & (denom != 0)
    a = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(g2))
    return (a * torch.relu(grads)).sum(dim=(2, 3))


def _negated(weigh: WeightFn) -> WeightFn:
    return lambda acts, grads: -weigh(acts, grads)


# --------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: nn.Module | None = None,
             *, raw: bool = False, reshape: Reshape | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) of the logit ``z_target``.

    Args:
        model: classifier returning logits (B, K).
        x: images (B, C, H, W), pixels in [0, 1].
        target: int, one class per image, ``None`` (the prediction) or a callable on the
            logits ``fn(z) -> (B,)`` (e.g. :func:`~tutorial_utils.forward.contrast_target`).
        layer: target layer (default: the last conv block).
        raw: return ``ReLU(Σ_c α_c A_c)`` at layer resolution (B, h, w), in logit units.
        reshape: callable turning the layer's output (e.g. tokens (B, N, C)) into
            (B, C, h, w), applied to activations and gradients alike; default
            :func:`resolve_reshape` (a zoo transformer's ``tokens_to_map``, else none).

    Returns:
        (B, H, W) maps in [0, 1] (or the raw maps).
    """
    return _cam(model, x, layer, target, gradcam_weights, raw, "grad_cam", reshape)


def counterfactual_cam(model: nn.Module, x: torch.Tensor, target=None,
                       layer: nn.Module | None = None, *, raw: bool = False,
                       reshape: Reshape | None = None) -> torch.Tensor:
    """CounterfactualCAM (Selvaraju et al. 2017): Grad-CAM with weights ``−α_c``.

    Highlights regions whose removal would *increase* ``z_target`` ("what if this region
    were absent?"). Same arguments and shapes as :func:`grad_cam`.
    """
    return _cam(model, x, layer, target, _negated(gradcam_weights), raw, "counterfactual_cam",
                reshape)


def grad_cam_pp(model: nn.Module, x: torch.Tensor, target=None, layer: nn.Module | None = None,
                *, raw: bool = False, reshape: Reshape | None = None) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018) with the closed-form weights of
    :func:`gradcam_pp_weights`, computed from first-order gradients of ``z_target``.
    Same arguments and shapes as :func:`grad_cam`."""
    return _cam(model, x, layer, target, gradcam_pp_weights, raw, "grad_cam_pp", reshape)


def contrast_cam(model: nn.Module, x: torch.Tensor, target=None,
                 layer: nn.Module | None = None, *, contrast=None, raw: bool = False,
                 reshape: Reshape | None = None) -> torch.Tensor:
    """ContrastCAM (Prabhushankar et al. 2020): "why P, rather than Q?".

    Grad-CAM of the score ``CE(z, Q)`` instead of a logit, with no sign flip
    (``grad_cam(model, x, contrast_target(contrast, target), layer)``): by
    ``∂CE/∂z = p − e_Q`` the channel weights are ``α = (p − e_Q)ᵀ J`` with
    ``J[k, c] = mean_uv ∂z_k/∂A_c``.

    Args:
        target: P, the class whose decision is explained — int, one class per image, or
            ``None`` (the prediction). It picks the default Q; the map itself depends on Q.
        layer, raw, reshape: as in :func:`grad_cam` (raw maps in units of loss).
        contrast: Q — int, one class per image, or ``None``: the most probable class other
            than P (the runner-up). ``contrast=P`` asks "why not P with 100% confidence?".

    Returns:
        (B, H, W) maps in [0, 1] (or the raw maps).
    """
    return _cam(model, x, layer, ContrastTarget(contrast, target), gradcam_weights, raw,
                "contrast_cam", reshape)


def contrast_cam_all(model: nn.Module, x: torch.Tensor, target=None,
                     layer: nn.Module | None = None, *, raw: bool = False,
                     reshape: Reshape | None = None) -> torch.Tensor:
    """ContrastCAMs for every contrast class Q = 0..K-1 at once: (B, K, H, W) (or raw).

    One forward and one batched backward (:func:`~tutorial_utils.layers.layer_logit_gradients`)
    give ``J`` (B, K, C); then ``α_Q = (p − e_Q)ᵀ J`` for all Q — no K backward passes.
    ``[:, q]`` equals ``contrast_cam(model, x, target, contrast=q)``. ``target`` (P, default
    the prediction) is checked like everywhere else; every map is "why P, rather than q?".
    """
    fn = resolve_reshape(model, reshape)
    acts, grads, z = layer_logit_gradients(model, x, layer)
    acts, grads = _apply_reshape(fn, acts), _apply_reshape(fn, grads, lead=2)
    resolve_classes(target, z, "target")
    _check_spatial(acts)
    jac = grads.mean(dim=(3, 4))  # (B, K, C)
    return cam_from_weights(acts, contrast_directions(z) @ jac, x.shape[-2:], raw)


# --------------------------------------------------------------------------------------
# One image, every logit: the data behind the chapter 2 figures and explorers
# --------------------------------------------------------------------------------------


@dataclass
class LayerView:
    """Activations and all-logit gradients of one image at the target layer.

    ``image`` (C, H, W); ``activations`` (C_A, h, w); ``grads`` (K, C_A, h, w) with
    ``grads[k] = ∂z_k/∂A``; ``logits``/``probs`` (K,); ``pred`` the predicted class.
    """

    image: torch.Tensor
    activations: torch.Tensor
    grads: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor

    @property
    def pred(self) -> int:
        return int(self.logits.argmax())

    @property
    def num_classes(self) -> int:
        return int(self.logits.numel())

    @property
    def jacobian(self) -> torch.Tensor:
        """``J`` (K, C_A): the spatially pooled gradient of every logit (Grad-CAM's α_k,
        :func:`gradcam_weights` applied to each logit)."""
        return gradcam_weights(self.activations[None].expand_as(self.grads), self.grads)

    def _check_class(self, q: int, name: str) -> int:
        return check_class(q, self.num_classes, name)

    def weights(self, kind: str, q: int | None = None) -> torch.Tensor:
        """Channel weights α (C_A,) for ``kind`` in {'gradcam', 'counterfactual', 'contrast'}.

        ``q`` is the explained class for Grad-CAM/CounterfactualCAM (default: the prediction)
        and the contrast class Q for ContrastCAM (required).
        """
        if kind == "contrast":
            if q is None:
                raise ValueError("kind='contrast' needs the contrast class q")
            q = self._check_class(q, "q")
            return self._contrast_directions(torch.tensor([q]))[0] @ self.jacobian
        t = self.pred if q is None else self._check_class(q, "q")
        if kind == "gradcam":
            return self.jacobian[t]
        if kind == "counterfactual":
            return -self.jacobian[t]
        raise ValueError(f"kind must be 'gradcam', 'counterfactual' or 'contrast', got {kind!r}")

    def cam(self, alpha: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """``ReLU(Σ_c α_c A_c)``: (h, w) if ``raw`` else upsampled to (H, W) and min-maxed
        (:func:`cam_from_weights`).

        ``alpha`` may be (C_A,) or a stack (M, C_A), giving (M, ·, ·) maps.
        """
        return cam_from_weights(self.activations[None], alpha[None], self.image.shape[-2:],
                                raw)[0]

    def signed_map(self, alpha: torch.Tensor) -> torch.Tensor:
        """``Σ_c α_c A_c`` upsampled to (H, W) **without** ReLU or min-max: the signed evidence
        (positive: for the explained score, negative: against it), in units of that score.
        Maps of different weights share one scale, so they can be compared directly."""
        m = torch.einsum("c,chw->hw", alpha, self.activations)
        return F.interpolate(m[None, None], size=self.image.shape[-2:], mode="bilinear",
                             align_corners=False)[0, 0]

    def _contrast_directions(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        """``p − e_q`` (Q, K) for the contrast classes (default all K)."""
        return contrast_directions(self.logits[None], classes)[0]

    def contrast_maps(self) -> torch.Tensor:
        """ContrastCAMs for every contrast class Q = 0..K-1 at once: (K, H, W)."""
        return self.cam(self._contrast_directions() @ self.jacobian)


def layer_view(model: nn.Module, x: torch.Tensor, *, layer: nn.Module | None = None,
               reshape: Reshape | None = None) -> LayerView:
    """One forward pass of a single image ``x`` (1, C, H, W) and one batched backward of all
    K logits to the target layer (default:
    :func:`~tutorial_utils.layers.default_target_layer`), via
    :func:`~tutorial_utils.layers.layer_logit_gradients`.

    Keeps the model's mode and ``requires_grad`` flags, and leaves no hook behind. ``reshape``
    as in :func:`grad_cam` (a transformer's tokens on their grid).
    """
    check_images(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold exactly one image (1, C, H, W), got batch {x.shape[0]}")
    fn = resolve_reshape(model, reshape)
    acts, grads, z = layer_logit_gradients(model, x, layer)
    acts, grads = _apply_reshape(fn, acts), _apply_reshape(fn, grads, lead=2)
    _check_spatial(acts)
    z = z[0].cpu()
    return LayerView(image=x.detach()[0].cpu(), activations=acts[0].cpu(),
                     grads=grads[0].cpu(), logits=z, probs=z.softmax(0))


def gradcam_steps(model: nn.Module, x: torch.Tensor, target: int | None = None,
                  layer: nn.Module | None = None, weights: torch.Tensor | None = None) -> dict:
    """The Grad-CAM recipe (Selvaraju et al. 2017) for one image, with every intermediate.

    ``y`` is the logit of ``target`` (default: the prediction) or, if ``weights`` (K,) is given,
    the scalar ``weights · z`` (e.g. ``p − e_Q`` gives ContrastCAM). Returns a dict with
    ``activations`` (C_A, h, w), ``gradients`` ∂y/∂A (C_A, h, w), ``alpha`` (C_A,) pooled
    gradients, ``weighted`` Σ α_k A_k (h, w) (signed), ``relu`` (h, w), ``map`` (H, W) in
    [0, 1], plus ``target``, ``probs`` and ``view`` (the :class:`LayerView`).
    """
    view = layer_view(model, x, layer=layer)
    if weights is None:
        t = view.pred if target is None else view._check_class(target, "target")
        w = torch.zeros(view.num_classes)
        w[t] = 1.0
    else:
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1).cpu()
        if w.numel() != view.num_classes:
            raise ValueError(f"weights must have K={view.num_classes} entries, got {w.numel()}")
        if not torch.isfinite(w).all():
            raise ValueError("weights contains NaN or infinite values")
        t = target
    grad = torch.einsum("k,kchw->chw", w, view.grads)
    alpha = grad.mean(dim=(1, 2))
    weighted = torch.einsum("c,chw->hw", alpha, view.activations)
    relu = torch.relu(weighted)
    return dict(activations=view.activations, gradients=grad, alpha=alpha, weighted=weighted,
                relu=relu, map=view.cam(alpha), target=t, probs=view.probs, view=view)
