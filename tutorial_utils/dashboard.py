"""One image, every method: the data behind chapter 5's dashboard.

:func:`dashboard_view` runs everything the course taught on a single input — the prediction
and its probabilities, Grad-CAM and ContrastCAM for a chosen contrast class, the uncertainty of
that explanation (VOICE), the uncertainty scores of chapter 3 placed against their
in-distribution distribution (percentiles), GradTrust, and the deletion curve of the
explanation — in about one forward and two backward passes plus a few small batches.
:func:`make_input` builds the input: a test image, optionally challenged, the GO sign, or an
adversarial version. The figure is :class:`tutorial_utils.plotting.dashboard.DashboardFigure`,
the widget :func:`tutorial_utils.widgets.dashboard_explorer`.

A percentile says where an image's score falls among clean test images: 50 = typical, near 0 =
more unusual than almost every clean image (every score is higher = more in-distribution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tutorial_utils import uncertainty as U
from tutorial_utils._checks import (
    check_classes,
    check_images,
    check_inputs,
    check_positive_int,
    resolve_classes,
)
from tutorial_utils.attacks import fgsm, pgd
from tutorial_utils.cam import layer_view
from tutorial_utils.challenges import apply_challenge, check_challenge
from tutorial_utils.detection import SCORES
from tutorial_utils.evaluation import curve_auc, deletion_curve, least_certain_grey
from tutorial_utils.forward import logits
from tutorial_utils.trust import explanation_iou, explanation_uncertainty, map_snr

__all__ = [
    "SOURCES",
    "GAUGES",
    "EXPLANATIONS",
    "Reference",
    "build_reference",
    "make_input",
    "DashboardView",
    "dashboard_view",
    "gauge_percentiles",
    "pair_references",
]

SOURCES: tuple[str, ...] = ("test image", "GO sign", "FGSM attack", "PGD attack")
"""What the dashboard shows: a test image (optionally challenged), the held-out GO sign, or an
adversarial version of the test image (ε = 4/255)."""

GAUGES: tuple[str, ...] = ("MSP", "−entropy", "Energy", "Mahalanobis", "GradNorm",
                           "confounding norm", "GradTrust")
"""The gauges: entries of the score table :data:`tutorial_utils.detection.SCORES`."""

EXPLANATIONS: tuple[str, ...] = ("Grad-CAM", "ContrastCAM")
"""The maps the dashboard shows, by their names in :data:`tutorial_utils.explainers.EXPLAINERS`
(computed together from one :func:`~tutorial_utils.cam.layer_view`; equal to the registry's
calls, tested)."""

ATTACK_EPSILON = 4 / 255
TIE_TOLERANCE = 1e-5
"""Relative tolerance within which a reference score ties a gauge score (float32 scores carry
about 7 significant digits; batch composition changes the last ones)."""


@dataclass
class Reference:
    """In-distribution reference for the gauges: the fitted detector of every gauge and its
    scores on clean test images (sorted, for percentiles)."""

    model: nn.Module
    detectors: dict[str, U.Detector]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    baseline: float | None = None  # deletion baseline: evaluation.least_certain_grey(model)

    @property
    def mahalanobis(self) -> U.Mahalanobis:
        """The fitted Mahalanobis detector."""
        return self.detectors["Mahalanobis"]

    def percentile(self, name: str, value: float | np.ndarray) -> float | np.ndarray:
        """Share (%) of clean reference images scoring at most ``value``: a float for one
        value, an array of the same shape for an array of values.

        A reference score within float32 rounding of ``value`` (relative ``TIE_TOLERANCE``)
        counts as "at most": the same image scored in another batch can differ in the last
        bits (another reduction order), and its percentile must not flip by one rank."""
        ref = self.scores[name]
        v = np.asarray(value, dtype=float)
        v = v + TIE_TOLERANCE * np.maximum(np.abs(v), np.finfo(np.float32).tiny)
        share = 100.0 * np.searchsorted(ref, v, side="right") / len(ref)
        return float(share) if np.ndim(share) == 0 else share


def _gauge_scores(detectors: dict[str, U.Detector], model: nn.Module, x: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    """Every gauge's score (B,) for images ``x``: one features pass and two small backwards,
    shared through one :class:`~tutorial_utils.uncertainty.Batch`."""
    batch = U.Batch(model, x)
    return {name: det.score_batch(batch) for name, det in detectors.items()}


def build_reference(model: nn.Module, x_fit: torch.Tensor, y_fit: torch.Tensor,
                    x_ref: torch.Tensor) -> Reference:
    """Build the detector of every gauge (:data:`tutorial_utils.detection.SCORES`), fit it on
    ``(x_fit, y_fit)`` (training images; only Mahalanobis learns from them) and score the
    clean reference images ``x_ref`` with every gauge. ``baseline`` is the grey level the model
    reads as least certain (:func:`~tutorial_utils.evaluation.least_certain_grey`), the deletion
    curve's "removed" value."""
    check_inputs(model, x_fit, "x_fit")
    check_classes(y_fit, len(x_fit), None, "y_fit", per_sample=True)  # named as y_fit
    check_inputs(model, x_ref, "x_ref")
    try:
        detectors = {name: SCORES[name](model).fit(x_fit, y_fit) for name in GAUGES}
    except ValueError as error:  # a degenerate fit: say which arguments it came from
        raise ValueError(f"x_fit, y_fit: {error}") from None
    scores = _gauge_scores(detectors, model, x_ref)
    return Reference(model, detectors, {k: np.sort(v.detach().cpu().numpy().astype(float))
                                        for k, v in scores.items()},
                     baseline=least_certain_grey(model, x_ref[:1]))


