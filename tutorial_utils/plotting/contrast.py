"""Figures of :mod:`tutorial_utils.contrast`: the "why P, rather than Q?" table and the
contrast explorer's panel figure (updated in place, so a redraw costs one PNG encode)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.contrast import ContrastState, contrast_panel
from tutorial_utils.plotting.images import overlay
from tutorial_utils.plotting.style import _style, to_png

__all__ = [
    "plot_contrast_gallery",
    "ContrastPanelFigure",
    "plot_contrast_panel",
    "plot_truth_panels",
]


def _show(ax, img: torch.Tensor, title: str | None = None) -> None:
    a = img.detach().cpu()
    a = a.permute(1, 2, 0).squeeze(-1).numpy() if a.dim() == 3 else a.numpy()
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize="small")


def plot_contrast_gallery(rows: Sequence[Mapping], class_names: Sequence[str], size: float = 1.7):
    """The seeds' table layout: input | Grad-CAM | representative Q₁ | why P, rather than Q₁ |
    representative Q₂ | why P, rather than Q₂ | why not P (with 100% confidence)."""
    _style()
    fig, axes = plt.subplots(len(rows), 7, figsize=(7 * size, len(rows) * (size + 0.45)),
                             squeeze=False, layout="constrained")
    for r, row in enumerate(rows):
        p, q1, q2 = (class_names[row[k]] for k in ("pred", "q1", "q2"))
        conf = float(row["probs"][row["pred"]])
        _show(axes[r, 0], row["image"], f"input: {p}\n(p={conf:.2f})")
        overlay(row["image"], row["gradcam"].numpy(), ax=axes[r, 1],
                         title=f"Grad-CAM:\nwhy {p}?")
        _show(axes[r, 2], row["rep1"], f"representative\n{q1}")
        overlay(row["image"], row["contrast1"].numpy(), ax=axes[r, 3],
                         title=f"why {p},\nrather than {q1}?")
        _show(axes[r, 4], row["rep2"], f"representative\n{q2}")
        overlay(row["image"], row["contrast2"].numpy(), ax=axes[r, 5],
                         title=f"why {p},\nrather than {q2}?")
        overlay(row["image"], row["why_not"].numpy(), ax=axes[r, 6],
                         title=f"why not {p}\nwith 100% confidence?")
    return fig


class ContrastPanelFigure:
    """A persistent 5-panel figure whose images are updated in place (fast redraws)."""

    def __init__(self, class_names: Sequence[str], dpi: int = 72) -> None:
        _style()
        self.class_names = class_names
        self.dpi = dpi
        self.fig, self.axes = plt.subplots(1, 5, figsize=(10.5, 2.7), dpi=dpi,
                                           layout="constrained")
        plt.close(self.fig)  # never shown by the inline backend; rendered to PNG by us
        self.artists: dict = {}

    @staticmethod
    def _gray(img: torch.Tensor) -> np.ndarray:
        a = img.detach().cpu()
        return (a.mean(0) if a.dim() == 3 else a).numpy()

    def set_sample(self, state: ContrastState) -> None:
        v = state.view
        img = v.image.permute(1, 2, 0).squeeze(-1).numpy()
        gray = self._gray(v.image)
        pn = self.class_names[v.pred]
        titles = [f"input\n(P = {pn})", f"Grad-CAM:\nwhy {pn}?",
                  "CounterfactualCAM:\nwhat if this were absent?", "representative\nQ",
                  "why P,\nrather than Q?"]
        self.fig.set_layout_engine("constrained")
        for ax, t in zip(self.axes, titles, strict=True):
            ax.clear()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(t, fontsize="small")
        self.axes[0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        for ax, m in ((self.axes[1], state.gradcam), (self.axes[2], state.counterfactual)):
            ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
            ax.imshow(m.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
        self.axes[3].imshow(np.zeros_like(img), cmap="gray" if img.ndim == 2 else None,
                            vmin=0, vmax=1)
        self.artists["rep"] = self.axes[3].images[0]
        self.axes[4].imshow(gray, cmap="gray", vmin=0, vmax=1)
        self.artists["contrast"] = self.axes[4].imshow(np.zeros_like(gray), cmap="jet",
                                                       alpha=0.5, vmin=0, vmax=1,
                                                       interpolation="bilinear")
        # lay the figure out once per sample; contrast updates then only swap image data
        self.fig.canvas.draw()
        self.fig.set_layout_engine("none")

    def set_contrast(self, panel: dict, region: torch.Tensor | None = None) -> None:
        """Show contrast class ``panel["q"]``; ``region`` (H, W) bool outlines the true
        difference to the counterfactual scene (white) on the ContrastCAM."""
        edge = np.zeros((*panel["contrast"].shape, 4))
        if region is not None:
            r = region.float()[None, None]
            inner = -torch.nn.functional.max_pool2d(-r, 3, stride=1, padding=1)  # erosion
            edge[..., :3] = 1.0
            edge[..., 3] = (r - inner)[0, 0].clamp(0, 1).numpy()
        if "outline" not in self.artists:
            self.artists["outline"] = self.axes[4].imshow(edge, interpolation="nearest")
        self.artists["outline"].set_data(edge)
        if panel["rep"] is not None:
            rep = panel["rep"].detach().cpu().permute(1, 2, 0).squeeze(-1).numpy()
            self.artists["rep"].set_data(rep)
            self.axes[3].set_title(panel["rep_title"], fontsize="small")
        self.artists["contrast"].set_data(panel["contrast"].numpy())
        self.axes[4].set_title(panel["question"], fontsize="small")

    def png(self) -> bytes:
        return to_png(self.fig)


def plot_contrast_panel(state: ContrastState, q: int, class_names: Sequence[str],
                        rep_images: torch.Tensor | None = None):
    """Static version of the explorer's figure for sample ``state`` and contrast class ``q``."""
    pf = ContrastPanelFigure(class_names, dpi=100)
    pf.set_sample(state)
    pf.set_contrast(contrast_panel(state, q, class_names, rep_images))
    return pf.fig


