"""The course's figure style, and the helpers every figure module shares.

One seaborn theme (``set_style``), two colours (``HIGHLIGHT`` for the predicted class or a gap,
``NEUTRAL`` for the rest), conversions of tensors to arrays, and encoders that turn a figure
into PNG/JPEG bytes for widgets and compact notebooks.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "set_style",
    "HIGHLIGHT",
    "NEUTRAL",
    "to_png",
    "encode_png",
    "to_jpeg",
]

_STYLED = False

HIGHLIGHT = "#C44E52"  # seaborn "deep" red: the predicted class / the gap

NEUTRAL = "#4C72B0"  # seaborn "deep" blue


def set_style(context: str = "notebook", font_scale: float = 1.0) -> None:
    """Apply the course style once: ``sns.set_theme(context, style='white')``, deep palette.

    Called automatically by every plotting function; call it yourself to change ``context``
    (``'talk'`` for a workshop presentation).
    """
    global _STYLED
    import seaborn as sns

    sns.set_theme(context=context, style="white", palette="deep", font_scale=font_scale,
                  rc={"image.interpolation": "nearest", "axes.titlesize": "medium",
                      "figure.dpi": 100})
    _STYLED = True


def _style() -> None:
    """Apply :func:`set_style` once, the first time a figure is drawn."""
    if not _STYLED:
        set_style()


def _array(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _new_ax(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    _style()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _names(names: Sequence[str] | None, n: int, name: str) -> list[str] | None:
    if names is None:
        return None
    names = list(names)
    if len(names) != n:
        raise ValueError(f"{name} must have {n} entries (one per item), got {len(names)}")
    return names


def to_png(fig) -> bytes:
    """Draw ``fig`` once with Agg and encode the pixels as PNG (faster than ``savefig``, which
    draws twice); uses the figure's own dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return encode_png(canvas)


def encode_png(canvas) -> bytes:
    """The pixels an Agg ``canvas`` holds now, as PNG bytes (fast compression)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def to_jpeg(fig: Figure, dpi: int = 80, quality: int = 80, close: bool = True) -> bytes:
    """Encode ``fig`` as JPEG bytes (much smaller than PNG for photo-like image grids).

    In a notebook: ``IPython.display.Image(to_jpeg(fig))``. Closes the figure by default so it
    is not drawn a second time by the inline backend.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality})
    if close:
        plt.close(fig)
    return buffer.getvalue()
