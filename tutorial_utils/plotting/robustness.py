"""Figures of :mod:`tutorial_utils.robustness`: one sign under a challenge, and the sweep of
accuracy against confidence over every challenge type and level."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style
from tutorial_utils.robustness import ChallengeView

__all__ = ["plot_challenge_view", "plot_level_sweep"]


def plot_challenge_view(view: ChallengeView):
    """Image | top-k probabilities | test-set accuracy and mean confidence vs level."""
    _style()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.4, 1.6]})
    axes[0].imshow(view.image.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_axis_off()
    axes[0].set_title(f"{view.kind}, level {view.level}\ntrue: {view.class_names[view.label]}",
                      fontsize="small")
    names = [view.class_names[c] for c in view.top_classes]
    ypos = np.arange(len(names))[::-1]
    colors = [HIGHLIGHT if i == 0 else NEUTRAL for i in range(len(names))]
    axes[1].barh(ypos, view.top_probs, color=colors)
    axes[1].set_yticks(ypos, names, fontsize="small")
    for yv, v in zip(ypos, view.top_probs, strict=True):
        axes[1].text(min(v + 0.02, 0.8), yv, f"{v:.2f}", va="center", fontsize="x-small")
    axes[1].set(xlim=(0, 1), xlabel="probability", title=f"top-{len(names)} for this image")
    axes[1].spines[["top", "right"]].set_visible(False)
    levels = np.arange(len(view.accuracy_curve))
    ax = axes[2]
    ax.plot(levels, view.accuracy_curve, "o-", label="accuracy", color=NEUTRAL)
    ax.plot(levels, view.confidence_curve, "s--", label="mean confidence",
            color=HIGHLIGHT)
    ax.fill_between(levels, view.accuracy_curve, view.confidence_curve, color="0.85")
    ax.axvline(view.level, color="0.4", lw=1, ls=":")
    ax.set(ylim=(0, 1.03), xlabel="challenge level", xticks=levels,
           title=f"test set at level {view.level}: acc {view.accuracy:.2f}, "
                 f"conf {view.confidence:.2f}")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="small", frameon=False, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_level_sweep(table, title: str | None = None):
    """Mean confidence against accuracy for every (kind, level) of :meth:`ChallengeCache.table`.

    Points above the diagonal are over-confident: the model is surer than it is right.
    """
    _style()
    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    kinds = list(dict.fromkeys(table["kind"]))
    cmap = plt.get_cmap("tab20")
    for i, kind in enumerate(kinds):
        rows = table[table["kind"] == kind].sort_values("level")
        ax.plot(rows["accuracy"], rows["confidence"], "-", color=cmap(i), lw=1, alpha=0.7)
        ax.scatter(rows["accuracy"], rows["confidence"], s=8 + 9 * rows["level"],
                   color=cmap(i), label=kind, zorder=3)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.text(0.05, 0.93, "over-confident", fontsize="small", color="0.3")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="accuracy (test subset)",
           ylabel="mean confidence  max$_k$ $p_k$")
    ax.set_title(title or "each challenge, levels 0–5 (marker size = level)", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig
