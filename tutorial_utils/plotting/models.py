"""Figure of :mod:`tutorial_utils.models`: one image's logits, probabilities and decision."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from tutorial_utils.models import Decision
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_decision",
]


def plot_decision(image: torch.Tensor, dec: Decision, class_names: Sequence[str],
                  title: str | None = None):
    """Three panels: the image, the logits ``z`` and the probabilities ``softmax(z)``.

    The predicted class is drawn in red in both bar charts. Returns the figure.
    """
    _style()
    k = len(dec.logits)
    if len(class_names) != k:
        raise ValueError(f"class_names must have {k} entries, got {len(class_names)}")
    fig, axes = plt.subplots(1, 3, figsize=(10, 0.22 * k + 1.6), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.5, 1.5]})
    img = image[0] if image.dim() == 4 else image
    arr = img.permute(1, 2, 0).numpy() if img.shape[0] == 3 else img[0].numpy()
    axes[0].imshow(arr.clip(0, 1), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
    axes[0].set_axis_off()
    axes[0].set_title(title or "input x")
    colors = [HIGHLIGHT if i == dec.pred else NEUTRAL for i in range(k)]
    ypos = np.arange(k)[::-1]
    axes[1].barh(ypos, dec.logits.numpy(), color=colors)
    axes[1].axvline(0, color="k", lw=0.8)
    axes[1].set_yticks(ypos, list(class_names), fontsize="small")
    axes[1].set(xlabel="logit $z_k$", title="logits $z = f(x)$")
    axes[2].barh(ypos, dec.probs.numpy(), color=colors)
    axes[2].set_yticks(ypos, [""] * k)
    axes[2].set(xlim=(0, 1), xlabel="probability $p_k$",
                title=f"softmax → decision: {class_names[dec.pred]} ({dec.confidence:.2f})")
    for ax in axes[1:]:
        ax.spines[["top", "right"]].set_visible(False)
    return fig
