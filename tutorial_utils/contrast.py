"""Contrastive explanations — *why P, rather than Q?* — and a ground truth to test them on.

ContrastCAM itself is :func:`tutorial_utils.cam.contrast_cam`; this module builds what the
chapter shows with it: the representative image of each class, the rows of the tutorial's
contrast table, the precomputed state behind the contrast explorer (every contrast class of one
image from one forward pass and one batched backward), and the **counterfactual ground truth**:
the sign renderer can draw the same scene with sign Q instead of P
(:func:`tutorial_utils.data.counterfactual`), so the pixels where the two images differ are the
true answer to "what tells P from Q here?". :func:`region_ratio` scores a map against it (the
share of the map's mass inside the region divided by the region's share of the image: 1 is
chance) and :func:`ground_truth_table` compares methods over many scenes.

Why ContrastCAM often looks like Grad-CAM: with ``p ≈ e_P`` the contrast weights are
``α_Q = (p − e_Q)ᵀ J ≈ J_P − J_Q``, and for a global-average-pool + linear head
``J_k = W_k / hw``, so the map is ``ReLU(Σ_c (W_P − W_Q)_c A_c)`` — Grad-CAM of P minus
"Grad-CAM" of Q, which differs from Grad-CAM only where the evidence for Q is strong.

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

import numpy as np
import torch
from torch import nn

from tutorial_utils import explainers
from tutorial_utils._checks import (
    check_class,
    check_classes,
    check_inputs,
    check_maps,
    check_positive_int,
    make_generator,
)
from tutorial_utils.cam import LayerView, contrast_cam, layer_view
from tutorial_utils.data import ImageDataset, counterfactual
from tutorial_utils.forward import logits
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "representatives",
    "contrast_gallery",
    "ContrastState",
    "contrast_state",
    "contrast_panel",
    "NEAR_PAIRS",
    "FAR_PAIRS",
    "TRUTH_METHODS",
    "region_ratio",
    "ground_truth_table",
    "truth_panel",
]

NEAR_PAIRS: tuple[tuple[str, str], ...] = (
    ("no left", "no right"), ("no right", "no left"), ("no stopping", "no parking"),
    ("no parking", "no stopping"), ("speed limit", "goods vehicles"), ("stop", "no entry"))
"""Sign pairs that differ in one part (arrow direction, one bar, the glyph)."""
FAR_PAIRS: tuple[tuple[str, str], ...] = (
    ("no left", "stop"), ("priority", "yield"), ("bicycle", "parking"))
"""Sign pairs that differ almost everywhere (shape and colour)."""

TRUTH_METHODS: dict[str, tuple[str, dict]] = {
    "Grad-CAM": ("Grad-CAM", {}),
    "ContrastCAM (last block)": ("ContrastCAM", {}),
    "ContrastCAM (early layer)": ("ContrastCAM", {"layer": "early"}),
    "contrast input gradient": ("contrast input gradient", {}),
    "random map": ("random map", {}),
}
"""What :func:`ground_truth_table` compares: column name → (explainer in
:data:`tutorial_utils.explainers.EXPLAINERS`, options). Grad-CAM explains P and ignores Q; the
contrastive methods get ``contrast=Q``; ``layer="early"`` stands for the early layer of the
table (default ``model.features[3]`` of a zoo CNN, 24×24 for signs); the random map is the
chance floor."""


def representatives(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Index into ``x`` of one representative per class: the image of that class to which the
    model gives the highest probability for it. Returns (K,) long (−1 if a class is absent)."""
    probs = logits(model, x).softmax(1)
    k = probs.shape[1]
    y = check_classes(y, len(x), k, "y", per_sample=True).to(probs.device)
    own = probs[torch.arange(len(y)), y]
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
    check_inputs(model, images, "images")
    if len(contrasts) != len(images):
        raise ValueError(f"contrasts must give one (Q1, Q2) pair per image: got {len(contrasts)} "
                         f"for {len(images)} images")
    k = int(logits(model, images[:1]).shape[1])
    contrasts = [tuple(check_class(q, k, "contrasts") for q in pair) for pair in contrasts]
    if not isinstance(rep_images, torch.Tensor) or len(rep_images) != k:
        raise ValueError(f"rep_images must hold one representative image per class ({k}), got "
                         f"{getattr(rep_images, 'shape', type(rep_images).__name__)}")
    rows = []
    for i, (q1, q2) in enumerate(contrasts):
        v = layer_view(model, images[i:i + 1], layer=layer)
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
    v = layer_view(model, x, layer=layer)
    return ContrastState(v, v.cam(v.weights("gradcam")), v.cam(v.weights("counterfactual")),
                         v.contrast_maps())


