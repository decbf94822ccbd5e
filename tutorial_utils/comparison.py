"""Does the architecture matter? The same questions to two classifiers, on the same images.

:func:`architecture_comparison` asks every model of a mapping (the course: the zoo's CNN
``signs`` and its vision transformer ``signs-vit``) the questions of chapters 1–4 on one set
of images, and keeps the **raw per-unit evidence** of each answer, so that every sentence
comparing the two goes through :mod:`tutorial_utils.claims` (paired bootstrap over base
images):

======================  ==================================================================
field                   evidence (rows; units)
======================  ==================================================================
challenged              ``correct``/``confidence`` (N,) per model on the 12 challenge types
                        at levels 1–5 of the same base test images; ``units`` = base image
ood                     scores (ID + OOD rows) per model and score, ``labels`` 1 = ID, for
                        ``near`` (the GO sign) and ``far`` (textures, natural, digits, noise)
voice                   VOICE IoU (explanation ∩ uncertainty) per model on the level-5 rows,
                        with each row's ``correct`` flag
trust                   GradTrust, MSP and margin per model on the challenged rows
deletion                the ViT's deletion curves (R, S+1) of Grad-CAM, attention rollout
                        and a random map on clean base images (and the CNN's Grad-CAM)
sanity                  per image Spearman ρ of each model's Grad-CAM with the Grad-CAM of the
                        fully randomised network (cascading, block by block)
======================  ==================================================================

:func:`weighted_ece` is ECE as a weighted statistic for :func:`tutorial_utils.claims.estimate`
(values = ``(N, 2)`` columns confidence and correct). :meth:`ArchitectureComparison.table`
gives one row per question and model with its 95% interval.

Every draw derives from the course seed (:func:`tutorial_utils.utils.derive_seed`): the base
images, the challenge noise, the OOD images, the random maps and the randomised weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tutorial_utils import cam, claims, data, evaluation, explainers, trust
from tutorial_utils import uncertainty as U
from tutorial_utils._checks import check_positive_int
from tutorial_utils.forward import features_and_logits
from tutorial_utils.utils import derive_seed, torch_generator

__all__ = ["NEAR", "FAR", "OOD_SCORES", "weighted_ece", "ArchitectureComparison",
           "architecture_comparison", "transformer_layers"]

NEAR: tuple[str, ...] = ("go",)
"""Near-OOD sources (:func:`tutorial_utils.data.load_ood`): the held-out GO sign."""

FAR: tuple[str, ...] = ("textures", "natural", "digits", "uniform", "gaussian")
"""Far-OOD sources."""

OOD_SCORES: tuple[str, ...] = ("MSP", "Energy", "Mahalanobis", "GradNorm")
"""The scores of :data:`tutorial_utils.detection.SCORES` compared on both models."""

N_BINS = 15


def weighted_ece(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ECE (15 equal-width bins, as :func:`tutorial_utils.metrics.expected_calibration_error`)
    of ``values`` (N, 2) = (confidence, correct 0/1) under row weights ``weights`` (R, N):
    (R,). With weights of ones it equals the metric exactly."""
    conf, correct = values[:, 0], values[:, 1]
    edges = np.linspace(0.0, 1.0, N_BINS + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, N_BINS - 1)
    onehot = np.zeros((len(conf), N_BINS))
    onehot[np.arange(len(conf)), idx] = 1.0
    gap = weights @ (onehot * (correct - conf)[:, None])  # (R, bins): Σ (acc − conf) per bin
    return np.abs(gap).sum(1) / weights.sum(1)


def transformer_layers(model: nn.Module) -> list[str] | None:
    """Block-wise cascade for the sanity check of a model with ``blocks``: ``fc``, ``norm``,
    each block from the top, ``patch_embed`` (None for other models: the default layers)."""
    blocks = getattr(model, "blocks", None)
    if getattr(model, "token_grid", None) is None or not isinstance(blocks, nn.Sequential):
        return None
    return ["fc", "norm", *[f"blocks.{i}" for i in reversed(range(len(blocks)))], "patch_embed"]


