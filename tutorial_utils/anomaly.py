"""GradCon: anomaly detection with backpropagated gradients (Kwon et al., ECCV 2020).

An autoencoder trained on *normal* data only learns a manifold of it. A normal input needs
little change of the decoder to be reconstructed, and the change it asks for points the way
the training data pointed; an anomaly asks for a change in another direction. GradCon turns
that direction into a score and, while training, makes it sharper:

* **training** — ``L = MSE + α·(−mean_i cos(∂MSE/∂φ_i, ḡ_i))`` where ``φ_i`` are the
  weights of decoder layer ``i`` and ``ḡ_i`` the running average of every past training
  gradient of ``φ_i`` (of the whole loss, as in the authors' code; the cosine term is skipped
  on the first step, when there is no history). The cosine term is differentiated through the
  gradient itself (``create_graph=True``: double backpropagation);
* **scoring** — per sample, ``s(x) = −MSE(x) + β·mean_i cos(∂MSE(x)/∂φ_i, ḡ_i)`` with
  ``β = 0.12`` (the authors' evaluation setting). **Higher = more normal**, the course's sign.
  The baseline is the reconstruction error alone, ``−MSE(x)``.

Per-sample gradients are computed for a whole batch at once by the package's one per-sample
engine, :func:`tutorial_utils.gradients.per_sample_gradients` (``vmap(grad_and_value(...))``
over the samples, the decoder weights passed through ``functional_call``): one vectorised pass
instead of a Python loop over images.

A :class:`GradCon` follows the detector contract of :mod:`tutorial_utils.uncertainty`:
``GradCon().fit(x_normal)`` trains it and returns it, ``score(x)`` gives the GradCon score
(B,), higher = more normal.

=======================  ==========================================================
name                     what it is
=======================  ==========================================================
GradCon                  ``nn.Module``: the autoencoder + reference gradients ``ḡ_i``;
                         ``fit(x)`` trains it, ``score(x)`` scores (higher = normal)
train_gradcon            a seeded GradCon, trained with the gradient constraint
gradcon_loss             the training loss of one batch (MSE, cosine term, total)
reconstruction_gradients ``MSE(x_b)`` and ``∂MSE(x_b)/∂φ_i`` for every sample, batched
gradcon_scores           :class:`GradConScores`: GradCon score, ``−MSE``, cosine term
one_class_aurocs         AUROC of each score, one normal class vs the rest
auroc_table              per-class AUROC table of several detectors (+ mean, random row)
=======================  ==========================================================

Protocol (one class vs rest, as the paper): train on the training images of one digit,
test on the whole test set with that digit as the normal (positive) class. The zoo holds one
small autoencoder per digit, ``models.load("gradcon-3")`` etc. (ten files of ~0.35 MB
rather than one of 3.5 MB: each loads, verifies and rebuilds on its own).

The zoo (:mod:`tutorial_utils.zoo`, :mod:`tutorial_utils.models`) imports this module to
build, train and load its GradCon members; this module never imports the zoo.

References
----------
- G. Kwon, M. Prabhushankar, D. Temel, G. AlRegib, "Backpropagated gradient representations
  for anomaly detection", ECCV 2020 (code: github.com/olivesgatech/gradcon-anomaly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils._checks import (
    check_images,
    check_int,
    check_number,
    check_positive_int,
    check_seed,
    require_autograd,
)
from tutorial_utils.architectures import ConvAutoencoder
from tutorial_utils.gradients import per_sample_gradients
from tutorial_utils.metrics import auroc
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "ALPHA",
    "BETA",
    "GradCon",
    "GradConScores",
    "train_gradcon",
    "gradcon_loss",
    "reconstruction_gradients",
    "gradcon_scores",
    "one_class_aurocs",
    "auroc_table",
    "SCORE_NAMES",
]

ALPHA = 0.03  # weight of the gradient loss in training (authors' default)
BETA = 0.12  # weight of the cosine term in the anomaly score (authors' evaluation default)
SCORE_NAMES = ("gradcon", "reconstruction", "cosine")


class GradCon(nn.Module):
    """A GradCon detector: a :class:`~tutorial_utils.architectures.ConvAutoencoder` plus the
    running average ``ḡ_i`` of its past training gradients, one per decoder layer.

    The reference gradients are buffers (``ref_grad_0`` .. ``ref_grad_3``, same shapes as the
    decoder weights; ``ref_count`` the number of training steps averaged), so they travel
    with ``state_dict()``, ``.to(device)`` and the checkpoint. ``forward(x)`` returns the
    reconstruction; :meth:`scores` the anomaly scores.
    """

    def __init__(self, autoencoder: ConvAutoencoder | None = None, in_channels: int = 1,
                 widths: tuple[int, int, int, int] = (16, 16, 32, 32)) -> None:
        super().__init__()
        if autoencoder is None:
            autoencoder = ConvAutoencoder(in_channels, widths)
        self.autoencoder = autoencoder
        self.in_channels = self.autoencoder.in_channels
        layers = self.autoencoder.decoder_layers
        for i, layer in enumerate(layers):
            self.register_buffer(f"ref_grad_{i}", torch.zeros_like(layer.weight.detach()))
        self.register_buffer("ref_count", torch.zeros((), dtype=torch.long))
        prefix = {id(m): name for name, m in self.autoencoder.named_modules()}
        # parameter names of the φ_i inside the autoencoder, e.g. "decoder.0.weight"
        self.weight_names = [f"{prefix[id(layer)]}.weight" for layer in layers]

    @property
    def num_layers(self) -> int:
        return len(self.weight_names)

    @property
    def reference_gradients(self) -> list[torch.Tensor]:
        """``ḡ_i`` for every decoder layer, input side first."""
        return [getattr(self, f"ref_grad_{i}") for i in range(self.num_layers)]

    @torch.no_grad()
    def update_reference(self, grads: Sequence[torch.Tensor]) -> None:
        """Fold one step's gradients into the running averages: ``ḡ ← ḡ + (g − ḡ)/(n+1)``."""
        n = int(self.ref_count)
        for ref, g in zip(self.reference_gradients, grads, strict=True):
            ref.add_((g.detach() - ref) / (n + 1))
        self.ref_count.add_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x)

    def scores(self, x: torch.Tensor, beta: float = BETA, batch_size: int = 128
               ) -> GradConScores:
        """:func:`gradcon_scores` of this detector."""
        return gradcon_scores(self, x, beta=beta, batch_size=batch_size)

    def fit(self, x: torch.Tensor, y: object = None, *, epochs: int = 100, alpha: float = ALPHA,
            batch_size: int = 32, lr: float = 3e-3, seed: int = 0, progress: bool = True,
            desc: str = "GradCon") -> GradCon:
        """Train this detector on normal images ``x`` (N, C, 28, 28) in [0, 1]; returns ``self``.

        Adam (lr ``lr``) on :func:`gradcon_loss` with weight ``alpha``; after each step's
        backward pass the decoder gradients of the whole loss join the running averages
        ``ḡ_i`` (as in the authors' code). The shuffling comes from a local generator seeded
        with ``seed``. ``y`` is not used (the detector learns one class; the argument keeps
        the detector contract ``fit(x, y=None)``). Shows a ``tqdm.auto`` progress bar and
        leaves the detector in eval mode; ``.history`` holds the per-epoch
        ``(loss, mse, cosine)`` means.

        One departure from the authors' code: the bias of the last decoder layer starts at
        ``logit(mean pixel of x)``, so the sigmoid output starts at the mean intensity instead
        of 0.5. The authors train 1000 epochs on ~6,000 images per digit; with our 400 images
        and ~1,300 steps, 9 of 10 default-initialised autoencoders collapsed to a constant
        output (ReLUs killed by the first steps' push towards the black background), and none
        did with this start.
        """
        _check_x(self, x)
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        alpha = check_number(alpha, "alpha", low=0.0)
        lr = check_number(lr, "lr", low=0.0, low_open=True)  # lr = 0 would train nothing
        seed = check_seed(seed)
        with torch.no_grad():
            mean = x.mean().clamp(1e-3, 1 - 1e-3)
            self.autoencoder.decoder_layers[-1].bias.fill_(float(torch.logit(mean)))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.autoencoder.parameters(), lr=lr)
        weights = [self.autoencoder.get_parameter(n) for n in self.weight_names]
        history: list[tuple[float, float, float]] = []
        self.train()
        bar = progress_bar(range(epochs), desc=desc, enabled=progress)
        for _ in bar:
            order = torch.randperm(len(x), generator=gen).to(x.device)
            sums = np.zeros(3)
            for start in range(0, len(x), batch_size):
                xb = x[order[start:start + batch_size]]
                loss, mse, cos = gradcon_loss(self, xb, alpha)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.update_reference([w.grad for w in weights])
                opt.step()
                sums += np.array([loss.item(), mse.item(), cos.item()]) * len(xb)
            history.append(tuple((sums / len(x)).tolist()))
            bar.set_postfix(mse=f"{history[-1][1]:.4f}", cos=f"{history[-1][2]:.3f}")
        self.eval()
        self.history = history
        return self

    def score(self, x: torch.Tensor, beta: float = BETA) -> torch.Tensor:
        """The GradCon score ``−MSE + β·cosine`` (B,) of images ``x``, higher = more normal."""
        return gradcon_scores(self, x, beta=beta).gradcon


