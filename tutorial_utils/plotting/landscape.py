"""Figures of :mod:`tutorial_utils.landscape`: the loss along −∇ and on a plane around θ."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from tutorial_utils.landscape import DirectionalChange, LossPlane
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, _style

__all__ = [
    "plot_directional_change",
    "plot_loss_plane",
]


def plot_directional_change(dc: DirectionalChange, title: str | None = None):
    """ΔL against the step length: along −∇ (actual and first-order) and random directions."""
    _style()
    fig, ax = plt.subplots(figsize=(5.8, 3.8), layout="constrained")
    step = dc.alphas * dc.grad_norm
    lo, hi = np.percentile(dc.random, [5, 95], axis=0)
    ax.fill_between(step, lo, hi, color="0.8", label="random directions (5–95 %)")
    ax.plot(step, np.median(dc.random, axis=0), color="0.4", lw=1, label="random (median)")
    ax.plot(step, dc.gradient, "o-", color=HIGHLIGHT, ms=4, label="along $-\\nabla L$")
    ax.plot(step, np.maximum(dc.first_order, -dc.loss * 1.5), "--", color=NEUTRAL,
            label="first order $-\\alpha\\|g\\|^2$")
    ax.axhline(-dc.loss, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="step length $\\alpha\\|g\\|$", ylabel="$L(\\theta+\\delta)-L(\\theta)$",
           ylim=(-dc.loss * 1.15, dc.loss * 0.6))
    ax.set_title(title or f"loss change from one input (L = {dc.loss:.3f}, ‖g‖ = "
                 f"{dc.grad_norm:.3f})", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, loc="lower left")
    return fig


def plot_loss_plane(plane: LossPlane, angles_deg: Sequence[float] = (0, 60, 120),
                    arrow: float | None = None):
    """Contours of the loss plane with unit-step arrows at ``angles_deg`` from ``−∇L``."""
    _style()
    fig, ax = plt.subplots(figsize=(5.0, 4.3), layout="constrained")
    cs = ax.contourf(plane.coords, plane.coords, plane.values, levels=20, cmap="viridis")
    ax.contour(plane.coords, plane.coords, plane.values, levels=20, colors="k",
               linewidths=0.3)
    fig.colorbar(cs, ax=ax, label="$L(\\theta+\\delta)-L(\\theta)$")
    arrow = arrow or 0.45 * float(plane.coords.max())
    for i, ang in enumerate(angles_deg):
        t = math.radians(ang)
        ax.annotate("", xy=(arrow * math.cos(t), arrow * math.sin(t)), xytext=(0, 0),
                    arrowprops=dict(arrowstyle="-|>", lw=2, color="r" if i == 0 else "w"))
        ax.text(arrow * 1.25 * math.cos(t), arrow * 1.25 * math.sin(t), f"path {i + 1}",
                color="w", fontsize="small", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="0.2", ec="none", alpha=0.7))
    ax.plot(0, 0, "wo", ms=4)
    ax.set(xlabel="along $-\\nabla L / \\|\\nabla L\\|$", ylabel="random orthogonal direction")
    ax.set_title("loss around θ for one input (path 1 = negative gradient)", fontsize="small")
    return fig