@dataclass
class ArchitectureComparison:
    """The evidence of :func:`architecture_comparison` (see the module docstring). Per model
    name: ``correct``, ``confidence``, ``gradtrust``, ``margin`` (N,); ``ood[name][score]
    [split]`` = (scores (M,), labels (M,)); ``voice_iou``, ``voice_correct`` (V,);
    ``sanity`` (S,). Shared: ``units``, ``challenge``, ``level`` (N,), ``voice_units`` (V,),
    ``deletion`` {map name: curves (D, steps+1)} of the transformer, ``deletion_cnn``
    (D, steps+1) and ``images`` (the base images' test indices)."""

    names: list[str]
    units: np.ndarray
    challenge: np.ndarray
    level: np.ndarray
    correct: dict = field(default_factory=dict)
    confidence: dict = field(default_factory=dict)
    gradtrust: dict = field(default_factory=dict)
    margin: dict = field(default_factory=dict)
    ood: dict = field(default_factory=dict)
    voice_iou: dict = field(default_factory=dict)
    voice_correct: dict = field(default_factory=dict)
    voice_units: np.ndarray | None = None
    deletion: dict = field(default_factory=dict)
    deletion_cnn: np.ndarray | None = None
    sanity: dict = field(default_factory=dict)
    images: np.ndarray | None = None

    def ece_values(self, name: str) -> np.ndarray:
        """(N, 2) confidence and correct flag of model ``name``: the input of
        :func:`weighted_ece`."""
        return np.stack([self.confidence[name], self.correct[name].astype(float)], axis=1)

    def table(self, resamples: int = claims.RESAMPLES):
        """One row per (question, model): value and 95% bootstrap interval over base images
        (a pandas DataFrame)."""
        import pandas as pd

        rows = []

        def add(question, name, est):
            rows.append(dict(question=question, model=name, value=est.value, low=est.low,
                             high=est.high, units=est.units[0]))

        for name in self.names:
            add("accuracy under the 12 challenges", name, claims.estimate(
                self.correct[name], units=self.units, statistic="accuracy",
                resamples=resamples, key=f"table-acc-{name}"))
            add("ECE under the 12 challenges", name, claims.estimate(
                self.ece_values(name), units=self.units, statistic=weighted_ece,
                resamples=resamples, key=f"table-ece-{name}"))
            for split in ("near", "far"):
                for score, by_split in self.ood[name].items():
                    s, y = by_split[split]
                    add(f"AUROC {split}-OOD, {score}", name, claims.estimate(
                        s, labels=y, statistic="auroc", resamples=resamples,
                        key=f"table-{split}-{score}-{name}"))
            for score in ("GradTrust", "MSP", "margin"):
                t = {"GradTrust": self.gradtrust, "MSP": self.confidence,
                     "margin": self.margin}[score][name]
                add(f"AUAC, {score}", name, claims.estimate(
                    t, labels=self.correct[name], units=self.units, statistic="auac",
                    resamples=resamples, key=f"table-auac-{score}-{name}"))
            iou, ok = self.voice_iou[name], self.voice_correct[name].astype(bool)
            if ok.any() and (~ok).any():
                add("VOICE IoU, wrong − correct", name, claims.estimate(
                    iou[~ok], iou[ok], paired=False,
                    units=(self.voice_units[~ok], self.voice_units[ok]),
                    resamples=resamples, key=f"table-voice-{name}"))
            add("sanity: ρ(original, randomised Grad-CAM)", name, claims.estimate(
                self.sanity[name], resamples=resamples, key=f"table-sanity-{name}"))
        vit = self.names[-1]
        for map_name, curves in self.deletion.items():
            add(f"deletion AUC, {map_name}", vit, claims.estimate(
                curves, statistic="deletion_auc", resamples=resamples,
                key=f"table-deletion-{map_name}"))
        if self.deletion_cnn is not None:
            add("deletion AUC, Grad-CAM", self.names[0], claims.estimate(
                self.deletion_cnn, statistic="deletion_auc", resamples=resamples,
                key="table-deletion-cnn"))
        return pd.DataFrame(rows)


def _scores(model: nn.Module, x: torch.Tensor, names: Sequence[str], fit_x, fit_y) -> dict:
    """{score name: (B,)} for the logit/feature scores, one forward pass for all of them."""
    h, z = features_and_logits(model, x)
    out = {}
    for name in names:
        if name == "MSP":
            out[name] = U.max_softmax(z)
        elif name == "Energy":
            out[name] = U.energy(z)
        elif name == "GradNorm":
            out[name] = U.gradnorm_from_features(h, z)
        elif name == "Mahalanobis":
            out[name] = U.Mahalanobis(model).fit(fit_x, fit_y).score_features(h)
        else:
            raise ValueError(f"scores: {name!r} is not one of {', '.join(OOD_SCORES)}")
    return out