class GradConScores(NamedTuple):
    """Per-sample scores ``(B,)``, all **higher = more normal**.

    ``gradcon`` = ``−MSE + β·cosine`` (the authors' score); ``reconstruction`` = ``−MSE``
    (the baseline); ``cosine`` = ``mean_i cos(∂MSE/∂φ_i, ḡ_i)`` in [−1, 1] (the gradient
    term alone); ``mse`` the per-sample reconstruction error (mean over pixels).
    """

    gradcon: torch.Tensor
    reconstruction: torch.Tensor
    cosine: torch.Tensor
    mse: torch.Tensor


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _check_model(model: object) -> GradCon:
    if not isinstance(model, GradCon):
        raise TypeError(f"model must be a tutorial_utils.anomaly.GradCon, got "
                        f"{type(model).__name__} (load one with models.load('gradcon-0'))")
    return model


def _check_x(model: GradCon, x: object, name: str = "x") -> torch.Tensor:
    check_images(x, name, model.in_channels)
    if tuple(x.shape[-2:]) != (28, 28):
        raise ValueError(f"{name} must hold 28x28 images (the autoencoder's size), got "
                         f"{tuple(x.shape[-2:])}")
    ref = model.ref_grad_0
    if x.device != ref.device:
        raise ValueError(f"{name} is on {x.device} but the model is on {ref.device}; "
                         f"use {name}.to({str(ref.device)!r})")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model is {ref.dtype}; "
                        f"convert with {name}.to({ref.dtype})")
    return x


