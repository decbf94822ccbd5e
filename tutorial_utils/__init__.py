"""Gradients at Inference — the helper package of the course.

Submodules (one concept each) are imported explicitly, e.g.
``from tutorial_utils import cam`` or ``import tutorial_utils.data as data``.
Importing the package itself is cheap (PyTorch is only imported when a submodule or one of
the helpers below is first used) and does no training, generation or file writing.
"""

from __future__ import annotations

import importlib

__all__ = ["get_device", "seed_everything"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy access to ``seed_everything`` / ``get_device`` and to the submodules."""
    if name in __all__:
        return getattr(importlib.import_module("tutorial_utils.utils"), name)
    try:
        return importlib.import_module(f"tutorial_utils.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"tutorial_utils.{name}":
            raise
        raise AttributeError(f"module 'tutorial_utils' has no attribute {name!r}") from None