def architecture_comparison(models: Mapping[str, nn.Module], ds: data.ImageDataset, *,
                            per_class: int = 2, ood_per_source: int = 30,
                            fit_per_class: int = 30, deletion_images: int = 20,
                            deletion_steps: int = 16, sanity_images: int = 6,
                            scores: Sequence[str] = OOD_SCORES) -> ArchitectureComparison:
    """Ask every model of ``models`` (name → classifier; the transformer last) the same
    questions on the same images of ``ds`` (the signs).

    Args:
        models: two or more classifiers of ``ds``'s classes; the last one is the
            transformer whose Grad-CAM is compared with attention rollout.
        per_class: base test images per class; each is shown under the 12 challenge types
            at levels 1–5 (``14·per_class·60`` challenged rows).
        ood_per_source: OOD images per source (near: GO; far: five sources).
        fit_per_class: training images per class that Mahalanobis fits.
        deletion_images, deletion_steps: clean base images and steps of the deletion curves.
        sanity_images: images of the sanity check (cascading randomisation).

    Returns the :class:`ArchitectureComparison` evidence. Nothing is written to the models.
    """
    if not isinstance(models, Mapping) or len(models) < 2 or not all(
            isinstance(m, nn.Module) for m in models.values()):
        raise TypeError("models must map two or more names to classifiers (nn.Module), "
                        "e.g. {'CNN': cnn, 'ViT': vit}")
    if not isinstance(ds, data.ImageDataset):
        raise TypeError(f"ds must be an ImageDataset (data.load_signs()), got "
                        f"{type(ds).__name__}")
    for value, label in ((per_class, "per_class"), (ood_per_source, "ood_per_source"),
                         (fit_per_class, "fit_per_class"), (deletion_images, "deletion_images"),
                         (deletion_steps, "deletion_steps"), (sanity_images, "sanity_images")):
        check_positive_int(value, label)
    names = list(models)
    base = data.stratified_indices(ds.y_test, per_class, seed=derive_seed("arch-images"))
    x0, y0 = ds.x_test[base], ds.y_test[base]
    kinds, levels = list(data.CHALLENGES), range(1, 6)
    pool = torch.cat([data.apply_challenge(x0, kind, lv, seed=derive_seed("arch-challenge",
                                                                          kind, lv))
                      for kind in kinds for lv in levels])
    n0 = len(base)
    units = np.tile(np.arange(n0), len(kinds) * len(levels))
    challenge = np.repeat(np.array(kinds), n0 * len(levels))
    level = np.tile(np.repeat(np.arange(1, 6), n0), len(kinds))
    labels = y0.repeat(len(kinds) * len(levels))
    out = ArchitectureComparison(names, units, challenge, level, images=base.numpy())

    fit = data.stratified_indices(ds.y_train, fit_per_class, seed=derive_seed("arch-fit"))
    fit_x, fit_y = ds.x_train[fit], ds.y_train[fit]
    id_idx = data.stratified_indices(ds.y_test, max(1, ood_per_source // 6),
                                     seed=derive_seed("arch-id"))
    x_id = ds.x_test[id_idx]
    near = torch.cat([data.load_ood(s, ood_per_source, seed=derive_seed("arch-ood", s) % 2**31)
                      for s in NEAR])
    far = torch.cat([data.load_ood(s, ood_per_source, seed=derive_seed("arch-ood", s) % 2**31)
                     for s in FAR])
    split_y = {split: np.r_[np.ones(len(x_id)), np.zeros(len(x))]
               for split, x in (("near", near), ("far", far))}

    v_rows = np.flatnonzero(level == 5)
    out.voice_units = units[v_rows]
    for name, model in models.items():
        _, z = features_and_logits(model, pool)
        p = z.softmax(1)
        out.correct[name] = (z.argmax(1) == labels).numpy()
        out.confidence[name] = p.amax(1).numpy()
        out.margin[name] = U.margin(z).numpy()
        out.gradtrust[name] = trust.gradtrust_from_logits(z).numpy()
        s_id = _scores(model, x_id, scores, fit_x, fit_y)
        s_ood = {split: _scores(model, x, scores, fit_x, fit_y)
                 for split, x in (("near", near), ("far", far))}
        out.ood[name] = {score: {split: (torch.cat([s_id[score], s_ood[split][score]]).numpy(),
                                         split_y[split]) for split in ("near", "far")}
                         for score in scores}
        v = trust.voice(model, pool[v_rows])
        out.voice_iou[name] = v.iou.numpy()
        out.voice_correct[name] = out.correct[name][v_rows]
        xs = x0[:sanity_images]
        check = evaluation.sanity_check(model, xs, "Grad-CAM", layers=transformer_layers(model),
                                        seed=derive_seed("arch-sanity", name) % 2**31)
        out.sanity[name] = check.correlation[-1].numpy()

    vit = models[names[-1]]
    xd = x0[torch.linspace(0, n0 - 1, min(deletion_images, n0)).long()]
    maps = {"Grad-CAM": cam.grad_cam(vit, xd),
            "attention rollout": explainers.explain("attention rollout", vit, xd),
            "random map": explainers.random_map(vit, xd, generator=torch_generator("arch-random"))}
    out.deletion = {k: evaluation.deletion_curve(vit, xd, m, steps=deletion_steps).probs.numpy()
                    for k, m in maps.items()}
    cnn = models[names[0]]
    out.deletion_cnn = evaluation.deletion_curve(cnn, xd, cam.grad_cam(cnn, xd),
                                                 steps=deletion_steps).probs.numpy()
    return out
