"""Result sentences checked by the run: ``claim(statement, holds, **numbers)``.

Every sentence of a chapter that states a result ("X beats Y", "confidence stays high") sits
next to a claim over the numbers the same run printed::

    claims.claim("the GO sign is answered with high confidence",
                 conf_go.mean() > 0.8, mean_confidence=conf_go.mean())
    ✓ the GO sign is answered with high confidence (mean_confidence=0.931)

When the condition no longer holds — a retrained model, a changed default — :func:`claim`
raises :class:`ClaimError` with the statement and the numbers, so executing the notebook (nbval
in CI) fails instead of printing a sentence its own numbers contradict.

Mixed results are stated as mixed: :func:`mixed` prints ``≈ statement`` and requires that the
evidence really points both ways (at least one ``True`` and one ``False``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["ClaimError", "claim", "mixed", "format_number"]


class ClaimError(AssertionError):
    """A result sentence of a chapter is contradicted by the numbers of this run."""


def format_number(value: object) -> str:
    """A short, readable rendering of a number (tensors and NumPy scalars included)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def _truth(holds: object, name: str = "holds") -> bool:
    if isinstance(holds, torch.Tensor):
        if holds.numel() != 1:
            raise TypeError(f"{name} must be a single truth value, got a tensor of shape "
                            f"{tuple(holds.shape)}; reduce it with .all() or .any()")
        holds = holds.item()
    if isinstance(holds, np.ndarray):
        if holds.size != 1:
            raise TypeError(f"{name} must be a single truth value, got an array of shape "
                            f"{holds.shape}; reduce it with .all() or .any()")
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (the result of a comparison), got "
                        f"{type(holds).__name__}")
    return bool(holds)


def _numbers(numbers: dict) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in numbers.items())


def claim(statement: str, holds: object, **numbers: object) -> None:
    """Print ``✓ statement (numbers)`` if ``holds`` is true, else raise :class:`ClaimError`.

    Args:
        statement: the sentence as the chapter states it.
        holds: a single bool computed from this run's numbers (a 1-element tensor or array is
            accepted; anything else is a ``TypeError``, so a forgotten ``.all()`` cannot pass).
        numbers: the evidence, printed next to the statement either way.

    Returns nothing (so a claim at the end of a cell adds no second output line).
    """
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty string: the sentence being checked")
    evidence = _numbers(numbers)
    if not _truth(holds):
        raise ClaimError(f"the chapter says {statement!r}, but this run does not support it"
                         + (f" ({evidence})" if evidence else "")
                         + ". Rewrite the sentence to match the numbers.")
    print(f"✓ {statement}" + (f" ({evidence})" if evidence else ""))


def mixed(statement: str, outcomes: Iterable[object], **numbers: object) -> None:
    """A result stated as mixed: ``outcomes`` must contain both ``True`` and ``False``.

    Prints ``≈ statement (k of n hold; numbers)``; raises :class:`ClaimError` when every
    outcome agrees (then the result is not mixed and the sentence must say so).
    """
    flags = [_truth(o, "outcomes") for o in outcomes]
    if not flags:
        raise ValueError("outcomes must hold at least one truth value")
    k, n = sum(flags), len(flags)
    evidence = _numbers(numbers)
    if k in (0, n):
        raise ClaimError(f"the chapter calls {statement!r} mixed, but {k} of {n} outcomes hold"
                         + (f" ({evidence})" if evidence else "")
                         + ". Rewrite the sentence to match the numbers.")
    print(f"≈ {statement} ({k} of {n} hold" + (f"; {evidence})" if evidence else ")"))
