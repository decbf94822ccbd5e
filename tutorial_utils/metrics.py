"""Scalar metrics of the course: detection, calibration, trust curves and information.

Every function accepts NumPy arrays, PyTorch tensors (any device, detached for you) or plain
sequences, and returns Python floats or NumPy arrays. Bad input raises a ``ValueError`` or
``TypeError`` that names the offending argument.

Sign convention (the whole course): a **score is "higher = more in-distribution / more
trustworthy"**, and for detection metrics the **positive class is in-distribution** (label 1).

References
----------
- D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and out-of-distribution
  examples in neural networks", ICLR 2017 (AUROC, AUPR-In/Out).
- S. Liang, Y. Li, R. Srikant, "Enhancing the reliability of out-of-distribution image
  detection in neural networks" (ODIN), ICLR 2018 (FPR at 95% TPR, detection accuracy).
- C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks",
  ICML 2017 (ECE, reliability diagrams).
- M. Prabhushankar, G. AlRegib, "Counterfactual gradients-based quantification of prediction
  trust in neural networks" (GradTrust), 2024 (AUAC / AUFC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tutorial_utils._checks import (
    as_array,
    check_int,
    check_probabilities,
    check_same_length,
    check_vector,
)

# scikit-learn (and SciPy behind it) is imported inside the functions that need it: it costs
# about a second, and ``tutorial_utils.plotting`` imports this module.

__all__ = [
    "auroc",
    "aupr",
    "fpr_at_tpr",
    "detection_accuracy",
    "detection_report",
    "detection_auroc",
    "expected_calibration_error",
    "ece_from_confidence",
    "reliability_curve",
    "ReliabilityCurve",
    "auac",
    "aufc",
    "TrustCurve",
    "rank_correlation",
    "mean_se",
]

DEFAULT_PERCENTILES = np.linspace(0, 99, 100)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _binary(y: object, name: str) -> np.ndarray:
    """Binary labels in {0, 1} (or bool) with both classes present -> int array."""
    a = check_vector(y, name)
    values = np.unique(a)
    if not np.isin(values, [0, 1]).all():
        raise ValueError(f"{name} must hold binary labels 0/1 (1 = in-distribution / correct), "
                         f"got values {values[:5].tolist()}")
    if len(values) < 2:
        raise ValueError(f"{name} contains a single class ({int(values[0])}); "
                         "detection metrics need both positives and negatives")
    return a.astype(int)


def _scores(y_true: object, y_score: object) -> tuple[np.ndarray, np.ndarray]:
    labels = _binary(y_true, "y_true")
    scores = check_vector(y_score, "y_score").astype(float)
    check_same_length(labels, scores, "y_true", "y_score")
    return labels, scores


def _check_n_bins(n_bins: object) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise TypeError(f"n_bins must be an int, got {type(n_bins).__name__}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return int(n_bins)


def _confidences(confidence: object, name: str = "confidence") -> np.ndarray:
    c = check_vector(confidence, name).astype(np.float64)
    if c.min() < 0 or c.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{c.min():.3g}, {c.max():.3g}]")
    return c


def _correct(correct: object, n: int, name: str = "correct") -> np.ndarray:
    k = check_vector(correct, name)
    if not np.isin(np.unique(k), [0, 1]).all():
        raise ValueError(f"{name} must be boolean (or 0/1): whether each prediction is right")
    if len(k) != n:
        raise ValueError(f"{name} must have one entry per sample: got {len(k)}, expected {n}")
    return k.astype(bool)


def _confidence_and_correct(probs: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on ``probs.ndim``: (N, K) probs + int labels, or (N,) confidence + correct."""
    ndim = as_array(probs, "probs").ndim
    if ndim == 1:
        conf = _confidences(probs, "probs")
        return conf, _correct(labels, len(conf), "labels")
    p = check_probabilities(probs)
    y = check_vector(labels, "labels")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
    check_same_length(p, y, "probs", "labels")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1] - 1}] for {p.shape[1]} classes, "
                         f"got values in [{y.min()}, {y.max()}]")
    return p.max(axis=1), p.argmax(axis=1) == y


