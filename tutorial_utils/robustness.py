"""Robustness under challenging conditions: accuracy and confidence per challenge and level.

:class:`ChallengeCache` runs a test set through a model under every (challenge type, level)
on first use and keeps the probabilities, so tables, figures and widgets that revisit a
condition cost nothing; :func:`challenge_view` is the data behind one explorer frame.

References
----------
- D. Temel, G. Kwon, M. Prabhushankar, G. AlRegib, "CURE-TSR", NeurIPS Workshop 2017.
- D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and out-of-distribution
  examples in neural networks", ICLR 2017 (max-softmax confidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import check_classes, check_inputs, check_int, check_seed
from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, apply_challenge, check_challenge
from tutorial_utils.models import predict_proba
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "ChallengeCache",
    "ChallengeView",
    "challenge_view",
]


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
        check_inputs(model, x)
        if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
            raise TypeError("class_names must be a sequence of strings, one per class")
        self.class_names = tuple(class_names)
        k = predict_proba(model, x[:1]).shape[1]
        if len(self.class_names) != k:
            raise ValueError(f"class_names must name the model's {k} classes, got "
                             f"{len(self.class_names)}")
        self.model, self.x = model, x
        self.y = check_classes(y, len(x), k, "y", per_sample=True).to(x.device)
        self.seed = check_seed(seed)
        self._probs: dict[tuple[str, int], torch.Tensor] = {}
        self._images: dict[tuple[str, int], torch.Tensor] = {}
        self.computed = 0  # how many (kind, level) sets were actually run through the model

    def images(self, kind: str, level: int, idx: int | slice | None = None) -> torch.Tensor:
        """The challenged test images (all, or ``x[idx]``) — exactly the ones classified.

        A challenge draws its random pattern for the whole set at once, so the set is always
        challenged as a whole and then indexed; the result is kept (as 8-bit, to save memory)
        for the next call with the same kind and level.
        """
        kind, level = check_challenge(kind, level)
        key = ("clean", 0) if level == 0 else (kind, level)
        if key not in self._images:
            self._store(key, apply_challenge(self.x, kind, level, seed=self.seed))
        x = self._images[key].float() / 255.0
        return x if idx is None else x[idx]

    def _store(self, key: tuple[str, int], x: torch.Tensor) -> None:
        self._images[key] = (x * 255).round().to(torch.uint8)

    def probs(self, kind: str, level: int) -> torch.Tensor:
        """The (N, K) probabilities under ``kind`` at ``level`` (computed once)."""
        kind, level = check_challenge(kind, level)
        key = ("clean", 0) if level == 0 else (kind, level)
        if key not in self._probs:
            x = apply_challenge(self.x, kind, level, seed=self.seed)
            self._store(key, x)
            self._probs[key] = predict_proba(self.model, x)
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

        kinds = CHALLENGES if kinds is None else kinds
        rows = []
        for kind in progress_bar(kinds, desc="challenges", enabled=progress):
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
    if not isinstance(cache, ChallengeCache):
        raise TypeError(f"cache must be a ChallengeCache, got {type(cache).__name__}")
    kind, level = check_challenge(kind, level)
    index = check_int(index, "index", low=0, high=len(cache.x) - 1)
    top_k = check_int(top_k, "top_k", low=1, high=len(cache.class_names))
    acc_curve, conf_curve = cache.curve(kind)
    p = cache.probs(kind, level)[index]
    top = torch.argsort(p, descending=True, stable=True)[:top_k]
    return ChallengeView(kind, level, cache.images(kind, level, index), int(cache.y[index]),
                         top.tolist(), p[top].tolist(), float(acc_curve[level]),
                         float(conf_curve[level]), acc_curve, conf_curve, cache.class_names)
