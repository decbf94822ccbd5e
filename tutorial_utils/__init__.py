"""Gradients at Inference — the helper package of the course.

Submodules (one concept each) are imported explicitly, e.g.
``from tutorial_utils import cam`` or ``import tutorial_utils.data as data``;
importing the package itself is cheap: no training, generation or file writing.
"""

from tutorial_utils.utils import get_device, seed_everything

__all__ = ["get_device", "seed_everything"]
__version__ = "0.1.0"
