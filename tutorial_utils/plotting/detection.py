"""Figures of :mod:`tutorial_utils.detection` and :mod:`tutorial_utils.uncertainty`: the entropy
decomposition, score histograms, per-layer and per-level AUROC maps, a decision threshold.

One colour means one thing in every figure of chapter 3 (and in its coloured tables):

* blue (``NEUTRAL``) — clean / in-distribution / a correct prediction;
* red (``HIGHLIGHT``), then orange, brown, pink (:data:`NOVEL_COLOURS`) — novel, challenged,
  attacked inputs, or a wrong prediction;
* the green–purple scale (:data:`AUROC_CMAP`) — an AUROC: green detects, white is chance (0.5),
  purple is reversed;
* greys — the parts of one quantity (aleatoric and epistemic entropy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.detection import ThresholdView
from tutorial_utils.metrics import auroc
from tutorial_utils.plotting.images import _images, _imshow
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "NOVEL_COLOURS",
    "AUROC_CMAP",
    "plot_decomposition",
    "plot_score_grid",
    "plot_auroc_map",
    "ThresholdFigure",
    "plot_threshold_view",
    "ScoreChoiceFigure",
    "plot_score_choice",
]


NOVEL_COLOURS: tuple[str, ...] = (HIGHLIGHT, "#DD8452", "#937860", "#DA8BC3")
"""Colours of novel sets, in order (seaborn "deep" red, orange, brown, pink); clean is blue."""

AUROC_CMAP = "PRGn"
"""Colour scale of every AUROC map and table of chapter 3: purple 0 (reversed), white 0.5
(chance), green 1 (detects) — no blue or red, which mean clean and novel."""

ALEATORIC, EPISTEMIC = "0.75", "0.3"  # greys: two parts of one entropy, not two kinds of input


def plot_decomposition(table, title: str = "predictive entropy = aleatoric + epistemic"):
    """Stacked bars of mean aleatoric and epistemic entropy (nats) per condition, one panel per
    method. ``table``: DataFrame with columns ``method, condition, aleatoric, epistemic`` and,
    optionally, ``accuracy`` (share in [0, 1]; NaN where a condition has no labels), drawn as
    a black line on a right-hand axis so that a bar that shrinks while accuracy collapses
    is seen as what it is: the model growing confident, not the input growing easy."""
    _style()
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 3.5), squeeze=False,
                             layout="constrained", sharey=True)
    twins = []
    for ax, method in zip(axes[0], methods, strict=True):
        rows = table[table["method"] == method]
        xs = np.arange(len(rows))
        ax.bar(xs, rows["aleatoric"], color=ALEATORIC, label="aleatoric (mean entropy)")
        ax.bar(xs, rows["epistemic"], bottom=rows["aleatoric"], color=EPISTEMIC,
               label="epistemic (mutual information)")
        ax.set_xticks(xs, rows["condition"], rotation=45, ha="right", fontsize="small")
        ax.set(title=method, ylabel="entropy (nats)")
        ax.spines[["top"]].set_visible(False)
        if "accuracy" in rows:
            acc = rows["accuracy"].to_numpy(dtype=float)
            twin = ax.twinx()
            twin.plot(xs, acc, color="k", marker="o", ms=4, lw=1.2,
                      markerfacecolor="w", label="accuracy (right axis)")
            twin.set(ylim=(0, 1.05), ylabel="accuracy" if method == methods[-1] else "")
            twin.spines[["top"]].set_visible(False)
            twin.grid(False)
            twins.append(twin)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if twins:
        h2, l2 = twins[0].get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    fig.legend(handles, labels, fontsize="small", frameon=False, loc="outside lower center",
               ncol=len(labels))
    fig.suptitle(title, fontsize="medium")
    return fig


def plot_score_grid(id_scores: Mapping[str, torch.Tensor],
                    novel_scores: Mapping[str, Mapping[str, torch.Tensor]],
                    names: Sequence[str], ncols: int = 3, bins: int = 30):
    """One panel per score: density histograms of the in-distribution set (blue) and every
    novel set (red, orange, brown, pink: :data:`NOVEL_COLOURS`; at most four) — each score on
    its own axis, higher = more in-distribution."""
    if len(novel_scores) > len(NOVEL_COLOURS):
        raise ValueError(f"novel_scores: at most {len(NOVEL_COLOURS)} novel sets, got "
                         f"{len(novel_scores)}")
    _style()
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 2.7 * nrows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names, strict=False):
        sets = {"in-distribution": id_scores[name],
                **{k: v[name] for k, v in novel_scores.items()}}
        values = np.concatenate([np.asarray(v, dtype=float) for v in sets.values()])
        values = values[np.isfinite(values)]
        # clip the axis to the 2nd-98th percentile of all scores, so one far set with huge
        # values (Mahalanobis on textures) does not squeeze the others into one bin
        low, high = np.percentile(values, [2, 98])
        clipped = low < values.min() or high < values.max()
        edges = np.linspace(low, high if high > low else low + 1, bins + 1)
        colours = (NEUTRAL, *NOVEL_COLOURS)
        for i, (label, v) in enumerate(sets.items()):
            ax.hist(np.clip(np.asarray(v, dtype=float), low, high), bins=edges, density=True,
                    alpha=0.45, label=label, color=colours[i], histtype="stepfilled")
        ax.set(title=name + (" (axis clipped)" if clipped else ""),
               xlabel="score (higher = in-distribution)", ylabel="density", yticks=[])
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="x-small", frameon=False)
    return fig


def plot_auroc_map(table, title: str, xlabel: str = "", ylabel: str = "",
                   fmt: str = "{:.2f}", cmap: str = AUROC_CMAP, size: tuple | None = None):
    """A DataFrame of AUROCs as a heat map (rows × columns), every cell annotated; the colour
    scale is centred on 0.5 (chance): purple = reversed, green = detects (:data:`AUROC_CMAP`)."""
    _style()
    values = table.to_numpy(dtype=float)
    size = size or (0.75 * values.shape[1] + 2.5, 0.34 * values.shape[0] + 1.4)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    im = ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns], rotation=45,
                  ha="right", fontsize="small")
    ax.set_yticks(range(values.shape[0]), [str(r) for r in table.index], fontsize="small")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6.5,
                    color="w" if abs(v - 0.5) > 0.35 else "k")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.title.set_fontsize("small")
    fig.colorbar(im, ax=ax, shrink=0.8, label="AUROC (green detects, 0.5 chance, purple reversed)")
    return fig


class ThresholdFigure:
    """A threshold on a score: the two histograms with the threshold, and thumbnails of the
    novel inputs it flags (most novel first) — updated in place by ``set_view`` (the
    histograms are drawn once; the threshold line, title and thumbnails change)."""

    def __init__(self, images: torch.Tensor, score_name: str, n_thumbs: int = 12,
                 dpi: int | None = None) -> None:
        _style()
        self.images, self.n = _images(images), n_thumbs
        self.fig = plt.figure(figsize=(11, 3.2), dpi=dpi, layout="constrained")
        grid = self.fig.add_gridspec(2, 2 + n_thumbs // 2, width_ratios=[3, 0.2]
                                     + [1] * (n_thumbs // 2))
        self.hist = self.fig.add_subplot(grid[:, 0])
        self.thumbs = [self.fig.add_subplot(grid[r, 2 + c]) for r in range(2)
                       for c in range(n_thumbs // 2)]
        blank = np.ones_like(self.images[0])
        self.pictures = []
        for thumb in self.thumbs:
            _imshow(thumb, blank)
            self.pictures.append(thumb.images[0])
        self.score_name = score_name
        self.line = None

    def _draw_histograms(self, view: ThresholdView) -> None:
        ax = self.hist
        edges = np.histogram_bin_edges(np.r_[view.id_scores, view.novel_scores], bins=30)
        ax.hist(view.id_scores, bins=edges, density=True, alpha=0.5, color=NEUTRAL,
                label="in-distribution")
        ax.hist(view.novel_scores, bins=edges, density=True, alpha=0.5, color=HIGHLIGHT,
                label="novel")
        ax.set(xlabel=f"{self.score_name} (higher = in-distribution)", yticks=[])
        ax.legend(fontsize="x-small", frameon=False)
        self.line = ax.axvline(view.threshold, color="k", lw=1.2, ls="--")

    def set_view(self, view: ThresholdView) -> None:
        if self.line is None:
            self._draw_histograms(view)
        self.line.set_xdata([view.threshold, view.threshold])
        self.hist.set_title(f"keep ≥ threshold: TPR {view.tpr:.2f}, FPR {view.fpr:.2f}",
                            fontsize="small")
        blank = np.ones_like(self.images[0])
        for i, picture in enumerate(self.pictures):
            picture.set_data(self.images[view.flagged[i]] if i < len(view.flagged) else blank)
        self.thumbs[0].set_title(f"flagged: {len(view.flagged)} of {len(view.novel_scores)}",
                                 fontsize="x-small", loc="left")


def plot_threshold_view(view: ThresholdView, images: torch.Tensor, score_name: str):
    """Static version of :class:`ThresholdFigure` for one threshold."""
    figure = ThresholdFigure(images, score_name)
    figure.set_view(view)
    return figure.fig


class ScoreChoiceFigure:
    """Histograms of one score for clean vs one challenged set, with its AUROC in the title —
    redrawn in place by ``set_choice``."""

    def __init__(self, dpi: int | None = None) -> None:
        _style()
        self.fig, self.ax = plt.subplots(figsize=(6.4, 3.0), dpi=dpi, layout="constrained")

    def set_choice(self, clean: np.ndarray, novel: np.ndarray, label: str, score: str,
                   auroc: float) -> None:
        ax = self.ax
        ax.clear()
        edges = np.histogram_bin_edges(np.r_[clean, novel], bins=30)
        ax.hist(clean, bins=edges, density=True, alpha=0.5, color=NEUTRAL, label="clean")
        ax.hist(novel, bins=edges, density=True, alpha=0.5, color=HIGHLIGHT, label=label)
        ax.set(xlabel=f"{score} (higher = in-distribution)", yticks=[],
               title=f"{score}: clean vs {label}, AUROC {auroc:.3f}")
        ax.title.set_fontsize("small")
        ax.legend(fontsize="x-small", frameon=False)


def plot_score_choice(clean_scores: Mapping[str, torch.Tensor],
                      grid_scores: Mapping[tuple, Mapping[str, torch.Tensor]], kind: str,
                      level: int, score: str):
    """Static figure of one (challenge kind, level, score) cell of a corruption grid."""

    clean, novel = (np.asarray(v, dtype=float) for v in (clean_scores[score],
                                                         grid_scores[(kind, level)][score]))
    figure = ScoreChoiceFigure()
    figure.set_choice(clean, novel, f"{kind} {level}", score,
                      auroc(np.r_[np.ones(len(clean)), np.zeros(len(novel))], np.r_[clean, novel]))
    return figure.fig
