"""Contrastive explanations — *why P, rather than Q?* — for one image and every Q.

ContrastCAM itself is :func:`tutorial_utils.cam.contrast_cam`; this module builds what the
chapter shows with it: the representative image of each class, the rows of the tutorial's
contrast table, and the precomputed state behind the contrast explorer (every contrast class of
one image from one forward pass and one batched backward).

References
----------
- M. Prabhushankar, G. Kwon, D. Temel, G. AlRegib, "Contrastive explanations in neural
  networks", ICIP 2020.
- G. AlRegib, M. Prabhushankar, "Explanatory paradigms in neural networks: towards relevant
  and contextual explanations", IEEE Signal Processing Magazine 39(4), 2022.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tutorial_utils._checks import check_images
from tutorial_utils.cam import LayerView, layer_view
from tutorial_utils.models import predict_logits

__all__ = ["representatives", "contrast_gallery", "ContrastState", "contrast_state",
           "contrast_panel"]


def representatives(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Index into ``x`` of one representative per class: the image of that class to which the
    model gives the highest probability for it. Returns (K,) long (−1 if a class is absent)."""
    check_images(x)
    probs = predict_logits(model, x).softmax(1)
    k = probs.shape[1]
    own = probs[torch.arange(len(y)), y.long()]
    out = torch.full((k,), -1, dtype=torch.long)
    for c in range(k):
        idx = torch.nonzero(y == c).flatten()
        if len(idx):
            out[c] = idx[own[idx].argmax()]
    return out


def contrast_gallery(model: nn.Module, images: torch.Tensor, contrasts: Sequence[tuple[int, int]],
                     rep_images: torch.Tensor, layer: nn.Module | None = None) -> list[dict]:
    """Rows of the "why P, rather than Q?" table.

    ``images`` (B, C, H, W); ``contrasts`` one pair (Q1, Q2) per image; ``rep_images``
    (K, C, H, W) a representative image per class. Each row holds ``image``, ``pred``,
    ``probs``, ``gradcam``, ``q1``, ``rep1``, ``contrast1``, ``q2``, ``rep2``, ``contrast2`` and
    ``why_not`` (Q = P: "why not P with 100% confidence?"), maps (H, W) in [0, 1].
    """
    check_images(images)
    if len(contrasts) != len(images):
        raise ValueError(f"contrasts must give one (Q1, Q2) pair per image: got {len(contrasts)} "
                         f"for {len(images)} images")
    rows = []
    for i, (q1, q2) in enumerate(contrasts):
        v = layer_view(model, images[i:i + 1], layer)
        maps = v.contrast_maps()
        rows.append(dict(image=v.image, pred=v.pred, probs=v.probs,
                         gradcam=v.cam(v.weights("gradcam")),
                         q1=int(q1), rep1=rep_images[q1], contrast1=maps[q1],
                         q2=int(q2), rep2=rep_images[q2], contrast2=maps[q2],
                         why_not=maps[v.pred]))
    return rows


@dataclass
class ContrastState:
    """Everything the explorer draws for one picked sample (precomputed once per sample)."""

    view: LayerView
    gradcam: torch.Tensor  # (H, W)
    counterfactual: torch.Tensor  # (H, W)
    contrast: torch.Tensor  # (K, H, W), all contrast classes


def contrast_state(model: nn.Module, x: torch.Tensor,
                   layer: nn.Module | None = None) -> ContrastState:
    """Precompute Grad-CAM, CounterfactualCAM and the ContrastCAMs of all K classes for one
    image with one forward and one batched backward."""
    v = layer_view(model, x, layer)
    return ContrastState(v, v.cam(v.weights("gradcam")), v.cam(v.weights("counterfactual")),
                         v.contrast_maps())


def contrast_panel(state: ContrastState, q: int, class_names: Sequence[str],
                   rep_images: torch.Tensor | None = None) -> dict:
    """Pure data for one contrast class ``q``: titles and the arrays of each panel."""
    q = state.view._check_class(q, "q")
    p = state.view.pred
    pn, qn = class_names[p], class_names[q]
    question = (f"why not {pn}\nwith 100% confidence?" if q == p
                else f"why {pn},\nrather than {qn}?")
    return dict(pred=p, q=q, question=question, contrast=state.contrast[q],
                rep=None if rep_images is None else rep_images[q],
                rep_title=f"representative\n{qn}",
                text=f"P = {pn} (p={float(state.view.probs[p]):.3f}), Q = {qn} "
                     f"(p={float(state.view.probs[q]):.3g})")
