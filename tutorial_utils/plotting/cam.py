"""Figure of :mod:`tutorial_utils.cam`: the Grad-CAM recipe step by step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.plotting.images import overlay
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_gradcam_steps",
]


def plot_gradcam_steps(steps: Mapping, class_names: Sequence[str] | None = None, top: int = 3):
    """Figure: input | the ``top`` channels with largest α (activation, gradient) | α bar chart |
    Σ α_k A_k | ReLU | upsampled map over the input."""
    _style()
    view, alpha = steps["view"], steps["alpha"]
    order = alpha.argsort(descending=True)[:top].tolist()
    amax = float(steps["activations"][order].max()) or 1.0
    glim = float(steps["gradients"].abs().max()) or 1.0
    fig = plt.figure(figsize=(13, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, top + 4)
    img = view.image.permute(1, 2, 0).squeeze(-1).numpy()
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    name = (class_names[steps["target"]] if class_names is not None and steps["target"] is not None
            else steps["target"])
    ax.set_title(f"input\ny = z[{name}]", fontsize="small")
    ax.axis("off")
    for j, c in enumerate(order):
        a1 = fig.add_subplot(grid[0, 1 + j])
        a1.imshow(steps["activations"][c], cmap="viridis", vmin=0, vmax=amax)
        a1.set_title(f"1. A_{c}", fontsize="small")
        a1.axis("off")
        a2 = fig.add_subplot(grid[1, 1 + j])
        a2.imshow(steps["gradients"][c], cmap="RdBu_r", vmin=-glim, vmax=glim)
        a2.set_title(f"∂y/∂A_{c}\n(α = {alpha[c]:.2e})", fontsize="small")
        a2.axis("off")
    ab = fig.add_subplot(grid[:, top + 1])
    srt = alpha.sort(descending=True).values.numpy()
    colors = np.where(srt >= 0, HIGHLIGHT, NEUTRAL)
    ab.barh(np.arange(len(srt)), srt, color=colors)
    ab.invert_yaxis()
    ab.set(yticks=[], xlabel="α_k (sorted)", title="2. pooled gradients")
    aw = fig.add_subplot(grid[0, top + 2])
    lim = float(steps["weighted"].abs().max()) or 1.0
    aw.imshow(steps["weighted"], cmap="RdBu_r", vmin=-lim, vmax=lim)
    aw.set_title("3. Σ α_k A_k", fontsize="small")
    aw.axis("off")
    ar = fig.add_subplot(grid[1, top + 2])
    ar.imshow(steps["relu"], cmap="magma")
    ar.set_title("4. ReLU", fontsize="small")
    ar.axis("off")
    au = fig.add_subplot(grid[:, top + 3])
    overlay(view.image, steps["map"].numpy(), ax=au, title="5. upsample + min-max")
    return fig
