"""Figures of :mod:`tutorial_utils.evaluation`: pixel-wise insertion/deletion curves,
structure-wise curves (accuracy against Huffman bits), the masking-threshold view and the
maps of a sanity check.

``MaskingFigure`` is kept alive by the masking explorer and updated in place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.evaluation import Curve, SanityCheck, StructureCurve
from tutorial_utils.plotting.charts import plot_curves
from tutorial_utils.plotting.images import _image, _imshow
from tutorial_utils.plotting.style import _new_ax, _style

__all__ = [
    "method_colours",
    "plot_insertion_deletion",
    "plot_structure_curves",
    "MaskingFigure",
    "plot_sanity_maps",
]


def method_colours(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per method name (tab10, then tab20); the random map is black."""
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20b").colors)
    out, k = {}, 0
    for name in names:
        if "random" in name.lower():
            out[name] = (0, 0, 0)
        else:
            out[name], k = palette[k % len(palette)], k + 1
    return out


def plot_insertion_deletion(deletion: Mapping[str, Curve], insertion: Mapping[str, Curve],
                            auc_del: Mapping[str, float] | None = None,
                            auc_ins: Mapping[str, float] | None = None):
    """Mean deletion (left, lower = better) and insertion (right, higher = better) curves."""
    _style()
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
    colours = method_colours(list(deletion))
    for ax, curves, auc, what in ((axes[0], deletion, auc_del, "deletion: pixels removed"),
                                  (axes[1], insertion, auc_ins, "insertion: pixels inserted")):
        first = next(iter(curves.values()))
        plot_curves(first.fractions, {n: c.probs.mean(0) for n, c in curves.items()}, auc,
                    xlabel=f"fraction of pixels ({what.split(':')[0]})",
                    ylabel="mean probability of the class", ax=ax)
        for line, name in zip(ax.get_lines(), curves, strict=True):
            line.set_color(colours[name])
            if "random" in name.lower():
                line.set(ls="--", lw=1.5)
        ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
        ax.set_title(what + (" (lower AUC = better)" if "deletion" in what else
                             " (higher AUC = better)"), fontsize="small")
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_structure_curves(curves: Mapping[str, StructureCurve], ax=None,
                          title: str | None = None, budget: float | None = None,
                          legend: bool = True):
    """Accuracy against the ratio of Huffman bits (masked / original), one line per method;
    each point is one threshold (left end = highest threshold, fewest pixels kept).
    ``budget`` (a bits ratio, e.g. 0.7) draws a labelled vertical line there."""
    fig, ax = _new_ax(ax, (6.4, 3.6))
    if budget is not None:
        ax.axvline(budget, color="0.6", lw=0.8, zorder=0)
        ax.text(budget, 0.03, f" {100 * budget:.0f}% of the bits", fontsize="x-small",
                color="0.35")
    colours = method_colours(list(curves))
    for name, c in curves.items():
        ax.plot(c.bits_ratio.cpu().numpy(), c.accuracy.cpu().numpy(), marker="o", ms=3,
                color=colours[name], label=name, ls="--" if "random" in name.lower() else "-")
    ax.set(xlabel="Huffman bits of the masked image / of the original", ylabel="accuracy",
           ylim=(0, 1.02))
    ax.spines[["top", "right"]].set_visible(False)
    if legend:
        ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    if title:
        ax.set_title(title, fontsize="small")
    return fig


class MaskingFigure:
    """Top: one image masked by every method at a threshold τ (kept: map ≥ τ), titled with
    ``p`` of the class. Bottom: accuracy against τ for every method (structure-wise masking of
    the evaluation set), a marker at τ. ``set_threshold(τ, masked, probs, kept)`` updates."""

    def __init__(self, image: torch.Tensor, curves: Mapping[str, StructureCurve],
                 dpi: int | None = None) -> None:
        _style()
        self.names = list(curves)
        n = len(self.names)
        self.fig = plt.figure(figsize=(1.2 * n, 4.4), dpi=dpi, layout="constrained")
        grid = self.fig.add_gridspec(2, n, height_ratios=[1, 1.5])
        self.image_axes = [self.fig.add_subplot(grid[0, k]) for k in range(n)]
        img = _image(image)
        for ax in self.image_axes:
            _imshow(ax, img)
        self.ax = self.fig.add_subplot(grid[1, :])
        colours = method_colours(self.names)
        for name, c in curves.items():
            self.ax.plot(c.thresholds.cpu().numpy(), c.accuracy.cpu().numpy(), marker="o", ms=3,
                         color=colours[name], label=name,
                         ls="--" if "random" in name.lower() else "-")
        self.marker = self.ax.axvline(0, color="0.3", ls=":")
        self.ax.set(xlabel="masking threshold τ (keep the pixels whose map ≥ τ)",
                    ylabel="accuracy", ylim=(0, 1.02))
        self.ax.legend(fontsize="x-small", frameon=False, ncol=2, loc="lower left")
        self.ax.spines[["top", "right"]].set_visible(False)

    def set_threshold(self, threshold: float, masked: torch.Tensor, probs: object,
                      kept: object) -> None:
        probs, kept = np.asarray(probs, dtype=float), np.asarray(kept, dtype=float)
        for k, ax in enumerate(self.image_axes):
            ax.images[0].set_data(_image(masked[k]))
            ax.set_title(f"{self.names[k]}\np={probs[k]:.2f}, {100 * kept[k]:.0f}% kept",
                         fontsize="x-small")
        self.marker.set_xdata([threshold, threshold])


def plot_sanity_maps(images: torch.Tensor, checks: Mapping[str, SanityCheck], index: int = 0,
                     size: float = 1.25):
    """Rows = methods, columns = image ``index`` of ``images`` (B, C, H, W) — the batch the
    checks were run on — then its map for the original model and each cascading randomisation
    stage, with Spearman ρ to the original in each title."""
    _style()
    names = list(checks)
    stages = checks[names[0]].stages
    fig, axes = plt.subplots(len(names), len(stages) + 1,
                             figsize=(size * (len(stages) + 1), size * len(names)),
                             squeeze=False, layout="constrained")
    img = _image(images[index])
    for r, name in enumerate(names):
        _imshow(axes[r, 0], img)
        axes[r, 0].set_ylabel(name, fontsize="small")
        for c, stage in enumerate(stages):
            rho = float(checks[name].correlation[c, index])
            _imshow(axes[r, c + 1], checks[name].maps[c, index].numpy(),
                    (f"{stage}\n" if r == 0 else "") + f"ρ = {rho:.2f}")
            axes[r, c + 1].images[0].set_cmap("jet")
    fig.suptitle("randomised from the top down: each column adds one more random layer",
                 fontsize="small")
    return fig
