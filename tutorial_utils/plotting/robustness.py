"""Figures of :mod:`tutorial_utils.robustness`: one sign under a challenge, and the sweep of
accuracy against confidence over every challenge type and level."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style
from tutorial_utils.robustness import ChallengeView

__all__ = [
    "plot_challenge_view",
    "ChallengeViewFigure",
    "plot_level_sweep",
]


def plot_challenge_view(view: ChallengeView):
    """Image | top-k probabilities | test-set accuracy and mean confidence vs level."""
    return ChallengeViewFigure(view).fig


class ChallengeViewFigure:
    """The figure of :func:`plot_challenge_view`, kept alive and updated in place.

    ``set_view(view)`` only changes the data of the existing artists (image, bar lengths,
    texts, curves), so the challenge explorer redraws without building a new figure.
    """

    def __init__(self, view: ChallengeView, dpi: int | None = None) -> None:
        _style()
        self.fig, self.axes = plt.subplots(1, 3, figsize=(11, 3.0), layout="constrained",
                                           dpi=dpi, gridspec_kw={"width_ratios": [1, 1.4, 1.6]})
        ax0, ax1, ax2 = self.axes
        self.picture = ax0.imshow(view.image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax0.set_axis_off()
        k = len(view.top_classes)
        ypos = np.arange(k)[::-1]
        self.bars = ax1.barh(ypos, view.top_probs,
                             color=[HIGHLIGHT if i == 0 else NEUTRAL for i in range(k)])
        self.names = [ax1.text(-0.02, y, "", ha="right", va="center", fontsize="small",
                               transform=ax1.get_yaxis_transform()) for y in ypos]
        self.values = [ax1.text(0, y, "", va="center", fontsize="x-small") for y in ypos]
        ax1.set(xlim=(0, 1), yticks=[], xlabel="probability", title=f"top-{k} for this image")
        ax1.spines[["top", "right"]].set_visible(False)
        levels = np.arange(len(view.accuracy_curve))
        (self.acc_line,) = ax2.plot(levels, view.accuracy_curve, "o-", label="accuracy",
                                    color=NEUTRAL)
        (self.conf_line,) = ax2.plot(levels, view.confidence_curve, "s--",
                                     label="mean confidence", color=HIGHLIGHT)
        self.gap = None
        self.marker = ax2.axvline(view.level, color="0.4", lw=1, ls=":")
        ax2.set(ylim=(0, 1.03), xlabel="challenge level", xticks=levels)
        ax2.legend(fontsize="small", frameon=False, loc="lower left")
        ax2.spines[["top", "right"]].set_visible(False)
        self.set_view(view)

    def set_view(self, view: ChallengeView) -> None:
        """Show ``view`` (same top-k and number of levels as the first one)."""
        ax0, ax1, ax2 = self.axes
        self.picture.set_data(view.image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax0.set_title(f"{view.kind}, level {view.level}\ntrue: {view.class_names[view.label]}",
                      fontsize="small")
        for bar, name, value, c, v in zip(self.bars, self.names, self.values, view.top_classes,
                                          view.top_probs, strict=True):
            bar.set_width(v)
            name.set_text(view.class_names[c])
            value.set_text(f"{v:.2f}")
            value.set_x(min(v + 0.02, 0.8))
        levels = np.arange(len(view.accuracy_curve))
        self.acc_line.set_ydata(view.accuracy_curve)
        self.conf_line.set_ydata(view.confidence_curve)
        if self.gap is not None:
            self.gap.remove()
        self.gap = ax2.fill_between(levels, view.accuracy_curve, view.confidence_curve,
                                    color="0.85", zorder=0)
        self.marker.set_xdata([view.level, view.level])
        ax2.set_title(f"test set at level {view.level}: acc {view.accuracy:.2f}, "
                      f"conf {view.confidence:.2f}", fontsize="small")


def plot_level_sweep(table, title: str | None = None):
    """Mean confidence against accuracy for every (kind, level) of :meth:`ChallengeCache.table`.

    One colour and marker per challenge type, marker size growing with the level; the clean
    images (level 0, shared by every type) are one black star. Points above the diagonal are
    over-confident: the model is surer than it is right.
    """
    _style()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    kinds = [k for k in dict.fromkeys(table["kind"])]
    # twelve clearly different hues (tab10 plus navy and gold), not tab20's light twins
    colors = [*plt.get_cmap("tab10").colors, "#1a237e", "#c9a000"]
    markers = "osD^vP*Xh<>p"
    clean = table[table["level"] == 0]
    for i, kind in enumerate(kinds):
        rows = table[(table["kind"] == kind) & (table["level"] > 0)].sort_values("level")
        ax.plot(rows["accuracy"], rows["confidence"], "-", color=colors[i % len(colors)],
                lw=1, alpha=0.7)
        ax.scatter(rows["accuracy"], rows["confidence"], s=10 + 10 * rows["level"],
                   marker=markers[i % len(markers)], color=colors[i % len(colors)],
                   label=kind, zorder=3, edgecolors="white", linewidths=0.4)
    if len(clean):
        ax.scatter(clean["accuracy"].iloc[:1], clean["confidence"].iloc[:1], s=120, marker="*",
                   color="k", zorder=4, label="clean (level 0)")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.text(0.05, 0.93, "over-confident", fontsize="small", color="0.3")
    ax.text(0.62, 0.05, "under-confident", fontsize="small", color="0.3")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="accuracy (test subset)",
           ylabel="mean confidence  max$_k$ $p_k$")
    ax.set_title(title or "each challenge, levels 1–5 (marker size = level)", fontsize="small")
    ax.legend(fontsize="small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left",
              markerscale=1.3, labelspacing=0.6, title="challenge type", title_fontsize="small")
    return fig
