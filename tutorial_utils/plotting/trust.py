"""Figures of :mod:`tutorial_utils.trust` and :mod:`tutorial_utils.anomaly`: GradTrust against
softmax confidence, VOICE panels, and per-class anomaly-detection AUROCs."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from tutorial_utils.plotting.images import _draw_overlay, _image
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_trust_scatter",
    "plot_voice",
    "VoiceFigure",
    "plot_class_aurocs",
]


def plot_trust_scatter(trust: object, confidence: object, correct: object,
                       trust_cut: float, confidence_cut: float, trust_name: str = "GradTrust",
                       floor: float = 1e-6):
    """Each image at (trust, softmax confidence), blue = correct, red = wrong (the chapter's
    colours), with the cuts that split the plane into four quadrants (counts of wrong
    predictions written in each).

    The confidence axis is drawn as ``1 − confidence`` on an inverted log scale, labelled in
    confidence (0.5, 0.9, 0.99, …): a softmax whose median is 0.98 packs half of the images
    into the top 2% of a linear axis, and this axis spreads them out. ``1 − confidence`` below
    ``floor`` (a float32 softmax of exactly 1) is drawn at ``floor``. The legend sits above
    the axes, clear of the data.
    """
    _style()
    t, c = np.asarray(trust, dtype=float), np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if not 0 < floor < 0.5:
        raise ValueError(f"floor must lie in (0, 0.5), got {floor}")
    gap = np.clip(1 - c, floor, None)
    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    ax.scatter(t[ok], gap[ok], s=7, alpha=0.35, color=NEUTRAL, label="correct")
    ax.scatter(t[~ok], gap[~ok], s=9, alpha=0.65, color=HIGHLIGHT, label="wrong")
    ax.axvline(trust_cut, color="k", lw=0.8, ls="--")
    ax.axhline(max(1 - confidence_cut, floor), color="k", lw=0.8, ls="--",
               label=f"medians (softmax {confidence_cut:.3f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_yaxis()  # high confidence (small 1 − p) at the top
    low_gap = max(floor, float(gap.min()))
    ticks = [v for v in (0.5, 0.1, 0.01, 1e-3, 1e-4, 1e-5, 1e-6) if v >= low_gap / 1.5]
    ax.set_yticks(ticks, [f"{1 - v:.{max(1, int(round(-np.log10(v))))}f}" for v in ticks])
    ax.yaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    for low_t in (True, False):
        for low_c in (True, False):
            sel = ~ok & ((t < trust_cut) == low_t) & ((c < confidence_cut) == low_c)
            ax.text(0.02 if low_t else 0.98, 0.03 if low_c else 0.95, f"{int(sel.sum())} wrong",
                    transform=ax.transAxes, ha="left" if low_t else "right",
                    va="bottom" if low_c else "top", fontsize="small",
                    bbox=dict(boxstyle="round,pad=0.2", fc="w", ec="0.7", alpha=0.85))
    ax.set(xlabel=f"{trust_name} (log scale, higher = trust)",
           ylabel="softmax confidence (scale of 1 − confidence)")
    fig.legend(fontsize="small", frameon=False, loc="outside upper center", ncol=3,
               markerscale=2)
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


def plot_class_aurocs(table, reference: float | None = None, title: str = "", gain=None):
    """AUROC per class for each score column of ``table`` (index = class), as dots joined per
    class on an axis zoomed to the data (not from 0, so differences of 0.01 show), with the mean
    in the legend and an optional published reference line. A column whose values all lie
    below 0.6 (e.g. ``random``, at chance) is not drawn on the zoomed axis; its mean is given in
    the legend instead.

    ``gain`` (optional): a DataFrame with columns ``value, low, high`` (index = class), e.g.
    GradCon − reconstruction with its 95% interval; drawn in a second panel around a zero
    line, filled where the interval excludes 0 and hollow where it does not.
    """
    _style()
    n_rows = 1 if gain is None else 2
    fig, axes = plt.subplots(n_rows, 1, figsize=(7.5, 2.9 * n_rows), squeeze=False,
                             layout="constrained", sharex=True)
    ax = axes[0, 0]
    xs = np.arange(len(table))
    markers, colours = ["o", "s", "^", "D"], ["k", "0.55", "0.35", "0.7"]
    shown = [c for c in table.columns if float(np.nanmax(table[c])) >= 0.6]
    off_axis = [c for c in table.columns if c not in shown]
    if len(shown) >= 2:
        ax.vlines(xs, table[shown].min(axis=1), table[shown].max(axis=1), color="0.8", lw=2,
                  zorder=1)
    for j, col in enumerate(shown):
        ax.plot(xs, table[col], ls="none", marker=markers[j % 4], color=colours[j % 4], ms=6,
                zorder=2, label=f"{col} (mean {table[col].mean():.3f})")
    for col in off_axis:
        ax.plot([], [], ls="none", label=f"{col}: mean {table[col].mean():.3f} (off the axis)")
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", lw=1, label=f"paper's mean ({reference:.3f})")
    values = table[shown].to_numpy(dtype=float)
    low = np.nanmin(values) if reference is None else min(np.nanmin(values), reference)
    high = np.nanmax(values) if reference is None else max(np.nanmax(values), reference)
    pad = max(0.01, 0.08 * (high - low))
    ax.set(ylim=(low - pad, min(1.0, high + pad) + pad / 2),
           ylabel="AUROC, normal vs rest\n(axis zoomed)")
    if title:
        fig.suptitle(title, fontsize="medium")
    ax.legend(fontsize="x-small", frameon=False, ncol=2, loc="lower left",
              bbox_to_anchor=(0, 1.0))
    if gain is not None:
        g = axes[1, 0]
        v, lo, hi = (gain[k].to_numpy(dtype=float) for k in ("value", "low", "high"))
        g.axhline(0, color="0.5", lw=0.8)
        g.vlines(xs, lo, hi, color="k", lw=1.2)
        clear = (lo > 0) | (hi < 0)
        g.plot(xs[clear], v[clear], "o", color="k", ms=6, label="interval excludes 0")
        g.plot(xs[~clear], v[~clear], "o", color="k", markerfacecolor="w", ms=6,
               label="within noise (interval contains 0)")
        g.set(ylabel="gain [95% interval]")
        g.set_title(f"gain: {gain.attrs.get('name', 'difference')}", fontsize="small",
                    loc="right")
        g.legend(fontsize="x-small", frameon=False, ncol=2, loc="upper left")
    axes[-1, 0].set_xticks(xs, [str(i) for i in table.index])
    axes[-1, 0].set(xlabel="normal class")
    return fig
