"""Generic image figures: grids, heat-map overlays, galleries, class and challenge grids.

Images are ``(B, C, H, W)`` (C = 1 or 3) or ``(B, H, W)`` tensors/arrays in [0, 1]; heat maps
are ``(H, W)`` or ``(B, H, W)``. Maps in [0, 1] are drawn on one fixed colour scale, so maps of
different methods can be compared, and every gallery carries a colour bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tutorial_utils.plotting.style import _array, _names, _new_ax, _style

__all__ = [
    "show_images",
    "overlay",
    "heatmap_gallery",
    "class_grid",
    "challenge_grid",
]


def _images(images: object, name: str = "images") -> np.ndarray:
    """``(B, C, H, W)`` or ``(B, H, W)`` -> ``(B, H, W)`` or ``(B, H, W, 3)`` clipped to [0, 1]."""
    a = _array(images, name).astype(np.float32)
    if a.ndim == 4:
        if a.shape[1] not in (1, 3):
            raise ValueError(f"{name} must have 1 or 3 channels in (B, C, H, W), got {a.shape}")
        a = a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)
    elif a.ndim != 3:
        raise ValueError(f"{name} must have shape (B, C, H, W) or (B, H, W), got {a.shape}; "
                         "for one image add a batch dimension with x[None]")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN values")
    return np.clip(a, 0.0, 1.0)


def _image(image: object, name: str = "image") -> np.ndarray:
    """One ``(C, H, W)`` or ``(H, W)`` image -> displayable array."""
    a = _array(image, name)
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be one image of shape (C, H, W) or (H, W), got {a.shape}")
    return _images(a[None], name)[0]


def _imshow(ax: Axes, img: np.ndarray, title: str | None = None) -> None:
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(str(title), fontsize="small")


def _grid(nrows: int, ncols: int, size: float) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows),
                             squeeze=False, layout="constrained")
    return fig, axes


def show_images(images: object, titles: Sequence[str] | None = None, ncols: int = 8,
                size: float = 1.6, suptitle: str | None = None) -> Figure:
    """A grid of images: ``images`` (B, C, H, W) or (B, H, W) in [0, 1]; one axes per image."""
    _style()
    imgs = _images(images)
    titles = _names(titles, len(imgs), "titles")
    if isinstance(ncols, (bool, np.bool_)) or not isinstance(ncols, (int, np.integer)) \
            or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    ncols = int(ncols)
    ncols = min(ncols, len(imgs))
    nrows = -(-len(imgs) // ncols)
    fig, axes = _grid(nrows, ncols, size)
    for i, ax in enumerate(axes.flat):
        if i < len(imgs):
            _imshow(ax, imgs[i], None if titles is None else titles[i])
        else:
            fig.delaxes(ax)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _heatmap(heatmap: object, shape: tuple[int, int], name: str = "heatmap") -> np.ndarray:
    h = _array(heatmap, name).astype(np.float32)
    if h.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W), got {h.shape}")
    if h.shape != shape:
        raise ValueError(f"{name} has shape {h.shape} but the image is {shape}; "
                         "upsample the map to the input size first")
    if np.isnan(h).any():
        raise ValueError(f"{name} contains NaN values")
    return h


def _draw_overlay(ax: Axes, img: np.ndarray, heat: np.ndarray, alpha: float, cmap: str) -> None:
    gray = img if img.ndim == 2 else img.mean(axis=-1)
    _imshow(ax, gray)
    in_unit = heat.min() >= 0 and heat.max() <= 1
    ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0 if in_unit else None,
              vmax=1 if in_unit else None, interpolation="bilinear")


def overlay(image: object, heatmap: object, alpha: float = 0.5, cmap: str = "jet",
            ax: Axes | None = None, title: str | None = None) -> Figure:
    """A heatmap (H, W) over a grey version of ``image`` (C, H, W) or (H, W).

    A map in [0, 1] is drawn on a fixed [0, 1] colour scale (comparable across methods);
    any other map (e.g. a raw, signed one) is scaled to its own range.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    img = _image(image)
    heat = _heatmap(heatmap, img.shape[:2])
    fig, ax = _new_ax(ax, (3, 3))
    _draw_overlay(ax, img, heat, alpha, cmap)
    if title is not None:
        ax.set_title(str(title), fontsize="small")
    return fig


def heatmap_gallery(images: object, maps_by_method: Mapping[str, object],
                    titles: Sequence[str] | None = None, alpha: float = 0.5,
                    cmap: str = "jet", size: float = 1.8) -> Figure:
    """Rows = images, columns = the input and one overlay per method.

    ``images`` (B, C, H, W); ``maps_by_method`` maps a method name to its (B, H, W) maps;
    ``titles`` (B,) optional row labels (e.g. "pred: stop"). Returns B × (1 + M) axes.
    """
    _style()
    imgs = _images(images)
    if not isinstance(maps_by_method, Mapping) or not maps_by_method:
        raise ValueError("maps_by_method must be a non-empty dict {method name: (B, H, W) maps}")
    titles = _names(titles, len(imgs), "titles")
    maps = {}
    for method, m in maps_by_method.items():
        a = _array(m, f"maps_by_method[{method!r}]")
        if a.ndim != 3 or len(a) != len(imgs):
            raise ValueError(f"maps_by_method[{method!r}] must have shape ({len(imgs)}, H, W), "
                             f"got {a.shape}")
        maps[method] = a
    fig, axes = _grid(len(imgs), 1 + len(maps), size)
    for i, row in enumerate(axes):
        _imshow(row[0], imgs[i], "input" if i == 0 else None)
        if titles is not None:
            row[0].set_ylabel(titles[i], fontsize="small")
        for ax, (method, m) in zip(row[1:], maps.items(), strict=True):
            heat = _heatmap(m[i], imgs[i].shape[:2], f"maps_by_method[{method!r}]")
            _draw_overlay(ax, imgs[i], heat, alpha, cmap)
            if i == 0:
                ax.set_title(method, fontsize="small")
    scale = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(scale, ax=axes, shrink=0.6, label="importance (map in [0, 1])")
    return fig


def class_grid(images: object, class_names: Sequence[str], ncols: int = 7,
               size: float = 1.4) -> Figure:
    """One example per class: ``images`` (K, C, H, W) titled by ``class_names`` (K,)."""
    _names(class_names, len(_images(images)), "class_names")
    return show_images(images, titles=class_names, ncols=ncols, size=size)


def challenge_grid(images: object, challenge_names: Sequence[str], levels: Sequence[int],
                   size: float = 1.3) -> Figure:
    """Challenge type × level grid: ``images`` (T, L, C, H, W), rows = types, cols = levels."""
    _style()
    a = _array(images, "images")
    if a.ndim == 4:  # (T, L, H, W) grey images
        a = a[:, :, None]
    if a.ndim != 5:
        raise ValueError(f"images must have shape (T, L, C, H, W), got {a.shape}")
    t, lv = a.shape[:2]
    names = _names(challenge_names, t, "challenge_names")
    levels = _names([str(v) for v in levels], lv, "levels")
    flat = _images(a.reshape(t * lv, *a.shape[2:]))
    flat = flat.reshape(t, lv, *flat.shape[1:])
    fig, axes = _grid(t, lv, size)
    for i in range(t):
        for j in range(lv):
            _imshow(axes[i, j], flat[i, j], f"level {levels[j]}" if i == 0 else None)
        axes[i, 0].set_ylabel(names[i], fontsize="small")
    return fig