def _outline(ax, region: torch.Tensor) -> None:
    """Draw the counterfactual difference region's outline (white) on ``ax``."""
    ax.contour(region.float().numpy(), levels=[0.5], colors="w", linewidths=0.9)


def plot_truth_panels(panels: Sequence[Mapping], class_names: Sequence[str], size: float = 1.55):
    """One row per scene (:func:`tutorial_utils.contrast.truth_panel`): the input and the
    counterfactual scene with the true difference region outlined, Grad-CAM, ContrastCAM, the
    signed maps before ReLU on one colour scale, ContrastCAM − Grad-CAM, and ContrastCAM at an
    earlier layer. Titles give each map's in-region ratio (1 = chance) and its correlation r
    with Grad-CAM."""
    _style()
    cols = ["input", "counterfactual", "Grad-CAM", "ContrastCAM", "signed Grad-CAM",
            "signed ContrastCAM", "ContrastCAM − Grad-CAM", "ContrastCAM, early layer"]
    fig, axes = plt.subplots(len(panels), len(cols), figsize=(len(cols) * size,
                             len(panels) * (size + 0.55)), squeeze=False, layout="constrained")
    for r, pnl in enumerate(panels):
        pn, qn = class_names[pnl["pred"]], class_names[pnl["q"]]
        ax = axes[r]
        _show(ax[0], pnl["image"], f"input: {pn}\np={float(pnl['probs'][pnl['pred']]):.2f}")
        _outline(ax[0], pnl["region"])
        if pnl.get("counterfactual") is not None:
            _show(ax[1], pnl["counterfactual"], f"same scene\nwith {qn}")
            _outline(ax[1], pnl["region"])
        else:
            ax[1].axis("off")
        for j, key, label in ((2, "gradcam", "Grad-CAM"), (3, "contrast", f"why {pn},\nnot {qn}?"),
                              (7, "contrast_early", "early layer")):
            overlay(pnl["image"], pnl[key].numpy(), ax=ax[j])
            _outline(ax[j], pnl["region"])
            stats = f"ratio {pnl['ratio'][key]:.1f}"
            stats += "" if key == "gradcam" else f", r={pnl['corr'][key]:.2f}"
            ax[j].set_title(f"{label}\n{stats}", fontsize="x-small")
        lim = float(max(pnl["signed_gradcam"].abs().max(), pnl["signed_contrast"].abs().max()))
        for j, key in ((4, "signed_gradcam"), (5, "signed_contrast")):
            im = ax[j].imshow(pnl[key].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
            _outline(ax[j], pnl["region"])
            ax[j].set_xticks([])
            ax[j].set_yticks([])
        ax[4].set_title("Σ α A, for P\n(before ReLU)", fontsize="x-small")
        ax[5].set_title(f"Σ α A, P vs {qn}\n(same scale)", fontsize="x-small")
        fig.colorbar(im, ax=ax[4:6], shrink=0.8, label="evidence (logit units)")
        dm = ax[6].imshow(pnl["difference"].numpy(), cmap="PuOr_r", vmin=-1, vmax=1)
        _outline(ax[6], pnl["region"])
        ax[6].set_xticks([])
        ax[6].set_yticks([])
        ax[6].set_title("ContrastCAM −\nGrad-CAM", fontsize="x-small")
        fig.colorbar(dm, ax=ax[6], shrink=0.8, label="difference of\nnormalised maps")
    for ax, title in zip(axes[0], cols, strict=True):
        ax.set_xlabel("")
        if title in ("input", "counterfactual"):
            continue
    return fig
