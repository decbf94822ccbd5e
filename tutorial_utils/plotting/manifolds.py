"""Figures of :mod:`tutorial_utils.manifolds`: an Isomap scatter and covariance spectra."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.manifolds import effective_rank
from tutorial_utils.plotting.style import _style

__all__ = [
    "plot_embedding",
    "plot_spectra",
]


def plot_embedding(embedding: Mapping[str, np.ndarray], title: str | None = None):
    """Scatter of a 2-D embedding, one colour per set."""
    _style()
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    for name, e in embedding.items():
        ax.scatter(e[:, 0], e[:, 1], s=9, alpha=0.7, label=name)
    ax.set(xticks=[], yticks=[], xlabel="Isomap 1", ylabel="Isomap 2")
    ax.set_title(title or "Isomap of penultimate features", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, markerscale=2, bbox_to_anchor=(1.01, 1),
              loc="upper left")
    return fig


def plot_spectra(spectra: Mapping[str, np.ndarray], title: str | None = None):
    """Normalised singular values (log scale) against their index, one line per set."""
    _style()
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    for name, s in spectra.items():
        ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s, 1e-12),
                    label=f"{name} (eff. rank {effective_rank(s):.1f})")
    ax.set(xlabel="singular value index", ylabel="normalised singular value", ylim=(1e-6, 1))
    ax.set_title(title or "spectrum of the feature covariance", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False)
    return fig
