"""Introspective learning: a second stage that reads the answers to "why P, rather than Q?".

Prabhushankar & AlRegib, "Introspective Learning: A Two-Stage Approach for Inference in Neural
Networks", NeurIPS 2022. A trained network ``f`` (stage 1) sees ``x`` and predicts ``P``.
Introspection asks, for *every* class ``q``, how much the last layer would have to change if
``q`` were the label of ``x``::

    g_q(x) = ∇_W CE(f(x), q) = (p − e_q) hᵀ            (K × D, closed form)

The introspective feature ``r_x`` stacks the ``K`` normalised gradients into one vector of
length ``K·K·D``; a small MLP ``H`` (stage 2) is trained on ``r_x`` to predict the class.

To compare fairly, a *feed-forward* head of the **same number of parameters** is trained on the
same data with the same recipe (the course's one training loop,
:func:`tutorial_utils.models.train_classifier`), but on the penultimate features ``h`` instead
of ``r_x``.
Both heads see the frozen stage-1 network only through ``(h, logits)``, so the image batch is
pushed through the CNN once and both heads (and the original ``fc``) are evaluated on it.

Normalisation used here: each ``g_q`` is divided by its Frobenius norm
``‖p − e_q‖·‖h‖`` (so every contrast class contributes a unit-norm block and the feature is
invariant to the scale of ``h``), then the ``K`` blocks are flattened in class order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tutorial_utils import data
from tutorial_utils._checks import (
    check_classes,
    check_inputs,
    check_int,
    check_model,
    check_number,
    check_positive_int,
    check_seed,
)
from tutorial_utils.forward import features_and_logits
from tutorial_utils.gradients import contrast_directions, contrast_gradients
from tutorial_utils.metrics import expected_calibration_error
from tutorial_utils.models import num_parameters, train_classifier
from tutorial_utils.utils import progress as progress_bar

HEADS: tuple[str, ...] = ("stage 1", "feed-forward", "introspective")
"""Heads compared by :func:`evaluate_heads`: the network's own ``fc``, the equal-capacity
feed-forward MLP on ``h`` and the introspective MLP on the contrast gradients."""

_EPS = 1e-12


# --------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------


def _check_h_logits(h: object, logits: object) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("h", h), ("logits", logits)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not torch.is_floating_point(t):
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}; use .float()")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape (B, {'D' if name == 'h' else 'K'}), "
                             f"got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if h.shape[0] != logits.shape[0]:
        raise ValueError(f"h and logits must have the same batch size, got {h.shape[0]} and "
                         f"{logits.shape[0]}")
    return h, logits


def _unit_rows(h: torch.Tensor) -> torch.Tensor:
    return h / h.norm(dim=1, keepdim=True).clamp_min(_EPS)


def contrast_features(h: torch.Tensor, logits: torch.Tensor, normalize: bool = True,
                      flatten: bool = True) -> torch.Tensor:
    """Closed-form contrast gradients of the last layer for all ``K`` classes, from ``(h, z)``.

    This is the closed form of :func:`tutorial_utils.gradients.contrast_gradients`,
    ``∇_W CE(z, q) = (p − e_q) hᵀ``, applied to features and logits that are *already
    computed* (that function takes the model and images and runs the network itself; the
    heads here need the feature for every training batch without touching the CNN). The two
    are tested equal.

    Args:
        h: penultimate features ``(B, D)`` (the input of the final ``nn.Linear``).
        logits: ``(B, K)`` outputs of that layer.
        normalize: divide each ``(K, D)`` block ``g_q`` by its Frobenius norm
            ``‖p − e_q‖·‖h‖``.
        flatten: return ``(B, K·K·D)`` (the introspective feature ``r_x``); else
            ``(B, Q=K, K, D)`` with ``[:, q]`` = ``∇_W CE(z, q)``.

    The gradient of the bias, ``p − e_q``, is not included (``g_q = (p − e_q) hᵀ`` already
    holds it up to the factor ``h``).
    """
    h, logits = _check_h_logits(h, logits)
    u = contrast_directions(logits, normalize=normalize)
    hh = _unit_rows(h) if normalize else h
    g = u[..., None] * hh[:, None, None, :]  # (B, Q, K, D)
    return g.flatten(1) if flatten else g


def introspective_features(model: nn.Module, x: torch.Tensor, normalize: bool = True,
                           batch_size: int = 512) -> torch.Tensor:
    """``r_x`` ``(N, K·K·D)`` for images ``x``: the contrast gradients of
    :func:`tutorial_utils.gradients.contrast_gradients` (batched), each ``(K, D)`` block
    divided by its Frobenius norm if ``normalize``, flattened."""
    check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    out = []
    for i in range(0, len(x), batch_size):
        g = contrast_gradients(model, x[i:i + batch_size])  # (b, Q, K, D)
        if normalize:
            g = g / g.flatten(2).norm(dim=2).clamp_min(_EPS)[..., None, None]
        out.append(g.flatten(1))
    return torch.cat(out)


def sparsity(g: torch.Tensor, rel_threshold: float = 0.05) -> float:
    """Fraction of entries of ``g`` whose magnitude is below ``rel_threshold · max|g|``."""
    if not isinstance(g, torch.Tensor) or g.numel() == 0:
        raise ValueError("g must be a non-empty tensor")
    rel_threshold = check_number(rel_threshold, "rel_threshold", low=0.0)
    a = g.abs()
    return float((a < rel_threshold * a.max().clamp_min(_EPS)).float().mean())


# --------------------------------------------------------------------------------------
# Heads
# --------------------------------------------------------------------------------------


class MLP(nn.Module):
    """``Linear(in, hidden) → ReLU → Linear(hidden, K)``: the second-stage network ``H``."""

    def __init__(self, in_features: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        in_features, hidden, num_classes = (
            check_int(v, name, low=1) for v, name in ((in_features, "in_features"),
                                                       (hidden, "hidden"),
                                                       (num_classes, "num_classes")))
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, num_classes))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class FeedForwardHead(nn.Module):
    """Baseline head: an MLP on the penultimate features ``h``. Call as ``head(h, logits)``."""

    kind = "feed-forward"

    def __init__(self, feat_dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.mlp = MLP(feat_dim, hidden, num_classes)

    def forward(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        return self.mlp(h)


class IntrospectiveHead(nn.Module):
    """Stage 2: an MLP on the normalised all-class contrast gradients ``r_x``.

    Call as ``head(h, logits)``. The first layer is ``mlp.net[0]``, an ``nn.Linear`` on the
    ``K·K·D`` feature, but ``r_x`` is never materialised: since ``r_x[q, k, d] = û_q[k]·ĥ[d]``
    (:func:`contrast_features`), ``W₁ r_x = Σ_{q,k} û_q[k] Σ_d W₁[:, q, k, d] ĥ[d]`` is two
    small contractions — the same numbers as ``mlp(contrast_features(h, logits))`` (tested),
    without a ``(B, K·K·D)`` tensor per batch.
    """

    kind = "introspective"

    def __init__(self, feat_dim: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.mlp = MLP(num_classes * num_classes * feat_dim, hidden, num_classes)

    def forward(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        h, logits = _check_h_logits(h, logits)
        first, relu, last = self.mlp.net
        u = contrast_directions(logits, normalize=True).flatten(1)  # (B, K·K)
        w = first.weight.view(first.out_features, u.shape[1], self.feat_dim)  # (H, K·K, D)
        hidden = torch.einsum("bm,bjm->bj", u, torch.einsum("bd,jmd->bjm", _unit_rows(h), w))
        return last(relu(hidden + first.bias))


def matched_hidden(target_params: int, in_features: int, num_classes: int) -> int:
    """Hidden width of an ``MLP(in_features, ·, num_classes)`` whose parameter count is closest
    to ``target_params`` (``P(hid) = hid·(in + 1 + K) + K``)."""
    per_unit = in_features + 1 + num_classes
    return max(1, round((target_params - num_classes) / per_unit))


def build_heads(feat_dim: int, num_classes: int, hidden: int = 16,
                seed: int = 0) -> tuple[IntrospectiveHead, FeedForwardHead]:
    """An introspective head of width ``hidden`` and a feed-forward head of (almost exactly)
    the same number of parameters, both initialised from ``seed`` (the global RNG is left as
    it was)."""
    feat_dim, num_classes = check_int(feat_dim, "feat_dim", low=1), check_int(
        num_classes, "num_classes", low=1)
    hidden, seed = check_int(hidden, "hidden", low=1), check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        intro = IntrospectiveHead(feat_dim, hidden, num_classes)
        ff_hidden = matched_hidden(num_parameters(intro), feat_dim, num_classes)
        torch.manual_seed(seed)
        ff = FeedForwardHead(feat_dim, ff_hidden, num_classes)
    return intro, ff


class _PackedInputs(nn.Module):
    """Adapter: ``head(h, logits)`` called on one tensor ``[h | logits]`` (B, D + K), so that
    the course's single training loop :func:`tutorial_utils.models.train_classifier` (which
    feeds ``model(x[idx])``) trains heads too."""

    def __init__(self, head: nn.Module, feat_dim: int) -> None:
        super().__init__()
        self.head = head
        self.feat_dim = feat_dim

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.head(packed[:, :self.feat_dim], packed[:, self.feat_dim:])


def train_head(head: nn.Module, h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, *,
               epochs: int = 8, batch_size: int = 128, lr: float = 3e-3,
               weight_decay: float = 1e-4, seed: int = 0, progress: bool = True,
               desc: str | None = None) -> list[float]:
    """Train a head on frozen stage-1 outputs ``(h, logits)``; returns the mean loss per epoch.

    Uses the course's one training loop, :func:`tutorial_utils.models.train_classifier`
    (AdamW, one-cycle learning rate peaking at ``lr``, cross-entropy, seeded shuffling; no
    augmentation: ``max_shift=0``). Deterministic for ``seed``; leaves the head in eval mode.
    """
    h, logits = _check_h_logits(h, logits)
    y = check_classes(y, len(h), logits.shape[1], "y", per_sample=True)
    epochs = check_positive_int(epochs, "epochs")
    check_model(head, "head")
    try:
        with torch.no_grad():
            head.eval()(h[:1], logits[:1])
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"head does not accept features of this size (h {tuple(h.shape)}, "
                         f"logits {tuple(logits.shape)}): {str(error)[:120]}") from None
    packed = torch.cat([h, logits], dim=1).detach()
    return train_classifier(_PackedInputs(head, h.shape[1]), packed, y, epochs=epochs,
                            batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                            max_shift=0.0, seed=seed, progress=progress,
                            desc=desc or getattr(head, "kind", "head"))


# --------------------------------------------------------------------------------------
# Evaluation: clean + every challenge at every level, accuracy and ECE
# --------------------------------------------------------------------------------------


@dataclass
class IntrospectionResults:
    """Outputs of :func:`evaluate_heads`.

    ``table``: a pandas DataFrame with one row per (challenge, level, head) and columns
    ``challenge, level, head, accuracy, ece, confidence, n``. Level 0 is the clean subset and
    is stored once with challenge ``"clean"``. ``probs[(head, challenge, level)]`` holds the
    ``(n, K)`` softmax outputs and ``labels`` the ``(n,)`` true classes (same for every cell).
    """

    table: object
    probs: dict = field(repr=False)
    labels: np.ndarray = field(repr=False)
    challenges: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()

    def pooled(self, head: str, level: int) -> np.ndarray:
        """Probabilities of ``head`` pooled over all challenges at ``level`` (clean if 0)."""
        if level == 0:
            return self.probs[(head, "clean", 0)]
        return np.concatenate([self.probs[(head, c, level)] for c in self.challenges])

    def pooled_labels(self, level: int) -> np.ndarray:
        return self.labels if level == 0 else np.tile(self.labels, len(self.challenges))


def _heads_probs(heads: dict[str, nn.Module | None], h: torch.Tensor,
                 z: torch.Tensor) -> dict[str, np.ndarray]:
    out = {}
    with torch.inference_mode():
        for name, head in heads.items():
            logits = z if head is None else head(h, z)
            out[name] = logits.softmax(1).double().numpy()
    return out


def evaluate_heads(model: nn.Module, heads: dict[str, nn.Module | None], x: torch.Tensor,
                   y: torch.Tensor, challenges: Sequence[str] | None = None,
                   levels: Iterable[int] = (1, 2, 3, 4, 5), seed: int = 0,
                   n_bins: int = 15, progress: bool = True) -> IntrospectionResults:
    """Accuracy and ECE of every head on clean ``x`` and on every challenge × level.

    Args:
        model: the frozen stage-1 zoo model.
        heads: name → head called as ``head(h, logits)``; ``None`` means the model's own logits.
        x, y: the evaluation images and labels (e.g. ``data.stratified_indices`` of the test set).
        challenges: challenge kinds (default all of ``tutorial_utils.data.CHALLENGES``).
        levels: challenge levels to evaluate (1..5); the clean images are always evaluated.
        seed: seed of the challenge patterns.

    Each challenged batch goes through the CNN once; all heads are read from the same
    ``(h, logits)``.
    """
    import pandas as pd


    check_inputs(model, x)
    if not isinstance(heads, dict) or not heads:
        raise ValueError("heads must name at least one head: {name: head or None}")
    y = check_classes(y, len(x), None, "y", per_sample=True)
    challenges = tuple(data.CHALLENGES if challenges is None else challenges)
    levels = tuple(int(v) for v in levels)
    for lv in levels:
        if not 1 <= lv <= data.MAX_LEVEL:
            raise ValueError(f"levels must lie in 1..{data.MAX_LEVEL}, got {lv}")
    labels = y.cpu().numpy()
    rows, probs = [], {}

    def record(challenge: str, level: int, h: torch.Tensor, z: torch.Tensor) -> None:
        for name, p in _heads_probs(heads, h, z).items():
            probs[(name, challenge, level)] = p
            rows.append(dict(challenge=challenge, level=level, head=name,
                             accuracy=float((p.argmax(1) == labels).mean()),
                             ece=expected_calibration_error(p, labels, n_bins),
                             confidence=float(p.max(1).mean()), n=len(labels)))

    h, z = features_and_logits(model, x)
    record("clean", 0, h, z)
    for kind in progress_bar(challenges, desc="challenges", enabled=progress):
        xc = torch.cat([data.apply_challenge(x, kind, lv, seed=seed) for lv in levels])
        h, z = features_and_logits(model, xc)
        for j, lv in enumerate(levels):
            sl = slice(j * len(x), (j + 1) * len(x))
            record(kind, lv, h[sl], z[sl])
    return IntrospectionResults(pd.DataFrame(rows), probs, labels, challenges, levels)


def level_summary(results: IntrospectionResults, n_bins: int = 15,
                  heads: Sequence[str] | None = None):
    """Accuracy and ECE per level (0 = clean) and head, pooled over all challenges.

    Returns a DataFrame indexed by level with columns ``(metric, head)``; ``heads`` selects
    heads (default: all).
    """
    import pandas as pd


    heads = list(dict.fromkeys(results.table["head"])) if heads is None else list(heads)
    rows = {}
    for lv in (0, *results.levels):
        lab = results.pooled_labels(lv)
        row = {}
        for hd in heads:
            p = results.pooled(hd, lv)
            row[("accuracy", hd)] = float((p.argmax(1) == lab).mean())
            row[("ECE", hd)] = expected_calibration_error(p, lab, n_bins)
        rows[lv] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.index.name = "level"
    return df


def table1(results: IntrospectionResults, heads: Sequence[str] = ("feed-forward", "introspective"),
           n_bins: int = 15):
    """A table in the layout of the tutorial's Table 1 ("introspecting on top of …"): one block
    per condition (clean, each challenge pooled over its levels, all challenges), one row per
    head, columns accuracy (%) and ECE (%)."""
    import pandas as pd


    def cell(hd: str, keys: list[tuple[str, int]]) -> tuple[float, float]:
        p = np.concatenate([results.probs[(hd, c, lv)] for c, lv in keys])
        lab = np.tile(results.labels, len(keys))
        return 100 * float((p.argmax(1) == lab).mean()), 100 * expected_calibration_error(
            p, lab, n_bins)

    blocks = [("clean", [("clean", 0)])]
    blocks += [(c, [(c, lv) for lv in results.levels]) for c in results.challenges]
    blocks.append(("all challenges", [(c, lv) for c in results.challenges
                                      for lv in results.levels]))
    rows, index = [], []
    for name, keys in blocks:
        for hd in heads:
            acc, ece = cell(hd, keys)
            rows.append({"accuracy (%)": acc, "ECE (%)": ece})
            index.append((name, hd))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=("condition", "head")))


def level_view(results, level: int, heads: Sequence[str] = ("feed-forward", "introspective")):
    """Accuracy and ECE per challenge of each head at ``level`` (0 = clean), as a DataFrame
    indexed by challenge with columns ``(metric, head)``; plus a pooled ``all`` row."""
    import pandas as pd


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
