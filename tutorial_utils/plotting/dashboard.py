"""Figure of :mod:`tutorial_utils.dashboard`: one input and every method of the course.

:class:`DashboardFigure` is built once and updated in place (``set_view``): image data, bar
lengths, texts and curve data change, the layout does not, so a redraw costs one draw and one PNG
encode. With ``fixed_layout=True`` (the explorer's figure) the constrained layout is solved once,
for the longest class names, and then frozen (it took half of every redraw), and :meth:`png`
redraws only what a view changes over a saved picture of the rest (axes, ticks, labels:
blitting), which took most of the other half.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tutorial_utils.dashboard import GAUGES, DashboardView
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style, encode_png, to_png

__all__ = [
    "DashboardFigure",
    "plot_dashboard",
]

TOP_K = 5


def _rgb(image: torch.Tensor) -> np.ndarray:
    a = image.detach().cpu()
    return a.permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()


class DashboardFigure:
    """Prediction, probabilities, Grad-CAM, ContrastCAM, VOICE, gauges and a deletion curve."""

    def __init__(self, class_names: Sequence[str], dpi: int | None = None,
                 image_size: tuple[int, int] = (48, 48), fixed_layout: bool = False) -> None:
        _style()
        self.names = list(class_names)
        self.fig = plt.figure(figsize=(12.5, 5.6), dpi=dpi, layout="constrained")
        grid = self.fig.add_gridspec(2, 5, height_ratios=[1, 1.05])
        axes = [self.fig.add_subplot(grid[0, j]) for j in range(5)]
        self.gauge_ax = self.fig.add_subplot(grid[1, :3])
        self.curve_ax = self.fig.add_subplot(grid[1, 3:])
        self.image_ax, self.prob_ax, *self.map_axes = axes
        blank, grey = np.zeros((*image_size, 3)), np.zeros(image_size)
        self.picture = self.image_ax.imshow(blank)
        self.overlays = []
        for ax in self.map_axes:
            back = ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            heat = ax.imshow(grey, cmap="jet", alpha=0.5, vmin=0, vmax=1,
                             interpolation="bilinear")
            self.overlays.append((back, heat))
        for ax in (self.image_ax, *self.map_axes):
            ax.set_xticks([])
            ax.set_yticks([])
        ypos = np.arange(TOP_K)[::-1]
        self.prob_bars = self.prob_ax.barh(ypos, np.zeros(TOP_K), color=NEUTRAL)
        self.prob_names = [self.prob_ax.text(-0.02, y, "", ha="right", va="center",
                                             fontsize="x-small",
                                             transform=self.prob_ax.get_yaxis_transform())
                           for y in ypos]
        self.prob_ax.set(xlim=(0, 1), yticks=[], xlabel="probability")
        self.prob_ax.set_title("top-5 probabilities", fontsize="small")
        gpos = np.arange(len(GAUGES))[::-1]
        self.gauge_bars = self.gauge_ax.barh(gpos, np.zeros(len(GAUGES)), color=NEUTRAL)
        self.gauge_text = [self.gauge_ax.text(101, y, "", va="center", fontsize="x-small")
                           for y in gpos]
        self.gauge_ax.set_yticks(gpos, GAUGES, fontsize="small")
        self.gauge_ax.axvline(50, color="0.5", lw=0.8, ls=":")
        self.gauge_ax.axvspan(0, 5, color=HIGHLIGHT, alpha=0.12)
        self.gauge_ax.set(xlim=(0, 135), xlabel="percentile among clean test signs "
                                                "(low = unusual; shaded: below 5)")
        self.gauge_ax.set_title("uncertainty and trust gauges", fontsize="small")
        (self.curve,) = self.curve_ax.plot([0, 1], [0, 0], color=HIGHLIGHT, lw=2)
        self.curve_fill = None
        self._background = None
        self.curve_ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="fraction of pixels deleted "
                                                              "(most important first)",
                          ylabel="probability of P")
        if fixed_layout:
            self._freeze_layout()

    def _freeze_layout(self) -> None:
        """Solve the constrained layout once with the longest texts a view can put in the
        titles and labels, then keep it: later redraws skip the layout engine."""
        longest = max(self.names, key=len)
        self.image_ax.set_title(f"{longest}: snow, level 5\nP = {longest} (0.00)",
                                fontsize="x-small")
        for ax, t in zip(self.map_axes, (f"Grad-CAM\nwhy {longest}?",
                                         f"ContrastCAM\nrather than {longest}?",
                                         "VOICE uncertainty\nIoU 0.00, SNR 0.00"), strict=True):
            ax.set_title(t, fontsize="small")
        for name in self.prob_names:
            name.set_text(longest)
        for text in self.gauge_text:
            text.set_text(f"{100.0:5.1f}  ({-1.23e-4:.3g})")
        self.curve_ax.set_title("deletion curve of Grad-CAM: AUC 0.000\n"
                                "(lower = the map found what matters)", fontsize="small")
        self.fig.draw_without_rendering()
        self.fig.set_layout_engine("none")
        for artist in self._changing():
            artist.set_animated(True)  # left out of the saved background
        self._canvas = FigureCanvasAgg(self.fig)
        self._canvas.draw()
        self._background = self._canvas.copy_from_bbox(self.fig.bbox)

    def _changing(self) -> list:
        """The artists a view changes, in drawing order (each axes' own artists, then its
        spines, so an image does not cover its frame)."""
        arts = [self.picture, *self.image_ax.spines.values(), self.image_ax.title,
                *self.prob_bars, *self.prob_ax.spines.values(), *self.prob_names]
        for ax, pair in zip(self.map_axes, self.overlays, strict=True):
            arts += [*pair, *ax.spines.values(), ax.title]
        arts += [*self.gauge_bars, *self.gauge_ax.spines.values(), *self.gauge_text,
                 self.curve_ax.title]
        if self.curve_fill is not None:
            arts.append(self.curve_fill)
        return [*arts, self.curve, *self.curve_ax.spines.values()]

    def png(self) -> bytes:
        """The figure as PNG bytes: with ``fixed_layout``, the saved background plus the
        artists a view changes; otherwise one full draw (:func:`~tutorial_utils.plotting.style.
        to_png`)."""
        if self._background is None:
            return to_png(self.fig)
        self._canvas.restore_region(self._background)
        renderer = self._canvas.get_renderer()
        for artist in self._changing():
            artist.draw(renderer)
        return encode_png(self._canvas)

    def set_view(self, view: DashboardView, title: str = "") -> None:
        """Show ``view`` (text ``title`` above the input image)."""
        rgb = _rgb(view.image)
        grey = rgb.mean(-1) if rgb.ndim == 3 else rgb
        self.picture.set_data(rgb)
        pn, qn = self.names[view.pred], self.names[view.contrast]
        self.image_ax.set_title(f"{title}\nP = {pn} ({float(view.probs[view.pred]):.2f})",
                                fontsize="x-small")
        top = view.probs.argsort(descending=True)[:TOP_K].tolist()
        for bar, name, k in zip(self.prob_bars, self.prob_names, top, strict=True):
            bar.set_width(float(view.probs[k]))
            bar.set_color(HIGHLIGHT if k == view.pred else NEUTRAL)
            name.set_text(self.names[k])
        maps = (view.gradcam, view.contrastcam, view.uncertainty)
        titles = (f"Grad-CAM\nwhy {pn}?", f"ContrastCAM\nrather than {qn}?",
                  f"VOICE uncertainty\nIoU {view.iou:.2f}, SNR {view.snr:.2f}")
        for ax, (back, heat), m, t in zip(self.map_axes, self.overlays, maps, titles,
                                          strict=True):
            back.set_data(grey)
            heat.set_data(m.detach().cpu().numpy())
            ax.set_title(t, fontsize="small")
        for bar, text, name in zip(self.gauge_bars, self.gauge_text, GAUGES, strict=True):
            pct = view.percentiles[name]
            bar.set_width(max(pct, 0.5))
            bar.set_color(HIGHLIGHT if pct < 5 else NEUTRAL)
            text.set_text(f"{pct:5.1f}  ({view.scores[name]:.3g})")
        self.curve.set_data(view.deletion_fractions, view.deletion_probs)
        if self.curve_fill is not None:
            self.curve_fill.remove()
        self.curve_fill = self.curve_ax.fill_between(view.deletion_fractions, 0,
                                                     view.deletion_probs, color=HIGHLIGHT,
                                                     alpha=0.15)
        self.curve_fill.set_animated(self._background is not None)
        self.curve_ax.set_title(f"deletion curve of Grad-CAM: AUC {view.deletion_auc:.3f}\n"
                                "(lower = the map found what matters)", fontsize="small")


def plot_dashboard(view: DashboardView, class_names: Sequence[str], title: str = ""):
    """Static dashboard for one :class:`~tutorial_utils.dashboard.DashboardView`."""
    figure = DashboardFigure(class_names, image_size=tuple(view.image.shape[-2:]))
    figure.set_view(view, title)
    return figure.fig
