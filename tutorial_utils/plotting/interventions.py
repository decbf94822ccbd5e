"""Figures of :mod:`tutorial_utils.interventions`: occluded regions and their score drops, the
box-prompt occluder, attacks and the maps that explain them (the sanity check's maps are
:func:`tutorial_utils.plotting.evaluation.plot_sanity_maps`).

``OccluderFigure`` and ``AttackFigure`` are kept alive by the chapter-4 explorers and updated
in place (only artist data changes), so a redraw costs one Agg render."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from tutorial_utils.interventions import AttackSweep, AttackView
from tutorial_utils.plotting.images import _image, _imshow
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _array, _new_ax, _style

__all__ = [
    "plot_mean_se",
    "plot_region_examples",
    "OccluderFigure",
    "plot_attack_sweep",
    "AttackFigure",
]

KIND_COLOURS = {"top": HIGHLIGHT, "random": "0.55", "bottom": NEUTRAL}


def plot_mean_se(x: object, series: Mapping[str, tuple[object, object]], xlabel: str,
                 ylabel: str, ax=None, title: str | None = None, xticklabels=None,
                 styles: Mapping[str, dict] | None = None, legend_outside: bool = False):
    """Lines of means with ± standard-error bands: ``series`` {name: (mean (N,), se (N,))};
    ``xticklabels`` puts the points at 0..N-1 with these labels."""
    fig, ax = _new_ax(ax, (6.0 if legend_outside else 4.6, 3.2))
    xs = np.arange(len(x)) if xticklabels is not None else _array(np.asarray(x), "x")
    for name, (mean, se) in series.items():
        m, s = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
        style = {"marker": "o", "ms": 4, **(styles or {}).get(name, {})}
        (line,) = ax.plot(xs, m, label=name, **style)
        ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.2, lw=0)
    if xticklabels is not None:
        ax.set_xticks(xs, xticklabels, rotation=30, ha="right", fontsize="small")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize="small")
    if legend_outside:
        ax.legend(fontsize="small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    else:
        ax.legend(fontsize="small", frameon=False)
    return fig


def plot_region_examples(images: torch.Tensor, maps: torch.Tensor,
                         occluded: Mapping[str, torch.Tensor], scores: Mapping[str, object],
                         clean: object, map_name: str = "map", size: float = 1.6):
    """Rows = images; columns: input (clean score), the map, then each occluded version
    ``occluded[kind]`` (B, C, H, W) titled with its score ``scores[kind]`` (B,)."""
    _style()
    b = len(images)
    fig, axes = plt.subplots(b, 2 + len(occluded), figsize=(size * (2 + len(occluded)), size * b),
                             squeeze=False, layout="constrained")
    clean = np.asarray(clean, dtype=float)
    for i in range(b):
        img = _image(images[i])
        _imshow(axes[i, 0], img, f"input, p = {clean[i]:.2f}")
        _imshow(axes[i, 1], img.mean(-1) if img.ndim == 3 else img, map_name)
        axes[i, 1].imshow(_array(maps[i], "maps"), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for ax, (kind, imgs) in zip(axes[i, 2:], occluded.items(), strict=True):
            _imshow(ax, _image(imgs[i]), f"{kind}: p = {float(scores[kind][i]):.2f}")
            for spine in ax.spines.values():
                spine.set(visible=True, color=KIND_COLOURS.get(kind, "k"), lw=2)
    return fig


class OccluderFigure:
    """The image with the box filled in | the class probability for every box centre at this
    size | the top-5 probabilities (largest with or without the box) without and with it.
    ``set_box(row, col, size)`` updates in place.

    ``landscape`` (S, N, N, K) from :func:`~tutorial_utils.interventions.box_landscape` for
    ``sizes`` (S,) and ``centres`` (N,); ``target`` is the class whose probability is mapped;
    ``fill`` (C, H, W) is the baseline image the box shows (default: mid-grey).
    """

    def __init__(self, image: torch.Tensor, landscape: torch.Tensor, clean: torch.Tensor,
                 sizes: Sequence[int], centres: Sequence[int], class_names: Sequence[str],
                 target: int, fill: torch.Tensor | None = None, dpi: int | None = None) -> None:
        _style()
        self.land, self.clean = landscape.cpu().numpy(), clean.cpu().numpy()
        self.sizes, self.centres, self.names = list(sizes), list(centres), list(class_names)
        self.target = int(target)
        self.fig, axes = plt.subplots(1, 3, figsize=(10, 3.1), dpi=dpi, layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.2, 1.3]})
        self.axes = axes
        img = _image(image)
        self.img = img
        self.fill = np.full_like(img, 0.5) if fill is None else _image(fill)
        _imshow(axes[0], img)
        self.box = Rectangle((0, 0), 1, 1, fill=False, ec="w", lw=1.2)
        axes[0].add_patch(self.box)
        step = (centres[1] - centres[0]) if len(centres) > 1 else 1
        half = step / 2
        extent = (centres[0] - half, centres[-1] + half, centres[-1] + half, centres[0] - half)
        self.heat = axes[1].imshow(self.land[0, :, :, self.target], cmap="magma", vmin=0,
                                   vmax=1, extent=extent)
        (self.marker,) = axes[1].plot([], [], "c+", ms=14, mew=2)
        axes[1].set(xlim=(0, img.shape[1]), ylim=(img.shape[0], 0), xticks=[], yticks=[])
        self.fig.colorbar(self.heat, ax=axes[1], shrink=0.8,
                          label=f"p({self.names[self.target]}) with the box here")
        self.top_k = min(5, len(self.names))
        ypos = np.arange(self.top_k)[::-1]
        self.bars_clean = axes[2].barh(ypos + 0.2, np.zeros(self.top_k), height=0.4,
                                       color="0.75", label="no box")
        self.bars_box = axes[2].barh(ypos - 0.2, np.zeros(self.top_k), height=0.4,
                                     color=HIGHLIGHT, label="with the box")
        axes[2].set(xlim=(0, 1), xlabel="probability", yticks=[])
        axes[2].legend(fontsize="x-small", frameon=False, loc="lower right")
        axes[2].spines[["top", "right"]].set_visible(False)
        self.labels = [axes[2].text(-0.02, y, "", ha="right", va="center", fontsize="small",
                                    transform=axes[2].get_yaxis_transform()) for y in ypos]

    def set_box(self, row: int, col: int, size: int) -> dict:
        """Show the box of ``size`` centred at (row, col) (values on the centre grid)."""
        s, i, j = self.sizes.index(size), self.centres.index(row), self.centres.index(col)
        probs = self.land[s, i, j]
        top = np.argsort(-np.maximum(probs, self.clean), kind="stable")[:self.top_k]
        h, w = self.img.shape[:2]
        r0, c0 = max(row - size // 2, 0), max(col - size // 2, 0)
        r1, c1 = min(row - size // 2 + size, h), min(col - size // 2 + size, w)
        shown = self.img.copy()
        shown[r0:r1, c0:c1] = self.fill[r0:r1, c0:c1]
        self.axes[0].images[0].set_data(shown)
        self.box.set_bounds(c0 - 0.5, r0 - 0.5, c1 - c0, r1 - r0)
        self.heat.set_data(self.land[s, :, :, self.target])
        self.marker.set_data([col], [row])
        for bar_c, bar_b, label, k in zip(self.bars_clean, self.bars_box, self.labels, top,
                                          strict=True):
            bar_c.set_width(self.clean[k])
            bar_b.set_width(probs[k])
            label.set_text(self.names[k])
        p_t, p0 = float(probs[self.target]), float(self.clean[self.target])
        self.axes[0].set_title(f"box {size}×{size} at ({row}, {col})", fontsize="small")
        self.axes[1].set_title(f"every placement of a {size}×{size} box", fontsize="small")
        self.axes[2].set_title(f"p({self.names[self.target]}): {p0:.2f} → {p_t:.2f}",
                               fontsize="small")
        return {"p_target": p_t, "p_clean": p0, "top": [self.names[k] for k in top],
                "prediction": self.names[int(np.argmax(probs))]}


def plot_attack_sweep(sweep: AttackSweep, ax=None, title: str | None = None):
    """Accuracy against ε (in grey levels, ε·255) for every attack of the sweep."""
    fig, ax = _new_ax(ax, (4.4, 3.0))
    eps = 255 * np.asarray(sweep.epsilons)
    for name, acc in sweep.accuracy.items():
        ax.plot(eps, acc, "o-", label=name, color=HIGHLIGHT if name == "PGD" else NEUTRAL)
    ax.set(xlabel="ε (grey levels out of 255)", ylabel="accuracy", ylim=(0, 1.02),
           xticks=eps)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title, fontsize="small")
    return fig


class AttackFigure:
    """One image under attack: clean | adversarial | perturbation (×10 around grey) | Grad-CAM
    clean | Grad-CAM adversarial | ContrastCAM "why P′, rather than the true class?".
    ``set_view(view)`` swaps the pictures and titles in place."""

    TITLES = ("clean", "attacked", "perturbation ×10", "Grad-CAM (clean)",
              "Grad-CAM (attacked)", "why P', rather than y?")

    def __init__(self, clean: torch.Tensor, class_names: Sequence[str],
                 dpi: int | None = None) -> None:
        _style()
        self.names = list(class_names)
        self.clean = _image(clean)
        self.gray = self.clean.mean(-1) if self.clean.ndim == 3 else self.clean
        self.fig, self.axes = plt.subplots(1, 6, figsize=(12, 2.5), dpi=dpi, layout="constrained")
        blank = np.zeros(self.gray.shape)
        self.pictures = []
        for k, ax in enumerate(self.axes):
            _imshow(ax, self.clean if k < 3 else self.gray)
            self.pictures.append(ax.images[0] if k < 3 else
                                 ax.imshow(blank, cmap="jet", alpha=0.5, vmin=0, vmax=1,
                                           interpolation="bilinear"))

    def set_view(self, view: AttackView) -> dict:
        adv = _image(view.image)
        pert = np.clip(0.5 + 10 * (adv - self.clean), 0, 1)
        for pic, data in zip(self.pictures, (self.clean, adv, pert, view.gradcam_clean.numpy(),
                                             view.gradcam.numpy(), view.contrast.numpy()),
                             strict=True):
            pic.set_data(data)
        p0, p1 = int(view.clean_probs.argmax()), int(view.probs.argmax())
        extra = [f"\n{self.names[p0]} ({view.clean_probs[p0]:.2f})",
                 f"\n{self.names[p1]} ({view.probs[p1]:.2f})",
                 f"\n{view.attack}, ε = {255 * view.epsilon:g}/255", "", "", ""]
        for ax, t, e in zip(self.axes, self.TITLES, extra, strict=True):
            ax.set_title(t + e, fontsize="small", color=HIGHLIGHT if
                         (e and p1 != view.label and t == "attacked") else "k")
        return {"clean": self.names[p0], "attacked": self.names[p1],
                "p_true": float(view.probs[view.label])}