def contrast_panel(state: ContrastState, q: int, class_names: Sequence[str],
                   rep_images: torch.Tensor | None = None) -> dict:
    """Pure data for one contrast class ``q``: titles and the arrays of each panel."""
    q = state.view._check_class(q, "q")
    if isinstance(class_names, str) or len(class_names) != state.view.num_classes:
        raise ValueError(f"class_names must name the model's {state.view.num_classes} classes")
    p = state.view.pred
    pn, qn = class_names[p], class_names[q]
    question = (f"why not {pn}\nwith 100% confidence?" if q == p
                else f"why {pn},\nrather than {qn}?")
    return dict(pred=p, q=q, question=question, contrast=state.contrast[q],
                rep=None if rep_images is None else rep_images[q],
                rep_title=f"representative\n{qn}",
                text=f"P = {pn} (p={float(state.view.probs[p]):.3f}), Q = {qn} "
                     f"(p={float(state.view.probs[q]):.3g})")


# --------------------------------------------------------------------------------------
# Counterfactual ground truth
# --------------------------------------------------------------------------------------


def region_ratio(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """How much of each map's mass falls in its region, relative to chance: ``(B,)``.

    ``maps`` (B, H, W) non-negative (negative values count as 0); ``regions`` (B, H, W) bool.
    Returns ``(mass inside / total mass) / (region area / image area)``: 1 = no better than a
    uniform map, ``1 / region share`` = all mass inside. A map without mass scores 0.
    """
    check_maps(maps, "maps")
    if not isinstance(regions, torch.Tensor) or regions.shape != maps.shape:
        raise ValueError(f"regions must be a (B, H, W) bool tensor like maps {tuple(maps.shape)}")
    r = regions.to(maps.device).flatten(1).float()
    if (r.sum(1) == 0).any():
        raise ValueError("regions: every region must hold at least one pixel")
    m = maps.detach().clamp_min(0).flatten(1).float()
    inside = (m * r).sum(1) / m.sum(1).clamp_min(1e-12)
    return inside / r.mean(1)


def _early_layer(model: nn.Module, early_layer: nn.Module | None) -> nn.Module:
    """``early_layer``, or ``model.features[3]`` of a zoo CNN."""
    if early_layer is not None:
        return early_layer
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or len(features) < 4:
        raise ValueError("early_layer: the model has no zoo-style features[3]; pass "
                         "early_layer=<an early convolutional block of the model>")
    return features[3]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps (B, H, W) -> (B,) (0 for a constant map)."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def ground_truth_table(model: nn.Module, ds: ImageDataset,
                       pairs: Sequence[tuple[str, str]] | None = None, n: int = 100,
                       methods: dict[str, tuple[str, dict]] | None = None, *,
                       early_layer: nn.Module | None = None, seed: int = 0,
                       progress: bool = True, scenes: bool = False):
    """In-region ratio of every method on ``n`` counterfactual scenes per sign pair.

    For each pair (P, Q) the first ``n`` test scenes of class P are re-rendered with sign Q
    (:func:`tutorial_utils.data.counterfactual`); each method (:data:`TRUTH_METHODS`, or
    ``methods`` in the same form) explains "why P, rather than Q?" and :func:`region_ratio`
    scores its map against the pixels that differ. The random map draws from one generator
    seeded with ``seed``, pair after pair. Returns a pandas
    DataFrame, one row per pair: ``pair`` ("near"/"far"), ``P``, ``Q``, ``region share``,
    ``corr(ContrastCAM, Grad-CAM)`` (median), and per method the mean ratio and its standard
    error over scenes (columns ``<method>`` and ``<method> se``).

    With ``scenes=True`` returns ``(table, per_scene)``: ``per_scene`` has one row per pair
    and scene (``pair``, ``P``, ``Q``, ``scene`` = the test-set index of the scene's image,
    the unit of a claim: pairs with the same P share their scenes), every method's ratio, and
    ``corr(<method>, Grad-CAM)`` for the ContrastCAM maps.
    """
    import pandas as pd

    if pairs is None:
        pairs = NEAR_PAIRS + FAR_PAIRS
    if getattr(ds, "render_seed", None) is None:
        raise ValueError("ds must be the generated sign set (data.load_signs()): its scenes are "
                         "re-rendered with the other sign")
    n = check_positive_int(n, "n")
    index = {name: i for i, name in enumerate(ds.classes)}
    unknown = [pq for pq in pairs if len(pq) != 2 or not all(c in index for c in pq)]
    if unknown:
        raise ValueError(f"pairs must hold (P, Q) sign names from ds.classes, got {unknown}")
    methods = TRUTH_METHODS if methods is None else methods
    early = _early_layer(model, early_layer) if any(
        o.get("layer") == "early" for _, o in methods.values()) else None
    gen = make_generator(seed)

    def maps_of(name: str, options: dict, x: torch.Tensor, q: int) -> torch.Tensor:
        options = {**options, "layer": early} if options.get("layer") == "early" else options
        if name in explainers.CONTRASTIVE:
            options = {**options, "contrast": q}
        if name == "random map":
            options = {**options, "generator": gen}
        return explainers.explain(name, model, x, **options)

    rows, scene_rows = [], []
    for p_name, q_name in progress_bar(pairs, desc="sign pairs", enabled=progress):
        p, q = index[p_name], index[q_name]
        idx = torch.nonzero(ds.y_test == p).flatten()[:n]
        _, regions = counterfactual(ds, idx, q)
        x = ds.x_test[idx]
        maps = {label: maps_of(name, dict(options), x, q).cpu()
                for label, (name, options) in methods.items()}
        kind = "near" if (p_name, q_name) in NEAR_PAIRS else "far"
        row = dict(pair=kind, P=p_name, Q=q_name, **{"region share": float(regions.float().mean())})
        if "Grad-CAM" in maps and "ContrastCAM (last block)" in maps:
            corr = _correlation(maps["Grad-CAM"], maps["ContrastCAM (last block)"])
            row["corr(ContrastCAM, Grad-CAM)"] = float(corr.median())
        per_scene = {"pair": kind, "P": p_name, "Q": q_name, "scene": idx.numpy()}
        for name, m in maps.items():
            r = region_ratio(m, regions)
            row[name] = float(r.mean())
            row[f"{name} se"] = float(r.std(unbiased=True) / np.sqrt(len(r)))
            per_scene[name] = r.numpy()
            if name.startswith("ContrastCAM") and "Grad-CAM" in maps:
                per_scene[f"corr({name}, Grad-CAM)"] = _correlation(
                    maps["Grad-CAM"], m).numpy()
        rows.append(row)
        scene_rows.append(pd.DataFrame(per_scene))
    table = pd.DataFrame(rows)
    return (table, pd.concat(scene_rows, ignore_index=True)) if scenes else table


