"""Figures of :mod:`tutorial_utils.trust` and :mod:`tutorial_utils.anomaly`: GradTrust against
softmax confidence, VOICE panels, and per-class anomaly-detection AUROCs."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.plotting.images import _draw_overlay, _image
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_trust_scatter",
    "plot_voice",
    "VoiceFigure",
    "plot_class_aurocs",
]


def plot_trust_scatter(trust: object, confidence: object, correct: object,
                       trust_cut: float, confidence_cut: float, trust_name: str = "GradTrust"):
    """Each image at (trust, softmax confidence), green = correct, red = wrong, with the cuts
    that split the plane into four quadrants (counts of wrong predictions written in each)."""
    _style()
    t, c = np.asarray(trust, dtype=float), np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(5.4, 4.2), layout="constrained")
    ax.scatter(t[ok], c[ok], s=7, alpha=0.35, color="#55A868", label="correct")
    ax.scatter(t[~ok], c[~ok], s=9, alpha=0.6, color=HIGHLIGHT, label="wrong")
    ax.axvline(trust_cut, color="k", lw=0.8, ls="--")
    ax.axhline(confidence_cut, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    for low_t in (True, False):
        for low_c in (True, False):
            sel = ~ok & ((t < trust_cut) == low_t) & ((c < confidence_cut) == low_c)
            ax.text(0.02 if low_t else 0.98, 0.03 if low_c else 0.93, f"{int(sel.sum())} wrong",
                    transform=ax.transAxes, ha="left" if low_t else "right", fontsize="small",
                    bbox=dict(boxstyle="round,pad=0.2", fc="w", ec="0.7", alpha=0.85))
    ax.set(xlabel=f"{trust_name} (log scale, higher = trust)", ylabel="softmax confidence")
    ax.legend(fontsize="small", frameon=False, loc="center left")
    return fig


class VoiceFigure:
    """Input | explanation (Grad-CAM) | uncertainty of the explanation (VOICE) for one image,
    updated in place by ``set_sample``."""

    def __init__(self, dpi: int | None = None) -> None:
        _style()
        self.fig, self.axes = plt.subplots(1, 3, figsize=(7.5, 2.7), dpi=dpi,
                                           layout="constrained")

    def set_sample(self, image: torch.Tensor, explanation: torch.Tensor,
                   uncertainty: torch.Tensor, title: str, iou: float, snr: float) -> None:
        img = _image(image)
        for ax in self.axes:
            ax.clear()
            ax.set_xticks([])
            ax.set_yticks([])
        self.axes[0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        self.axes[0].set_title(title, fontsize="small")
        _draw_overlay(self.axes[1], img, np.asarray(explanation, dtype=float), 0.5, "jet")
        self.axes[1].set_title("explanation (Grad-CAM)", fontsize="small")
        _draw_overlay(self.axes[2], img, np.asarray(uncertainty, dtype=float), 0.5, "jet")
        self.axes[2].set_title(f"uncertainty (VOICE)\nIoU {iou:.2f}, SNR {snr:.2f}",
                               fontsize="small")


def plot_voice(images: torch.Tensor, voice, titles: Sequence[str]):
    """Rows of :class:`VoiceFigure` panels for a few images (e.g. a correct and a wrong one)."""
    _style()
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False, layout="constrained")
    for r in range(n):
        img = _image(images[r])
        axes[r, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        axes[r, 0].set_title(titles[r], fontsize="small")
        _draw_overlay(axes[r, 1], img, voice.explanation[r].cpu().numpy(), 0.5, "jet")
        _draw_overlay(axes[r, 2], img, voice.uncertainty[r].cpu().numpy(), 0.5, "jet")
        axes[r, 1].set_title("explanation (Grad-CAM)", fontsize="small")
        axes[r, 2].set_title(f"uncertainty (VOICE)\nIoU {float(voice.iou[r]):.2f}, "
                             f"SNR {float(voice.snr[r]):.2f}", fontsize="small")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def plot_class_aurocs(table, reference: float | None = None, title: str = ""):
    """Grouped bars of AUROC per class for each score column of ``table`` (index = class),
    with the mean in the legend and an optional published reference line."""
    _style()
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    xs = np.arange(len(table))
    width = 0.8 / table.shape[1]
    colors = [HIGHLIGHT, NEUTRAL, "#55A868", "#8172B2"]
    for j, col in enumerate(table.columns):
        ax.bar(xs + (j - (table.shape[1] - 1) / 2) * width, table[col], width,
               color=colors[j % 4], label=f"{col} (mean {table[col].mean():.3f})")
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", lw=1, label=f"paper's mean ({reference:.3f})")
    ax.axhline(0.5, color="0.5", lw=0.8)
    ax.set_xticks(xs, [str(i) for i in table.index])
    ax.set(ylim=(0, 1.08), xlabel="normal class", ylabel="AUROC (normal vs rest)", title=title)
    ax.legend(fontsize="x-small", frameon=False, ncol=2, loc="lower left")
    return fig
