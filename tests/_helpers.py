"""Small helpers shared by the test files (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import torch


def random_images(b: int = 4, size: int = 48, seed: int = 1, channels: int = 3) -> torch.Tensor:
    """``b`` uniform random images ``(b, channels, size, size)`` in [0, 1], seeded."""
    return torch.rand(b, channels, size, size, generator=torch.Generator().manual_seed(seed))


def model_state(model: torch.nn.Module) -> tuple:
    """What a method must leave as it found it: every submodule's ``training`` flag and its
    numbers of forward, forward-pre, backward and backward-pre hooks, and every parameter's
    ``requires_grad`` flag."""
    modules = [(m.training, len(m._forward_hooks), len(m._forward_pre_hooks),
                len(m._backward_hooks), len(getattr(m, "_backward_pre_hooks", {})))
               for m in model.modules()]
    return modules, [p.requires_grad for p in model.parameters()]


def scaled_close(ours: torch.Tensor, ref: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal within ``tol`` relative to the reference's largest magnitude (raw attributions
    and maps come in the units of the score they explain)."""
    scale = ref.abs().max().clamp(min=1e-30)
    torch.testing.assert_close(ours / scale, ref / scale, atol=tol, rtol=0)