def _check_reference(reference: object, model: nn.Module | None = None) -> Reference:
    """``reference`` is a :class:`Reference` (built for ``model``, when given)."""
    if not isinstance(reference, Reference):
        raise TypeError(f"reference must be a dashboard.Reference from build_reference(...), "
                        f"got {type(reference).__name__}")
    if model is not None and reference.model is not model:
        raise ValueError("reference was built for another model: its percentiles would read "
                         "this model's scores against another model's; build one for this "
                         "model with build_reference(model, x_fit, y_fit, x_ref)")
    return reference


def pair_references(models: nn.Module | dict[str, nn.Module],
                    references: Reference | dict[str, Reference]
                    ) -> dict[str, tuple[nn.Module, Reference]]:
    """The dashboard's models by name, each with the reference built for it.

    ``models`` is one model or a mapping name → model (e.g. ``{"CNN": ..., "ViT": ...}``);
    ``references`` is then one :class:`Reference` or a mapping with the same names. A single
    model is named ``"model"``. Each reference must have been built for its own model: a
    percentile reads a score against the scores of the *same* model on clean images, so a
    reference built for another model is refused (ValueError naming the entry).
    """
    if isinstance(models, nn.Module):
        if isinstance(references, dict):
            raise TypeError("references must be one dashboard.Reference for one model, got a "
                            "mapping; pass models as a mapping name -> model too")
        return {"model": (models, _check_reference(references, models))}
    if not isinstance(models, dict) or not models:
        raise TypeError(f"models must be an nn.Module or a non-empty dict name -> nn.Module, "
                        f"got {type(models).__name__}")
    if not isinstance(references, dict) or set(references) != set(models):
        have = sorted(references) if isinstance(references, dict) else type(references).__name__
        raise ValueError(f"references must be a dict with one Reference per model, keyed like "
                         f"models ({sorted(models)}), got {have}")
    pairs = {}
    for name, model in models.items():
        if not isinstance(name, str) or not isinstance(model, nn.Module):
            raise TypeError(f"models must map names (str) to nn.Module, got {name!r}: "
                            f"{type(model).__name__}")
        try:
            pairs[name] = (model, _check_reference(references[name], model))
        except (TypeError, ValueError) as error:
            raise type(error)(f"references[{name!r}]: {error}") from None
    return pairs


def gauge_percentiles(reference: Reference, x: torch.Tensor, chunk_size: int = 256
                      ) -> dict[str, np.ndarray]:
    """Every gauge's percentile (B,) for a batch ``x`` (the dashboard's gauges, batched),
    ``chunk_size`` images at a time (the gradient gauges keep per-sample gradients: a large
    batch at once costs memory, not speed)."""
    _check_reference(reference)
    check_inputs(reference.model, x)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    parts = [_gauge_scores(reference.detectors, reference.model, xb)
             for xb in x.split(chunk_size)]
    out = {}
    for k in parts[0]:
        s = torch.cat([p[k].detach().cpu() for p in parts]).numpy().astype(float)
        out[k] = reference.percentile(k, s)
    return out


