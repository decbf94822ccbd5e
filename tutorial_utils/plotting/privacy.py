"""Figures of :mod:`tutorial_utils.privacy`: membership-inference ROC curves on log-log axes
(Carlini et al. 2022) and the loss distributions of members and non-members."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tutorial_utils.plotting.style import _new_ax

__all__ = [
    "plot_membership_rocs",
]


def plot_membership_rocs(rocs: Mapping[str, tuple[object, object]],
                         aurocs: Mapping[str, float] | None = None, ax=None,
                         title: str | None = None):
    """ROC curves ``{name: (fpr, tpr)}`` of membership attacks on log-log axes, with the
    chance diagonal and a line at FPR = 1%. Members are the positive class."""
    fig, ax = _new_ax(ax, (4.2, 3.8))
    floor = 1e-4
    for name, (fpr, tpr) in rocs.items():
        fpr, tpr = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
        label = name if aurocs is None else f"{name} (AUROC {aurocs[name]:.3f})"
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=label, lw=1.5)
    grid = np.logspace(-4, 0, 50)
    ax.plot(grid, grid, "k:", lw=1, label="chance")
    ax.axvline(0.01, color="0.6", lw=1, ls="--")
    ax.text(0.011, 1.3e-4, "FPR = 1%", fontsize="x-small", color="0.4")
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05),
           xlabel="false-positive rate (non-members flagged)",
           ylabel="true-positive rate (members found)")
    ax.legend(fontsize="x-small", frameon=False, loc="lower right")
    if title:
        ax.set_title(title, fontsize="small")
    return fig
