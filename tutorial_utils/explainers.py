"""Every explanation method by name: one registry, one call shape.

Each entry of :data:`EXPLAINERS` is the method's own function, called as

    maps = EXPLAINERS[name](model, x, target=None, layer=None, **options)   # (B, H, W) in [0, 1]

with ``target`` the class whose decision is explained — an int, one class per image, ``None``
(the prediction) or a callable on the logits (:mod:`tutorial_utils.forward`) — and ``layer`` the
CAMs' target layer (``None`` for the input-space methods, which explain pixels). Because every
entry takes ``model, x, target`` first, an entry can be passed anywhere an explainer is
expected and called positionally, e.g. by :func:`tutorial_utils.evaluation.sanity_check`.

=======================  ================================  ==============================
name                     function                          question
=======================  ================================  ==============================
Grad-CAM                 cam.grad_cam                      why P?
Grad-CAM++               cam.grad_cam_pp                   why P? (several parts)
CounterfactualCAM        cam.counterfactual_cam            what if it were absent?
ContrastCAM              cam.contrast_cam                  why P, rather than Q?
vanilla gradient         saliency.vanilla_gradient         why P? (pixels)
guided backprop          saliency.guided_backprop          why P? (pixels)
SmoothGrad               saliency.smoothgrad               why P? (pixels, denoised)
occlusion                saliency.occlusion                what if it were hidden?
RISE                     saliency.rise                     what suffices?
SHAPE                    saliency.shape                    what is necessary?
contrast input gradient  saliency.contrast_input_gradient  why P, rather than Q? (pixels)
attention rollout        rollout.attention_rollout         where does the class token
                                                           look? (transformers only)
random map               explainers.random_map             — (a control: chance)
image itself             explainers.image_itself           — (a control: no model)
=======================  ================================  ==============================

Functions are named relative to ``tutorial_utils``. The contrastive methods
(:data:`CONTRASTIVE`) take the contrast class as ``contrast=Q`` (default: the runner-up to P);
the controls (:data:`CONTROLS`) ignore the model, as a control must; attention rollout
(:data:`TRANSFORMER_ONLY`) needs a model with ``nn.TransformerEncoderLayer`` blocks and a
``token_grid`` (the zoo's ``signs-vit``) and ignores ``target`` (it explains no class).

**Transformers.** The CAM entries take the option ``reshape=`` (a callable turning the target
layer's tokens (B, N, C) into (B, C, h, w), applied to activations and gradients alike;
:func:`tutorial_utils.cam.resolve_reshape`). It defaults to the model's ``tokens_to_map`` when
the model has a ``token_grid``, so ``EXPLAINERS["Grad-CAM"](vit, x)`` explains the ViT's
patch-token grid of ``vit.target_layer`` (``blocks[-1].norm1``) with no option at all. The
input-space methods need nothing: they explain pixels of any differentiable model.
:func:`explain` runs one
method by name, :func:`bind` fixes its options, :func:`explain_all` runs several on one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from tutorial_utils import cam, rollout, saliency
from tutorial_utils._checks import check_images, make_generator
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "EXPLAINERS",
    "CONTRASTIVE",
    "CONTROLS",
    "TRANSFORMER_ONLY",
    "applies_to",
    "random_map",
    "image_itself",
    "explain",
    "bind",
    "explain_all",
]

Explainer = Callable[..., torch.Tensor]


def random_map(model: nn.Module, x: torch.Tensor, target=None, layer: None = None, *,
               seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A control: uniform noise maps (B, H, W) in [0, 1), drawn on the CPU from ``generator``
    (or a fresh one seeded with ``seed``). ``model``, ``target`` and ``layer`` are not used —
    the map knows nothing, which is what makes it the chance floor of every evaluation."""
    check_images(x)
    gen = make_generator(seed, generator)
    return torch.rand(x.shape[0], *x.shape[-2:], generator=gen)


def image_itself(model: nn.Module, x: torch.Tensor, target=None, layer: None = None
                 ) -> torch.Tensor:
    """A control: the image's brightness (the mean over its channels) as "importance", (B, H, W)
    in [0, 1]. It knows nothing of the model, so a metric that rewards it rewards the image,
    not an explanation."""
    return check_images(x).mean(dim=1)


