"""Gradients at Inference — the helper package of the course.

One module per concept, named by the noun you would search for. Import what you need
(``from tutorial_utils import cam``); importing the package itself is cheap (PyTorch is only
imported when a submodule or one of the helpers below is first used) and does no training,
generation or file writing.

=================  ==================================================================  =======
module             what you find there                                                 chapter
=================  ==================================================================  =======
``data``           digits, signs, OOD sources; ``apply_challenge`` (front door)        all
``signs``          the traffic-sign renderer (templates, scenes, counterfactual scenes)  all
``challenges``     CURE-TSR's 12 challenge types at levels 0–5                         all
``architectures``  the small CNN and the deep ensemble                                 all
``models``         training, predictions (logits, probabilities, features), the zoo    all
``layers``         target layers, hooks, gradients w.r.t. activations                  2, 3
``gradients``      parameter gradients: contrast, per-sample, confounding label        1–3
``information``    entropy, mutual information, Fisher information                     1
``manifolds``      Isomap, covariance spectrum, effective rank                         1
``landscape``      loss change along −∇, the loss plane                                1
``robustness``     accuracy and confidence under every challenge and level             1, 5
``cam``            Grad-CAM, Grad-CAM++, CounterfactualCAM, ContrastCAM                2–5
``contrast``       "why P, rather than Q?": galleries and explorer state               2
``saliency``       input gradients, guided backprop, SmoothGrad, occlusion, RISE, SHAPE  2, 4
``introspection``  introspective learning (contrast-gradient features, two heads)      2
``evaluation``     masking, insertion/deletion, structure-wise (Huffman bits)          4
``metrics``        AUROC, AUPR, FPR@95, ECE, AUAC/AUFC                                 all
``plotting``       figures in one style; ``plotting.X`` draws concept ``X``            all
``widgets``        every interactive explorer (the only module that imports ipywidgets)  all
``utils``          seeding, devices, model-state context managers                      all
=================  ==================================================================  =======

Imports point one way: notebooks → ``widgets`` / ``plotting`` → concept modules →
``gradients`` / ``layers`` / ``metrics`` / ``utils``. Scores follow one sign convention:
higher = more in-distribution / more trustworthy.
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
