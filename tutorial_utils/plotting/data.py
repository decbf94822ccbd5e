"""Figures of :mod:`tutorial_utils.data`: one sign per class, one sign under every challenge."""

from __future__ import annotations

import torch

from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, challenge_stack
from tutorial_utils.data import ImageDataset, class_examples, load_signs
from tutorial_utils.plotting.images import challenge_grid, class_grid

__all__ = [
    "plot_sign_classes",
    "plot_challenge_grid",
]


def plot_sign_classes(ds: ImageDataset | None = None, index: int = 0):
    """Figure: one example of each of the 14 sign classes, titled by class name."""
    ds = ds if ds is not None else load_signs()
    return class_grid(class_examples(ds, index), ds.classes)


def plot_challenge_grid(image: torch.Tensor, kinds: tuple[str, ...] = CHALLENGES,
                        levels: tuple[int, ...] = tuple(range(MAX_LEVEL + 1)), seed: int = 0,
                        size: float = 1.0):
    """Figure: ``image`` under every challenge type (rows) and level (columns)."""
    stack = challenge_stack(image, kinds, levels, seed)
    return challenge_grid(stack, list(kinds), list(levels), size=size)
