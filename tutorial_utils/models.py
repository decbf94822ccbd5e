"""Models at work: the course's one seeded training loop, predictions, and the zoo's front door.

The architectures live in :mod:`tutorial_utils.architectures` and the checkpointed zoo (recipes,
files, manifest, checksums) in :mod:`tutorial_utils.zoo`; this module trains them, runs them
and loads them:

=====================  ================================================================
function               what it does
=====================  ================================================================
train_classifier       AdamW + one-cycle training, seeded, with a progress bar
predict_logits         logits ``(N, K)`` in eval mode, in mini-batches
predict_proba          ``softmax(f(x))`` ``(N, K)``
features_and_logits    penultimate features ``h`` ``(N, D)`` and logits in one pass
decision               logits, probabilities and the arg-max for one image
num_parameters         the number of parameters of a module
accuracy               top-1 accuracy
with_normalization     your own model (e.g. torchvision's) with its input normalisation inside,
                       so it takes the course's pixels in ``[0, 1]``
load                   a zoo member, checksum verified; a missing one is trained on the spot
train_zoo_model        train a zoo member from its recipe (deterministic)
rebuild_zoo            retrain and save zoo members (the command below)
=====================  ================================================================

The predictions are thin wrappers over :mod:`tutorial_utils.forward`, which runs every forward
pass of the course. The zoo's members are :data:`tutorial_utils.zoo.MEMBERS`: the classifiers
``digits``, ``digits05``, ``signs``, ``signs-ensemble``, ``signs-vit`` (a vision transformer)
and the GradCon anomaly detectors ``gradcon-0`` .. ``gradcon-9``. Rebuild the checkpoints
in ``data/`` with::

    python -m tutorial_utils.models                 # every member
    python -m tutorial_utils.models signs digits    # some of them
    python -m tutorial_utils.models gradcon         # the ten GradCon detectors
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_utils import anomaly, forward, zoo
from tutorial_utils._checks import (
    check_bool,
    check_classes,
    check_inputs,
    check_model,
    check_number,
    check_positive_int,
    check_seed,
    check_training_set,
)
from tutorial_utils.architectures import Ensemble, Normalize
from tutorial_utils.forward import DEFAULT_BATCH_SIZE
from tutorial_utils.layers import default_target_layer
from tutorial_utils.utils import (
    deterministic_algorithms,
    model_device,
    parse_device,
    preserved_state,
)
from tutorial_utils.utils import progress as progress_bar

__all__ = [
    "random_shift",
    "train_classifier",
    "predict_logits",
    "predict_proba",
    "features_and_logits",
    "Decision",
    "decision",
    "num_parameters",
    "accuracy",
    "Normalized",
    "with_normalization",
    "load",
    "train_zoo_model",
    "rebuild_zoo",
    "main",
]


# --------------------------------------------------------------------------------------
# Your own model: normalisation inside, pixels in [0, 1] outside
# --------------------------------------------------------------------------------------


class Normalized(nn.Module):
    """``model((x - mean) / std)``: a classifier that takes pixels in ``[0, 1]``.

    ``normalize`` is a :class:`~tutorial_utils.architectures.Normalize` layer (buffers, no
    parameters, so a sanity check's randomisation leaves it alone) and ``model`` the wrapped
    classifier, unchanged and shared (not copied). ``target_layer`` is the wrapped model's
    default CAM layer (:func:`tutorial_utils.layers.default_target_layer`, e.g. ResNet's
    ``layer4[-1]``), so every explainer finds it through the wrapper.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]
                 ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.model = model

    @property
    def target_layer(self) -> nn.Module:
        return default_target_layer(self.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) pixels in [0, 1] -> the wrapped model's logits (B, K)."""
        return self.model(self.normalize(x))


def _weights_stats(weights: object) -> tuple[list[float], list[float]]:
    """The ``mean``/``std`` a torchvision weights object (``ResNet18_Weights.DEFAULT``) or its
    transforms (``weights.transforms()``) declare."""
    transforms = weights
    if not (hasattr(transforms, "mean") and hasattr(transforms, "std")):
        make = getattr(weights, "transforms", None)
        if not callable(make):
            raise TypeError("weights must be a torchvision weights object (e.g. "
                            "ResNet18_Weights.DEFAULT) or its transforms() (with .mean and "
                            f".std), got {type(weights).__name__}")
        transforms = make()
    mean, std = getattr(transforms, "mean", None), getattr(transforms, "std", None)
    if mean is None or std is None:
        raise ValueError(f"weights {weights!r} declare no mean/std in their transforms; pass "
                         "mean=... and std=... yourself")
    return list(mean), list(std)


