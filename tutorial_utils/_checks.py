"""Input validation shared by every module: each failure names the argument and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tutorial_utils.utils import model_device


def check_images(x: object, name: str = "x", channels: int | None = None) -> torch.Tensor:
    """Validate a batch of images ``(B, C, H, W)``: a finite floating tensor.

    Returns ``x`` unchanged. Raises ``TypeError`` for a non-tensor or non-float dtype and
    ``ValueError`` for a wrong rank, wrong channel count, empty batch or NaN/inf values.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must be a floating-point tensor (got {x.dtype}); use {name}.float()")
    if x.dim() != 4:
        hint = f"; add a batch dimension with {name}.unsqueeze(0)" if x.dim() == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s), got {x.shape[1]} in shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    return x


def check_model(model: object, name: str = "model") -> nn.Module:
    """Validate that ``model`` is an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def resolve_classes(
    target: int | Sequence[int] | torch.Tensor | None,
    logits: torch.Tensor,
    name: str = "target",
) -> torch.Tensor:
    """Turn ``target`` into a ``(B,)`` long tensor on ``logits.device``.

    ``None`` means the predicted class ``argmax logits``; an int is broadcast to every sample;
    a sequence or tensor must hold one class per sample. Every class must lie in ``[0, K)``.
    """
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, bool):
        raise TypeError(f"{name} must be an int, a sequence of ints or None, got bool")
    if isinstance(target, int) or (isinstance(target, torch.Tensor) and target.dim() == 0):
        classes = torch.full((batch,), int(target), dtype=torch.long, device=logits.device)
    elif isinstance(target, (Sequence, torch.Tensor)) and not isinstance(target, str):
        classes = torch.as_tensor(target, device=logits.device)
        if classes.dtype.is_floating_point or classes.dtype == torch.bool:
            raise TypeError(
                f"{name} must hold integer class indices, got dtype {classes.dtype}")
        classes = classes.long().reshape(-1)
        if classes.numel() != batch:
            raise ValueError(f"{name} must give one class per sample: got {classes.numel()} "
                             f"for a batch of {batch}")
    else:
        raise TypeError(
            f"{name} must be an int, a sequence of ints or None, got {type(target).__name__}")
    outside = (classes < 0) | (classes >= num_classes)
    if outside.any():
        raise ValueError(f"{name} class {classes[outside][0].item()} is out of range: the model "
                         f"has {num_classes} classes (0..{num_classes - 1})")
    return classes


def check_device(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` when the model's parameters are not on ``x``'s device."""
    device = model_device(model)
    if next(model.parameters(), None) is not None and device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; "
                         f"move one of them, e.g. x.to({str(device)!r})")


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int ≥ 1, else ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)
