"""Detection benchmarks: every score on in-distribution and novel sets, OpenOOD-style tables.

:data:`SCORES` is the one table of the course's scores: display name → a detector class of the
contract in :mod:`tutorial_utils.uncertainty` (``Detector(model, **options)``, ``fit(x, y=None)
-> self``, ``score(x) -> (B,)``). A :class:`ScoreSuite` builds and fits the table's detectors
for one model and computes all of chapter 3's scores for a batch of images in one call
(each a ``(B,)`` tensor, **higher = more in-distribution**), sharing the forward pass, the
features and the confounding-label backward between them; :func:`detection_table` turns the
scores of an in-distribution set and of several novel sets into one table in the words of
OpenOOD v1.5 — one row per novel set plus near/far means, columns AUROC, AUPR_IN, AUPR_OUT,
FPR@95 and detection accuracy. **The positive class is in-distribution** throughout.

====================  ==================================================================
name                  score (higher = in-distribution)
====================  ==================================================================
MSP                   max softmax probability (Hendrycks & Gimpel 2017)
−entropy              negative predictive entropy
margin                top-1 minus top-2 probability
−NLL                  log-probability of the prediction
Energy                ``logsumexp z`` (Liu et al. 2020)
ODIN                  temperature 1000 + input perturbation (Liang et al. 2018)
Mahalanobis           −min squared distance to a class mean of ``h`` (Lee et al. 2018)
GradNorm              ``‖∇_W KL(u ‖ softmax z)‖₁`` (Huang et al. 2021)
confounding norm      −Σ_layers ‖∇_θ L(z, 1)‖², all-ones label (Lee & AlRegib 2020)
MC dropout (−MI)      −mutual information over 20 dropout passes (Gal & Ghahramani 2016)
ensemble (−MI)        −mutual information over the members (Lakshminarayanan et al. 2017)
random                uniform noise: the chance floor (AUROC 0.5)
gradient detector H   logistic regression on log per-layer confounding norms, fitted
                      on ID images against one novel set (Lee & AlRegib 2023)
GradTrust             ``max_k d_k⁴ / mean_k d_k⁴`` of the last layer's gradient (trust)
====================  ==================================================================

References
----------
- J. Yang et al., "OpenOOD: benchmarking generalized out-of-distribution detection", NeurIPS
  Datasets and Benchmarks 2022; J. Zhang et al., "OpenOOD v1.5", 2023 (table layout, words).
- The score references are listed in :mod:`tutorial_utils.uncertainty`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from tutorial_utils import claims
from tutorial_utils import uncertainty as U
from tutorial_utils._checks import (
    check_callable,
    check_classes,
    check_epsilon,
    check_inputs,
    check_number,
    check_seed,
    check_vector,
)
from tutorial_utils.ensembles import check_passes
from tutorial_utils.metrics import detection_auroc, detection_report
from tutorial_utils.trust import GradTrustScore
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "SCORES",
    "SCORE_NAMES",
    "ScoreSuite",
    "detection_table",
    "auroc_table",
    "COLUMNS",
    "ThresholdView",
    "threshold_view",
    "SATURATED",
    "auroc_evidence",
    "auroc_intervals",
    "format_intervals",
]

SCORES: dict[str, Callable[..., U.Detector]] = {
    "MSP": lambda model: U.LogitScore(model, U.max_softmax),
    "−entropy": lambda model: U.LogitScore(model, U.neg_entropy),
    "margin": lambda model: U.LogitScore(model, U.margin),
    "−NLL": lambda model: U.LogitScore(model, U.neg_nll),
    "Energy": lambda model, temperature=1.0: U.LogitScore(model, U.energy,
                                                          temperature=temperature),
    "ODIN": U.ODINScore,
    "Mahalanobis": U.Mahalanobis,
    "GradNorm": U.GradNormScore,
    "confounding norm": U.ConfoundingNorm,
    "MC dropout (−MI)": U.MCDropoutScore,
    "ensemble (−MI)": U.EnsembleScore,
    "random": U.RandomScore,
    "gradient detector H": U.ConfoundingDetector,
    "GradTrust": GradTrustScore,
}
"""Every score of the course under the name the tables print: ``SCORES[name](model,
**options)`` is a detector with ``fit(x, y=None, ...) -> self`` and ``score(x) -> (B,)``, higher
= more in-distribution. ``"ensemble (−MI)"`` is built on the ensemble itself; ``"gradient
detector H"`` needs ``fit(x_id, x_novel=...)``; every other ``fit`` takes the ID images and
their labels (a no-op for the scores that learn nothing)."""

SCORE_NAMES: tuple[str, ...] = (
    "MSP", "−entropy", "margin", "−NLL", "Energy", "ODIN", "Mahalanobis", "GradNorm",
    "confounding norm", "MC dropout (−MI)", "ensemble (−MI)", "random")
"""The scores a :class:`ScoreSuite` computes by default (chapter 3's table)."""

COLUMNS: dict[str, str] = {"AUROC": "AUROC", "AUPR-In": "AUPR_IN", "AUPR-Out": "AUPR_OUT",
                           "FPR@95TPR": "FPR@95", "Detection acc.": "detection acc."}


class ScoreSuite:
    """All of chapter 3's scores for a batch: ``suite(x) -> {name: (B,) tensor}``.

    Builds the detector of every name in ``names`` from :data:`SCORES` and fits it once on
    ``(fit_x, fit_y)`` (only Mahalanobis learns from them); every call then scores one
    :class:`~tutorial_utils.uncertainty.Batch`, so the forward pass, the features and the
    confounding-label backward are shared.

    Args:
        model: a classifier ending in an ``nn.Linear`` (e.g. a zoo model).
        fit_x, fit_y: training images and labels, the in-distribution data the detectors fit.
        ensemble: an :class:`~tutorial_utils.architectures.Ensemble` for "ensemble (−MI)"
            (left out when ``None``).
        layers: the layers of the confounding-label norm (default: every layer).
        names: the scores to compute (default :data:`SCORE_NAMES`; any key of :data:`SCORES`
            that needs no more than ``fit(fit_x, fit_y)``).
        seed: seeds MC dropout and the random score (local generators only).
        detector: a fitted :class:`~tutorial_utils.uncertainty.ConfoundingDetector`, scored as
            "gradient detector H" from the same per-layer norms as "confounding norm" when it
            uses the same loss and layers (one backward for both).
        extra: more scores ``{name: fn(x) -> (B,)}``, computed after the built-in ones.
    """

    def __init__(self, model: nn.Module, fit_x: torch.Tensor, fit_y: torch.Tensor,
                 ensemble: nn.Module | None = None, layers: Sequence[nn.Module] | None = None,
                 names: Sequence[str] | None = None, seed: int = 0,
                 odin_temperature: float = 1000.0, odin_epsilon: float = 0.0014,
                 mc_passes: int = 20, detector: U.ConfoundingDetector | None = None,
                 extra: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None
                 ) -> None:
        names = tuple(SCORE_NAMES if names is None else names)
        unknown = [n for n in names if n not in SCORES or n == "gradient detector H"]
        if unknown:
            raise ValueError(f"names: unknown score(s) {unknown}; valid: {', '.join(SCORE_NAMES)}"
                             f", GradTrust (the gradient detector H is passed as detector=...)")
        if "ensemble (−MI)" in names and ensemble is None:
            names = tuple(n for n in names if n != "ensemble (−MI)")
        check_inputs(model, fit_x, "fit_x")
        check_classes(fit_y, len(fit_x), None, "fit_y", per_sample=True)  # named as fit_y
        options = {
            "ODIN": dict(temperature=check_number(odin_temperature, "odin_temperature",
                                                  low=0.0, low_open=True),
                         epsilon=check_epsilon(odin_epsilon, "odin_epsilon")),
            "confounding norm": dict(layers=layers),
            "MC dropout (−MI)": dict(passes=check_passes(mc_passes, "mc_passes"),
                                     seed=check_seed(seed)),
            "random": dict(seed=seed),
        }
        self.model, self.ensemble, self.layers, self.names = model, ensemble, layers, names
        try:
            self.detectors: dict[str, U.Detector] = {
                name: SCORES[name](ensemble if name == "ensemble (−MI)" else model,
                                   **options.get(name, {})).fit(fit_x, fit_y)
                for name in names}
        except ValueError as error:  # a degenerate fit: say which arguments it came from
            raise ValueError(f"fit_x, fit_y: {error}") from None
        self.detector, self.extra = detector, dict(extra or {})

    @property
    def mahalanobis(self) -> U.Mahalanobis | None:
        """The fitted Mahalanobis detector (``None`` when it is not among the names)."""
        return self.detectors.get("Mahalanobis")

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every score of ``self.names`` for images ``x`` (B, C, H, W): ``{name: (B,)}``."""
        batch = U.Batch(self.model, x)
        out = {}
        for name, det in self.detectors.items():
            scored = batch if name != "ensemble (−MI)" else U.Batch(self.ensemble, x)
            out[name] = det.score_batch(scored).detach().float().cpu()
        if self.detector is not None:
            out["gradient detector H"] = self.detector.score_batch(batch).float().cpu()
        out.update({name: fn(x).detach().float().cpu() for name, fn in self.extra.items()})
        return out


def _check_scores(scores: object, name: str) -> Mapping[str, torch.Tensor]:
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError(f"{name} must be a non-empty dict {{score name: (N,) scores}}")
    return scores


def detection_table(id_scores: Mapping[str, torch.Tensor],
                    novel_scores: Mapping[str, Mapping[str, torch.Tensor]],
                    metric: str = "AUROC", near: Sequence[str] = (), far: Sequence[str] = ()):
    """One metric for every (novel set, score): a DataFrame, rows = novel sets, columns =
    scores; with ``near``/``far`` set names, two extra rows hold their means (OpenOOD's
    near-OOD / far-OOD). ``metric`` is one of :data:`COLUMNS` (keys or OpenOOD names).
    In-distribution is the positive class; every score is higher = in-distribution."""
    import pandas as pd

    _check_scores(id_scores, "id_scores")
    _check_scores(novel_scores, "novel_scores")
    key = {**{v: k for k, v in COLUMNS.items()}, **{k: k for k in COLUMNS}}.get(metric)
    if key is None:
        raise ValueError(f"metric must be one of {list(COLUMNS.values())}, got {metric!r}")
    rows = {}
    for set_name, scores in novel_scores.items():
        missing = [name for name in id_scores if name not in _check_scores(scores, set_name)]
        if missing:
            raise ValueError(f"novel_scores[{set_name!r}] lacks the score(s) {missing} that "
                             f"id_scores has")
        rows[set_name] = {name: detection_report(id_scores[name], scores[name])[key]
                          for name in id_scores}
    table = pd.DataFrame(rows).T
    for label, members, arg in (("near-OOD (mean)", near, "near"), ("far-OOD (mean)", far, "far")):
        unknown = [m for m in members if m not in novel_scores]
        if isinstance(members, str) or unknown:
            raise ValueError(f"{arg} must list names of novel sets in novel_scores, got "
                             f"{members!r}")
        if members:
            table.loc[label] = table.loc[list(members)].mean()
    table.columns.name = f"{COLUMNS[key]} (ID = positive, higher score = ID)"
    return table


def auroc_table(model_scores: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
                clean: torch.Tensor, sets: Mapping[object, torch.Tensor],
                progress: bool = True):
    """AUROC of clean vs each set in ``sets`` for every score of ``model_scores``.

    ``sets`` maps a key (e.g. ``(challenge, level)``) to images; returns a long DataFrame with
    columns ``key``, ``score``, ``AUROC`` (one row per key and score), clean scored once.
    """
    import pandas as pd

    check_callable(model_scores, "model_scores")
    if not isinstance(sets, Mapping):
        raise TypeError(f"sets must be a dict {{key: images}}, got {type(sets).__name__}")
    id_scores = model_scores(clean)
    rows = []
    for key, x in progress_bar(sets.items(), desc="sets", total=len(sets), enabled=progress):
        scores = model_scores(x)
        for name, s in scores.items():
            rows.append(dict(key=key, score=name, AUROC=detection_auroc(id_scores[name], s)))
    return pd.DataFrame(rows)


class ThresholdView(NamedTuple):
    """One decision threshold on a score: ``threshold``; ``tpr`` the share of in-distribution
    inputs kept (score ≥ threshold); ``fpr`` the share of novel inputs wrongly kept;
    ``flagged`` indices (into the novel set) of the novel inputs caught, most novel first;
    ``missed`` of those kept; plus the two score arrays."""

    threshold: float
    tpr: float
    fpr: float
    flagged: np.ndarray
    missed: np.ndarray
    id_scores: np.ndarray
    novel_scores: np.ndarray


def threshold_view(id_scores: object, novel_scores: object, keep_percent: float) -> ThresholdView:
    """Place the threshold so that ``keep_percent`` % of the in-distribution inputs are kept
    (a TPR target, e.g. 95), and see which novel inputs it flags (score below it)."""
    s_id = check_vector(id_scores, "id_scores").astype(float)
    s_nov = check_vector(novel_scores, "novel_scores").astype(float)
    keep_percent = check_number(keep_percent, "keep_percent", low=0.0, high=100.0,
                                low_open=True)
    ranked = np.sort(s_id)  # the lowest score kept: at least keep_percent % of ID stay
    # number dropped = floor((1 − p/100)·N), with a tolerance: (1 − 0.9)·10 is 0.99999…98 in
    # floating point and must drop 1 of 10, not 0 (keep_percent=90 keeps 9 of 10 scores)
    dropped = int(np.floor((1 - keep_percent / 100) * len(ranked) + 1e-9))
    t = float(ranked[min(dropped, len(ranked) - 1)])
    order = np.argsort(s_nov, kind="stable")
    flagged = order[s_nov[order] < t]
    missed = order[s_nov[order] >= t]
    return ThresholdView(t, float((s_id >= t).mean()), float((s_nov >= t).mean()), flagged,
                         missed, s_id, s_nov)


# --------------------------------------------------------------------------------------
# Intervals: a cluster bootstrap behind every table cell a sentence rests on
# --------------------------------------------------------------------------------------

SATURATED = 0.995
"""An AUROC at or above this is *saturated*: a ceiling, not a ranking (ties are not ranked)."""


def _unit_ids(units: object, n: int, name: str) -> np.ndarray:
    if units is None:
        return np.arange(n)
    u = np.asarray(units.numpy() if isinstance(units, torch.Tensor) else units)
    if u.shape != (n,) or not np.issubdtype(u.dtype, np.integer):
        raise ValueError(f"{name} must be ({n},) integer unit ids, got {u.dtype} {u.shape}")
    return u.astype(np.int64)


def auroc_evidence(id_score: torch.Tensor, novel_score: torch.Tensor, id_units: object = None,
                   novel_units: object = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raw evidence of one AUROC for :mod:`tutorial_utils.claims`: ``(values, labels,
    units)``, each (N + M,): the N in-distribution scores then the M novel ones, labels 1 = ID
    (the positive class), and integer unit ids. ``id_units`` (N,) / ``novel_units`` (M,) name
    what was drawn independently (a base image); a novel image made *from* an ID image (a
    challenged or attacked copy) takes that image's id, so the two are resampled together.
    ``None``: every ID row its own unit, every novel row a new unit after the ID ids."""
    a = torch.as_tensor(id_score).detach().float().flatten().cpu().numpy()
    b = torch.as_tensor(novel_score).detach().float().flatten().cpu().numpy()
    iu = _unit_ids(id_units, len(a), "id_units")
    nu = _unit_ids(novel_units, len(b), "novel_units") if novel_units is not None else \
        np.arange(len(b)) + int(iu.max()) + 1
    return (np.concatenate([a, b]), np.concatenate([np.ones(len(a)), np.zeros(len(b))]),
            np.concatenate([iu, nu]))


def auroc_intervals(id_scores: Mapping[str, torch.Tensor],
                    novel_scores: Mapping[str, Mapping[str, torch.Tensor]],
                    id_units: object = None, novel_units: Mapping[str, object] | None = None,
                    names: Sequence[str] | None = None, resamples: int = 1000):
    """AUROC with its 95% cluster-bootstrap interval for every (novel set, score).

    Returns a DataFrame indexed by ``(set, score)`` with columns ``AUROC``, ``low``, ``high``
    (:func:`tutorial_utils.claims.estimate` with ``statistic="auroc"``; ID units and novel
    units resampled within their class, a unit shared by both resampled whole).
    ``novel_units`` maps a set name to its (M,) unit ids (default: independent images)."""
    import pandas as pd

    _check_scores(id_scores, "id_scores")
    _check_scores(novel_scores, "novel_scores")
    names = list(id_scores) if names is None else list(names)
    rows = []
    for set_name, scores in novel_scores.items():
        nu = None if novel_units is None else novel_units.get(set_name)
        for name in names:
            v, lab, u = auroc_evidence(id_scores[name], scores[name], id_units, nu)
            est = claims.estimate(v, units=u, statistic="auroc", labels=lab,
                                  resamples=resamples, key=f"auroc-table/{set_name}/{name}")
            rows.append(dict(set=set_name, score=name, AUROC=est.value, low=est.low,
                             high=est.high))
    return pd.DataFrame(rows).set_index(["set", "score"])


def format_intervals(intervals, saturated: float = SATURATED):
    """``auroc_intervals`` as a readable grid (rows = sets, columns = scores) of strings
    ``"0.839 [0.801, 0.876]"``; a cell with AUROC ≥ ``saturated`` reads ``"saturated"`` with its
    value, so no ranking is read into ceiling ties."""
    def cell(r):
        text = f"{r.AUROC:.3f} [{r.low:.3f}, {r.high:.3f}]"
        return f"saturated ({r.AUROC:.3f})" if r.AUROC >= saturated else text

    out = intervals.apply(cell, axis=1).unstack("score")
    sets = list(dict.fromkeys(intervals.index.get_level_values("set")))
    scores = list(dict.fromkeys(intervals.index.get_level_values("score")))
    return out.loc[sets, scores]