def gradcon_loss(model: GradCon, xb: torch.Tensor, alpha: float = ALPHA
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GradCon's training loss on a batch: ``(loss, mse, cosine)`` as 0-d tensors.

    ``mse`` is the batch reconstruction error; ``cosine = mean_i cos(∂mse/∂φ_i, ḡ_i)`` is
    computed with ``create_graph=True``, so ``loss = mse − α·cosine`` backpropagates through
    the gradients (double backpropagation). Before the first reference update (no history)
    the cosine term is 0 and ``loss = mse``. Gradients are switched on locally (also under
    ``torch.no_grad()``); inside ``torch.inference_mode()`` it raises, saying why.
    """
    require_autograd("gradcon_loss")
    _check_x(_check_model(model), xb, "xb")
    alpha = check_number(alpha, "alpha", low=0.0)
    with torch.enable_grad():
        recon = model(xb)
        mse = F.mse_loss(recon, xb)
        if int(model.ref_count) == 0:
            zero = mse.new_zeros(())
            return mse, mse, zero
        weights = [model.autoencoder.get_parameter(n) for n in model.weight_names]
        grads = torch.autograd.grad(mse, weights, create_graph=True)
        cos = torch.stack([F.cosine_similarity(g.reshape(-1), r.reshape(-1), dim=0)
                           for g, r in zip(grads, model.reference_gradients, strict=True)]).mean()
        return mse - alpha * cos, mse, cos


def train_gradcon(x: torch.Tensor, *, epochs: int = 100, alpha: float = ALPHA,
                  batch_size: int = 32, lr: float = 3e-3,
                  widths: tuple[int, int, int, int] = (16, 16, 32, 32), seed: int = 0,
                  progress: bool = True, desc: str = "GradCon") -> GradCon:
    """A :class:`GradCon` detector trained on normal images ``x`` (N, C, 28, 28) in [0, 1].

    The initial weights come from ``seed`` (inside ``torch.random.fork_rng``: the global RNG
    is left as it was), then :meth:`GradCon.fit` trains it (Adam on :func:`gradcon_loss` with
    weight ``alpha``, shuffled by a generator seeded with ``seed``). Deterministic for
    ``seed``; returns the detector in eval mode with ``.history``.
    """
    check_images(x, "x")
    if tuple(x.shape[-2:]) != (28, 28):
        raise ValueError(f"x must hold 28x28 images, got {tuple(x.shape[-2:])}")
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GradCon(in_channels=x.shape[1], widths=widths).to(x.device)
    return model.fit(x, epochs=epochs, alpha=alpha, batch_size=batch_size, lr=lr, seed=seed,
                     progress=progress, desc=desc)


# --------------------------------------------------------------------------------------
# Scoring: per-sample gradients, batched with torch.func
# --------------------------------------------------------------------------------------


def reconstruction_gradients(model: GradCon, x: torch.Tensor
                             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-sample reconstruction error and its decoder-weight gradients, batched.

    Returns ``mse`` (B,) with ``mse[b] = mean((AE(x_b) − x_b)²)`` and, for each decoder
    layer ``i``, ``grads[i]`` (B, *φ_i.shape) with ``grads[i][b] = ∂mse[b]/∂φ_i`` — exactly
    what a loop of B separate backward passes gives, computed by the per-sample engine
    :func:`tutorial_utils.gradients.per_sample_gradients`. No ``.grad`` field is written.
    """
    _check_model(model)
    _check_x(model, x)
    grads, mse = per_sample_gradients(model.autoencoder, x, F.mse_loss,
                                      params=model.weight_names, return_loss=True)
    return mse, [grads[n] for n in model.weight_names]


def _cosines(model: GradCon, grads: list[torch.Tensor]) -> torch.Tensor:
    """``cos(∂MSE/∂φ_i, ḡ_i)`` for every sample and layer: (B, L).

    One matrix-vector product and one norm per layer (no normalised copy of the B
    gradients); norms are clamped at 1e-8 as in ``F.cosine_similarity``.
    """
    cols = []
    for g, r in zip(grads, model.reference_gradients, strict=True):
        g, r = g.flatten(1), r.reshape(-1)
        cols.append(g @ r / (torch.linalg.vector_norm(g, dim=1) * r.norm()).clamp_min(1e-8))
    return torch.stack(cols, dim=1)


def gradcon_scores(model: GradCon, x: torch.Tensor, beta: float = BETA,
                   batch_size: int = 128) -> GradConScores:
    """GradCon's anomaly scores for images ``x`` (B, C, 28, 28), higher = more normal.

    ``gradcon = −MSE + β·mean_i cos(∂MSE/∂φ_i, ḡ_i)`` per sample, with the baseline
    ``reconstruction = −MSE`` and the gradient term ``cosine`` alone
    (:class:`GradConScores`). Per-sample gradients come from :func:`reconstruction_gradients`
    in chunks of ``batch_size``. The detector needs trained reference gradients.
    """
    _check_model(model)
    beta = check_number(beta, "beta", low=0.0)
    batch_size = check_positive_int(batch_size, "batch_size")
    _check_x(model, x)
    if int(model.ref_count) == 0:
        raise ValueError("model has no reference gradients yet (ref_count = 0); train it with "
                         "train_gradcon or load a zoo member: models.load('gradcon-0')")
    mses, coss = [], []
    for start in range(0, len(x), batch_size):
        mse, grads = reconstruction_gradients(model, x[start:start + batch_size])
        mses.append(mse)
        coss.append(_cosines(model, grads).mean(dim=1))
    mse, cos = torch.cat(mses), torch.cat(coss)
    return GradConScores(gradcon=-mse + beta * cos, reconstruction=-mse, cosine=cos, mse=mse)


# --------------------------------------------------------------------------------------
# Evaluation: one class vs rest
# --------------------------------------------------------------------------------------


def one_class_aurocs(model: GradCon, x: torch.Tensor, y: torch.Tensor, normal_class: int,
                     beta: float = BETA, batch_size: int = 128) -> dict[str, float]:
    """AUROC of each score with ``normal_class`` as the positive (normal) class.

    ``x`` (N, C, 28, 28) test images, ``y`` (N,) int labels containing ``normal_class`` and at
    least one other class. Returns ``{"gradcon", "reconstruction", "cosine"}`` → AUROC in
    [0, 1] (0.5 = chance; every score is higher = more normal).
    """

    _check_x(_check_model(model), x)
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x):
        raise ValueError("y must be a 1-d tensor of labels, one per image in x")
    normal_class = check_int(normal_class, "normal_class")
    positive = (y == normal_class).cpu().numpy()
    if positive.all() or not positive.any():
        raise ValueError(f"y must contain normal_class={normal_class} and other classes")
    scores = gradcon_scores(model, x, beta=beta, batch_size=batch_size)
    return {name: auroc(positive, getattr(scores, name)) for name in SCORE_NAMES}


def auroc_table(detectors: Mapping[int, GradCon], x: torch.Tensor, y: torch.Tensor,
                beta: float = BETA, seed: int = 0):
    """Per-class AUROC of GradCon vs reconstruction error, one class vs rest.

    ``detectors`` maps each normal class to its detector (e.g.
    ``{d: models.load(f"gradcon-{d}") for d in range(10)}``). Returns a ``pandas.DataFrame``
    with one row per normal class plus a ``mean`` row and the columns ``gradcon``
    (``−MSE + β·cos``), ``reconstruction`` (``−MSE``), ``cosine`` (the gradient term alone)
    and ``random`` (a seeded random score: the chance floor, about 0.5). Positive class =
    normal; higher score = more normal.
    """
    import pandas as pd


    if not isinstance(detectors, Mapping) or not detectors:
        raise TypeError("detectors must be a non-empty dict {normal class: GradCon}")
    gen = torch.Generator().manual_seed(seed)
    rows = {}
    for cls, det in detectors.items():
        row = one_class_aurocs(det, x, y, cls, beta=beta)
        row["random"] = auroc((y == cls).cpu().numpy(), torch.rand(len(y), generator=gen))
        rows[cls] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "normal class"
    table.loc["mean"] = table.mean()
    return table