def make_input(model: nn.Module, image: torch.Tensor, label: int, source: str = "test image",
               kind: str | None = None, level: int = 0, go: torch.Tensor | None = None,
               seed: int = 0) -> torch.Tensor:
    """The dashboard's input ``(1, C, H, W)``: ``image`` (C, H, W) under challenge ``kind`` at
    ``level`` (0 = clean), or the GO sign ``go`` (C, H, W), or an FGSM / PGD version of the
    (challenged) image against its true ``label`` (ε = 4/255, PGD 10 steps, seeded). A batch
    ``(B, C, H, W)`` with one label per image (and B GO signs) works the same way."""
    if not isinstance(source, str) or source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if kind is None and not (isinstance(level, (int, np.integer)) and level == 0):
        raise ValueError(f"level={level!r} needs a challenge: pass kind=<one of the challenge "
                         f"types> (or level=0 for the clean image)")
    x = check_images(image[None] if isinstance(image, torch.Tensor) and image.dim() == 3
                     else image, "image")
    if source == "GO sign":
        if go is None:
            raise ValueError("source='GO sign' needs go=<one GO sign image (C, H, W)>")
        return check_images(go[None] if go.dim() == 3 else go, "go")
    if kind is not None:
        kind, level = check_challenge(kind, level)
        if level:
            x = apply_challenge(x, kind, level, seed=seed)
    if source in ("FGSM attack", "PGD attack"):
        num_classes = logits(model, x[:1]).shape[1]
        label = check_classes(label, len(x), num_classes, "label")  # named as label
    if source == "FGSM attack":
        return fgsm(model, x, label, ATTACK_EPSILON)
    if source == "PGD attack":
        return pgd(model, x, label, ATTACK_EPSILON, steps=10, seed=seed)
    return x


@dataclass
class DashboardView:
    """Everything the dashboard shows for one input (maps (H, W) in [0, 1])."""

    image: torch.Tensor            # (C, H, W)
    probs: torch.Tensor            # (K,)
    pred: int
    contrast: int                  # the contrast class Q of the ContrastCAM
    gradcam: torch.Tensor
    contrastcam: torch.Tensor
    uncertainty: torch.Tensor      # VOICE: variance of the ContrastCAMs over Q ≠ P
    iou: float
    snr: float
    scores: dict[str, float]
    percentiles: dict[str, float]
    deletion_fractions: np.ndarray
    deletion_probs: np.ndarray
    deletion_auc: float


def dashboard_view(model: nn.Module, reference: Reference, x: torch.Tensor,
                   contrast: int | None = None, deletion_steps: int = 16) -> DashboardView:
    """Run every method of the course on one input ``x`` (1, C, H, W).

    ``contrast`` is the ContrastCAM's class Q (default: the second most probable class).
    Grad-CAM, every ContrastCAM and the VOICE uncertainty come from one forward and one
    batched backward (:func:`~tutorial_utils.cam.layer_view`); the gauges from one features
    pass and two small backwards; the deletion curve of Grad-CAM from ``deletion_steps + 1``
    images in one batch.
    """
    check_inputs(model, x)
    _check_reference(reference, model)
    deletion_steps = check_positive_int(deletion_steps, "deletion_steps")
    if x.shape[0] != 1:
        raise ValueError(f"x must hold exactly one image (1, C, H, W), got a batch of {len(x)}")
    view = layer_view(model, x)
    p = view.probs
    q = int(p.argsort(descending=True)[1]) if contrast is None else int(
        resolve_classes(contrast, p[None], "contrast")[0])
    gradcam = view.cam(view.weights("gradcam"))
    maps = view.contrast_maps()                                   # (K, H, W)
    uncertainty = explanation_uncertainty(maps[None], torch.tensor([view.pred]))[0]
    iou = float(explanation_iou(gradcam[None], uncertainty[None])[0])
    snr = float(map_snr(uncertainty[None])[0])
    raw = _gauge_scores(reference.detectors, model, x)
    scores = {k: float(v[0]) for k, v in raw.items()}
    # the baseline the model reads as uncertain (chapter 4's rule), not black
    grey = reference.baseline if reference.baseline is not None else least_certain_grey(model, x)
    curve = deletion_curve(model, x, gradcam[None].to(x.device), steps=deletion_steps,
                           baseline=grey)
    probs = curve.probs[0].detach().cpu().numpy()
    fractions = curve.fractions.detach().cpu().numpy()
    return DashboardView(
        image=view.image, probs=p, pred=view.pred, contrast=q, gradcam=gradcam,
        contrastcam=maps[q], uncertainty=uncertainty, iou=iou, snr=snr, scores=scores,
        percentiles={k: reference.percentile(k, v) for k, v in scores.items()},
        deletion_fractions=fractions, deletion_probs=probs,
        deletion_auc=float(curve_auc(curve.fractions, curve.probs)[0]))
