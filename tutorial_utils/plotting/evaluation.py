"""Figures of :mod:`tutorial_utils.evaluation`: pixel-wise insertion/deletion curves,
structure-wise curves (accuracy against Huffman bits), the masking-threshold view and the
maps of a sanity check.

``MaskingFigure`` is kept alive by the masking explorer and updated in place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.evaluation import Curve, SanityCheck, StructureCurve
from tutorial_utils.plotting.charts import plot_curves
from tutorial_utils.plotting.images import _image, _imshow
from tutorial_utils.plotting.style import _new_ax, _style

__all__ = [
    "method_colours",
    "CONTROL_STYLES",
    "plot_insertion_deletion",
    "plot_structure_curves",
    "plot_structure_panels",
    "MaskingFigure",
    "plot_sanity_maps",
]


def method_colours(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per method name (tab10, then tab20); the random map is black."""
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("tab20b").colors)
    out, k = {}, 0
    for name in names:
        if "random" in name.lower():
            out[name] = (0, 0, 0)
        else:
            out[name], k = palette[k % len(palette)], k + 1
    return out


CONTROL_STYLES = {"random map": dict(color="k", ls="--", lw=1.4),
                  "image itself": dict(color="0.5", ls=":", lw=1.8),
                  "whole image": dict(color="0.5", ls="-.", lw=1.4)}
"""How the controls are drawn in a panel of methods: black dashed, grey dotted."""

_PANEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # blue, red, green, purple
_PANEL_MARKERS = ("o", "s", "^", "D")


def _check_groups(groups, names: Sequence[str], controls: Sequence[str]) -> dict:
    if not isinstance(groups, Mapping) or not groups:
        raise TypeError("groups must be a non-empty dict {panel title: [method names]}")
    known = set(names)
    for title, members in groups.items():
        missing = [m for m in members if m not in known]
        if not members or missing:
            raise ValueError(f"groups[{title!r}] must name 1–4 of the curves' methods; "
                             f"unknown: {missing}")
        if len(members) > len(_PANEL_COLOURS):
            raise ValueError(f"groups[{title!r}] holds {len(members)} methods; at most "
                             f"{len(_PANEL_COLOURS)} per panel stay distinguishable")
    unknown = [c for c in controls if c not in known]
    if unknown:
        raise ValueError(f"controls {unknown} are not among the curves' methods")
    return dict(groups)


def _panel_styles(members: Sequence[str], controls: Sequence[str]) -> dict[str, dict]:
    """Distinct colours and markers for the panel's methods; the controls' fixed styles."""
    styles = {m: dict(color=_PANEL_COLOURS[k], marker=_PANEL_MARKERS[k], lw=1.6)
              for k, m in enumerate(members)}
    for c in controls:
        styles[c] = dict(CONTROL_STYLES.get(c, dict(color="0.3", ls="--", lw=1.2)))
    return styles


