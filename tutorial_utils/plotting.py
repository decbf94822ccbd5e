"""Figures of the course in one consistent (seaborn) style.

Every function returns the matplotlib ``Figure`` it drew on and never calls ``plt.show()``.
Functions that take ``ax=None`` draw into a new figure, or into the given axes (and then
return ``ax.figure``). In a notebook, assign the result (``fig = show_images(...)``) or end the
line with ``;`` so the inline backend does not show the figure twice; close figures you make in
a loop with ``plt.close(fig)``.

Images are ``(B, C, H, W)`` (C = 1 or 3) or ``(B, H, W)`` tensors/arrays with values in
[0, 1]; heatmaps are ``(H, W)`` or ``(B, H, W)`` in [0, 1] (the ``tutorial_utils`` convention).
Seaborn is imported lazily, the first time a figure is drawn (it takes about two seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tutorial_utils import metrics

__all__ = [
    "set_style",
    "show_images",
    "overlay",
    "heatmap_gallery",
    "plot_curves",
    "plot_trust_curves",
    "reliability_diagram",
    "plot_roc",
    "score_histograms",
    "bar_probabilities",
    "class_grid",
    "challenge_grid",
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
    if not _STYLED:
        set_style()


# --------------------------------------------------------------------------- conversion
def _array(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


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


# --------------------------------------------------------------------------- images
def show_images(images: object, titles: Sequence[str] | None = None, ncols: int = 8,
                size: float = 1.6, suptitle: str | None = None) -> Figure:
    """A grid of images: ``images`` (B, C, H, W) or (B, H, W) in [0, 1]; one axes per image."""
    _style()
    imgs = _images(images)
    titles = _names(titles, len(imgs), "titles")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
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
    return fig


# --------------------------------------------------------------------------- curves
def plot_curves(fractions: object, curves: Mapping[str, object],
                auc: Mapping[str, float] | None = None, title: str | None = None,
                xlabel: str = "fraction of pixels", ylabel: str = "probability of the class",
                ax: Axes | None = None) -> Figure:
    """Insertion/deletion-style curves: ``fractions`` (S+1,) and ``curves`` {name: (S+1,)}.

    ``auc`` {name: area} is appended to the legend entries ("Grad-CAM (AUC 0.42)").
    """
    x = _array(np.asarray(fractions) if isinstance(fractions, Sequence) else fractions,
               "fractions")
    if x.ndim != 1:
        raise ValueError(f"fractions must be 1-D (S+1,), got {x.shape}")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict {name: (S+1,) values}")
    fig, ax = _new_ax(ax, (4.5, 3.2))
    for name, c in curves.items():
        y = _array(np.asarray(c) if isinstance(c, Sequence) else c, f"curves[{name!r}]")
        if y.shape != x.shape:
            raise ValueError(f"curves[{name!r}] has shape {y.shape}, fractions has {x.shape}")
        label = name if auc is None or name not in auc else f"{name} (AUC {auc[name]:.3f})"
        ax.plot(x, y, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(float(x.min()), float(x.max())))
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def plot_trust_curves(curves_by_method: Mapping[str, metrics.TrustCurve],
                      ylabel: str = "accuracy", ax: Axes | None = None,
                      title: str | None = None) -> Figure:
    """AUAC/AUFC curves from :func:`tutorial_utils.metrics.auac` / ``aufc``, area in legend."""
    if not isinstance(curves_by_method, Mapping) or not curves_by_method:
        raise ValueError("curves_by_method must be a non-empty dict {name: TrustCurve}")
    fig, ax = _new_ax(ax, (4.5, 3.2))
    for name, c in curves_by_method.items():
        if not isinstance(c, metrics.TrustCurve):
            raise TypeError(f"curves_by_method[{name!r}] must be a metrics.TrustCurve")
        ax.plot(100 * c.fractions, c.values, label=f"{name} (area {c.area:.3f})")
    ax.set(xlabel="trust percentile x (keep samples above it)", ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def reliability_diagram(probs: object, labels: object, n_bins: int = 15,
                        ax: Axes | None = None, label: str | None = None) -> Figure:
    """Reliability diagram (Guo et al. 2017) built on :func:`metrics.reliability_curve`.

    Inputs as there: (N, K) probabilities + (N,) labels, or (N,) confidences + (N,) correct.
    Bars = accuracy per bin, shaded = gap to the bin's mean confidence, dashed = perfect
    calibration; the ECE is shown in the legend.
    """
    curve = metrics.reliability_curve(probs, labels, n_bins)
    fig, ax = _new_ax(ax, (3.6, 3.6))
    left, width = curve.edges[:-1], np.diff(curve.edges)
    filled = curve.counts > 0
    acc = np.where(filled, curve.accuracy, 0.0)
    conf = np.where(filled, curve.confidence, 0.0)
    name = f"{label}: " if label else ""
    ax.bar(left, acc, width=width, align="edge", color=NEUTRAL, edgecolor="white",
           label=f"{name}accuracy (ECE {curve.ece:.3f})")
    ax.bar(left[filled], (conf - acc)[filled], bottom=acc[filled], width=width[filled],
           align="edge", color=HIGHLIGHT, alpha=0.35, edgecolor=HIGHLIGHT, hatch="//",
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    ax.legend(fontsize="small", frameon=True, framealpha=0.85, loc="upper left")
    return fig


def plot_roc(y_true: object, scores_by_method: Mapping[str, object], ax: Axes | None = None,
             title: str | None = None) -> Figure:
    """ROC curves, one per method; ``y_true`` (N,) 1 = in-distribution, scores (N,) higher = ID."""
    from sklearn.metrics import roc_curve

    if not isinstance(scores_by_method, Mapping) or not scores_by_method:
        raise ValueError("scores_by_method must be a non-empty dict {name: (N,) scores}")
    fig, ax = _new_ax(ax, (3.6, 3.6))
    for name, s in scores_by_method.items():
        area = metrics.auroc(y_true, s)  # validates both inputs
        y = metrics._as_array(y_true, "y_true").astype(int)
        fpr, tpr, _ = roc_curve(y, metrics._as_array(s, "y_score").astype(float))
        ax.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate",
           ylabel="true-positive rate", aspect="equal")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False, loc="lower right")
    return fig


def score_histograms(scores_by_name: Mapping[str, object], bins: int = 40,
                     xlabel: str = "score (higher = more in-distribution)",
                     ax: Axes | None = None, title: str | None = None) -> Figure:
    """Overlaid density histograms of scores, e.g. {"ID test": s_id, "GO sign": s_go}."""
    if not isinstance(scores_by_name, Mapping) or not scores_by_name:
        raise ValueError("scores_by_name must be a non-empty dict {name: (N,) scores}")
    fig, ax = _new_ax(ax, (4.5, 3.0))
    arrays = {n: metrics._vector(s, f"scores_by_name[{n!r}]").astype(float)
              for n, s in scores_by_name.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    for name, s in arrays.items():
        ax.hist(s, bins=edges, density=True, alpha=0.5, label=name)
    ax.set(xlabel=xlabel, ylabel="density")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def bar_probabilities(probs: object, class_names: Sequence[str], top_k: int | None = None,
                      ax: Axes | None = None, title: str | None = None) -> Figure:
    """Horizontal bars of one probability vector (K,), the predicted class highlighted.

    ``top_k`` keeps the k most probable classes (sorted); ``None`` shows all in class order.
    """
    p = _array(np.asarray(probs) if isinstance(probs, Sequence) else probs, "probs")
    p = p.astype(np.float64)
    if p.ndim != 1:
        raise ValueError(f"probs must be one probability vector (K,), got {p.shape}; "
                         "pick a sample with probs[i]")
    names = _names(class_names, len(p), "class_names")
    if np.isnan(p).any() or p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError("probs must be probabilities in [0, 1]; pass softmax(logits)")
    order = np.arange(len(p))
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        order = np.argsort(-p, kind="stable")[:top_k]
    fig, ax = _new_ax(ax, (4.0, 0.3 * len(order) + 0.8))
    pred = int(p.argmax())
    colors = [HIGHLIGHT if i == pred else NEUTRAL for i in order]
    ypos = np.arange(len(order))[::-1]  # first entry on top
    ax.barh(ypos, p[order], color=colors)
    ax.set_yticks(ypos, [names[i] for i in order])
    for y, v in zip(ypos, p[order], strict=True):
        ax.text(min(v + 0.01, 0.86), y, f"{v:.2f}", va="center", fontsize="x-small")
    ax.set(xlim=(0, 1), xlabel="probability")
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title)
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


def to_jpeg(fig: Figure, dpi: int = 80, quality: int = 80, close: bool = True) -> bytes:
    """Encode ``fig`` as JPEG bytes (much smaller than PNG for photo-like image grids).

    In a notebook: ``IPython.display.Image(to_jpeg(fig))``. Closes the figure by default so it
    is not drawn a second time by the inline backend.
    """
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": quality})
    if close:
        plt.close(fig)
    return buffer.getvalue()
