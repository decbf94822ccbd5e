"""Input validation shared by every module: each failure names the argument and the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tutorial_utils.utils import model_device

PIXEL_TOL = 1e-4  # tolerance on "pixels lie in [0, 1]" (rounding of resized / filtered images)
MIN_SIZE = 8  # smallest image side the course's models accept


def check_images(x: object, name: str = "x", channels: int | None = None) -> torch.Tensor:
    """Validate a batch of images ``(B, C, H, W)`` with pixels in ``[0, 1]``.

    Returns ``x`` unchanged. Raises ``TypeError`` for a non-tensor or a non-float dtype (an
    8-bit batch gets "convert with x.float() / 255") and ``ValueError`` for a wrong rank, a
    wrong channel count, an empty batch, NaN/inf values or pixels outside [0, 1] (the message
    names the observed range and the fix). Every floating dtype passes here; functions that
    run a model also require the model's dtype (:func:`check_inputs`).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dtype == torch.uint8:
        raise TypeError(f"{name} is an 8-bit image batch (uint8); the course works with pixels "
                        f"in [0, 1]: convert with {name}.float() / 255")
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
    low, high = (float(v) for v in torch.aminmax(x.detach()))  # one pass: NaN/inf show here
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    if low < -PIXEL_TOL or high > 1 + PIXEL_TOL:
        fix = (f"divide by 255 ({name} / 255)" if high > 2 else
               f"undo the normalisation or clamp with {name}.clamp(0, 1)")
        raise ValueError(f"{name} must hold pixels in [0, 1], got values in [{low:.3g}, "
                         f"{high:.3g}]; {fix} (models normalise inside their first layer)")
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

    ``None`` means the predicted class ``argmax logits``; an int (Python, NumPy or a 0-d
    integer tensor) is broadcast to every sample; a sequence, array or 1-d integer tensor must
    hold one class per sample. Every class must lie in ``[0, K)``. Floats and bools are
    rejected (``TypeError``), never rounded.
    """
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int class index, a sequence of them or None, got bool")
    if isinstance(target, (float, np.floating)):
        raise TypeError(f"{name} must be an int class index, got the float {target!r}; "
                        f"use int({name}) if you mean class {int(target)}")
    if isinstance(target, str) or not isinstance(
            target, (int, np.integer, Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be an int class index, a sequence of them or None, "
                        f"got {type(target).__name__}")
    classes = torch.as_tensor(np.asarray(target) if isinstance(target, Sequence) else target)
    if classes.dtype.is_floating_point or classes.dtype in (torch.bool, torch.complex64):
        raise TypeError(f"{name} must hold integer class indices, got dtype {classes.dtype}")
    if classes.dim() > 1:
        raise ValueError(f"{name} must be an int or a 1-d sequence of class indices, got shape "
                         f"{tuple(classes.shape)}")
    classes = classes.to(device=logits.device, dtype=torch.long)
    if classes.dim() == 0:
        classes = classes.expand(batch)
    elif classes.numel() != batch:
        raise ValueError(f"{name} must give one class per sample: got {classes.numel()} "
                         f"for a batch of {batch}")
    outside = (classes < 0) | (classes >= num_classes)
    if outside.any():
        raise ValueError(f"{name} class {classes[outside][0].item()} is out of range: the model "
                         f"has {num_classes} classes (valid: 0..{num_classes - 1})")
    return classes.contiguous()


def check_device(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` when the model's parameters are not on ``x``'s device."""
    device = model_device(model)
    if next(model.parameters(), None) is not None and device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; "
                         f"move one of them, e.g. x.to({str(device)!r})")


def first_layer_channels(model: nn.Module) -> int | None:
    """The number of input channels the model expects (its first ``nn.Conv2d``), or ``None``."""
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, int):
        return declared
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else conv.in_channels


def check_inputs(model: object, x: object, name: str = "x") -> None:
    """The checks every model-plus-images function starts with: ``model`` is an ``nn.Module``,
    ``x`` a valid image batch (:func:`check_images`) with the channel count of the model's
    first layer, at least :data:`MIN_SIZE` pixels high and wide, on the model's device and in
    its floating dtype."""
    check_model(model)
    check_images(x, name, first_layer_channels(model))
    if min(x.shape[-2:]) < MIN_SIZE:
        raise ValueError(f"{name} has spatial size {tuple(x.shape[-2:])}; the course's models need "
                         f"at least {MIN_SIZE}x{MIN_SIZE} pixels (is the shape (B, C, H, W)?)")
    check_device(model, x)
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point() and x.dtype != param.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's parameters are {param.dtype}; "
                        f"convert with {name}.to({param.dtype})")


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
    if hasattr(x, "to_numpy") and not isinstance(x, (str, bytes)):  # pandas Series / Index
        return np.asarray(x.to_numpy())
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
