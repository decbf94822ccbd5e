"""Membership inference: does the model give away which images it was trained on?

A *negative intervention* (chapter 4): an attacker who can query a trained network scores each
candidate image, and a high score says "this image was in the training set". The simplest
attacks read the model's output on the true label — networks fit their training images better
than unseen ones, so a low loss (or a high confidence) betrays a member.

==========================  ===================================================================
function                    what it returns
==========================  ===================================================================
loss_threshold_scores       ``−CE(f(x), y)`` per sample ``(N,)`` (Yeom et al. 2018)
confidence_scores           ``p_y`` (with labels) or ``max_k p_k`` (without) per sample ``(N,)``
membership_report           AUROC, TPR at 1% / 0.1% FPR, best balanced accuracy (dict)
membership_roc              the attack's ROC curve ``(fpr, tpr)`` for a log-log plot
evaluate_membership         scores two image sets with one attack and reports (dict)
membership_table            the chapter's table: every target model (+ a chance row), one row each
train_overfit_digits        a deliberately overfit digit classifier + member / non-member indices
train_regularised_digits    the same recipe with weight decay, dropout and augmentation
==========================  ===================================================================

Sign convention: every score is **higher = more likely a training member**, and in every
report the **members are the positive class** (label 1). An AUROC of 0.5 is chance (the model
leaks nothing this attack can read); the low-FPR numbers say how many members an attacker
identifies *confidently* (Carlini et al. 2022 argue that this, not the AUROC, is the privacy
risk that matters). Scores are computed in eval mode without gradients, in mini-batches; the
model's modes and ``requires_grad`` flags are left as they were.

References
----------
- S. Yeom, I. Giacomelli, M. Fredrikson, S. Jha, "Privacy risk in machine learning: analyzing
  the connection to overfitting", IEEE CSF 2018 (loss-threshold attack).
- R. Shokri, M. Stronati, C. Song, V. Shmatikov, "Membership inference attacks against machine
  learning models", IEEE S&P 2017 (confidence-based attacks, shadow models).
- N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis, F. Tramèr, "Membership inference attacks
  from first principles", IEEE S&P 2022 (TPR at low FPR, log-scale ROC curves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils import data
from tutorial_utils._checks import (
    check_bool,
    check_classes,
    check_inputs,
    check_number,
    check_positive_int,
    check_seed,
    check_vector,
    resolve_classes,
)
from tutorial_utils.architectures import SmallCNN
from tutorial_utils.forward import logits
from tutorial_utils.metrics import auroc
from tutorial_utils.models import accuracy, train_classifier

__all__ = [
    "ATTACKS",
    "loss_threshold_scores",
    "confidence_scores",
    "membership_report",
    "caught_at_fpr",
    "membership_roc",
    "evaluate_membership",
    "MembershipResults",
    "membership_table",
    "train_overfit_digits",
    "train_regularised_digits",
]

LOW_FPRS: tuple[float, ...] = (0.01, 0.001)
"""The false-positive rates at which :func:`membership_report` gives the attack's TPR."""


# --------------------------------------------------------------------------------------
# Attack scores
# --------------------------------------------------------------------------------------


def _labels(y: object, logits: torch.Tensor, name: str = "y") -> torch.Tensor:
    if y is None:
        raise TypeError(f"{name} must give the true class of every image (the attack scores "
                        f"the loss on the true label), got None")
    return resolve_classes(y, logits, name)


def loss_threshold_scores(model: nn.Module, x: torch.Tensor, y: object,
                          batch_size: int = 512) -> torch.Tensor:
    """Loss-threshold attack score (Yeom et al. 2018): ``−CE(f(x), y)`` per sample.

    Args:
        model: a classifier returning logits ``(N, K)``.
        x: images ``(N, C, H, W)`` with pixels in [0, 1], on the model's device.
        y: the true classes: an int, or one per image (sequence or ``(N,)`` tensor).
        batch_size: images per forward pass.

    Returns:
        ``(N,)`` float tensor on ``x``'s device, ``≤ 0`` (in nats); higher (closer to 0) =
        lower loss = more likely a training member. Thresholding it at ``−τ`` is Yeom et al.'s
        attack with τ the model's mean training loss.
    """
    check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    z = logits(model, x, batch_size, check=False).double()
    return -F.cross_entropy(z, _labels(y, z), reduction="none")


