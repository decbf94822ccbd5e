"""Figures of :mod:`tutorial_utils.information`: entropy histograms, mutual information per
condition, and blocks of the Fisher information."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.plotting.charts import score_histograms
from tutorial_utils.plotting.style import NEUTRAL, _array, _style

__all__ = [
    "plot_entropy_histograms",
    "plot_mutual_information",
    "plot_fisher_blocks",
]


def plot_entropy_histograms(panels: Mapping[str, Mapping[str, object]], bins: int = 25):
    """One panel per model: overlaid histograms of the predictive entropy (bits) of each set.

    ``panels`` maps a panel title (e.g. ``"signs model (max 3.81 bits)"``) to ``{set name:
    (N,) entropies}``; returns the figure.
    """
    _style()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), layout="constrained",
                             squeeze=False)
    for ax, (title, sets) in zip(axes[0], panels.items(), strict=True):
        score_histograms(sets, bins=bins, xlabel="entropy (bits)", ax=ax, title=title)
    return fig


def plot_mutual_information(table, title: str = "mutual information, whole sign test set"):
    """Bars of ``I(true; predicted)`` per condition (rows of ``table``, a DataFrame with the
    columns ``"I(A;B)"``, ``"I, shuffled"`` and ``"H(A)"`` of
    :func:`tutorial_utils.information.information_table`), the shuffled floor in grey and the
    label entropy ``H(true class)`` as a dotted line, in bits."""
    _style()
    fig, ax = plt.subplots(figsize=(6.4, 2.8), layout="constrained")
    ax.bar(table.index, table["I(A;B)"], color=NEUTRAL, label="I(true; predicted)")
    ax.bar(table.index, table["I, shuffled"], color="0.6", label="shuffled predictions (floor)")
    ax.axhline(table["H(A)"].iloc[0], color="k", ls=":", lw=1, label="H(true class)")
    ax.set(ylabel="bits", title=title)
    ax.tick_params(axis="x", labelsize="small")
    ax.legend(frameon=False, fontsize="x-small", loc="upper right")
    return fig


def plot_fisher_blocks(panels: Mapping[str, object], block: slice = slice(-10, None),
                       scale: str | None = None, label: str = "bias of class",
                       title: str = "Fisher information of the digit model's final layer "
                                    "(bias block)"):
    """The same block (``block`` of rows and columns, default the last ten: the bias) of
    several (P, P) Fisher matrices side by side, on one symmetric colour scale set by the
    largest magnitude of panel ``scale`` (default: the first); ``panels`` maps a title to a
    matrix."""
    _style()
    mats = {name: _array(m, f"panels[{name!r}]")[block, block] for name, m in panels.items()}
    vmax = float(np.abs(mats[next(iter(mats)) if scale is None else scale]).max())
    fig, axes = plt.subplots(1, len(mats), figsize=(3 * len(mats), 3.0), layout="constrained")
    axes = np.atleast_1d(axes)
    n = next(iter(mats.values())).shape[0]
    for ax, (name, mat) in zip(axes, mats.items(), strict=True):
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set(title=name, xlabel=label, ylabel=label, xticks=range(0, n, 3),
               yticks=range(0, n, 3))
    fig.colorbar(im, ax=axes, shrink=0.8, label="Fisher entry (log-likelihood² per unit²)")
    fig.suptitle(title, fontsize="small")
    return fig
