"""Generic charts: curves, trust curves, reliability diagrams, ROC, score histograms, bars.

Every function returns the ``Figure`` it drew on; ``ax=None`` draws into a new figure.
Scores follow the course convention: **higher = more in-distribution / more trustworthy**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tutorial_utils import metrics
from tutorial_utils._checks import as_array, check_vector
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _array, _names, _new_ax

__all__ = [
    "plot_curves",
    "plot_trust_curves",
    "reliability_diagram",
    "plot_roc",
    "score_histograms",
    "bar_probabilities",
]


def plot_curves(fractions: object, curves: Mapping[str, object],
                auc: Mapping[str, float] | None = None, title: str | None = None,
                xlabel: str = "fraction of pixels", ylabel: str = "probability of the class",
                ax: Axes | None = None) -> Figure:
    """Insertion/deletion-style curves: ``fractions`` (S+1,) and ``curves`` {name: (S+1,)}.

    ``auc`` {name: area} is appended to the legend entries ("Grad-CAM (AUC 0.42)").
    """
    x = _array(np.asarray(fractions) if isinstance(fractions, Sequence) else fractions,
               "fractions")
    if x.ndim != 1:
        raise ValueError(f"fractions must be 1-D (S+1,), got {x.shape}")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict {name: (S+1,) values}")
    fig, ax = _new_ax(ax, (4.5, 3.2))
    for name, c in curves.items():
        y = _array(np.asarray(c) if isinstance(c, Sequence) else c, f"curves[{name!r}]")
        if y.shape != x.shape:
            raise ValueError(f"curves[{name!r}] has shape {y.shape}, fractions has {x.shape}")
        label = name if auc is None or name not in auc else f"{name} (AUC {auc[name]:.3f})"
        ax.plot(x, y, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(float(x.min()), float(x.max())))
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def plot_trust_curves(curves_by_method: Mapping[str, metrics.TrustCurve],
                      ylabel: str = "accuracy", ax: Axes | None = None,
                      title: str | None = None) -> Figure:
    """AUAC/AUFC curves from :func:`tutorial_utils.metrics.auac` / ``aufc``, area in legend."""
    if not isinstance(curves_by_method, Mapping) or not curves_by_method:
        raise ValueError("curves_by_method must be a non-empty dict {name: TrustCurve}")
    fig, ax = _new_ax(ax, (4.5, 3.2))
    for name, c in curves_by_method.items():
        if not isinstance(c, metrics.TrustCurve):
            raise TypeError(f"curves_by_method[{name!r}] must be a metrics.TrustCurve")
        ax.plot(100 * c.fractions, c.values, label=f"{name} (area {c.area:.3f})")
    ax.set(xlabel="trust percentile x (keep samples above it)", ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def reliability_diagram(probs: object, labels: object, n_bins: int = 15,
                        ax: Axes | None = None, label: str | None = None) -> Figure:
    """Reliability diagram (Guo et al. 2017) built on :func:`metrics.reliability_curve`.

    Inputs as there: (N, K) probabilities + (N,) labels, or (N,) confidences + (N,) correct.
    Bars = accuracy per bin, shaded = gap to the bin's mean confidence, dashed = perfect
    calibration; the number above a bar is the bin's count; the ECE is shown in the legend.
    """
    curve = metrics.reliability_curve(probs, labels, n_bins)
    fig, ax = _new_ax(ax, (3.6, 3.6))
    left, width = curve.edges[:-1], np.diff(curve.edges)
    filled = curve.counts > 0
    acc = np.where(filled, curve.accuracy, 0.0)
    conf = np.where(filled, curve.confidence, 0.0)
    name = f"{label}: " if label else ""
    ax.bar(left, acc, width=width, align="edge", color=NEUTRAL, edgecolor="white",
           label=f"{name}accuracy (ECE {curve.ece:.3f})")
    ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled], width=width[filled],
           align="edge", color=HIGHLIGHT, alpha=0.35, edgecolor=HIGHLIGHT, hatch="//",
           label="gap to confidence")
    for x0, w, top, n in zip(left[filled], width[filled], np.maximum(acc, conf)[filled],
                             curve.counts[filled], strict=True):
        ax.text(x0 + w / 2, min(top + 0.02, 0.97), f"{n}", ha="center", va="bottom",
                fontsize=6, color="0.3")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    ax.legend(fontsize="small", frameon=True, framealpha=0.85, loc="upper left")
    return fig


def plot_roc(y_true: object, scores_by_method: Mapping[str, object], ax: Axes | None = None,
             title: str | None = None) -> Figure:
    """ROC curves, one per method; ``y_true`` (N,) 1 = in-distribution, scores (N,) higher = ID."""
    from sklearn.metrics import roc_curve

    if not isinstance(scores_by_method, Mapping) or not scores_by_method:
        raise ValueError("scores_by_method must be a non-empty dict {name: (N,) scores}")
    fig, ax = _new_ax(ax, (3.6, 3.6))
    for name, s in scores_by_method.items():
        area = metrics.auroc(y_true, s)  # validates both inputs
        y = as_array(y_true, "y_true").astype(int)
        fpr, tpr, _ = roc_curve(y, as_array(s, "y_score").astype(float))
        ax.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate",
           ylabel="true-positive rate", aspect="equal")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False, loc="lower right")
    return fig


def score_histograms(scores_by_name: Mapping[str, object], bins: int = 40,
                     xlabel: str = "score (higher = more in-distribution)",
                     ax: Axes | None = None, title: str | None = None) -> Figure:
    """Overlaid density histograms of scores, e.g. {"ID test": s_id, "GO sign": s_go}."""
    if not isinstance(scores_by_name, Mapping) or not scores_by_name:
        raise ValueError("scores_by_name must be a non-empty dict {name: (N,) scores}")
    fig, ax = _new_ax(ax, (4.5, 3.0))
    arrays = {n: check_vector(s, f"scores_by_name[{n!r}]").astype(float)
              for n, s in scores_by_name.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    for name, s in arrays.items():
        ax.hist(s, bins=edges, density=True, alpha=0.5, label=name)
    ax.set(xlabel=xlabel, ylabel="density")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def bar_probabilities(probs: object, class_names: Sequence[str], top_k: int | None = None,
                      ax: Axes | None = None, title: str | None = None) -> Figure:
    """Horizontal bars of one probability vector (K,), the predicted class highlighted.

    ``top_k`` keeps the k most probable classes (sorted); ``None`` shows all in class order.
    """
    p = _array(np.asarray(probs) if isinstance(probs, Sequence) else probs, "probs")
    p = p.astype(np.float64)
    if p.ndim != 1:
        raise ValueError(f"probs must be one probability vector (K,), got {p.shape}; "
                         "pick a sample with probs[i]")
    names = _names(class_names, len(p), "class_names")
    if np.isnan(p).any() or p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError("probs must be probabilities in [0, 1]; pass softmax(logits)")
    order = np.arange(len(p))
    if top_k is not None:
        if isinstance(top_k, (bool, np.bool_)) or not isinstance(top_k, (int, np.integer)) \
                or top_k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        top_k = int(top_k)
        order = np.argsort(-p, kind="stable")[:top_k]
    fig, ax = _new_ax(ax, (4.0, 0.3 * len(order) + 0.8))
    pred = int(p.argmax())
    colors = [HIGHLIGHT if i == pred else NEUTRAL for i in order]
    ypos = np.arange(len(order))[::-1]  # first entry on top
    ax.barh(ypos, p[order], color=colors)
    ax.set_yticks(ypos, [names[i] for i in order])
    for y, v in zip(ypos, p[order], strict=True):
        ax.text(min(v + 0.01, 0.86), y, f"{v:.2f}", va="center", fontsize="x-small")
    ax.set(xlim=(0, 1), xlabel="probability")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title)
    return fig
