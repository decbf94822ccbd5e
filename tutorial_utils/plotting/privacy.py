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
    chance diagonal and a line at FPR = 1%. Members are the positive class.

    The axes start at the power of ten at or below the smallest non-zero rate of the curves
    (with n non-members, 1/n is the smallest FPR that can be measured); points at FPR or
    TPR = 0 are drawn on that edge. The legend sits under the axes, clear of the curves and labels.
    """
    fig, ax = _new_ax(ax, (4.4, 5.0))
    arrays = {name: (np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float))
              for name, (fpr, tpr) in rocs.items()}
    positive = [a[a > 0] for f, t in arrays.values() for a in (f, t)]
    smallest = min((float(a.min()) for a in positive if a.size), default=1e-3)
    floor = 10.0 ** np.floor(np.log10(smallest))
    for name, (fpr, tpr) in arrays.items():
        label = name if aurocs is None else f"{name} (AUROC {aurocs[name]:.3f})"
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=label, lw=1.5)
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, "k:", lw=1, label="chance (a random score)")
    ax.axvline(0.01, color="0.6", lw=1, ls="--")
    ax.text(0.0115, 1.6 * floor, "FPR = 1%", fontsize="x-small", color="0.3")
    ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05),
           xlabel="false-positive rate (non-members flagged)",
           ylabel="true-positive rate (members found)")
    ax.legend(fontsize="x-small", frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), ncol=1)
    if title:
        ax.set_title(title, fontsize="small")
    return fig
