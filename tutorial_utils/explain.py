"""Pure functions behind the figures and widgets of chapter 2 (explainability).

* :func:`layer_view` — one forward pass and **one batched backward**
  (:func:`tutorial_utils.gradients.layer_logit_gradients`) give the target layer's activations
  ``A`` and the gradients of *every* logit with respect to them. Every CAM of the chapter is
  then a cheap linear combination (drawn with :func:`tutorial_utils.cam.cam_from_weights`):

  ====================  ====================================  ==================================
  map                   channel weights ``α``                 question
  ====================  ====================================  ==================================
  Grad-CAM              ``J[P]``                              "why P?"
  CounterfactualCAM     ``−J[P]``                             "what if this region were absent?"
  ContrastCAM           ``(p − e_Q)ᵀ J``  (= ∂CE(z, Q)/∂A)    "why P, rather than Q?"
  ====================  ====================================  ==================================

  with ``J[k, c] = mean_{u,v} ∂z_k/∂A_c(u, v)`` and map ``= minmax(upsample(ReLU(Σ_c α_c A_c)))``.
* :func:`gradcam_steps` — the Grad-CAM recipe step by step, for the figure that shows it.
* :func:`contrast_gallery` / :func:`plot_contrast_gallery` — the "why P, rather than Q?" table.
* :func:`contrast_panel` / :func:`contrast_explorer` — the sample picker + contrast-class
  dropdown; changing the contrast class only redraws (all maps are precomputed).
* :func:`level_view` / :func:`plot_level_view` / :func:`level_explorer` — feed-forward vs
  introspective accuracy and calibration at one challenge level.

``ipywidgets`` is imported inside the widget builders only.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import check_images
from tutorial_utils.cam import cam_from_weights, gradcam_weights
from tutorial_utils.gradients import layer_logit_gradients

# --------------------------------------------------------------------------------------
# One forward + one batched backward: everything the CAM family needs
# --------------------------------------------------------------------------------------


@dataclass
class LayerView:
    """Activations and all-logit gradients of one image at the target layer.

    ``image`` (C, H, W); ``activations`` (C_A, h, w); ``grads`` (K, C_A, h, w) with
    ``grads[k] = ∂z_k/∂A``; ``logits``/``probs`` (K,); ``pred`` the predicted class.
    """

    image: torch.Tensor
    activations: torch.Tensor
    grads: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor

    @property
    def pred(self) -> int:
        return int(self.logits.argmax())

    @property
    def num_classes(self) -> int:
        return int(self.logits.numel())

    @property
    def jacobian(self) -> torch.Tensor:
        """``J`` (K, C_A): the spatially pooled gradient of every logit (Grad-CAM's α_k,
        :func:`~tutorial_utils.cam.gradcam_weights` applied to each logit)."""
        return gradcam_weights(self.activations[None], self.grads)

    def _check_class(self, q: int, name: str) -> int:
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)):
            raise TypeError(f"{name} must be an int class index, got {type(q).__name__}")
        if not 0 <= int(q) < self.num_classes:
            raise ValueError(f"{name} class {q} is out of range 0..{self.num_classes - 1}")
        return int(q)

    def weights(self, kind: str, q: int | None = None) -> torch.Tensor:
        """Channel weights α (C_A,) for ``kind`` in {'gradcam', 'counterfactual', 'contrast'}.

        ``q`` is the explained class for Grad-CAM/CounterfactualCAM (default: the prediction)
        and the contrast class Q for ContrastCAM (required).
        """
        if kind == "contrast":
            if q is None:
                raise ValueError("kind='contrast' needs the contrast class q")
            q = self._check_class(q, "q")
            e = torch.zeros_like(self.probs)
            e[q] = 1.0
            return (self.probs - e) @ self.jacobian
        t = self.pred if q is None else self._check_class(q, "q")
        if kind == "gradcam":
            return self.jacobian[t]
        if kind == "counterfactual":
            return -self.jacobian[t]
        raise ValueError(f"kind must be 'gradcam', 'counterfactual' or 'contrast', got {kind!r}")

    def cam(self, alpha: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """``ReLU(Σ_c α_c A_c)``: (h, w) if ``raw`` else upsampled to (H, W) and min-maxed
        (:func:`~tutorial_utils.cam.cam_from_weights`).

        ``alpha`` may be (C_A,) or a stack (M, C_A), giving (M, ·, ·) maps.
        """
        return cam_from_weights(self.activations[None], alpha[None], self.image.shape[-2:],
                                raw)[0]

    def contrast_maps(self) -> torch.Tensor:
        """ContrastCAMs for every contrast class Q = 0..K-1 at once: (K, H, W)."""
        eye = torch.eye(self.num_classes, dtype=self.probs.dtype)
        return self.cam((self.probs[None] - eye) @ self.jacobian)


def layer_view(model: nn.Module, x: torch.Tensor, layer: nn.Module | None = None) -> LayerView:
    """One forward pass of a single image ``x`` (1, C, H, W) and one batched backward of all
    K logits to the target layer (default:
    :func:`~tutorial_utils.gradients.default_target_layer`), via
    :func:`~tutorial_utils.gradients.layer_logit_gradients`.

    Keeps the model's mode and ``requires_grad`` flags, and leaves no hook behind.
    """
    check_images(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold exactly one image (1, C, H, W), got batch {x.shape[0]}")
    acts, grads, z = layer_logit_gradients(model, x, layer)
    z = z[0].cpu()
    return LayerView(image=x.detach()[0].cpu(), activations=acts[0].cpu(),
                     grads=grads[0].cpu(), logits=z, probs=z.softmax(0))


# --------------------------------------------------------------------------------------
# Grad-CAM, step by step
# --------------------------------------------------------------------------------------


def gradcam_steps(model: nn.Module, x: torch.Tensor, target: int | None = None,
                  layer: nn.Module | None = None, weights: torch.Tensor | None = None) -> dict:
    """The Grad-CAM recipe (Selvaraju et al. 2017) for one image, with every intermediate.

    ``y`` is the logit of ``target`` (default: the prediction) or, if ``weights`` (K,) is given,
    the scalar ``weights · z`` (e.g. ``p − e_Q`` gives ContrastCAM). Returns a dict with
    ``activations`` (C_A, h, w), ``gradients`` ∂y/∂A (C_A, h, w), ``alpha`` (C_A,) pooled
    gradients, ``weighted`` Σ α_k A_k (h, w) (signed), ``relu`` (h, w), ``map`` (H, W) in
    [0, 1], plus ``target``, ``probs`` and ``view`` (the :class:`LayerView`).
    """
    view = layer_view(model, x, layer)
    if weights is None:
        t = view.pred if target is None else view._check_class(target, "target")
        w = torch.zeros(view.num_classes)
        w[t] = 1.0
    else:
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1).cpu()
        if w.numel() != view.num_classes:
            raise ValueError(f"weights must have K={view.num_classes} entries, got {w.numel()}")
        t = target
    grad = torch.einsum("k,kchw->chw", w, view.grads)
    alpha = grad.mean(dim=(1, 2))
    weighted = torch.einsum("c,chw->hw", alpha, view.activations)
    relu = torch.relu(weighted)
    return dict(activations=view.activations, gradients=grad, alpha=alpha, weighted=weighted,
                relu=relu, map=view.cam(alpha), target=t, probs=view.probs, view=view)


def plot_gradcam_steps(steps: Mapping, class_names: Sequence[str] | None = None, top: int = 3):
    """Figure: input | the ``top`` channels with largest α (activation, gradient) | α bar chart |
    Σ α_k A_k | ReLU | upsampled map over the input."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style()
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
        a2.set_title(f"∂y/∂A_{c}  (α={alpha[c]:.3f})", fontsize="small")
        a2.axis("off")
    ab = fig.add_subplot(grid[:, top + 1])
    srt = alpha.sort(descending=True).values.numpy()
    colors = np.where(srt >= 0, plotting.HIGHLIGHT, plotting.NEUTRAL)
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
    plotting.overlay(view.image, steps["map"].numpy(), ax=au, title="5. upsample + min-max")
    return fig