def confidence_scores(model: nn.Module, x: torch.Tensor, y: object = None,
                      batch_size: int = 512) -> torch.Tensor:
    """Confidence-threshold attack score: ``p_y`` (true class) or, with ``y=None``, ``max_k p_k``.

    ``p_y = exp(−CE)``, so with labels this ranks images exactly like
    :func:`loss_threshold_scores` (same AUROC); the label-free variant needs no ground truth
    but also flags confidently *misclassified* non-members. Returns ``(N,)`` in [0, 1],
    higher = more likely a member.
    """
    check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    probs = logits(model, x, batch_size, check=False).double().softmax(dim=1)
    if y is None:
        return probs.max(dim=1).values
    return probs.gather(1, resolve_classes(y, probs, "y")[:, None])[:, 0]


ATTACKS = {"loss": loss_threshold_scores, "confidence": confidence_scores}
"""The attacks :func:`evaluate_membership` knows, by name."""


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def _member_labels(member_scores: object, nonmember_scores: object):
    members = check_vector(member_scores, "member_scores").astype(np.float64)
    nonmembers = check_vector(nonmember_scores, "nonmember_scores").astype(np.float64)
    labels = np.r_[np.ones(len(members), int), np.zeros(len(nonmembers), int)]
    return members, nonmembers, labels, np.r_[members, nonmembers]