def plot_insertion_deletion(deletion: Mapping[str, Curve], insertion: Mapping[str, Curve],
                            auc_del: Mapping[str, float] | None = None,
                            auc_ins: Mapping[str, float] | None = None, *,
                            groups: Mapping[str, Sequence[str]] | None = None,
                            controls: Sequence[str] = ()):
    """Mean deletion (lower = better) and insertion (higher = better) curves.

    Without ``groups``: two panels, every method in one legend. With ``groups`` {panel title:
    up to 4 method names}: a 2 × G grid (top row deletion, bottom row insertion), one column
    per group in distinct colours, with the ``controls`` (e.g. the random map, black dashed;
    the image itself, grey dotted) repeated in every panel as the reference.
    """
    _style()
    if groups is None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 3.6), layout="constrained")
        colours = method_colours(list(deletion))
        for ax, curves, auc, what in ((axes[0], deletion, auc_del, "deletion: pixels removed"),
                                      (axes[1], insertion, auc_ins,
                                       "insertion: pixels inserted")):
            first = next(iter(curves.values()))
            plot_curves(first.fractions, {n: c.probs.mean(0) for n, c in curves.items()}, auc,
                        xlabel=f"fraction of pixels ({what.split(':')[0]})",
                        ylabel="mean probability of the class", ax=ax)
            for line, name in zip(ax.get_lines(), curves, strict=True):
                line.set_color(colours[name])
                if "random" in name.lower():
                    line.set(ls="--", lw=1.5)
            ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.0, 1.0),
                      loc="upper left")
            ax.set_title(what + (" (lower AUC = better)" if "deletion" in what else
                                 " (higher AUC = better)"), fontsize="small")
            ax.spines[["top", "right"]].set_visible(False)
        return fig
    groups = _check_groups(groups, list(deletion), controls)
    fig, axes = plt.subplots(2, len(groups), figsize=(4.1 * len(groups), 6.6), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for col, (title, members) in enumerate(groups.items()):
        styles = _panel_styles(members, controls)
        for row, (curves, what) in enumerate(((deletion, "deletion"), (insertion, "insertion"))):
            ax = axes[row, col]
            for name, style in styles.items():
                c = curves[name]
                ax.plot(c.fractions.cpu().numpy(), c.probs.mean(0).cpu().numpy(), label=name,
                        ms=3, markevery=4, **style)
            better = "lower AUC = better" if what == "deletion" else "higher AUC = better"
            ax.set_title(f"{what}: {title} ({better})", fontsize="small")
            ax.spines[["top", "right"]].set_visible(False)
            if col == 0:
                ax.set_ylabel("mean probability of the class")

        def label(name):
            parts = [f"{w} {a[name]:.3f}" for w, a in (("deletion AUC", auc_del),
                                                       ("insertion AUC", auc_ins))
                     if a is not None and name in a]
            return name + (f" ({', '.join(parts)})" if parts else "")

        # one legend per column, under it: the same methods in both rows, nothing covered
        axes[1, col].legend(axes[1, col].get_lines(), [label(n) for n in styles],
                            fontsize="x-small", frameon=False, loc="upper center",
                            bbox_to_anchor=(0.5, -0.12))
    fig.supxlabel("fraction of pixels removed (top row) or inserted (bottom row)",
                  fontsize="small")
    return fig


def plot_structure_curves(curves: Mapping[str, StructureCurve], ax=None,
                          title: str | None = None, budget: float | None = None,
                          legend: bool = True, names: Sequence[str] | None = None,
                          styles: Mapping[str, dict] | None = None):
    """Accuracy against the ratio of Huffman bits (masked / original), one line per method;
    each point is one threshold (left end = highest threshold, fewest pixels kept).
    ``budget`` (a bits ratio, e.g. 0.7) draws a labelled vertical line there; ``names``
    draws only those methods, ``styles`` {name: matplotlib line options} overrides the
    default colours (:func:`method_colours`)."""
    fig, ax = _new_ax(ax, (6.4, 3.6))
    if budget is not None:
        ax.axvline(budget, color="0.6", lw=1.0, ls="-", zorder=0)
        ax.text(budget, 0.03, f" {100 * budget:.0f}% of the bits", fontsize="x-small",
                color="0.35")
    names = list(curves) if names is None else list(names)
    colours = method_colours(list(curves))
    for name in names:
        c = curves[name]
        style = {"marker": "o", "ms": 3, "color": colours[name],
                 "ls": "--" if "random" in name.lower() else "-", **(styles or {}).get(name, {})}
        ax.plot(c.bits_ratio.cpu().numpy(), c.accuracy.cpu().numpy(), label=name, **style)
    ax.set(xlabel="Huffman bits of the masked image / of the original", ylabel="accuracy",
           ylim=(0, 1.02))
    ax.spines[["top", "right"]].set_visible(False)
    if legend:
        ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    if title:
        ax.set_title(title, fontsize="small")
    return fig


def plot_structure_panels(by_direction: Mapping[str, Mapping[str, StructureCurve]],
                          groups: Mapping[str, Sequence[str]], controls: Sequence[str] = (),
                          budget: float | None = None):
    """Structure-wise curves untangled: one row per direction (``by_direction`` {row title:
    {method: StructureCurve}}, e.g. insertion and deletion), one column per group of up to
    4 methods in distinct colours and markers, the ``controls`` in every panel, and the
    ``budget`` bits ratio marked in each."""
    _style()
    if not isinstance(by_direction, Mapping) or not by_direction:
        raise TypeError("by_direction must be a non-empty dict {row title: {method: curve}}")
    first = next(iter(by_direction.values()))
    groups = _check_groups(groups, list(first), controls)
    fig, axes = plt.subplots(len(by_direction), len(groups),
                             figsize=(4.1 * len(groups), 3.1 * len(by_direction)),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for row, (direction, curves) in enumerate(by_direction.items()):
        for col, (title, members) in enumerate(groups.items()):
            ax = axes[row, col]
            plot_structure_curves(curves, ax=ax, budget=budget, legend=False,
                                  names=[*members, *controls],
                                  styles=_panel_styles(members, controls),
                                  title=f"{direction}: {title}")
            ax.set_xlabel("")
            if col:
                ax.set_ylabel("")
            if row == len(by_direction) - 1:  # one legend per column, under it
                ax.legend(fontsize="x-small", frameon=False, loc="upper center",
                          bbox_to_anchor=(0.5, -0.12), ncol=3)
    fig.supxlabel("Huffman bits of the masked image / of the original (one point per "
                  "threshold τ)", fontsize="small")
    return fig


class MaskingFigure:
    """Top: one image masked by every method at a threshold τ (kept: map ≥ τ), titled with
    ``p`` of the class. Bottom: accuracy against τ for every method (structure-wise masking of
    the evaluation set), a marker at τ. ``set_threshold(τ, masked, probs, kept)`` updates."""

    def __init__(self, image: torch.Tensor, curves: Mapping[str, StructureCurve],
                 dpi: int | None = None) -> None:
        _style()
        self.names = list(curves)
        n = len(self.names)
        self.fig = plt.figure(figsize=(1.2 * n, 4.4), dpi=dpi, layout="constrained")
        grid = self.fig.add_gridspec(2, n, height_ratios=[1, 1.5])
        self.image_axes = [self.fig.add_subplot(grid[0, k]) for k in range(n)]
        img = _image(image)
        for ax in self.image_axes:
            _imshow(ax, img)
        self.ax = self.fig.add_subplot(grid[1, :])
        colours = method_colours(self.names)
        for name, c in curves.items():
            self.ax.plot(c.thresholds.cpu().numpy(), c.accuracy.cpu().numpy(), marker="o", ms=3,
                         color=colours[name], label=name,
                         ls="--" if "random" in name.lower() else "-")
        self.marker = self.ax.axvline(0, color="0.3", ls=":")
        self.ax.set(xlabel="masking threshold τ (keep the pixels whose map ≥ τ)",
                    ylabel="accuracy", ylim=(0, 1.02))
        self.ax.legend(fontsize="x-small", frameon=False, ncol=2, loc="lower left")
        self.ax.spines[["top", "right"]].set_visible(False)

    def set_threshold(self, threshold: float, masked: torch.Tensor, probs: object,
                      kept: object) -> None:
        probs, kept = np.asarray(probs, dtype=float), np.asarray(kept, dtype=float)
        for k, ax in enumerate(self.image_axes):
            ax.images[0].set_data(_image(masked[k]))
            ax.set_title(f"{self.names[k]}\np={probs[k]:.2f}, {100 * kept[k]:.0f}% kept",
                         fontsize="x-small")
        self.marker.set_xdata([threshold, threshold])


def plot_sanity_maps(images: torch.Tensor, checks: Mapping[str, SanityCheck], index: int = 0,
                     size: float = 1.25):
    """Rows = methods, columns = image ``index`` of ``images`` (B, C, H, W) — the batch the
    checks were run on — then its map for the original model and each cascading randomisation
    stage, with Spearman ρ to the original in each title."""
    _style()
    names = list(checks)
    stages = checks[names[0]].stages
    fig, axes = plt.subplots(len(names), len(stages) + 1,
                             figsize=(size * (len(stages) + 1), size * len(names)),
                             squeeze=False, layout="constrained")
    img = _image(images[index])
    for r, name in enumerate(names):
        _imshow(axes[r, 0], img)
        axes[r, 0].set_ylabel(name, fontsize="small")
        for c, stage in enumerate(stages):
            rho = float(checks[name].correlation[c, index])
            _imshow(axes[r, c + 1], checks[name].maps[c, index].numpy(),
                    (f"{stage}\n" if r == 0 else "") + f"ρ = {rho:.2f}")
            axes[r, c + 1].images[0].set_cmap("jet")
    fig.suptitle("randomised from the top down: each column adds one more random layer",
                 fontsize="small")
    return fig