# --------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------


def auroc(y_true: object, y_score: object) -> float:
    """Area under the ROC curve (Hendrycks & Gimpel 2017).

    ``y_true`` (N,) binary, 1 = in-distribution (positive); ``y_score`` (N,) with higher =
    more in-distribution. 1.0 = perfect separation, 0.5 = chance, 0.0 = perfectly reversed.
    """
    from sklearn.metrics import roc_auc_score

    labels, scores = _scores(y_true, y_score)
    return float(roc_auc_score(labels, scores))


def aupr(y_true: object, y_score: object) -> float:
    """Area under the precision-recall curve (average precision) with label 1 as positive.

    ``y_true`` (N,) binary, ``y_score`` (N,) higher = more positive. For "AUPR-Out" pass
    ``1 - y_true`` and ``-y_score`` (see :func:`detection_report`).
    """
    from sklearn.metrics import average_precision_score

    labels, scores = _scores(y_true, y_score)
    return float(average_precision_score(labels, scores))


def fpr_at_tpr(y_true: object, y_score: object, tpr: float = 0.95) -> float:
    """False-positive rate at the first ROC operating point whose TPR reaches ``tpr``.

    Walks sklearn's ``roc_curve`` (no intermediate points dropped) from the highest
    threshold down and returns the FPR at the highest threshold with TPR >= ``tpr``, i.e.
    the lowest FPR attainable at that recall. No interpolation between points: with few
    positives the achieved TPR may exceed ``tpr``. Positives = in-distribution (Liang et
    al. 2018 call it "FPR at 95% TPR"; lower is better).
    """
    from sklearn.metrics import roc_curve

    if isinstance(tpr, bool) or not isinstance(tpr, (int, float, np.floating)):
        raise TypeError(f"tpr must be a float in (0, 1], got {type(tpr).__name__}")
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must lie in (0, 1], got {tpr}")
    labels, scores = _scores(y_true, y_score)
    fpr, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.argmax(tprs >= tpr - 1e-12)])


def detection_accuracy(y_true: object, y_score: object) -> float:
    """Best balanced accuracy over thresholds: ``max_t ½ (TPR(t) + TNR(t))`` (Liang et al. 2018)."""
    from sklearn.metrics import roc_curve

    labels, scores = _scores(y_true, y_score)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(np.max(0.5 * (tpr + 1.0 - fpr)))


def detection_report(id_scores: object, ood_scores: object) -> dict[str, float]:
    """All detection metrics for scores of in-distribution vs novel samples.

    ``id_scores`` (N_in,) and ``ood_scores`` (N_out,), higher = more in-distribution.
    Returns ``{"AUROC", "AUPR-In", "AUPR-Out", "FPR@95TPR", "Detection acc."}`` as floats in
    [0, 1]; AUPR-Out treats the novel samples as positives with the score negated.
    """
    s_in = check_vector(id_scores, "id_scores").astype(float)
    s_out = check_vector(ood_scores, "ood_scores").astype(float)
    y = np.r_[np.ones(len(s_in), int), np.zeros(len(s_out), int)]
    s = np.r_[s_in, s_out]
    return {
        "AUROC": auroc(y, s),
        "AUPR-In": aupr(y, s),
        "AUPR-Out": aupr(1 - y, -s),
        "FPR@95TPR": fpr_at_tpr(y, s, 0.95),
        "Detection acc.": detection_accuracy(y, s),
    }


def detection_auroc(id_scores: object, ood_scores: object) -> float:
    """AUROC of in-distribution (positive class) vs novel scores, higher = in-distribution:
    ``detection_report(id_scores, ood_scores)["AUROC"]`` without the other metrics."""
    s_in = check_vector(id_scores, "id_scores").astype(float)
    s_out = check_vector(ood_scores, "ood_scores").astype(float)
    return auroc(np.r_[np.ones(len(s_in), int), np.zeros(len(s_out), int)], np.r_[s_in, s_out])


