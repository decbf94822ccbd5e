"""Reproducibility and device helpers, plus context managers that leave a model as they found it."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

DEFAULT_SEED = 0


def seed_everything(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) with ``seed``; returns the seed.

    The course sets seeds in exactly one place per notebook by calling this function. The
    seed is validated (an int in ``[-2**63, 2**64)``, what PyTorch accepts) before any RNG is
    touched, so a bad seed leaves every generator as it was.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not -2**63 <= seed < 2**64:
        raise ValueError(f"seed must lie in [-2**63, 2**64) (PyTorch's range), got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def get_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def preserved_state(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Temporarily put ``model`` in eval mode (if ``eval_mode``) and restore afterwards.

    Restores every submodule's ``training`` flag and every parameter's ``requires_grad``
    flag exactly as they were, even when the body raises.
    """
    _check_module(model, "model")
    modes = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        if eval_mode:
            model.eval()
        yield model
    finally:
        for name, m in model.named_modules():
            m.training = modes[name]
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter (CPU for a parameter-free module)."""
    for p in _check_module(model, "model").parameters():
        return p.device
    return torch.device("cpu")


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last memory layout (same values, same shape).

    Convolutions on the CPU run about 1.5x faster on channels-last batches; every batched
    forward pass of the course goes through this. Non-4-D tensors are returned unchanged.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _check_module(module: object, name: str) -> nn.Module:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    return module


def progress(iterable=None, *, desc: str | None = None, total: int | None = None,
             enabled: bool = True):
    """A ``tqdm.auto`` progress bar that stays, full, when done (``leave=True``).

    In a notebook the bar is a widget. A bar that removed itself when done (``leave=False``)
    would close its widget while the cell's output still names it; JupyterLab's autosave then
    stores that output without the widget's state, and a learner reopening the chapter sees
    "Error displaying widget: model not found" where the bar was.

    Off when ``enabled`` is false or the ``TQDM_DISABLE`` environment variable is set (the
    shipped notebooks are executed that way, so they never show a half-finished bar).
    """
    from tqdm.auto import tqdm

    off = not enabled or os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    return tqdm(iterable, desc=desc, total=total, disable=off, leave=True)


# --------------------------------------------------------------------------------------
# Devices and deterministic algorithms (used by the zoo: loading and rebuilding checkpoints)
# --------------------------------------------------------------------------------------


def parse_device(device: object) -> torch.device:
    """``device`` (``None`` = CPU) as a ``torch.device``; ``ValueError`` naming it otherwise."""
    try:
        return torch.device(device or "cpu")
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch.device or a name like 'cpu' or 'cuda', got "
                         f"{device!r}") from None


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside the block only; the
    previous setting (and its ``warn_only`` flag) is restored on exit, also after an error."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


# --------------------------------------------------------------------------- the course seed
# Every random draw of the course derives from ONE number, the course seed, read here and
# nowhere else: the environment variable ``TUTORIAL_SEED`` (default 0). A notebook never writes
# a literal seed; it asks for a named, independent seed or generator per random component:
#
#     seed_everything(course_seed())                      # once, at the top of a chapter
#     masks = saliency.rise(model, x, seed=derive_seed("rise-masks"))
#     noise = apply_challenge(x, "noise", 3, seed=derive_seed("challenge", "noise", 3))
#     order = generator("stream-order").permutation(len(x))        # NumPy
#     idx = torch.randperm(n, generator=torch_generator("ood-sample"))
#
# ``TUTORIAL_SEED=1 jupyter ...`` (or ``scripts/check_claims.py --seeds 0 1 2``) re-runs the
# course with other draws; the zoo checkpoints stay as trained (they are files, not draws).

SEED_ENV = "TUTORIAL_SEED"


def course_seed() -> int:
    """The course seed: ``int(os.environ["TUTORIAL_SEED"])``, or 0 when it is not set.

    Read at every call (not at import), so a test or a sweep that sets the variable before
    running a chapter sees its value. A value that is not a non-negative integer raises a
    ``ValueError`` naming ``TUTORIAL_SEED``.
    """
    raw = os.environ.get(SEED_ENV, "").strip()
    if raw == "":
        return DEFAULT_SEED
    try:
        seed = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {raw!r}; unset it "
                         f"for the default seed {DEFAULT_SEED}") from None
    if seed < 0:
        raise ValueError(f"{SEED_ENV} must be a non-negative integer, got {seed}")
    return seed


def _seed_word(key: object, what: str) -> int:
    """A stable 64-bit word for a name or key (never Python's salted ``hash``)."""
    import hashlib

    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"{what} must be a str or an int, got bool")
    if isinstance(key, (int, np.integer)):
        key = int(key)
        if key < 0:
            raise ValueError(f"{what} must be a non-negative int or a str, got {key}")
        return key
    if isinstance(key, str):
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    raise TypeError(f"{what} must be a str or an int, got {type(key).__name__}")


def derive_seed(name: str, *keys: int | str) -> int:
    """An independent seed in ``[0, 2**63)`` for the random component ``name`` (and ``keys``).

    ``derive_seed("rise-masks")``, ``derive_seed("challenge", "noise", 3)``: the same name and
    keys give the same seed for one course seed, a different course seed (``TUTORIAL_SEED``)
    gives different seeds for every component, and two names are independent streams
    (NumPy's ``SeedSequence`` with the course seed as entropy and the name and keys, hashed
    with BLAKE2b, as its spawn key). The result suits ``torch.Generator().manual_seed``,
    ``np.random.default_rng`` and every ``seed=`` argument of the package.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError("name must be a non-empty str naming the random component, "
                        "e.g. 'rise-masks'")
    words = [_seed_word(name, "name")] + [_seed_word(k, f"keys[{i}]") for i, k in enumerate(keys)]
    state = np.random.SeedSequence(course_seed(), spawn_key=tuple(words)).generate_state(
        1, np.uint64)
    return int(state[0] >> np.uint64(1))


def generator(name: str, *keys: int | str) -> np.random.Generator:
    """A NumPy ``Generator`` seeded with :func:`derive_seed` ``(name, *keys)``."""
    return np.random.default_rng(derive_seed(name, *keys))


def torch_generator(name: str, *keys: int | str, device: str | torch.device = "cpu"
                    ) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(name, *keys)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(name, *keys))
