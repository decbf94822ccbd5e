"""Gradients at Inference — the helper package of the course.

One module per concept, named by the noun you would search for. Import what you need
(``from tutorial_utils import cam``); importing the package itself is cheap (PyTorch is only
imported when a submodule or one of the helpers below is first used) and does no training,
generation or file writing.

=================  ==================================================================  =======
module             what you find there                                                 chapter
=================  ==================================================================  =======
``data``           digits, signs, OOD sources, counterfactual scenes; ``apply_challenge``  all
``signs``          the traffic-sign renderer (templates, scenes, sign masks)             all
``challenges``     CURE-TSR's 12 challenge types at levels 0–5                         all
``architectures``  the small CNN, the small ViT, the deep ensemble, the autoencoder    all
``forward``        the forward pass, once: logits, hooks, the final layer and its      all
                   features, targets (classes or callables), baselines, map scaling
``gradients``      input gradients, ``p − e_q``, contrast gradients, the per-sample     1–5
                   gradient engine, confounding-label norms
``layers``         target layers and gradients w.r.t. their activations (CAM engine)   2–5
``models``         the training loop, predictions, ``load`` (the zoo's front door),    all
                   rebuilding the zoo (``python -m tutorial_utils.models``)
``zoo``            the checkpointed zoo: recipes, files, manifest, checksums           all
``information``    entropy, mutual information, Fisher information                     1
``manifolds``      Isomap, covariance spectrum, effective rank                         1
``landscape``      loss change along −∇, the loss plane                                1
``robustness``     accuracy and confidence under every challenge and level             1
``cam``            Grad-CAM, Grad-CAM++, CounterfactualCAM, ContrastCAM                2–5
``saliency``       input gradients, guided backprop, SmoothGrad, occlusion, RISE,      2, 4
                   SHAPE, the contrast input gradient
``rollout``        attention rollout (the transformer-native map)                      5
``explainers``     every explanation method by name: ``fn(model, x, target, layer)``   2, 4, 5
``contrast``       "why P, rather than Q?": galleries, counterfactual ground truth     2
``introspection``  introspective learning (contrast-gradient features, two heads)      2
``uncertainty``    MSP, entropy, margin, Energy, ODIN, Mahalanobis, GradNorm,          3
                   confounding-label scores; the detector contract (fit / score)
``ensembles``      MC dropout and deep ensembles: aleatoric + epistemic                3
``detection``      the score table, every score at once, OpenOOD-style tables,         3, 5
                   decision thresholds
``anomaly``        GradCon: anomaly detection with a gradient constraint               3
``trust``          GradTrust (trust in a prediction), VOICE (uncertainty of a map)     3, 5
``attacks``        FGSM and PGD                                                        3, 4
``interventions``  occlusion interventions, box prompts, attack sweeps and views       4
``evaluation``     masking, insertion/deletion, structure-wise (Huffman bits), sanity  4
                   checks
``privacy``        membership inference (loss and confidence attacks, the table)       4
``adaptation``     test-time augmentation, BatchNorm adaptation, TENT                  5
``dashboard``      one image, every method                                             5
``comparison``     does the architecture matter? CNN vs ViT on the same images         5
``metrics``        AUROC, AUPR, FPR@95, ECE, AUAC/AUFC, Spearman's ρ, mean ± SE        all
``claims``         ``claim(statement, holds, **numbers)``: result sentences checked    all
``exercises``      checkers that tell a learner what is wrong with an attempt          all
``plotting``       figures in one style; ``plotting.X`` draws concept ``X``            all
``widgets``        every interactive explorer (the only module that imports ipywidgets)  all
``utils``          seeding, devices, model-state context managers, progress bars       all
``_checks``        input validation shared by every module (private)                   —
=================  ==================================================================  =======

Imports point one way: notebooks → ``widgets`` / ``plotting`` → concept modules →
``gradients`` / ``layers`` → ``forward`` → ``_checks`` → ``utils`` (``metrics`` is a leaf any
module may use). Scores follow one sign convention: higher = more in-distribution / more
trustworthy.
"""

from __future__ import annotations

import importlib

__all__ = [
    "get_device",
    "seed_everything",
]
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