def truth_panel(model: nn.Module, image: torch.Tensor, region: torch.Tensor, q: int,
                early_layer: nn.Module | None = None,
                counterfactual: torch.Tensor | None = None) -> dict:
    """Everything the ground-truth figure shows for one scene and contrast class ``q``.

    ``image`` (C, H, W) (clean or challenged), ``region`` (H, W) bool: the pixels that differ
    from the counterfactual scene with sign ``q``. Returns maps (H, W) — ``gradcam``,
    ``contrast`` (last block), ``contrast_early`` (in [0, 1]); ``signed_gradcam`` and
    ``signed_contrast`` (``Σ α_c A_c`` before ReLU, one scale); ``difference`` = ContrastCAM −
    Grad-CAM — and per normalised map its ``ratio`` (:func:`region_ratio`) and ``corr`` with
    Grad-CAM, plus ``pred``, ``q``, ``probs`` and the ``counterfactual`` image if given.
    """
    early = _early_layer(model, early_layer)
    x = image[None] if isinstance(image, torch.Tensor) and image.dim() == 3 else image
    check_inputs(model, x, "image")
    if not isinstance(region, torch.Tensor) or tuple(region.shape) != tuple(x.shape[-2:]):
        raise ValueError(f"region must be a (H, W) = {tuple(x.shape[-2:])} bool tensor, got "
                         f"{getattr(region, 'shape', type(region).__name__)}")
    v = layer_view(model, x)
    q = v._check_class(q, "q")
    out = dict(image=v.image, region=region.bool(), pred=v.pred, q=int(q), probs=v.probs,
               counterfactual=counterfactual,
               gradcam=v.cam(v.weights("gradcam")), contrast=v.cam(v.weights("contrast", q)),
               contrast_early=contrast_cam(model, x, layer=early, contrast=q)[0].cpu(),
               signed_gradcam=v.signed_map(v.weights("gradcam")),
               signed_contrast=v.signed_map(v.weights("contrast", q)))
    out["difference"] = out["contrast"] - out["gradcam"]
    names = ("gradcam", "contrast", "contrast_early")
    maps = torch.stack([out[n] for n in names])
    ratios = region_ratio(maps, out["region"][None].expand_as(maps))
    corr = _correlation(maps, out["gradcam"][None].expand_as(maps))
    out["ratio"] = dict(zip(names, ratios.tolist(), strict=True))
    out["corr"] = dict(zip(names, corr.tolist(), strict=True))
    return out