# --------------------------------------------------------------------------------------
# Representatives and the contrast gallery
# --------------------------------------------------------------------------------------


def representatives(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Index into ``x`` of one representative per class: the image of that class to which the
    model gives the highest probability for it. Returns (K,) long (−1 if a class is absent)."""
    from tutorial_utils.models import predict_logits

    check_images(x)
    probs = predict_logits(model, x).softmax(1)
    k = probs.shape[1]
    own = probs[torch.arange(len(y)), y.long()]
    out = torch.full((k,), -1, dtype=torch.long)
    for c in range(k):
        idx = torch.nonzero(y == c).flatten()
        if len(idx):
            out[c] = idx[own[idx].argmax()]
    return out


def contrast_gallery(model: nn.Module, images: torch.Tensor, contrasts: Sequence[tuple[int, int]],
                     rep_images: torch.Tensor, layer: nn.Module | None = None) -> list[dict]:
    """Rows of the "why P, rather than Q?" table.

    ``images`` (B, C, H, W); ``contrasts`` one pair (Q1, Q2) per image; ``rep_images``
    (K, C, H, W) a representative image per class. Each row holds ``image``, ``pred``,
    ``probs``, ``gradcam``, ``q1``, ``rep1``, ``contrast1``, ``q2``, ``rep2``, ``contrast2`` and
    ``why_not`` (Q = P: "why not P with 100% confidence?"), maps (H, W) in [0, 1].
    """
    check_images(images)
    if len(contrasts) != len(images):
        raise ValueError(f"contrasts must give one (Q1, Q2) pair per image: got {len(contrasts)} "
                         f"for {len(images)} images")
    rows = []
    for i, (q1, q2) in enumerate(contrasts):
        v = layer_view(model, images[i:i + 1], layer)
        maps = v.contrast_maps()
        rows.append(dict(image=v.image, pred=v.pred, probs=v.probs,
                         gradcam=v.cam(v.weights("gradcam")),
                         q1=int(q1), rep1=rep_images[q1], contrast1=maps[q1],
                         q2=int(q2), rep2=rep_images[q2], contrast2=maps[q2],
                         why_not=maps[v.pred]))
    return rows


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
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style()
    fig, axes = plt.subplots(len(rows), 7, figsize=(7 * size, len(rows) * (size + 0.45)),
                             squeeze=False, layout="constrained")
    for r, row in enumerate(rows):
        p, q1, q2 = (class_names[row[k]] for k in ("pred", "q1", "q2"))
        conf = float(row["probs"][row["pred"]])
        _show(axes[r, 0], row["image"], f"input: {p}\n(p={conf:.2f})")
        plotting.overlay(row["image"], row["gradcam"].numpy(), ax=axes[r, 1],
                         title=f"Grad-CAM:\nwhy {p}?")
        _show(axes[r, 2], row["rep1"], f"representative\n{q1}")
        plotting.overlay(row["image"], row["contrast1"].numpy(), ax=axes[r, 3],
                         title=f"why {p},\nrather than {q1}?")
        _show(axes[r, 4], row["rep2"], f"representative\n{q2}")
        plotting.overlay(row["image"], row["contrast2"].numpy(), ax=axes[r, 5],
                         title=f"why {p},\nrather than {q2}?")
        plotting.overlay(row["image"], row["why_not"].numpy(), ax=axes[r, 6],
                         title=f"why not {p}\nwith 100% confidence?")
    return fig


# --------------------------------------------------------------------------------------
# Contrast explorer: sample picker + contrast-class dropdown
# --------------------------------------------------------------------------------------


@dataclass
class ContrastState:
    """Everything the explorer draws for one picked sample (precomputed once per sample)."""

    view: LayerView
    gradcam: torch.Tensor  # (H, W)
    counterfactual: torch.Tensor  # (H, W)
    contrast: torch.Tensor  # (K, H, W), all contrast classes


def contrast_state(model: nn.Module, x: torch.Tensor,
                   layer: nn.Module | None = None) -> ContrastState:
    """Precompute Grad-CAM, CounterfactualCAM and the ContrastCAMs of all K classes for one
    image with one forward and one batched backward."""
    v = layer_view(model, x, layer)
    return ContrastState(v, v.cam(v.weights("gradcam")), v.cam(v.weights("counterfactual")),
                         v.contrast_maps())


def contrast_panel(state: ContrastState, q: int, class_names: Sequence[str],
                   rep_images: torch.Tensor | None = None) -> dict:
    """Pure data for one contrast class ``q``: titles and the arrays of each panel."""
    q = state.view._check_class(q, "q")
    p = state.view.pred
    pn, qn = class_names[p], class_names[q]
    question = (f"why not {pn}\nwith 100% confidence?" if q == p
                else f"why {pn},\nrather than {qn}?")
    return dict(pred=p, q=q, question=question, contrast=state.contrast[q],
                rep=None if rep_images is None else rep_images[q],
                rep_title=f"representative\n{qn}",
                text=f"P = {pn} (p={float(state.view.probs[p]):.3f}), Q = {qn} "
                     f"(p={float(state.view.probs[q]):.3g})")


def _render_png(fig) -> bytes:
    """Draw ``fig`` once with Agg and encode the pixels as PNG (faster than ``savefig``, which
    draws twice); uses the figure's own dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    buf = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
    return buf.getvalue()


class _PanelFigure:
    """A persistent 5-panel figure whose images are updated in place (fast redraws)."""

    def __init__(self, class_names: Sequence[str], dpi: int = 72) -> None:
        import matplotlib.pyplot as plt

        from tutorial_utils import plotting

        plotting.set_style()
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

    def set_contrast(self, panel: dict) -> None:
        if panel["rep"] is not None:
            rep = panel["rep"].detach().cpu().permute(1, 2, 0).squeeze(-1).numpy()
            self.artists["rep"].set_data(rep)
            self.axes[3].set_title(panel["rep_title"], fontsize="small")
        self.artists["contrast"].set_data(panel["contrast"].numpy())
        self.axes[4].set_title(panel["question"], fontsize="small")

    def png(self) -> bytes:
        return _render_png(self.fig)


def plot_contrast_panel(state: ContrastState, q: int, class_names: Sequence[str],
                        rep_images: torch.Tensor | None = None):
    """Static version of the explorer's figure for sample ``state`` and contrast class ``q``."""
    pf = _PanelFigure(class_names, dpi=100)
    pf.set_sample(state)
    pf.set_contrast(contrast_panel(state, q, class_names, rep_images))
    return pf.fig


def contrast_explorer(model: nn.Module, images: torch.Tensor, class_names: Sequence[str],
                      labels: Sequence[str] | None = None, rep_images: torch.Tensor | None = None,
                      layer: nn.Module | None = None):
    """Widget: a sample picker and a contrast-class dropdown over Grad-CAM, CounterfactualCAM
    and ContrastCAM ("why P, rather than Q?"; Q = P gives "why not P with 100% confidence?").

    Picking a sample recomputes all maps (one forward + one batched backward); picking a
    contrast class only redraws. Returns an ``ipywidgets.VBox`` with attributes ``sample``,
    ``contrast`` (the two dropdowns), ``image`` (the ``ipywidgets.Image``) and ``info``.
    """
    import ipywidgets as widgets

    check_images(images)
    labels = list(labels) if labels is not None else [f"sample {i}" for i in range(len(images))]
    if len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
    pf = _PanelFigure(class_names)
    sample = widgets.Dropdown(options=[(t, i) for i, t in enumerate(labels)], value=0,
                              description="sample")
    contrast = widgets.Dropdown(options=[(n, i) for i, n in enumerate(class_names)],
                                description="Q =")
    image = widgets.Image(format="png")
    info = widgets.HTML()
    box = widgets.VBox([widgets.HBox([sample, contrast]), image, info])
    cache: dict = {}

    def redraw_contrast(_change=None) -> None:
        panel = contrast_panel(cache["state"], contrast.value, class_names, rep_images)
        pf.set_contrast(panel)
        image.value = pf.png()
        info.value = f"<code>{panel['text']}</code>"

    def pick_sample(_change=None) -> None:
        cache["state"] = contrast_state(model, images[sample.value:sample.value + 1], layer)
        pf.set_sample(cache["state"])
        redraw_contrast()

    pick_sample()
    sample.observe(pick_sample, names="value")
    contrast.observe(redraw_contrast, names="value")
    box.sample, box.contrast, box.image, box.info = sample, contrast, image, info
    box.figure = pf.fig
    return box


# --------------------------------------------------------------------------------------
# Introspection: the level slider
# --------------------------------------------------------------------------------------


def level_view(results, level: int, heads: Sequence[str] = ("feed-forward", "introspective")):
    """Accuracy and ECE per challenge of each head at ``level`` (0 = clean), as a DataFrame
    indexed by challenge with columns ``(metric, head)``; plus a pooled ``all`` row."""
    import pandas as pd

    from tutorial_utils.metrics import expected_calibration_error

    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise TypeError(f"level must be an int in 0..5, got {type(level).__name__}")
    if level != 0 and level not in results.levels:
        raise ValueError(f"level must be 0 or one of {results.levels}, got {level}")
    t = results.table
    cells = t[(t.level == level) & t["head"].isin(heads)]
    df = cells.pivot(index="challenge", columns="head", values=["accuracy", "ece"])
    order = ["clean"] if level == 0 else list(results.challenges)
    df = df.loc[order, [(m, h) for m in ("accuracy", "ece") for h in heads]]
    pooled = {}
    for h in heads:
        p, lab = results.pooled(h, level), results.pooled_labels(level)
        pooled[("accuracy", h)] = float((p.argmax(1) == lab).mean())
        pooled[("ece", h)] = expected_calibration_error(p, lab)
    df.loc["all"] = pd.Series(pooled)
    return df


def plot_level_view(results, level: int,
                    heads: Sequence[str] = ("feed-forward", "introspective"), fig=None):
    """Bars of accuracy per challenge for each head at ``level`` and one pooled reliability
    diagram per head. Draws into ``fig`` (cleared) if given."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style()
    df = level_view(results, level, heads)
    if fig is None:
        fig = plt.figure(figsize=(12, 3.6), layout="constrained")
    else:
        fig.clear()
    grid = fig.add_gridspec(1, 2 + len(heads), width_ratios=[2.4, 0.05] + [1] * len(heads))
    ax = fig.add_subplot(grid[0])
    names = list(df.index)
    xs = np.arange(len(names))
    width = 0.8 / len(heads)
    colors = [plotting.NEUTRAL, plotting.HIGHLIGHT, "#55A868"]
    for j, h in enumerate(heads):
        ax.bar(xs + (j - (len(heads) - 1) / 2) * width, df[("accuracy", h)], width,
               color=colors[j % 3], label=f"{h} (ECE {df.loc['all', ('ece', h)]:.3f})")
    ax.set_xticks(xs, names, rotation=45, ha="right", fontsize="small")
    ax.set(ylim=(0, 1.3), yticks=np.linspace(0, 1, 6), ylabel="accuracy",
           title="clean test subset" if level == 0 else f"challenge level {level}")
    ax.legend(fontsize="small", frameon=False, loc="upper center", ncol=len(heads))
    for j, h in enumerate(heads):
        a = fig.add_subplot(grid[2 + j])
        plotting.reliability_diagram(results.pooled(h, level), results.pooled_labels(level),
                                     ax=a, label=h)
        a.legend(fontsize=7, frameon=False, loc="upper left")
        a.set_title(h, fontsize="small")
    return fig


def level_explorer(results, heads: Sequence[str] = ("feed-forward", "introspective")):
    """Widget: a level slider 0..5 redrawing :func:`plot_level_view`. Returns an
    ``ipywidgets.VBox`` with attributes ``level`` (the slider), ``image`` and ``table``."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    slider = widgets.IntSlider(value=0, min=0, max=max(results.levels), step=1,
                               description="level", continuous_update=False)
    image = widgets.Image(format="png")
    table = widgets.HTML()
    fig = plt.figure(figsize=(12, 3.6), dpi=72, layout="constrained")
    plt.close(fig)

    def redraw(_change=None) -> None:
        plot_level_view(results, slider.value, heads, fig=fig)
        image.value = _render_png(fig)
        table.value = level_view(results, slider.value, heads).loc[["all"]].to_html(
            float_format=lambda v: f"{v:.3f}")

    redraw()
    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, image, table])
    box.level, box.image, box.table = slider, image, table
    return box


