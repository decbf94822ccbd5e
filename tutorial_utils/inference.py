"""Chapter 1 helpers: inference, novel data, information, manifolds, gradients at inference.

Everything the notebook ``01_inference.ipynb`` computes lives here as small, tested functions;
the notebook only glues them together. Widget builders import ``ipywidgets`` inside the
function, so importing this module never needs a notebook front end.

=================================  ==========================================================
function                           what it returns
=================================  ==========================================================
predict_proba                      ``softmax(f(x))`` (N, K) in eval mode, in mini-batches
decision                           logits, probabilities and the decision for one image
plot_decision                      image | logits | probabilities, the decision highlighted
ChallengeCache                     per-(kind, level) test-set probabilities, computed once
challenge_view / plot_challenge_view
                                   one sign under a challenge: image, top-k probabilities,
                                   test-set accuracy and mean confidence at every level
challenge_explorer                 the ipywidgets explorer (dropdown + level slider)
entropy_bits                       Shannon entropy of predictions in bits
information_table                  H(X), H(Y), H(X, Y), I(X; Y) of two label vectors, in bits
exact_last_layer_fisher            E_x E_{y~p}[U Uᵀ] of the final linear layer, closed form
all_label_scores                   per-sample scores ∇_θ log p(y|x) for every label y
score_moments                      E[U], Var(U) and E[U Uᵀ] of score vectors (weighted)
relative_difference                ‖A − B‖_F / ‖B‖_F
penultimate_features               pooled features h (N, D) of a zoo model
isomap_embedding                   a joint 2-D Isomap of several feature sets
covariance_spectrum / effective_rank
                                   singular values of the feature covariance; exp(entropy)
directional_change                 loss change along −∇ vs random directions of equal norm
loss_plane                         the loss on the plane spanned by −∇ and a random direction
=================================  ==========================================================

References
----------
- G. AlRegib, M. Prabhushankar, "Explanatory paradigms in neural networks: towards relevant and
  contextual explanations", IEEE Signal Processing Magazine 39(4), 2022.
- D. Temel, G. Kwon, M. Prabhushankar, G. AlRegib, "CURE-TSR: challenging unreal and real
  environments for traffic sign recognition", NeurIPS Workshop 2017.
- D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and out-of-distribution
  examples in neural networks", ICLR 2017.
- J. B. Tenenbaum, V. de Silva, J. C. Langford, "A global geometric framework for nonlinear
  dimensionality reduction", Science 290, 2000 (Isomap).
- L. Jing, P. Vincent, Y. LeCun, Y. Tian, "Understanding dimensional collapse in contrastive
  self-supervised learning", ICLR 2022.
- S. Amari, "Natural gradient works efficiently in learning", Neural Computation 1998;
  J. Martens, "New insights and perspectives on the natural gradient method", JMLR 2020.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import check_images, check_model
from tutorial_utils.data import check_challenge
from tutorial_utils.utils import model_device, preserved_state

__all__ = [
    "predict_proba",
    "Decision",
    "decision",
    "plot_decision",
    "ChallengeCache",
    "ChallengeView",
    "challenge_view",
    "plot_challenge_view",
    "challenge_explorer",
    "plot_level_sweep",
    "entropy_bits",
    "information_table",
    "exact_last_layer_fisher",
    "all_label_scores",
    "score_moments",
    "relative_difference",
    "penultimate_features",
    "isomap_embedding",
    "plot_embedding",
    "covariance_spectrum",
    "effective_rank",
    "plot_spectra",
    "DirectionalChange",
    "directional_change",
    "plot_directional_change",
    "LossPlane",
    "loss_plane",
    "plane_value",
    "plot_loss_plane",
]

MAX_LEVEL = 5


# --------------------------------------------------------------------------------------
# Neural network basics: logits -> probabilities -> decision
# --------------------------------------------------------------------------------------


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Probabilities ``softmax(f(x))`` (N, K) in eval mode, in mini-batches (mode restored)."""
    check_model(model)
    check_images(x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    from tutorial_utils.models import predict_logits

    return predict_logits(model, x, batch_size).softmax(dim=1)


@dataclass(frozen=True)
class Decision:
    """One image's forward pass: ``logits`` (K,), ``probs`` (K,), ``pred`` the arg-max class."""

    logits: torch.Tensor
    probs: torch.Tensor
    pred: int

    @property
    def confidence(self) -> float:
        """The largest probability, ``max_k p_k`` (Hendrycks & Gimpel's baseline score)."""
        return float(self.probs[self.pred])


@torch.no_grad()
def decision(model: nn.Module, image: torch.Tensor) -> Decision:
    """Logits ``z = f(x)``, probabilities ``p = softmax(z)`` and ``argmax z`` for one image.

    ``image`` is one ``(C, H, W)`` image (or a batch of one) with pixels in [0, 1].
    """
    check_model(model)
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image[None]
    check_images(image, "image")
    if image.shape[0] != 1:
        raise ValueError(f"image must be one image (C, H, W), got a batch of {image.shape[0]}")
    with preserved_state(model):
        z = model(image.to(model_device(model)))[0].cpu()
    return Decision(z, z.softmax(0), int(z.argmax()))


def plot_decision(image: torch.Tensor, dec: Decision, class_names: Sequence[str],
                  title: str | None = None):
    """Three panels: the image, the logits ``z`` and the probabilities ``softmax(z)``.

    The predicted class is drawn in red in both bar charts. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
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
    colors = [plotting.HIGHLIGHT if i == dec.pred else plotting.NEUTRAL for i in range(k)]
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


# --------------------------------------------------------------------------------------
# Novel data: a sign under each challenge, with test-set accuracy and confidence
# --------------------------------------------------------------------------------------


class ChallengeCache:
    """Test-set probabilities of ``model`` under every (challenge kind, level), computed once.

    Args:
        model: a sign classifier.
        x, y: the test images (N, 3, H, W) in [0, 1] and labels (N,).
        class_names: the K class names.
        seed: the seed of the challenge patterns (rain streaks, noise, ...).

    ``probs(kind, level)`` returns the (N, K) probabilities, computing them on first use;
    level 0 is shared by every kind (the clean images). ``curve(kind)`` gives accuracy and
    mean confidence (mean of ``max_k p_k``) at levels 0..5.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 class_names: Sequence[str], seed: int = 0) -> None:
        check_model(model)
        check_images(x)
        if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
            raise ValueError(f"y must be a (N,) label tensor with N = {x.shape[0]}")
        self.model, self.x, self.y = model, x, y.long()
        self.class_names = tuple(class_names)
        self.seed = int(seed)
        self._probs: dict[tuple[str, int], torch.Tensor] = {}
        self.computed = 0  # how many (kind, level) sets were actually run through the model

    def images(self, kind: str, level: int, idx: int | slice | None = None) -> torch.Tensor:
        """The challenged test images (all, or ``x[idx]``)."""
        from tutorial_utils.data import apply_challenge

        kind, level = check_challenge(kind, level)
        x = self.x if idx is None else self.x[idx]
        if x.dim() == 3:
            x = x[None]
        return apply_challenge(x, kind, level, seed=self.seed)

    def probs(self, kind: str, level: int) -> torch.Tensor:
        kind, level = check_challenge(kind, level)
        key = ("clean", 0) if level == 0 else (kind, level)
        if key not in self._probs:
            self._probs[key] = predict_proba(self.model, self.images(kind, level))
            self.computed += 1
        return self._probs[key]

    def summary(self, kind: str, level: int) -> tuple[float, float]:
        """(accuracy, mean confidence) of the test set at this kind and level."""
        p = self.probs(kind, level)
        conf, pred = p.max(dim=1)
        return float((pred == self.y).float().mean()), float(conf.mean())

    def curve(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy (6,) and mean confidence (6,) at levels 0..5 of ``kind``."""
        rows = [self.summary(kind, lv) for lv in range(MAX_LEVEL + 1)]
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def table(self, kinds: Sequence[str] | None = None, levels: Sequence[int] = range(6),
              progress: bool = True):
        """A pandas DataFrame: one row per (kind, level) with accuracy, confidence and gap."""
        import pandas as pd
        from tqdm.auto import tqdm

        from tutorial_utils.data import CHALLENGES

        kinds = CHALLENGES if kinds is None else kinds
        rows = []
        for kind in tqdm(kinds, desc="challenges", disable=not progress, leave=False):
            for lv in levels:
                acc, conf = self.summary(kind, lv)
                rows.append(dict(kind=kind, level=int(lv), accuracy=acc, confidence=conf,
                                 gap=conf - acc))
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class ChallengeView:
    """What the challenge explorer shows for one (kind, level, image)."""

    kind: str
    level: int
    image: torch.Tensor  # (C, H, W)
    label: int
    top_classes: list[int]
    top_probs: list[float]
    accuracy: float  # test set, this kind and level
    confidence: float  # mean max-probability, test set
    accuracy_curve: np.ndarray = field(repr=False)  # levels 0..5
    confidence_curve: np.ndarray = field(repr=False)
    class_names: tuple[str, ...] = field(repr=False, default=())


def challenge_view(cache: ChallengeCache, kind: str, level: int, index: int = 0,
                   top_k: int = 3) -> ChallengeView:
    """The data behind one explorer frame: test image ``index`` under ``kind`` at ``level``,
    its top-k probabilities, and the test set's accuracy and mean confidence at every level.
    """
    kind, level = check_challenge(kind, level)
    n = len(cache.x)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index must be an int in 0..{n - 1}, got {index!r}")
    k = len(cache.class_names)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= k:
        raise ValueError(f"top_k must be an int in 1..{k}, got {top_k!r}")
    acc_curve, conf_curve = cache.curve(kind)
    p = cache.probs(kind, level)[index]
    top = torch.argsort(p, descending=True, stable=True)[:top_k]
    return ChallengeView(kind, level, cache.images(kind, level, index)[0], int(cache.y[index]),
                         top.tolist(), p[top].tolist(), float(acc_curve[level]),
                         float(conf_curve[level]), acc_curve, conf_curve, cache.class_names)


def plot_challenge_view(view: ChallengeView):
    """Image | top-k probabilities | test-set accuracy and mean confidence vs level."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.4, 1.6]})
    axes[0].imshow(view.image.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_axis_off()
    axes[0].set_title(f"{view.kind}, level {view.level}\ntrue: {view.class_names[view.label]}",
                      fontsize="small")
    names = [view.class_names[c] for c in view.top_classes]
    ypos = np.arange(len(names))[::-1]
    colors = [plotting.HIGHLIGHT if i == 0 else plotting.NEUTRAL for i in range(len(names))]
    axes[1].barh(ypos, view.top_probs, color=colors)
    axes[1].set_yticks(ypos, names, fontsize="small")
    for yv, v in zip(ypos, view.top_probs, strict=True):
        axes[1].text(min(v + 0.02, 0.8), yv, f"{v:.2f}", va="center", fontsize="x-small")
    axes[1].set(xlim=(0, 1), xlabel="probability", title=f"top-{len(names)} for this image")
    axes[1].spines[["top", "right"]].set_visible(False)
    levels = np.arange(len(view.accuracy_curve))
    ax = axes[2]
    ax.plot(levels, view.accuracy_curve, "o-", label="accuracy", color=plotting.NEUTRAL)
    ax.plot(levels, view.confidence_curve, "s--", label="mean confidence",
            color=plotting.HIGHLIGHT)
    ax.fill_between(levels, view.accuracy_curve, view.confidence_curve, color="0.85")
    ax.axvline(view.level, color="0.4", lw=1, ls=":")
    ax.set(ylim=(0, 1.03), xlabel="challenge level", xticks=levels,
           title=f"test set at level {view.level}: acc {view.accuracy:.2f}, "
                 f"conf {view.confidence:.2f}")
    ax.title.set_fontsize("small")
    ax.legend(fontsize="small", frameon=False, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_level_sweep(table, title: str | None = None):
    """Mean confidence against accuracy for every (kind, level) of :meth:`ChallengeCache.table`.

    Points above the diagonal are over-confident: the model is surer than it is right.
    """
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    kinds = list(dict.fromkeys(table["kind"]))
    cmap = plt.get_cmap("tab20")
    for i, kind in enumerate(kinds):
        rows = table[table["kind"] == kind].sort_values("level")
        ax.plot(rows["accuracy"], rows["confidence"], "-", color=cmap(i), lw=1, alpha=0.7)
        ax.scatter(rows["accuracy"], rows["confidence"], s=8 + 9 * rows["level"],
                   color=cmap(i), label=kind, zorder=3)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.text(0.05, 0.93, "over-confident", fontsize="small", color="0.3")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="accuracy (test subset)",
           ylabel="mean confidence  max$_k$ $p_k$")
    ax.set_title(title or "each challenge, levels 0–5 (marker size = level)", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def challenge_explorer(cache: ChallengeCache, index: int = 0, kind: str = "snow",
                       level: int = 3, top_k: int = 3):
    """An ipywidgets explorer: a challenge-type dropdown and a level slider (0–5).

    Every change calls :func:`challenge_view` and :func:`plot_challenge_view` and redraws the
    figure in an ``Output`` widget. Returns a ``VBox``; ``box.controls`` holds the
    ``kind`` / ``level`` widgets, ``box.state`` the last view and figure, ``box.update()``
    redraws by hand (what the tests drive).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from tutorial_utils.data import CHALLENGES

    check_challenge(kind, level)
    kind_w = widgets.Dropdown(options=list(CHALLENGES), value=kind, description="challenge")
    level_w = widgets.IntSlider(value=level, min=0, max=MAX_LEVEL, step=1, description="level",
                                continuous_update=False)
    out = widgets.Output()
    state: dict = {"view": None, "figure": None, "calls": 0}

    def update(*_):
        view = challenge_view(cache, kind_w.value, level_w.value, index=index, top_k=top_k)
        fig = plot_challenge_view(view)
        out.clear_output(wait=True)
        with out:
            display(fig)
        plt.close(fig)
        state.update(view=view, figure=fig, calls=state["calls"] + 1)
        return view

    kind_w.observe(update, names="value")
    level_w.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([kind_w, level_w]), out])
    box.controls = {"kind": kind_w, "level": level_w}
    box.state = state
    box.update = update
    return box


# --------------------------------------------------------------------------------------
# Information: Shannon, mutual, Fisher
# --------------------------------------------------------------------------------------


def entropy_bits(probs: object) -> np.ndarray:
    """Shannon entropy ``−Σ_k p_k log₂ p_k`` (bits) of each row of ``probs`` (N, K)."""
    from tutorial_utils import metrics

    return np.asarray(metrics.entropy(probs)) / math.log(2)


def _discrete_entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def information_table(a: object, b: object) -> dict[str, float]:
    """``H(A)``, ``H(B)``, the joint ``H(A, B)`` and ``I(A; B) = H(A) + H(B) − H(A, B)`` in bits.

    ``a``, ``b``: (N,) integer labels (e.g. true class and predicted class), plug-in estimates
    from their empirical distributions.
    """
    a = np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a)
    b = np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b)
    if a.ndim != 1 or b.ndim != 1 or len(a) != len(b) or len(a) == 0:
        raise ValueError(f"a and b must be non-empty (N,) label vectors of equal length, "
                         f"got shapes {a.shape} and {b.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise TypeError("a and b must hold integer labels")
    _, ca = np.unique(a, return_counts=True)
    _, cb = np.unique(b, return_counts=True)
    _, cab = np.unique(np.stack([a, b], 1), axis=0, return_counts=True)
    ha, hb, hab = _discrete_entropy(ca), _discrete_entropy(cb), _discrete_entropy(cab)
    return {"H(A)": ha, "H(B)": hb, "H(A,B)": hab, "I(A;B)": max(ha + hb - hab, 0.0)}


def exact_last_layer_fisher(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The Fisher information of the final linear layer, ``E_x E_{y~p(·|x)}[U Uᵀ]``, exactly.

    For ``z = W h + b`` the score is ``U = ∇_θ log p_y = (e_y − p) ⊗ [h, 1]``; the expectation
    over y is taken by enumerating all K classes weighted by ``p_y`` (no sampling). Parameters
    are ordered ``[W.flatten() (row-major), b]`` like ``gradients.score_vectors(params=fc)``.
    Returns (P, P) with ``P = K·D + K``.
    """
    from tutorial_utils.gradients import final_linear

    check_model(model)
    check_images(x)
    fc = final_linear(model)
    hs: list[torch.Tensor] = []
    handle = fc.register_forward_pre_hook(lambda _m, inp: hs.append(inp[0].detach()))
    try:
        p = predict_proba(model, x).double()
    finally:
        handle.remove()
    h = torch.cat(hs).cpu()
    p = p.cpu()
    if h.shape[0] != p.shape[0]:
        raise ValueError("the final nn.Linear must run once per sample in the forward pass")
    h = h.double()
    n, k = p.shape
    eye = torch.eye(k, dtype=torch.float64)
    e_minus_p = eye[None, :, :] - p[:, None, :]  # (N, y, K): e_y − p
    u_w = e_minus_p[..., None] * h[:, None, None, :]  # (N, y, K, D)
    u = torch.cat([u_w.flatten(2), e_minus_p], dim=2)  # (N, y, P)
    v = (u * p[..., None].sqrt()).reshape(n * k, -1)
    return (v.T @ v / n).float()


def all_label_scores(model: nn.Module, x: torch.Tensor, params=None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Score vectors ``U_{b,y} = ∇_θ log p(y | x_b)`` for **every** label y, and ``p`` (B, K).

    Uses ``gradients.contrast_gradients_autograd`` (one vector-Jacobian product per sample,
    vectorised over the K labels): since ``log p_y = −CE(z, y)``, ``U_{b,y} = −∇_θ CE(z_b, y)``.
    Returns ``u`` (B, K, P) flattened in ``params`` order (default: the final linear layer,
    ``[W.flatten(), b]``) and the model's probabilities, so that expectations over
    ``y ~ p(·|x)`` can be taken exactly instead of by sampling.
    """
    from tutorial_utils.gradients import contrast_gradients_autograd

    grads = contrast_gradients_autograd(model, x, params=params)
    u = -torch.cat([g.flatten(2) for g in grads.values()], dim=2)
    return u.detach(), predict_proba(model, x)


def score_moments(u: torch.Tensor, weights: torch.Tensor | None = None
                  ) -> dict[str, torch.Tensor]:
    """Mean ``E[U]``, covariance ``Var(U) = E[(U − Ū)(U − Ū)ᵀ]`` and second moment ``E[U Uᵀ]``.

    ``u``: score vectors (N, P), or (N, K, P) with ``weights`` (N, K) that sum to one (e.g.
    ``p / N`` for an exact average over ``x`` and ``y ~ p(·|x)``). Without weights every row
    counts ``1/N``. Computed and returned in float64.
    """
    if not isinstance(u, torch.Tensor) or u.dim() not in (2, 3):
        raise ValueError("u must be a (N, P) or (N, K, P) tensor of score vectors")
    flat = u.double().reshape(-1, u.shape[-1])
    if weights is None:
        if u.dim() == 3:
            raise ValueError("a (N, K, P) u needs weights (N, K), e.g. probs / N")
        if flat.shape[0] < 2:
            raise ValueError("u must hold at least two score vectors")
        w = torch.full((flat.shape[0],), 1.0 / flat.shape[0], dtype=torch.float64)
    else:
        w = torch.as_tensor(weights).double().reshape(-1)
        if w.numel() != flat.shape[0]:
            raise ValueError(f"weights must have one entry per score vector: got {w.numel()}, "
                             f"expected {flat.shape[0]}")
        if (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError("weights must be non-negative and sum to 1")
    mean = w @ flat
    second = (flat * w[:, None]).T @ flat
    centred = flat - mean
    cov = (centred * w[:, None]).T @ centred
    return {"mean": mean, "covariance": cov, "second_moment": second}


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``‖a − b‖_F / ‖b‖_F``."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b).clamp_min(1e-300))


# --------------------------------------------------------------------------------------
# Manifolds: Isomap and the covariance spectrum of representations
# --------------------------------------------------------------------------------------


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Pooled features ``h`` (N, D) from ``model.penultimate`` (zoo models), eval mode."""
    check_model(model)
    check_images(x)
    if not hasattr(model, "penultimate"):
        raise TypeError("model must have a .penultimate(x) method (a zoo SmallCNN)")
    with preserved_state(model):
        return torch.cat([model.penultimate(x[i:i + batch_size])
                          for i in range(0, len(x), batch_size)])


def isomap_embedding(features: Mapping[str, torch.Tensor], n_neighbors: int = 10,
                     n_components: int = 2) -> dict[str, np.ndarray]:
    """One Isomap (Tenenbaum et al. 2000) fitted on all feature sets together.

    ``features``: ``{name: (N_i, D)}``; returns ``{name: (N_i, n_components)}``, the same
    embedding split back by set, so distances between sets are comparable.
    """
    from sklearn.manifold import Isomap

    if not isinstance(features, Mapping) or not features:
        raise ValueError("features must be a non-empty dict {name: (N, D) features}")
    arrays = {k: np.asarray(torch.as_tensor(v).detach().cpu(), dtype=np.float64)
              for k, v in features.items()}
    dims = {a.shape[1] for a in arrays.values() if a.ndim == 2}
    if len(dims) != 1 or any(a.ndim != 2 for a in arrays.values()):
        raise ValueError("every feature set must be (N, D) with the same D")
    stacked = np.concatenate(list(arrays.values()))
    emb = Isomap(n_neighbors=n_neighbors, n_components=n_components).fit_transform(stacked)
    out, start = {}, 0
    for k, a in arrays.items():
        out[k] = emb[start:start + len(a)]
        start += len(a)
    return out


def plot_embedding(embedding: Mapping[str, np.ndarray], title: str | None = None):
    """Scatter of a 2-D embedding, one colour per set."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    for name, e in embedding.items():
        ax.scatter(e[:, 0], e[:, 1], s=9, alpha=0.7, label=name)
    ax.set(xticks=[], yticks=[], xlabel="Isomap 1", ylabel="Isomap 2")
    ax.set_title(title or "Isomap of penultimate features", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, markerscale=2, bbox_to_anchor=(1.01, 1),
              loc="upper left")
    return fig


def covariance_spectrum(features: torch.Tensor, normalize: bool = True) -> np.ndarray:
    """Singular values of the feature covariance matrix, in decreasing order.

    ``features`` (N, D); with ``normalize`` the values are divided by their sum, so spectra
    of differently scaled feature sets can be compared by shape only.
    """
    f = torch.as_tensor(features).detach().double().cpu()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {tuple(f.shape)}")
    if not torch.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    c = f - f.mean(0, keepdim=True)
    s = torch.linalg.svdvals(c.T @ c / (len(f) - 1)).numpy()
    if normalize:
        s = s / max(s.sum(), 1e-300)
    return s


def effective_rank(singular_values: np.ndarray) -> float:
    """``exp(−Σ q_i log q_i)`` with ``q = s / Σ s`` (Roy & Vetterli 2007): between 1 and D."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or (s < 0).any():
        raise ValueError("singular_values must be a non-empty 1-D array of non-negative values")
    q = s / s.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def plot_spectra(spectra: Mapping[str, np.ndarray], title: str | None = None):
    """Normalised singular values (log scale) against their index, one line per set."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    for name, s in spectra.items():
        ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s, 1e-12),
                    label=f"{name} (eff. rank {effective_rank(s):.1f})")
    ax.set(xlabel="singular value index", ylabel="normalised singular value", ylim=(1e-6, 1))
    ax.set_title(title or "spectrum of the feature covariance", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False)
    return fig


# --------------------------------------------------------------------------------------
# Gradients at inference: local information and the direction of steepest descent
# --------------------------------------------------------------------------------------


def _loss_setup(model: nn.Module, image: torch.Tensor, label: int | None, params):
    """(selected params, loss(params) -> scalar, label) for one image, CE against ``label``."""
    from torch.func import functional_call

    from tutorial_utils.gradients import select_params

    check_model(model)
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image[None]
    check_images(image, "image")
    if image.shape[0] != 1:
        raise ValueError("image must be one image (C, H, W)")
    selected, rest = select_params(model, params)
    with preserved_state(model), torch.no_grad():
        z = model(image)
    if label is None:
        label = int(z.argmax())
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < z.shape[1]:
        raise ValueError(f"label must be an int in 0..{z.shape[1] - 1} or None, got {label!r}")
    target = torch.tensor([label], device=image.device)

    def loss(prm: dict) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, {**prm, **rest}, (image,)), target)

    return selected, loss, label


def _loss_and_gradient(model: nn.Module, loss, selected: dict) -> tuple[float, torch.Tensor, float]:
    """Loss value, flat gradient ``g`` w.r.t. the selected parameters, and ``‖g‖``."""
    from torch.func import grad

    with preserved_state(model):
        g = _flat(grad(loss)(selected))
        return float(loss(selected)), g, float(torch.linalg.norm(g))


def _flat(d: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in d.values()])


def _unflat(vec: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vec[start:start + v.numel()].view_as(v)
        start += v.numel()
    return out


@dataclass(frozen=True)
class DirectionalChange:
    """Loss changes ``L(θ + δ) − L(θ)`` for steps ``δ`` of length ``α·‖g‖``.

    ``alphas`` (A,); ``gradient`` (A,) for ``δ = −α g``; ``first_order`` (A,) the Taylor
    prediction ``−α‖g‖²``; ``random`` (R, A) for random directions of the same length;
    ``loss`` the loss at θ; ``grad_norm`` ‖g‖; ``label`` the class the loss is taken against.
    """

    alphas: np.ndarray
    gradient: np.ndarray
    first_order: np.ndarray
    random: np.ndarray
    loss: float
    grad_norm: float
    label: int


def directional_change(model: nn.Module, image: torch.Tensor, label: int | None = None,
                       alphas: Sequence[float] | None = None, n_random: int = 32,
                       params=None, seed: int = 0) -> DirectionalChange:
    """How the loss ``L(θ) = CE(f_θ(x), label)`` changes along ``−∇_θ L`` vs random directions.

    ``label=None`` uses the prediction (no ground truth at inference). ``alphas=None`` takes 16
    step lengths ``α‖g‖`` from 0.001 to 10 times ``L/‖g‖``. ``params`` selects θ
    (default: the final linear layer; see ``gradients.per_sample_gradients``). Each random
    direction is a Gaussian vector rescaled to the gradient's norm, so every step has the same
    length ``α‖g‖``. The first-order (Taylor) prediction along ``−α g`` is ``−α‖g‖²``.
    """
    from torch.func import vmap

    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 1:
        raise ValueError(f"n_random must be a positive int, got {n_random!r}")
    selected, loss, label = _loss_setup(model, image, label, params)
    l0, g, gnorm = _loss_and_gradient(model, loss, selected)
    if alphas is None:  # step lengths from 1e-3 to 10 times the first-order "distance" L/|g|
        alphas = np.geomspace(1e-3, 10, 16) * l0 / max(gnorm, 1e-12) ** 2
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size == 0 or (alphas < 0).any():
        raise ValueError("alphas must be a non-empty 1-D sequence of non-negative step sizes")
    with preserved_state(model):
        gen = torch.Generator().manual_seed(seed)
        r = torch.randn(n_random, g.numel(), generator=gen).to(g)
        r = r / torch.linalg.norm(r, dim=1, keepdim=True) * gnorm
        dirs = torch.cat([-g[None], r])  # (1 + R, P), all of norm ‖g‖
        a = torch.as_tensor(alphas, dtype=g.dtype, device=g.device)
        steps = (a[:, None, None] * dirs[None]).reshape(-1, g.numel())  # (A·(1+R), P)
        theta = _flat(selected)

        def at(delta: torch.Tensor) -> torch.Tensor:
            return loss(_unflat(theta + delta, selected))

        with torch.no_grad():
            vals = vmap(at, chunk_size=256)(steps).reshape(len(alphas), -1).cpu().numpy() - l0
    return DirectionalChange(alphas, vals[:, 0], -alphas * gnorm**2, vals[:, 1:].T, l0, gnorm,
                             label)


def plot_directional_change(dc: DirectionalChange, title: str | None = None):
    """ΔL against the step length: along −∇ (actual and first-order) and random directions."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
    fig, ax = plt.subplots(figsize=(5.8, 3.8), layout="constrained")
    step = dc.alphas * dc.grad_norm
    lo, hi = np.percentile(dc.random, [5, 95], axis=0)
    ax.fill_between(step, lo, hi, color="0.8", label="random directions (5–95 %)")
    ax.plot(step, np.median(dc.random, axis=0), color="0.4", lw=1, label="random (median)")
    ax.plot(step, dc.gradient, "o-", color=plotting.HIGHLIGHT, ms=4, label="along $-\\nabla L$")
    ax.plot(step, np.maximum(dc.first_order, -dc.loss * 1.5), "--", color=plotting.NEUTRAL,
            label="first order $-\\alpha\\|g\\|^2$")
    ax.axhline(-dc.loss, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="step length $\\alpha\\|g\\|$", ylabel="$L(\\theta+\\delta)-L(\\theta)$",
           ylim=(-dc.loss * 1.15, dc.loss * 0.6))
    ax.set_title(title or f"loss change from one input (L = {dc.loss:.3f}, ‖g‖ = "
                 f"{dc.grad_norm:.3f})", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False, loc="lower left")
    return fig


@dataclass(frozen=True)
class LossPlane:
    """``L(θ + a·d₁ + b·d₂) − L(θ)`` on a grid; ``d₁ = −g/‖g‖``, ``d₂`` a random unit vector
    orthogonal to it. ``coords`` (S,), ``values`` (S, S) indexed ``[b, a]``."""

    coords: np.ndarray
    values: np.ndarray
    loss: float
    grad_norm: float


def loss_plane(model: nn.Module, image: torch.Tensor, label: int | None = None,
               span: float | None = None, steps: int = 41, params=None, seed: int = 0
               ) -> LossPlane:
    """The loss landscape of one input on the plane of ``−∇_θ L`` and a random direction.

    ``span=None`` takes ``2·L/‖g‖``, twice the distance at which the first-order model of the
    loss would reach zero, so the plot shows where the linear picture holds and where not.
    """
    from torch.func import vmap

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 3:
        raise ValueError(f"steps must be an int >= 3, got {steps!r}")
    selected, loss, label = _loss_setup(model, image, label, params)
    l0, g, gnorm = _loss_and_gradient(model, loss, selected)
    span = 2 * l0 / max(gnorm, 1e-12) if span is None else span
    if not span > 0:
        raise ValueError(f"span must be positive, got {span!r}")
    with preserved_state(model):
        d1 = -g / max(gnorm, 1e-30)
        gen = torch.Generator().manual_seed(seed)
        d2 = torch.randn(g.numel(), generator=gen).to(g)
        d2 = d2 - (d2 @ d1) * d1
        d2 = d2 / torch.linalg.norm(d2)
        c = torch.linspace(-span, span, steps, dtype=g.dtype)
        bb, aa = torch.meshgrid(c, c, indexing="ij")
        deltas = aa.reshape(-1, 1) * d1 + bb.reshape(-1, 1) * d2
        theta = _flat(selected)
        with torch.no_grad():
            vals = vmap(lambda d: loss(_unflat(theta + d, selected)), chunk_size=512)(deltas)
    return LossPlane(c.numpy(), vals.reshape(steps, steps).cpu().numpy() - l0, l0, gnorm)


def plane_value(plane: LossPlane, a: float, b: float) -> float:
    """``L(θ + a·d₁ + b·d₂) − L(θ)`` read off the grid by bilinear interpolation."""
    from scipy.interpolate import RegularGridInterpolator

    lim = float(plane.coords.max())
    if max(abs(a), abs(b)) > lim:
        raise ValueError(f"(a, b) must lie inside the grid [-{lim:.3g}, {lim:.3g}]^2")
    interp = RegularGridInterpolator((plane.coords, plane.coords), plane.values)
    return float(interp([[b, a]])[0])


def plot_loss_plane(plane: LossPlane, angles_deg: Sequence[float] = (0, 60, 120),
                    arrow: float | None = None):
    """Contours of the loss plane with unit-step arrows at ``angles_deg`` from ``−∇L``."""
    import matplotlib.pyplot as plt

    from tutorial_utils import plotting

    plotting.set_style() if not plotting._STYLED else None
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