# --------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of a reliability diagram (``n_bins`` equal-width bins on [0, 1]).

    ``edges`` (n_bins+1,); ``confidence`` and ``accuracy`` (n_bins,) are bin means (NaN for an
    empty bin); ``counts`` (n_bins,) ints summing to N; ``ece`` the expected calibration error.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    ece: float


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence: bin i = (edges[i], edges[i+1]], with 0.0 put in bin 0.

    ``edges = np.linspace(0, 1, n_bins + 1)``; comparisons are made in float64 against these
    edges (a float32 confidence is first widened, so 0.3 in float32 is slightly above 0.3).
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges, confidence, side="left") - 1
    return np.clip(idx, 0, n_bins - 1)


def _reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> ReliabilityCurve:
    n_bins = _check_n_bins(n_bins)
    idx = _bin_index(conf, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=correct.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, sum_conf / counts, np.nan)
        accuracy = np.where(counts > 0, sum_acc / counts, np.nan)
    ece = float(np.abs(sum_acc - sum_conf).sum() / len(conf))
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_conf, accuracy, counts, ece)


def reliability_curve(probs: object, labels: object, n_bins: int = 15) -> ReliabilityCurve:
    """Reliability-diagram statistics (Guo et al. 2017).

    Either ``probs`` (N, K) softmax probabilities with ``labels`` (N,) int class indices
    (confidence = max probability, prediction = argmax), or ``probs`` (N,) confidences in
    [0, 1] with ``labels`` (N,) booleans saying whether each prediction is correct.
    Bins: equal width, bin i = (i/n, (i+1)/n]; a confidence of exactly 0.0 goes to the first
    bin, 1.0 to the last; a confidence exactly on an inner edge goes to the bin below it.
    """
    conf, correct = _confidence_and_correct(probs, labels)
    return _reliability(conf, correct, n_bins)


def expected_calibration_error(probs: object, labels: object, n_bins: int = 15) -> float:
    """Expected calibration error ``Σ_b (|B_b| / N) |acc(B_b) − conf(B_b)|`` (Guo et al. 2017).

    Same inputs and bin convention as :func:`reliability_curve`: (N, K) probabilities with
    (N,) int labels, or (N,) confidences with (N,) booleans ``correct``. Returns a float in
    [0, 1] (0 = perfectly calibrated on these bins).
    """
    return reliability_curve(probs, labels, n_bins).ece


def ece_from_confidence(confidence: object, correct: object, n_bins: int = 15) -> float:
    """ECE from (N,) confidences in [0, 1] and (N,) booleans ``correct`` (explicit 1-D form)."""
    conf = _confidences(confidence)
    return _reliability(conf, _correct(correct, len(conf)), n_bins).ece


# --------------------------------------------------------------------------------------
# Trust curves
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustCurve:
    """A metric computed on the most-trusted samples, as the kept share shrinks.

    ``fractions`` (S,) = percentiles / 100 (x-axis); ``values`` (S,) the metric on the samples
    whose trust is >= that percentile; ``n_kept`` (S,) how many were kept; ``area`` the
    trapezoid area under ``values`` divided by the span of ``fractions`` (a constant curve
    has area equal to its value, so areas lie in [0, 1]).
    """

    area: float
    fractions: np.ndarray
    values: np.ndarray
    n_kept: np.ndarray


def _percentiles(percentiles: object) -> np.ndarray:
    q = check_vector(percentiles, "percentiles").astype(float)
    if len(q) < 2:
        raise ValueError("percentiles needs at least two values to define an area")
    if q.min() < 0 or q.max() > 100:
        raise ValueError(f"percentiles must lie in [0, 100], got [{q.min()}, {q.max()}]")
    if np.any(np.diff(q) <= 0):
        raise ValueError("percentiles must be strictly increasing")
    return q


def _area(fractions: np.ndarray, values: np.ndarray) -> float:
    span = fractions[-1] - fractions[0]
    trapezoids = 0.5 * (values[1:] + values[:-1]) * np.diff(fractions)
    return float(trapezoids.sum() / span)