# --------------------------------------------------------------------------------------
# "Why 5, rather than q?": the contrast-gradient grid
# --------------------------------------------------------------------------------------


def plot_contrast_gradient_grid(g: torch.Tensor, pred: int, class_names: Sequence[str],
                                image: torch.Tensor | None = None):
    """Heatmaps of ``g[q] = ∇_W CE(z, q)`` (K × D) for every contrast class q.

    ``g`` is (Q, K, D) for one image (unnormalised closed form); one symmetric colour scale is
    shared by all panels so their sizes can be compared.
    """
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style()
    g = g.detach().cpu()
    nq = g.shape[0]
    extra = 1 if image is not None else 0
    ncols = min(6, nq + extra)
    nrows = -(-(nq + extra) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 1.9 * nrows), squeeze=False,
                             layout="constrained")
    lim = float(g.abs().max()) or 1.0
    flat = list(axes.flat)
    if image is not None:
        _show(flat[0], image, "input x")
    pn = class_names[pred]
    im = None
    for q in range(nq):
        ax = flat[q + extra]
        im = ax.imshow(g[q], cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set_title(f"why {pn}, rather than {class_names[q]}?", fontsize="x-small")
        ax.set_yticks(range(g.shape[1]))
        ax.set_yticklabels(class_names if len(class_names[0]) < 3 else [], fontsize=6)
        ax.set_xticks([])
    for ax in flat[nq + extra:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="∂CE/∂W (rows: class k, cols: feature d)")
    return fig
