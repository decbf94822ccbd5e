"""Figures of :mod:`tutorial_utils.introspection`: the contrast-gradient grid of one image, the
heads' training losses, and accuracy / calibration of the heads at one challenge level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.introspection import level_view
from tutorial_utils.plotting.charts import reliability_diagram
from tutorial_utils.plotting.contrast import _show
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_contrast_gradient_grid",
    "plot_head_losses",
    "plot_level_view",
]


def plot_contrast_gradient_grid(g: torch.Tensor, pred: int, class_names: Sequence[str],
                                image: torch.Tensor | None = None):
    """Heatmaps of ``g[q] = ∇_W CE(z, q)`` (K × D) for every contrast class q.

    ``g`` is (Q, K, D) for one image (unnormalised closed form); one symmetric colour scale is
    shared by all panels so their sizes can be compared.
    """
    _style()
    g = g.detach().cpu()
    nq = g.shape[0]
    extra = 1 if image is not None else 0
    ncols = min(6, nq + extra)
    nrows = -(-(nq + extra) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 1.9 * nrows), squeeze=False,
                             layout="constrained")
    lim = float(g.abs().max()) or 1.0
    flat = list(axes.flat)
    if image is not None:
        _show(flat[0], image, "input x")
    pn = class_names[pred]
    im = None
    for q in range(nq):
        ax = flat[q + extra]
        im = ax.imshow(g[q], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set_title(f"why {pn}, rather than {class_names[q]}?", fontsize="x-small")
        ax.set_yticks(range(g.shape[1]))
        ax.set_yticklabels(class_names if len(class_names[0]) < 3 else [], fontsize=6)
        ax.set_xticks([])
    for ax in flat[nq + extra:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="∂CE/∂W (rows: class k, cols: feature d)")
    return fig


def plot_level_view(results, level: int,
                    heads: Sequence[str] = ("feed-forward", "introspective"), fig=None):
    """Bars of accuracy per challenge for each head at ``level`` and one pooled reliability
    diagram per head. Draws into ``fig`` (cleared) if given."""
    _style()
    df = level_view(results, level, heads)
    if fig is None:
        fig = plt.figure(figsize=(12, 3.6), layout="constrained")
    else:
        fig.clear()
    grid = fig.add_gridspec(1, 2 + len(heads), width_ratios=[2.4, 0.05] + [1] * len(heads))
    ax = fig.add_subplot(grid[0])
    names = list(df.index)
    xs = np.arange(len(names))
    width = 0.8 / len(heads)
    colors = [NEUTRAL, HIGHLIGHT, "#55A868"]
    for j, h in enumerate(heads):
        ax.bar(xs + (j - (len(heads) - 1) / 2) * width, df[("accuracy", h)], width,
               color=colors[j % 3], label=f"{h} (ECE {df.loc['all', ('ece', h)]:.3f})")
    ax.set_xticks(xs, names, rotation=45, ha="right", fontsize="small")
    ax.set(ylim=(0, 1.3), yticks=np.linspace(0, 1, 6), ylabel="accuracy",
           title="clean test subset" if level == 0 else f"challenge level {level}")
    ax.legend(fontsize="small", frameon=False, loc="upper center", ncol=len(heads))
    for j, h in enumerate(heads):
        a = fig.add_subplot(grid[2 + j])
        reliability_diagram(results.pooled(h, level), results.pooled_labels(level), ax=a)
        handles, labels = a.get_legend_handles_labels()
        a.get_legend().remove()  # one legend for both panels, below them: no bar is covered
        ece = next(lab for lab in labels if "ECE" in lab).split("(")[-1].rstrip(")")
        a.set_title(f"{h}, {ece}", fontsize="small")
        for count in a.texts:  # bin counts upright: neighbouring bins' numbers never overlap
            count.set(rotation=90, fontsize=6)
    labels = ["accuracy per bin (number = images)" if "ECE" in lab else lab for lab in labels]
    fig.legend(handles, labels, loc="outside lower right", ncol=len(labels), fontsize="small",
               frameon=False)
    return fig


def plot_head_losses(losses: Mapping[str, Sequence[float]],
                     title: str = "all ten heads converge"):
    """Training loss (cross-entropy, log scale) per epoch of every head: introspective heads
    in the highlight colour, feed-forward ones in the neutral one; only names without "seed"
    get a legend entry (one per kind)."""
    _style()
    fig, ax = plt.subplots(figsize=(5, 2.6), layout="constrained")
    for name, loss in losses.items():
        ax.semilogy(range(1, len(loss) + 1), loss, lw=1,
                    color=HIGHLIGHT if name.startswith("intro") else NEUTRAL,
                    label=name if "seed" not in name else None)
    ax.set(xlabel="epoch", ylabel="training loss (CE)", title=title)
    ax.legend(frameon=False, fontsize="small")
    return fig
