"""Input validation shared by every module: each failure names the argument and the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tutorial_utils.utils import model_device, preserved_state

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
        mean = float(x.detach().float().mean())
        if low < -PIXEL_TOL and high <= 20 and abs(mean) < 1.0:  # looks mean/std-normalised
            raise ValueError(
                f"{name} looks normalised (values in [{low:.3g}, {high:.3g}], mean {mean:.2g}): "
                f"the course's methods take pixels in [0, 1] and the model normalises inside. "
                f"Pass the images before Normalize(mean, std) (e.g. data.load_images(...)) and "
                f"wrap your model once: model = models.with_normalization(model, mean, std) "
                f"(or weights=<torchvision weights>)")
        fix = (f"divide by 255 ({name} / 255)" if high > 2 else
               f"undo the normalisation or clamp with {name}.clamp(0, 1)")
        raise ValueError(f"{name} must hold pixels in [0, 1], got values in [{low:.3g}, "
                         f"{high:.3g}]; {fix} (models normalise inside their first layer)")
    return x


def check_model(model: object, name: str = "model") -> nn.Module:
    """Validate that ``model`` (or the argument ``name``) is an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_classes(target: object, batch: int | None, num_classes: int | None,
                  name: str = "target", *, per_sample: bool = False,
                  what: str = "class index") -> torch.Tensor:
    """``target`` as a ``(batch,)`` long tensor of class indices in ``[0, num_classes)``.

    ``batch=None`` takes the length from ``target`` (a list of classes; an int gives one).
    Accepts an int (Python, NumPy or a 0-d integer tensor; broadcast to every sample unless
    ``per_sample``), or a sequence, array or 1-d integer tensor with one class per sample.
    Floats and bools are rejected (``TypeError``), never rounded; a wrong length, a 2-d array
    or a class outside ``[0, num_classes)`` is a ``ValueError`` that gives the valid range
    (``num_classes=None`` only rejects negative classes). ``what`` names the kind of index in
    the messages (e.g. ``"index"`` for positions in a data set).
    """
    plural = what.replace("index", "indices")
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int {what}, a sequence of them or None, got bool")
    if isinstance(target, (float, np.floating)):
        hint = f"; use int({name}) if you mean {int(target)}" if math.isfinite(target) else ""
        raise TypeError(f"{name} must be an int {what}, got the float {target!r}{hint}")
    if isinstance(target, str) or not isinstance(
            target, (int, np.integer, Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be an int {what}, a sequence of them or None, "
                        f"got {type(target).__name__}")
    try:
        classes = torch.as_tensor(np.asarray(target) if isinstance(target, Sequence) else target)
        if classes.numel() == 0 and classes.dim() == 1:
            classes = classes.long()  # an empty list is a (0,) list of classes, not a float
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise TypeError(f"{name} must hold integer {plural}, got {target!r}"[:200]) from None
    if classes.dtype.is_floating_point or classes.dtype.is_complex or classes.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer {plural}, got dtype {classes.dtype}")
    if classes.dim() > 1:
        raise ValueError(f"{name} must be an int or a 1-d sequence of them, got shape "
                         f"{tuple(classes.shape)}")
    one = "class" if what == "class index" else "value"
    if batch is None:
        batch = 1 if classes.dim() == 0 else classes.numel()
    if per_sample and classes.dim() == 0:
        raise ValueError(f"{name} must give one {one} per sample, shape ({batch},), "
                         f"got a single int")
    classes = classes.to(dtype=torch.long, copy=True)  # never an alias of the caller's tensor
    if classes.dim() == 0:
        classes = classes.expand(batch)
    elif classes.numel() != batch:
        raise ValueError(f"{name} must give one {one} per sample: got {classes.numel()} "
                         f"for a batch of {batch}")
    outside = (classes < 0) | (classes >= (math.inf if num_classes is None else num_classes))
    if outside.any():
        bad = classes[outside][0].item()
        if num_classes is None:
            raise ValueError(f"{name} {bad} is out of range (valid: 0 or larger)")
        if what == "class index":
            raise ValueError(f"{name} class {bad} is out of range: the model has {num_classes} "
                             f"classes (valid: 0..{num_classes - 1})")
        raise ValueError(f"{name} {bad} is out of range (valid: 0..{num_classes - 1})")
    return classes.contiguous()


def resolve_classes(
    target: int | Sequence[int] | torch.Tensor | None,
    logits: torch.Tensor,
    name: str = "target",
) -> torch.Tensor:
    """Turn ``target`` into a ``(B,)`` long tensor on ``logits.device``.

    ``None`` means the predicted class ``argmax logits``; an int (Python, NumPy or a 0-d
    integer tensor) is broadcast to every sample; a sequence, array or 1-d integer tensor must
    hold one class per sample. Every class must lie in ``[0, K)``. Floats and bools are
    rejected (``TypeError``), never rounded (:func:`check_classes`).
    """
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    return check_classes(target, batch, num_classes, name).to(logits.device)


def check_class(value: object, num_classes: int, name: str) -> int:
    """One class index (an int, NumPy int or 0-d integer tensor) in ``[0, num_classes)``."""
    return check_int(value, name, low=0, high=num_classes - 1)


def check_device(model: nn.Module, x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` when the model's parameters are not on ``x``'s device."""
    device = model_device(model)
    if next(model.parameters(), None) is not None and device != x.device:
        raise ValueError(f"{name} is on {x.device} but the model is on {device}; "
                         f"move one of them, e.g. {name}.to({str(device)!r})")


def first_layer_channels(model: nn.Module) -> int | None:
    """The number of input channels the model expects (its first ``nn.Conv2d``), or ``None``."""
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, int):
        return declared
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else conv.in_channels


def check_inputs(model: object, x: object, name: str = "x", model_name: str = "model"
                 ) -> torch.Tensor:
    """The checks every model-plus-images function starts with: ``model`` is an ``nn.Module``,
    ``x`` a valid image batch (:func:`check_images`) with the channel count of the model's
    first layer, at least :data:`MIN_SIZE` pixels high and wide (for a convolutional model),
    on the model's device and in its floating dtype. Returns ``x``."""
    check_model(model, model_name)
    channels = first_layer_channels(model)
    check_images(x, name, channels)
    if channels is not None and min(x.shape[-2:]) < MIN_SIZE:  # a convolutional model
        raise ValueError(f"{name} has spatial size {tuple(x.shape[-2:])}; the course's models need "
                         f"at least {MIN_SIZE}x{MIN_SIZE} pixels (is the shape (B, C, H, W)?)")
    check_device(model, x, name)
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point() and x.dtype != param.dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's parameters are {param.dtype}; "
                        f"convert with {name}.to({param.dtype})")
    return x


def check_training_set(model: object, x: object, y: object) -> torch.Tensor:
    """A training set for ``model``: images ``(N, C, H, W)`` (:func:`check_inputs`) or finite
    features ``(N, F)``, and one label per sample in ``[0, K)`` (K from one eval forward).
    Returns the labels as a long tensor on ``x``'s device."""
    check_model(model)
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        check_inputs(model, x)
    elif not isinstance(x, torch.Tensor) or not torch.is_floating_point(x) or x.dim() != 2 \
            or len(x) == 0 or not torch.isfinite(x).all():
        raise ValueError("x must be a non-empty float tensor of images (N, C, H, W) in [0, 1] "
                         "(or finite features (N, F) for a head)")
    with torch.no_grad(), preserved_state(model):
        k = model(x[:1]).shape[-1]
    return check_classes(y, len(x), k, "y", per_sample=True).to(x.device)


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in {low}..{high}"
    return f">= {low}" if low is not None else f"<= {high}"


def check_int(value: object, name: str, *, low: int | None = None,
              high: int | None = None) -> int:
    """``value`` as an int (Python, NumPy or a 0-d integer tensor; never a bool or a float) in
    ``[low, high]``; ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not (
            value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        kind = "an int" if low is None and high is None else f"an int {_range_text(low, high)}"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}"[:200])
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            raise ValueError(f"{name} {value} is out of range (valid: {low}..{high})")
        raise ValueError(f"{name} must be {_range_text(low, high)}, got {value}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int ≥ 1, else ``TypeError``/``ValueError`` naming ``name``."""
    return check_int(value, name, low=1)


def check_seed(seed: object, name: str = "seed") -> int:
    """A seed for ``torch.Generator.manual_seed``: an int in ``[-2**63, 2**64)``."""
    return check_int(seed, name, low=-2**63, high=2**64 - 1)


def _real(value: object, name: str, kind: str = "a number") -> float:
    """``value`` as a float: an int, float, NumPy scalar or 1-element tensor, never a bool;
    ``TypeError`` saying ``name`` must be ``kind`` otherwise (the range is checked by callers)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    return float(value)


def check_number(value: object, name: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """A finite real number (int, float, NumPy scalar or 1-element tensor; not a bool) in the
    interval given by ``low``/``high`` (closed unless ``low_open``/``high_open``)."""
    value = _real(value, name)
    left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    bound = " and ".join(b for b in (left, right) if b)
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be a finite number{' ' + bound if bound else ''}, "
                         f"got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    """``True`` or ``False`` (a NumPy bool too); ``TypeError`` naming ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def check_fraction(value: object, name: str = "fraction") -> float:
    """A share of the pixels in ``(0, 1]`` (int, float, NumPy scalar or 1-element tensor)."""
    value = _real(value, name, "a number in (0, 1]")
    if not 0 < value <= 1:
        raise ValueError(f"{name} must lie in (0, 1] (a share of the pixels), got {value}")
    return value


def check_threshold(value: object, name: str = "threshold") -> float:
    """A threshold on min-max normalised maps: a number in ``[0, 1)``."""
    value = _real(value, name, "a float in [0, 1)")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1) (maps are min-max normalised to [0, 1]), "
                         f"got {value}")
    return value


def check_epsilon(value: object, name: str = "epsilon", *, zero_ok: bool = True) -> float:
    """A perturbation size in pixel units: a finite number in ``[0, 1]`` (``zero_ok=False``
    also rejects 0). A value above 1 gets "did you mean value/255?"."""
    value = _real(value, name, "a float in pixel units (e.g. 8/255)")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound} in pixel units, got {value}")
    if value > 1:
        raise ValueError(f"{name}={value} exceeds the pixel range [0, 1]; ε is in pixel units "
                         f"of [0, 1] images: did you mean {name}={value:g}/255?")
    return value


def check_sign(sign: object) -> int:
    """``-1`` or ``+1`` (an int or NumPy int), the orientation of a gradient score."""
    if isinstance(sign, (bool, np.bool_)) or not isinstance(sign, (int, np.integer)) \
            or sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (smaller gradient = more in-distribution) or +1 "
                         f"(larger gradient = more in-distribution), got {sign!r}")
    return int(sign)


def check_choice(value: object, options: Sequence[str], name: str, *, extra: str = "") -> str:
    """``value`` if it is one of ``options``; ``ValueError`` listing them otherwise."""
    if not isinstance(value, str) or value not in options:
        more = f", {extra}" if extra else ""
        raise ValueError(f"{name} must be one of {tuple(options)}{more}; got {value!r}")
    return value


def make_generator(seed: object = 0, generator: object = None) -> torch.Generator:
    """A CPU generator: ``generator`` itself, or a fresh one seeded with ``seed``
    (:func:`check_seed`)."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    return torch.Generator().manual_seed(check_seed(seed))


def check_callable(value: object, name: str) -> object:
    """``value`` if it is callable; ``TypeError`` naming ``name`` otherwise."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def require_autograd(caller: str) -> None:
    """Refuse to run a gradient method inside ``torch.inference_mode()``, saying why.

    Under ``torch.no_grad()`` the course's gradient methods switch gradients on locally; inside
    ``inference_mode`` autograd cannot record anything (tensors made there can never take part
    in a backward pass), so they stop with a ``RuntimeError`` that names the fix.
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(f"{caller} needs gradients, but it was called inside "
                           "torch.inference_mode(), where autograd cannot run; call it outside "
                           "that block (inside torch.no_grad() is fine: gradients are switched "
                           "on locally)")


def check_matrix(value: object, name: str, shape: str = "(B, K)") -> torch.Tensor:
    """A finite, non-empty floating-point tensor of shape ``(B, K)`` (logits, features)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, "
                        f"got {type(value).__name__}")
    if not torch.is_floating_point(value):
        raise TypeError(f"{name} must be floating point (got {value.dtype}); use {name}.float()")
    if value.dim() != 2:
        hint = f"; add a batch dimension with {name}[None]" if value.dim() == 1 else ""
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}{hint}")
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)})")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the input first")
    return value


def check_logits(logits: object, name: str = "logits") -> torch.Tensor:
    """Logits ``(B, K)`` with K ≥ 2 classes (:func:`check_matrix`)."""
    if check_matrix(logits, name).shape[1] < 2:
        raise ValueError(f"{name} must hold K >= 2 classes per sample, got K={logits.shape[1]}")
    return logits


def check_labels(y: object, n: int, name: str = "y") -> torch.Tensor:
    """A tensor of ``n`` integer class labels ``(n,)``."""
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"{name} must be a tensor of integer class labels (N,)")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per image, got "
                         f"{tuple(y.shape)}")
    return y


def check_maps(maps: object, name: str = "maps", *, dims: tuple[int, ...] = (3,),
               unit: bool = False, shape: str = "(B, H, W)") -> torch.Tensor:
    """A finite, non-empty floating-point tensor of maps with ``dim()`` in ``dims``; with
    ``unit`` its values must lie in [0, 1] (observed range and fix named otherwise)."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, "
                        f"got {type(maps).__name__}")
    if maps.dim() not in dims or maps.numel() == 0:
        raise ValueError(f"{name} must be a non-empty tensor of shape {shape}, got "
                         f"{tuple(maps.shape)}")
    if not torch.is_floating_point(maps):
        raise TypeError(f"{name} must be floating point, got {maps.dtype}; use {name}.float()")
    low, high = (float(v) for v in torch.aminmax(maps.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if unit and (low < -PIXEL_TOL or high > 1 + PIXEL_TOL):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
                         f"normalise them first (forward.normalize_maps({name}))")
    return maps


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
    """``ValueError`` unless the arrays ``a`` and ``b`` have the same length."""
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


def check_maps_like(maps: object, x: torch.Tensor, name: str, unit: bool = False) -> torch.Tensor:
    """Maps (B, H, W) or (B, 1, H, W) matching x (B, C, H, W), finite (in [0, 1] if
    ``unit``); integer maps are converted to float. Returns (B, H, W)."""
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, H, W), "
                        f"got {type(maps).__name__}")
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    b, _, h, w = x.shape
    if maps.dim() != 3 or tuple(maps.shape) != (b, h, w):
        raise ValueError(f"{name} must have shape (B, H, W) = {(b, h, w)} to match x, "
                         f"got {tuple(maps.shape)}")
    maps = maps if torch.is_floating_point(maps) else maps.float()
    return check_maps(maps, name, unit=unit).detach().to(x.device)
