"""Small helpers shared by the test files (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import torch


def random_images(b: int = 4, size: int = 48, seed: int = 1, channels: int = 3) -> torch.Tensor:
    """``b`` uniform random images ``(b, channels, size, size)`` in [0, 1], seeded."""
    return torch.rand(b, channels, size, size, generator=torch.Generator().manual_seed(seed))