def membership_roc(member_scores: object,
                   nonmember_scores: object) -> tuple[np.ndarray, np.ndarray]:
    """The attack's ROC curve: ``(fpr, tpr)`` arrays from scikit-learn's ``roc_curve``.

    Members are the positive class; scores are higher = more likely a member. Plot it on
    log-log axes (Carlini et al. 2022): the interesting part is the bottom-left corner.
    """
    from sklearn.metrics import roc_curve

    _, _, labels, scores = _member_labels(member_scores, nonmember_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr


def membership_report(member_scores: object, nonmember_scores: object) -> dict[str, float]:
    """How well an attack score separates training members from non-members.

    Args:
        member_scores: ``(N_in,)`` scores of images that *were* in the training set.
        nonmember_scores: ``(N_out,)`` scores of images from the same distribution that were
            not; both higher = more likely a member (a NumPy array, tensor or sequence).

    Returns:
        A dict of floats, **members = positive class**:

        - ``"AUROC"``: area under the ROC curve (0.5 = chance, 1 = every member above every
          non-member);
        - ``"TPR@1%FPR"``, ``"TPR@0.1%FPR"``: the largest share of members caught by a
          threshold that flags at most 1% (0.1%) of the non-members (Carlini et al. 2022). A
          rate α needs at least ``1/α`` non-members to be measurable; with fewer it is NaN;
        - ``"Balanced acc."``: ``max_t ½(TPR + TNR)``, the best single-threshold attack;
        - ``"Threshold"``: the score threshold (flag ``score >= t``) achieving it;
        - ``"members"``, ``"non-members"``: the sample counts.

        Computed from scikit-learn's ``roc_curve`` (every operating point kept).
    """
    from sklearn.metrics import roc_curve

    members, nonmembers, labels, scores = _member_labels(member_scores, nonmember_scores)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    report = {"AUROC": auroc(labels, scores)}
    for alpha in LOW_FPRS:
        enough = len(nonmembers) * alpha >= 1 - 1e-9
        report[f"TPR@{alpha * 100:g}%FPR"] = (float(tpr[fpr <= alpha + 1e-12].max())
                                              if enough else math.nan)
    balanced = 0.5 * (tpr + 1.0 - fpr)
    best = int(np.argmax(balanced))
    report["Balanced acc."] = float(balanced[best])
    report["Threshold"] = float(thresholds[best])
    report["members"], report["non-members"] = float(len(members)), float(len(nonmembers))
    return report


def caught_at_fpr(member_scores: object, nonmember_scores: object, fpr: float) -> np.ndarray:
    """Which members the strictest useful threshold catches: ``(N_in,)`` float 0/1 flags.

    The threshold flags at most ``fpr`` of the non-members (the operating point of
    ``membership_report``'s ``"TPR@…%FPR"``): a member is caught when its score (higher = more
    likely a member) lies strictly above the ``(⌊fpr·N_out⌋ + 1)``-th highest non-member score.
    The mean of the flags is that TPR; the flags are the per-member evidence for a claim.
    """
    members, nonmembers, _, _ = _member_labels(member_scores, nonmember_scores)
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise ValueError(f"fpr must be a rate in (0, 1), got {fpr!r}")
    k = int(math.floor(fpr * len(nonmembers) + 1e-9))  # non-members we may flag
    if k >= len(nonmembers):
        return np.ones(len(members))
    cut = np.sort(nonmembers)[::-1][k]
    return (members > cut).astype(np.float64)


def evaluate_membership(model: nn.Module, x_members: torch.Tensor, y_members: object,
                        x_nonmembers: torch.Tensor, y_nonmembers: object,
                        attack: str = "loss", batch_size: int = 512) -> dict[str, float]:
    """Run one attack (``"loss"`` or ``"confidence"``, see :data:`ATTACKS`) on training
    members and non-members and return :func:`membership_report` of the two score sets."""
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {sorted(ATTACKS)}, got {attack!r}")
    for xs, ys, which in ((x_members, y_members, "members"),
                          (x_nonmembers, y_nonmembers, "nonmembers")):
        check_inputs(model, xs, f"x_{which}")
        check_classes(ys, len(xs), None, f"y_{which}")
    score = ATTACKS[attack]
    return membership_report(
        score(model, x_members, y_members, batch_size=batch_size).cpu(),
        score(model, x_nonmembers, y_nonmembers, batch_size=batch_size).cpu())


# --------------------------------------------------------------------------------------
# The chapter's table
# --------------------------------------------------------------------------------------


COLUMNS: tuple[str, ...] = (
    "AUROC", "TPR@1%FPR", "TPR@0.1%FPR", "Balanced acc.", "AUROC (label-free confidence)",
    "train acc.", "test acc.", "members", "non-members")
"""The columns of :func:`membership_table`, in order."""


@dataclass
class MembershipResults:
    """:func:`membership_table`: ``table`` (pandas DataFrame, one row per target model plus
    ``"random score"``, :data:`COLUMNS`), the same numbers as ``reports`` ({row: dict}), the
    loss attack's ROC curves ``rocs`` ({model: (fpr, tpr)}) and its scores ``scores``
    ({model: (member scores, non-member scores)})."""

    table: object
    reports: dict = field(repr=False)
    rocs: dict = field(repr=False)
    scores: dict = field(repr=False)


def _target_report(model: nn.Module, x_in: torch.Tensor, y_in: torch.Tensor,
                   x_out: torch.Tensor, y_out: torch.Tensor, x_test: torch.Tensor,
                   y_test: torch.Tensor) -> tuple[dict, tuple, tuple]:
    s_in, s_out = loss_threshold_scores(model, x_in, y_in), loss_threshold_scores(model, x_out,
                                                                                  y_out)
    report = membership_report(s_in, s_out)
    report["AUROC (label-free confidence)"] = membership_report(
        confidence_scores(model, x_in), confidence_scores(model, x_out))["AUROC"]
    report["train acc."] = accuracy(model, x_in, y_in)
    report["test acc."] = accuracy(model, x_test, y_test)
    return report, membership_roc(s_in, s_out), (s_in, s_out)


def _held_out_balanced(s_in: torch.Tensor, s_out: torch.Tensor, gen: torch.Generator
                       ) -> float:
    """½(TPR + TNR) on one random half of members and non-members, at the threshold that
    maximises it on the other half (flag ``score >= t``)."""
    halves = []
    for s in (s_in, s_out):
        order = torch.randperm(len(s), generator=gen)
        halves.append((s[order[: len(s) // 2]], s[order[len(s) // 2:]]))
    (tune_in, test_in), (tune_out, test_out) = halves
    t = membership_report(tune_in, tune_out)["Threshold"]
    return float(0.5 * ((test_in >= t).double().mean() + (test_out < t).double().mean()))


def membership_table(targets: Mapping[str, tuple[nn.Module, torch.Tensor, torch.Tensor]],
                     ds: data.ImageDataset, zoo_model: nn.Module | None = None, *,
                     random_members: int = 500, random_nonmembers: int = 3500,
                     seed: int = 0, balanced: bool = False) -> MembershipResults:
    """The loss attack (:func:`loss_threshold_scores`) on every target model, one table.

    ``targets`` maps a name to ``(model, members, nonmembers)`` as returned by
    :func:`train_overfit_digits` (indices into ``ds.x_train``); ``zoo_model``, trained on the
    whole training split, is attacked with the training split as members and the test split as
    non-members (row ``"zoo"``). Each row holds :func:`membership_report` of the loss attack,
    the AUROC of the label-free confidence attack, and the model's accuracy on its members and
    on ``ds``'s test split. A last row, ``"random score"``, reports a uniform random score
    (``random_members`` vs ``random_nonmembers`` draws, seeded): what "no leak" looks like.
    Members are the positive class; every score is higher = more likely a member.

    ``balanced=True`` is the fair protocol: every row draws (seeded) as many members as
    non-members (the larger set is subsampled to the smaller one's size; the random score
    draws ``random_members`` of each), and "Balanced acc." is *held out*: its threshold is
    tuned on one random half of each set and the accuracy measured on the other half, so a
    score that carries no information lands near 0.5 instead of above it.
    """
    import pandas as pd

    if not isinstance(targets, Mapping):
        raise TypeError(f"targets must be a dict {{name: (model, members, nonmembers)}}, got "
                        f"{type(targets).__name__}")
    cases = {name: (model, ds.x_train[members], ds.y_train[members], ds.x_train[nonmembers],
                    ds.y_train[nonmembers]) for name, (model, members, nonmembers) in
             targets.items()}
    if zoo_model is not None:
        cases["zoo"] = (zoo_model, ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    if not isinstance(balanced, bool):
        raise TypeError(f"balanced must be True or False, got {type(balanced).__name__}")
    gen = torch.Generator().manual_seed(check_seed(seed))
    reports, rocs, scores = {}, {}, {}
    for name, (model, x_in, y_in, x_out, y_out) in cases.items():
        if balanced:
            n = min(len(x_in), len(x_out))
            keep_in = torch.randperm(len(x_in), generator=gen)[:n].sort().values
            keep_out = torch.randperm(len(x_out), generator=gen)[:n].sort().values
            x_in, y_in = x_in[keep_in], y_in[keep_in]
            x_out, y_out = x_out[keep_out], y_out[keep_out]
        reports[name], rocs[name], scores[name] = _target_report(
            model, x_in, y_in, x_out, y_out, ds.x_test, ds.y_test)
        if balanced:
            reports[name]["Balanced acc."] = _held_out_balanced(*scores[name], gen)
    random_members = check_positive_int(random_members, "random_members")
    random_nonmembers = random_members if balanced else check_positive_int(
        random_nonmembers, "random_nonmembers")
    random_score = torch.rand(random_members + random_nonmembers, generator=gen)
    reports["random score"] = membership_report(random_score[:random_members],
                                                random_score[random_members:])
    scores["random score"] = (random_score[:random_members], random_score[random_members:])
    if balanced:
        reports["random score"]["Balanced acc."] = _held_out_balanced(
            *scores["random score"], gen)
    table = pd.DataFrame(reports).T[list(COLUMNS)]
    return MembershipResults(table, reports, rocs, scores)


# --------------------------------------------------------------------------------------
# Target models
# --------------------------------------------------------------------------------------


def train_overfit_digits(
    n_train: int = 500,
    epochs: int = 30,
    *,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    augment: bool = False,
    seed: int = 0,
    widths: tuple[int, int, int] = (16, 32, 64),
    progress: bool = False,
    ds=None,
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Train a digit classifier on a small subset, on purpose without regularisation.

    A :class:`~tutorial_utils.architectures.SmallCNN` sees ``n_train`` training digits (the
    same number of every class, drawn with ``seed``) for ``epochs`` epochs through
    :func:`tutorial_utils.models.train_classifier` (AdamW, one-cycle LR). By default nothing
    regularises it: no dropout, no weight decay, no random shifts, so it memorises its
    training set (training loss near 0) — the textbook target of a membership attack. About
    8 s on two CPU cores with the defaults.

    Args:
        n_train: training-set size, a multiple of 10 (``n_train / 10`` digits per class).
        epochs: passes over the training subset.
        weight_decay: AdamW's decoupled weight decay.
        dropout: dropout probability before the last layer.
        augment: random shifts of up to 2 px during training.
        seed: initial weights, the subset, shuffling, augmentation and dropout. The global
            RNGs (CPU and CUDA) are left exactly as they were.
        widths: channels of the three stages of the CNN.
        progress: show a progress bar.
        ds: the digits data set (default :func:`tutorial_utils.data.load_digits`).

    Returns:
        ``(model, members, nonmembers)``: the model in eval mode on the CPU, and two sorted
        ``(M,)`` / ``(N − M,)`` long tensors indexing ``ds.x_train``: the images it was
        trained on and the rest of the training split (same distribution, never seen).
    """
    n_train = check_positive_int(n_train, "n_train")
    epochs = check_positive_int(epochs, "epochs")
    if n_train % 10:
        raise ValueError(f"n_train must be a multiple of 10 (the same number of every digit), "
                         f"got {n_train}")
    weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
    dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
    augment, seed = check_bool(augment, "augment"), check_seed(seed)
    ds = data.load_digits() if ds is None else ds
    if not isinstance(ds, data.ImageDataset) or ds.x_train.shape[1:] != (1, 28, 28) \
            or ds.num_classes != 10:
        raise ValueError("ds must be the digits data set (data.load_digits()): 1x28x28 images, "
                         "10 classes")
    members = data.stratified_indices(ds.y_train, n_train // 10, seed=seed)
    nonmembers = torch.from_numpy(np.setdiff1d(np.arange(len(ds.y_train)), members.numpy()))
    x, y = ds.x_train[members], ds.y_train[members]
    cuda = list(range(torch.cuda.device_count()))  # train_classifier reseeds CUDA as well
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = SmallCNN(1, 10, widths, dropout=float(dropout),
                         mean=tuple(x.mean(dim=(0, 2, 3)).tolist()),
                         std=tuple(x.std(dim=(0, 2, 3)).tolist()))
        train_classifier(model, x, y, epochs=epochs, weight_decay=float(weight_decay),
                                max_shift=2.0 if augment else 0.0, seed=seed,
                                progress=progress, desc="target model")
    return model.eval(), members, nonmembers.long()


def train_regularised_digits(n_train: int = 500, epochs: int = 30, *, seed: int = 0,
                             weight_decay: float = 0.05, dropout: float = 0.5,
                             augment: bool = True, **kwargs):
    """:func:`train_overfit_digits` with the usual regularisers switched on: weight decay,
    dropout before the last layer and random 2-px shifts. Same subset, seed and budget, so
    the two models differ only in regularisation; same return value."""
    return train_overfit_digits(n_train, epochs, weight_decay=weight_decay, dropout=dropout,
                                augment=augment, seed=seed, **kwargs)