def _kept_start(trust: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort once; for each percentile the start index into the ascending order of kept samples."""
    order = np.argsort(trust, kind="stable")
    thresholds = np.percentile(trust, q)
    start = np.searchsorted(trust[order], thresholds, side="left")
    return order, start


def auac(trust: object, correct: object,
         percentiles: object = DEFAULT_PERCENTILES) -> TrustCurve:
    """Area under the accuracy curve (AUAC; Prabhushankar & AlRegib, GradTrust).

    ``trust`` (N,) higher = more trustworthy; ``correct`` (N,) booleans. For each percentile
    x the samples with ``trust >= percentile(trust, x)`` are kept (ties kept together, so a
    constant trust keeps everything) and their accuracy is recorded. A good trust score
    gives a rising curve and a large area; the accuracy of the whole set is the value at x=0.
    """
    t = check_vector(trust, "trust").astype(float)
    k = _correct(correct, len(t))
    q = _percentiles(percentiles)
    order, start = _kept_start(t, q)
    cum = np.r_[0.0, np.cumsum(k[order])]
    n_kept = len(t) - start
    values = (cum[-1] - cum[start]) / n_kept
    fractions = q / 100.0
    return TrustCurve(_area(fractions, values), fractions, values, n_kept)


def aufc(trust: object, y_true: object, y_pred: object,
         percentiles: object = DEFAULT_PERCENTILES, average: str = "macro") -> TrustCurve:
    """Area under the F1 curve (AUFC): as :func:`auac` with sklearn's ``f1_score``.

    ``y_true``, ``y_pred`` (N,) int class labels. On each kept subset F1 is averaged
    (``average``, macro by default) over the classes present in it, ``zero_division=0``.
    """
    from sklearn.metrics import f1_score

    t = check_vector(trust, "trust").astype(float)
    yt, yp = check_vector(y_true, "y_true"), check_vector(y_pred, "y_pred")
    check_same_length(t, yt, "trust", "y_true")
    check_same_length(t, yp, "trust", "y_pred")
    q = _percentiles(percentiles)
    order, start = _kept_start(t, q)
    values = np.array([
        f1_score(yt[order[s:]], yp[order[s:]], average=average, zero_division=0) for s in start
    ])
    fractions = q / 100.0
    return TrustCurve(_area(fractions, values), fractions, values, len(t) - start)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's ρ between maps ``a`` and ``b`` (B, …) per image, shape (B,).

    Ranks with ties averaged (``scipy.stats.rankdata``), then Pearson's r of the ranks — the
    same as ``scipy.stats.spearmanr``. Two identical maps give 1 (also constant ones); a
    constant map against a varying one shares no ordering and gives 0.
    """
    from scipy.stats import rankdata

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        raise ValueError("a and b must be tensors of the same shape (B, ...)")
    for name, t in (("a", a), ("b", b)):
        if t.dim() < 1 or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty batch of maps (B, ...), got shape "
                             f"{tuple(t.shape)}")
        if (t.is_floating_point() or t.is_complex()) and not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values: a map with NaN has no "
                             f"ranking (a correlation of 0 would read as 'the map changed')")
    fa, fb = (t.detach().double().cpu().flatten(1).numpy() for t in (a, b))
    ra, rb = (rankdata(f, axis=1) for f in (fa, fb))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    rho = np.divide((ra * rb).sum(1), den, out=np.zeros(len(fa)), where=den > 0)
    rho[(fa == fb).all(1)] = 1.0
    return torch.from_numpy(np.clip(rho, -1.0, 1.0))


def mean_se(values: object, dim: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (``std / √n``, unbiased std) along ``dim``.

    ``values`` is an array, tensor or nested sequence of numbers (float64 inside); returns two
    NumPy arrays (0-d for a 1-d input) of the shape without ``dim``.
    """
    v = torch.as_tensor(as_array(values, "values") if not isinstance(values, torch.Tensor)
                        else values.detach().cpu(), dtype=torch.float64)
    if v.numel() == 0 or v.dim() == 0:
        raise ValueError(f"values must hold at least one number along dim {dim}, got shape "
                         f"{tuple(v.shape)}")
    dim = check_int(dim, "dim", low=-v.dim(), high=v.dim() - 1)
    return v.mean(dim).numpy()[()], (v.std(dim) / np.sqrt(v.shape[dim])).numpy()[()]