def with_normalization(model: nn.Module, mean: object = None, std: object = None, *,
                       weights: object = None) -> Normalized:
    """Your classifier with its input normalisation inside: it then takes the course's images,
    ``(B, C, H, W)`` pixels in ``[0, 1]``, and every method of the course runs on it.

    Give the per-channel ``mean`` and ``std`` the model was trained with (sequences of one
    float per channel, in pixel units of [0, 1] images), or ``weights=`` a torchvision weights
    object (``ResNet18_Weights.DEFAULT``) or its ``transforms()``, whose declared mean and std
    are used. Neither given: ImageNet's statistics are assumed only if you say so — it raises
    ``ValueError``. The model is wrapped, not copied: its mode and parameters stay its own.

    Example::

        net = torchvision.models.resnet18(weights=ResNet18_Weights.DEFAULT)
        model = with_normalization(net, weights=ResNet18_Weights.DEFAULT).eval()
        maps = explainers.explain("Grad-CAM", model, data.load_images(folder, 224))
    """
    check_model(model)
    if weights is not None:
        if mean is not None or std is not None:
            raise ValueError("give either mean and std or weights, not both")
        mean, std = _weights_stats(weights)
    if mean is None or std is None:
        raise ValueError("with_normalization needs the model's input statistics: mean=... and "
                         "std=... (e.g. ImageNet's mean=(0.485, 0.456, 0.406), std=(0.229, "
                         "0.224, 0.225)) or weights=<a torchvision weights object>")
    for name, stats in (("mean", mean), ("std", std)):
        if isinstance(stats, torch.Tensor):
            stats = stats.flatten().tolist()
        if isinstance(stats, str) or not hasattr(stats, "__len__"):
            raise TypeError(f"{name} must be a sequence of one float per channel, got "
                            f"{type(stats).__name__}")
        if name == "mean":
            mean = tuple(stats)
        else:
            std = tuple(stats)
    wrapped = Normalized(model, mean, std)
    first = next(model.parameters(), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    wrapped.normalize.to(device=model_device(model), dtype=dtype)  # the model itself: untouched
    return wrapped


# --------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------


def random_shift(x: torch.Tensor, max_shift: float, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (bilinear, border padding)."""
    b, _, h, w = x.shape
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * max_shift
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -shift[:, 0] * 2 / w
    theta[:, 1, 2] = -shift[:, 1] * 2 / h
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    max_shift: float = 2.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> list[float]:
    """Train ``model`` with AdamW + one-cycle LR on ``(x, y)``; returns the per-epoch mean loss.

    Seeded: the initial weights are set by the caller, shuffling, augmentation (random shifts
    of up to ``max_shift`` px) and dropout by ``seed``; the dropout masks come from the global
    RNG seeded inside ``torch.random.fork_rng``, so the caller's CPU and CUDA RNG states are
    left as they were. Shows a ``tqdm.auto`` progress bar.
    """
    y = check_training_set(model, x, y)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_number(lr, "lr", low=0.0, low_open=True)
    weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
    max_shift = check_number(max_shift, "max_shift", low=0.0)
    seed = check_seed(seed)
    device = x.device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    history = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout masks
        model.train()
        bar = progress_bar(range(epochs), desc=desc, enabled=progress)
        for _ in bar:
            order = torch.randperm(len(x), generator=gen).to(device)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                xb = random_shift(x[idx], max_shift, gen) if max_shift > 0 else x[idx]
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            history.append(total / len(x))
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    model.eval()
    return history


def predict_logits(model: nn.Module, x: torch.Tensor,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Logits ``(N, K)`` in eval mode, in mini-batches, on ``x``'s device; the model's modes
    and flags are restored (:func:`tutorial_utils.forward.logits`)."""
    return forward.logits(model, x, batch_size)


def predict_proba(model: nn.Module, x: torch.Tensor,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Probabilities ``softmax(f(x))`` ``(N, K)`` in eval mode, in mini-batches (modes restored)."""
    return forward.logits(model, x, batch_size).softmax(dim=1)


def features_and_logits(model: nn.Module, x: torch.Tensor,
                        batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``h`` ``(N, D)`` (the input of the final ``nn.Linear``) and logits
    ``(N, K)`` in one batched pass, for any classifier ending in an ``nn.Linear``
    (:func:`tutorial_utils.forward.features_and_logits`)."""
    return forward.features_and_logits(model, x, batch_size)


@dataclass(frozen=True)
class Decision:
    """One image's forward pass: ``logits`` (K,), ``probs`` (K,), ``pred`` the arg-max class."""

    logits: torch.Tensor
    probs: torch.Tensor
    pred: int

    @property
    def confidence(self) -> float:
        """The largest probability, ``max_k p_k`` (Hendrycks & Gimpel's baseline score)."""
        return float(self.probs[self.pred])


@torch.no_grad()
def decision(model: nn.Module, image: torch.Tensor) -> Decision:
    """Logits ``z = f(x)``, probabilities ``p = softmax(z)`` and ``argmax z`` for one image.

    ``image`` is one ``(C, H, W)`` image (or a batch of one) with pixels in [0, 1].
    """
    check_model(model)
    if isinstance(image, torch.Tensor):
        image = (image[None] if image.dim() == 3 else image).to(model_device(model))
    check_inputs(model, image, "image")
    if image.shape[0] != 1:
        raise ValueError(f"image must be one image (C, H, W), got a batch of {image.shape[0]}")
    with preserved_state(model):
        z = model(image)[0].cpu()
    return Decision(z, z.softmax(0), int(z.argmax()))


def num_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in check_model(module, "module").parameters())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on images ``x`` with labels ``y`` (N,)."""
    z = predict_logits(model, x)
    y = check_classes(y, len(x), z.shape[1], "y", per_sample=True).to(z.device)
    return (z.argmax(1) == y).float().mean().item()


# --------------------------------------------------------------------------------------
# The zoo: train a member, load one (the front door), rebuild them all
# --------------------------------------------------------------------------------------


def _train_gradcon_member(name: str, progress: bool) -> tuple[nn.Module, dict]:
    """Train GradCon member ``name`` on its digit; info records the one-class AUROCs."""
    recipe = zoo.GRADCON_RECIPES[name]
    ds = zoo.zoo_dataset(name)
    d = recipe["normal_class"]
    start = time.perf_counter()
    model = anomaly.train_gradcon(
        ds.x_train[ds.y_train == d], epochs=recipe["epochs"], alpha=recipe["alpha"],
        batch_size=recipe["batch_size"], lr=recipe["lr"], widths=tuple(recipe["widths"]),
        seed=recipe["seed"], progress=progress, desc=name)
    seconds = time.perf_counter() - start
    aurocs = anomaly.one_class_aurocs(model, ds.x_test, ds.y_test, d, beta=recipe["beta"])
    info = dict(recipe=recipe, train_seconds=round(seconds, 1),
                parameters=num_parameters(model.autoencoder),
                test_auroc={k: round(v, 6) for k, v in aurocs.items()},
                test_set=f"digits test split ({len(ds.y_test)} images, "
                         f"{int((ds.y_test == d).sum())} of digit {d} = normal)")
    return model, info


def train_zoo_model(name: str, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train zoo model ``name`` from its recipe (deterministic); returns ``(model, info)``,
    ``info`` holding the recipe, the test accuracy (or one-class AUROCs), the training time
    in seconds and the number of parameters."""
    zoo.check_name(name)
    if name in zoo.GRADCON_RECIPES:
        return _train_gradcon_member(name, progress)
    recipe = zoo.ZOO_RECIPES[name]
    ds = zoo.zoo_dataset(name)
    model = zoo.build(name, ds)
    members = model.members if isinstance(model, Ensemble) else [model]
    start = time.perf_counter()
    for seed, member in zip(recipe["seeds"], members, strict=True):
        extra = {"weight_decay": recipe["weight_decay"]} if "weight_decay" in recipe else {}
        train_classifier(member, ds.x_train, ds.y_train, epochs=recipe["epochs"],
                         batch_size=recipe["batch_size"], lr=recipe["lr"], **extra,
                         max_shift=recipe["max_shift"], seed=seed, progress=progress,
                         desc=f"{name} (seed {seed})")
    model.eval()
    info = dict(recipe=recipe, test_accuracy=round(accuracy(model, ds.x_test, ds.y_test), 6),
                train_seconds=round(time.perf_counter() - start, 1),
                parameters=num_parameters(model))
    return model, info


def load(name: str, device: torch.device | str | None = None, *,
         train_if_missing: bool = True) -> nn.Module:
    """Load zoo member ``name`` (one of :data:`tutorial_utils.zoo.MEMBERS`) in eval mode on
    ``device`` (default CPU).

    A classifier comes back as its ``nn.Module``; ``"gradcon-d"`` as the
    :class:`~tutorial_utils.anomaly.GradCon` detector for normal digit ``d`` (autoencoder +
    reference gradients). The checkpoint's sha256 is verified against ``data/manifest.json``
    (:func:`tutorial_utils.zoo.load_checkpoint`); a mismatch raises
    :class:`~tutorial_utils.zoo.ChecksumError`, an unreadable manifest, an entry without a
    checksum or a checkpoint of another architecture
    :class:`~tutorial_utils.zoo.CheckpointError`, each saying how to rebuild. A missing
    checkpoint is trained on the spot (with a progress bar) and recorded in ``data/``; with
    ``train_if_missing=False`` it is a ``FileNotFoundError`` naming the rebuild command
    instead, and nothing is written. An existing checkpoint is never rewritten by ``load``:
    a checkpoint file without a manifest entry is a
    :class:`~tutorial_utils.zoo.CheckpointError` naming the fix (restore the manifest, or
    rebuild explicitly).
    """
    zoo.check_name(name)
    check_bool(train_if_missing, "train_if_missing")
    device = parse_device(device)
    model = zoo.load_checkpoint(name)
    path = zoo.data_dir() / f"{name}.pt"
    if model is None and path.exists():  # the file is there, only its manifest entry is not
        raise zoo.CheckpointError(
            f"checkpoint {path} exists but data/manifest.json has no entry for {name!r}, so "
            f"its bytes cannot be verified; load never retrains over an existing checkpoint. "
            f"Restore the manifest (git checkout data/manifest.json), or rebuild explicitly: "
            f"{zoo.REBUILD_HINT} {name}")
    if model is None:
        if not train_if_missing:
            raise FileNotFoundError(
                f"{zoo.missing_reason(name)} for {name!r} ({zoo.data_dir() / f'{name}.pt'}); "
                f"{zoo.REBUILD_HINT} {name} (or models.load({name!r}, train_if_missing=True))")
        model, info = train_zoo_model(name)
        zoo.save_checkpoint(name, model, info)
    return model.to(device).eval()


def rebuild_zoo(names: tuple[str, ...] = zoo.MEMBERS, progress: bool = True) -> dict:
    """Retrain and save every zoo member in ``names`` deterministically; returns the manifest.

    Deterministic algorithms are switched on for the rebuild and restored afterwards.
    """
    with deterministic_algorithms():
        for name in names:
            _rebuild_one(name, progress)
    return zoo.read_manifest()


def _rebuild_one(name: str, progress: bool) -> None:
    model, info = train_zoo_model(name, progress=progress)
    zoo.save_checkpoint(name, model, info)
    if "test_auroc" in info:
        result = ", ".join(f"{k} {v:.4f}" for k, v in info["test_auroc"].items())
        print(f"{name}: one-class AUROC {result} ({info['train_seconds']:.0f} s, "
              f"{info['parameters']} parameters)")
    else:
        print(f"{name}: test accuracy {info['test_accuracy']:.4f} "
              f"({info['train_seconds']:.0f} s, {info['parameters']} parameters)")


def main(argv: list[str] | None = None) -> None:
    """The rebuild command, ``python -m tutorial_utils.models [NAME ...]``: retrain the named
    members (default: all; ``gradcon`` = the ten detectors, ``classifiers`` = the five
    classifiers) and record them in ``data/manifest.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m tutorial_utils.models",
        description="Rebuild the course's model zoo in data/ (deterministic).")
    parser.add_argument("names", nargs="*", default=list(zoo.MEMBERS),
                        help=f"members to rebuild (default: all): any of "
                             f"{', '.join(zoo.MEMBERS)}, or 'gradcon' (the ten detectors) / "
                             "'classifiers'")
    args = parser.parse_args(argv)
    names = [m for n in args.names for m in zoo.ALIASES.get(n, (n,))]
    unknown = [n for n in names if n not in zoo.MEMBERS]
    if unknown:
        parser.error(f"unknown zoo model(s) {unknown}; valid names: {', '.join(zoo.MEMBERS)}, "
                     "gradcon, classifiers")
    rebuild_zoo(tuple(dict.fromkeys(names)))


if __name__ == "__main__":
    main()