EXPLAINERS: dict[str, Explainer] = {
    "Grad-CAM": cam.grad_cam,
    "Grad-CAM++": cam.grad_cam_pp,
    "CounterfactualCAM": cam.counterfactual_cam,
    "ContrastCAM": cam.contrast_cam,
    "vanilla gradient": saliency.vanilla_gradient,
    "guided backprop": saliency.guided_backprop,
    "SmoothGrad": saliency.smoothgrad,
    "occlusion": saliency.occlusion,
    "RISE": saliency.rise,
    "SHAPE": saliency.shape,
    "contrast input gradient": saliency.contrast_input_gradient,
    "attention rollout": rollout.attention_rollout,
    "random map": random_map,
    "image itself": image_itself,
}
"""Every explanation method by the name the chapters print: ``fn(model, x, target=None,
layer=None, **options) -> (B, H, W)``."""

CONTRASTIVE: tuple[str, ...] = ("ContrastCAM", "contrast input gradient")
"""The methods that answer "why P, rather than Q?" and take ``contrast=Q``."""

CONTROLS: tuple[str, ...] = ("random map", "image itself")
"""Maps that know nothing of the model: the floor and a trap for every evaluation."""

TRANSFORMER_ONLY: tuple[str, ...] = ("attention rollout",)
"""Methods that need attention layers (``nn.TransformerEncoderLayer``) and a ``token_grid``."""


def applies_to(name: str, model: nn.Module) -> bool:
    """Whether method ``name`` can explain ``model``: every method but the
    :data:`TRANSFORMER_ONLY` ones applies to any classifier; those need a model with
    ``nn.TransformerEncoderLayer`` blocks and a ``token_grid``."""
    _get(name)
    if name not in TRANSFORMER_ONLY:
        return True
    return getattr(model, "token_grid", None) is not None and any(
        isinstance(m, nn.TransformerEncoderLayer) for m in model.modules())


def _get(name: object) -> Explainer:
    if not isinstance(name, str) or name not in EXPLAINERS:
        raise ValueError(f"unknown explainer {name!r}; name must be one of "
                         f"{', '.join(EXPLAINERS)}")
    return EXPLAINERS[name]


def explain(name: str, model: nn.Module, x: torch.Tensor, target=None, layer=None,
            **options) -> torch.Tensor:
    """``EXPLAINERS[name](model, x, target, layer, **options)``: maps (B, H, W) in [0, 1]."""
    return _get(name)(model, x, target, layer, **options)


def bind(name: str, **options) -> Explainer:
    """The explainer ``name`` with ``options`` fixed: ``fn(model, x, target=None, layer=None,
    **more)``, e.g. ``bind("occlusion", window=7, stride=3)`` for a sanity check."""
    fn = _get(name)

    def bound(model: nn.Module, x: torch.Tensor, target=None, layer=None, **more
              ) -> torch.Tensor:
        return fn(model, x, target, layer, **{**options, **more})

    bound.__name__ = bound.__qualname__ = f"{fn.__name__}[{name}]"
    bound.__doc__ = f"{name} ({fn.__name__}) with {options or 'its default options'}."
    return bound


def explain_all(model: nn.Module, x: torch.Tensor, target=None, names: Sequence[str] | None = None,
                options: Mapping[str, Mapping] | None = None, *, progress: bool = False
                ) -> dict[str, torch.Tensor]:
    """The maps (B, H, W) of several methods on one batch: ``{name: maps}`` in the order of
    ``names`` (default: every entry of :data:`EXPLAINERS` that :func:`applies_to` the model).
    ``options`` gives per-method
    options by name, e.g. ``{"occlusion": {"window": 7, "stride": 3}}``; ``progress`` shows a
    progress bar over the methods."""
    names = [n for n in EXPLAINERS if applies_to(n, model)] if names is None else list(names)
    for name in names:
        _get(name)
    options = dict(options or {})
    unknown = [n for n in options if n not in names]
    if unknown:
        raise ValueError(f"options name method(s) {unknown} that are not among names {names}")
    return {name: explain(name, model, x, target, **options.get(name, {}))
            for name in progress_bar(names, desc="maps", enabled=progress)}
