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


def check_inputs(model: object, x: object, name: str = "x") -> None:
    """The checks every model-plus-images function starts with: ``model`` is an ``nn.Module``,
    ``x`` a valid image batch (:func:`check_images`) on the model's device."""
    check_model(model)
    check_images(x, name)
    check_device(model, x)


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int ≥ 1, else ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


# --------------------------------------------------------------------------------------
# Arrays of scores, labels and probabilities (NumPy, tensors or sequences)
# --------------------------------------------------------------------------------------

PROB_TOL = 1e-3  # tolerance on "probabilities lie in [0, 1] and sum to 1"


def as_array(x: object, name: str) -> np.ndarray:
    """Convert a tensor / array / sequence to a NumPy array; ``TypeError`` otherwise."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (Sequence, np.generic)) and not isinstance(x, (str, bytes)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a numpy array, torch tensor or sequence, "
                    f"got {type(x).__name__}")

def check_vector(x: object, name: str, *, numeric: bool = True) -> np.ndarray:
    """A non-empty 1-D numeric array without NaN/inf."""
    a = as_array(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {a.shape}; "
                         f"flatten it with .reshape(-1) if that is what you mean")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if numeric and not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    return a

def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length, "
                         f"got {len(a)} and {len(b)}")

def check_probabilities(probs: object, name: str = "probs") -> np.ndarray:
    """A finite ``(N, K)`` float array with entries in [0, 1] and rows summing to 1."""
    p = as_array(probs, name)
    if p.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K), got {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {p.shape})")
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"{name} must be floating-point probabilities, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    if p.min() < -PROB_TOL or p.max() > 1 + PROB_TOL:
        raise ValueError(f"{name} must be probabilities in [0, 1], got values in "
                         f"[{p.min():.3g}, {p.max():.3g}]; pass softmax(logits), not logits")
    if not np.allclose(p.sum(axis=1), 1.0, atol=PROB_TOL):
        raise ValueError(f"each row of {name} must sum to 1 (a softmax output); "
                         f"row sums lie in [{p.sum(1).min():.3g}, {p.sum(1).max():.3g}]")
    return np.clip(p, 0.0, 1.0)
