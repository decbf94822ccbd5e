"""The course's model zoo: one seeded training loop, predictions, checksummed checkpoints.

The architectures live in :mod:`tutorial_utils.architectures`; this module trains them, runs
them (logits, probabilities, penultimate features, one image's decision) and keeps the zoo:

=====================  ================================================================
function               what it does
=====================  ================================================================
train_classifier       AdamW + one-cycle training, seeded, with a progress bar
predict_logits         logits ``(N, K)`` in eval mode, in mini-batches
predict_proba          ``softmax(f(x))`` ``(N, K)``
features_and_logits    penultimate features ``h`` ``(N, D)`` and logits in one pass
decision               logits, probabilities and the arg-max for one image
accuracy               top-1 accuracy
load                   a zoo member, checksum verified (rebuild: ``python -m ...models``)
=====================  ================================================================

The zoo: the classifiers :data:`ZOO` (``digits``, ``digits05``, ``signs``,
``signs-ensemble``) and the GradCon anomaly detectors :data:`GRADCON_ZOO` (``gradcon-0`` ..
``gradcon-9``, one autoencoder per normal digit, see :mod:`tutorial_utils.anomaly`); every
member loads with :func:`load` and is listed in :data:`MEMBERS`. ``python -m
tutorial_utils.models gradcon`` rebuilds just the detectors. :mod:`tutorial_utils.anomaly` is
imported only inside the functions that build a detector, so the arrow points one way.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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
from tutorial_utils._zoo_files import (
    REBUILD_HINT,
    CheckpointError,  # noqa: F401 - raised by load, part of this module's API
    ChecksumError,  # noqa: F401
    deterministic_algorithms,
    load_verified,
    parse_device,
    read_manifest_file,
    sha256,
)
from tutorial_utils.architectures import Ensemble, SmallCNN
from tutorial_utils.utils import channels_last, model_device, preserved_state
from tutorial_utils.utils import progress as progress_bar

# ---- Training and evaluation ---------------------------------------------------------


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


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits ``(N, K)`` in eval mode, in mini-batches, on ``x``'s device; restores the mode."""
    check_inputs(model, x)
    batch_size = check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Probabilities ``softmax(f(x))`` (N, K) in eval mode, in mini-batches (mode restored)."""
    return predict_logits(model, x, batch_size).softmax(dim=1)


def features_and_logits(model: nn.Module, x: torch.Tensor,
                        batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``h`` ``(N, D)`` and logits ``(N, K)`` of a zoo model, batched.

    Runs in eval mode under ``torch.inference_mode`` and restores the model's mode. Batches
    are passed in ``channels_last`` memory format (about 30% faster convolutions on CPU; the
    model itself is not changed). The model must expose ``penultimate(x)`` and ``fc`` (every
    ``SmallCNN`` does).
    """
    check_inputs(model, x)
    if not hasattr(model, "penultimate") or not isinstance(getattr(model, "fc", None), nn.Linear):
        raise TypeError("model must expose .penultimate(x) and a final nn.Linear .fc "
                        "(use a zoo SmallCNN from tutorial_utils.models.load)")
    batch_size = check_positive_int(batch_size, "batch_size")
    hs, zs = [], []
    with preserved_state(model), torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = channels_last(x[i:i + batch_size])
            hs.append(model.penultimate(xb).contiguous())
            zs.append(model.fc(hs[-1]))
    return torch.cat(hs), torch.cat(zs)  # ordinary tensors (cat outside inference mode)


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


# ---- The zoo: recipes, checkpoints with sha256, load / rebuild -----------------------

ZOO_RECIPES: dict[str, dict] = {
    "digits": dict(data="digits", classes=list(range(10)), widths=[16, 32, 64], epochs=10,
                   batch_size=64, lr=3e-3, max_shift=2.0, seeds=[0]),
    "digits05": dict(data="digits", classes=list(range(6)), widths=[16, 32, 64], epochs=10,
                     batch_size=64, lr=3e-3, max_shift=2.0, seeds=[0]),
    "signs": dict(data="signs", classes=list(range(14)), widths=[16, 32, 64], epochs=8,
                  batch_size=64, lr=3e-3, max_shift=3.0, seeds=[0]),
    "signs-ensemble": dict(data="signs", classes=list(range(14)), widths=[16, 32, 64], epochs=6,
                           batch_size=64, lr=3e-3, max_shift=3.0, seeds=[1, 2, 3, 4, 5]),
}
"""How each zoo member is trained (recorded in the manifest next to its test accuracy)."""

ZOO: tuple[str, ...] = tuple(ZOO_RECIPES)
"""The zoo's classifiers (what ``models.load`` returned before the GradCon detectors)."""

GRADCON_RECIPES: dict[str, dict] = {
    f"gradcon-{d}": dict(data="digits", normal_class=d, widths=[16, 16, 32, 32], epochs=100,
                         batch_size=32, lr=3e-3, alpha=0.03, beta=0.12, seed=0)
    for d in range(10)
}
"""GradCon detectors: trained on one digit's training images (``anomaly.train_gradcon``),
evaluated one class vs rest on the whole digits test set."""

GRADCON_ZOO: tuple[str, ...] = tuple(GRADCON_RECIPES)
MEMBERS: tuple[str, ...] = ZOO + GRADCON_ZOO
"""Every zoo member: the classifiers, then the GradCon detectors."""

_ALIASES = {"gradcon": GRADCON_ZOO, "classifiers": ZOO}


def data_dir() -> Path:
    """The folder holding the checkpoints and ``manifest.json`` (``<repo>/data``)."""
    return Path(__file__).resolve().parents[1] / "data"


def _manifest_path() -> Path:
    return data_dir() / "manifest.json"


def read_manifest() -> dict:
    """``data/manifest.json`` as ``{name: entry}`` (``{}`` when there is none); a
    :class:`CheckpointError` naming the rebuild command when it is unreadable."""
    return read_manifest_file(_manifest_path())


def zoo_dataset(name: str):
    """The data set a zoo model is trained and tested on (restricted to its classes).

    A GradCon member gets the whole digits set (it trains on ``x_train`` of its normal
    digit and is tested one class vs rest on all of ``x_test``).
    """
    from tutorial_utils import data

    if name in GRADCON_RECIPES:
        return data.load_digits()
    recipe = ZOO_RECIPES[name]
    ds = data.load_digits() if recipe["data"] == "digits" else data.load_signs()
    if len(recipe["classes"]) < ds.num_classes:
        ds = ds.subset(recipe["classes"])
    return ds


_CHANNELS = {"digits": 1, "signs": 3}


def build(name: str, ds=None) -> nn.Module:
    """An untrained zoo architecture for ``name``, initialised from the recipe's seed(s).

    With ``ds`` the ``Normalize`` layer takes the training data's statistics; without it
    (when a checkpoint is about to be loaded, which carries them as buffers) placeholders are
    used, so loading never has to touch the data set. The global RNG is left untouched.
    A GradCon member gives an untrained :class:`~tutorial_utils.anomaly.GradCon`.
    """
    if not isinstance(name, str) or name not in MEMBERS:
        raise _unknown(name)
    if name in GRADCON_RECIPES:
        from tutorial_utils.anomaly import GradCon

        with torch.random.fork_rng(devices=[]):  # placeholder weights; the RNG is untouched
            return GradCon(widths=tuple(GRADCON_RECIPES[name]["widths"]))
    recipe = ZOO_RECIPES[name]
    channels = _CHANNELS[recipe["data"]]
    mean, std = (ds.mean, ds.std) if ds is not None else (None, None)

    def member(seed: int) -> SmallCNN:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return SmallCNN(channels, len(recipe["classes"]), tuple(recipe["widths"]),
                            mean=mean, std=std)

    if len(recipe["seeds"]) == 1:
        return member(recipe["seeds"][0])
    return Ensemble([member(s) for s in recipe["seeds"]])


def _unknown(name: object) -> ValueError:
    return ValueError(f"name must be a zoo model, got {name!r}; valid names: {', '.join(ZOO)}, "
                      f"gradcon-0 .. gradcon-9")


def _train_gradcon_member(name: str, progress: bool) -> tuple[nn.Module, dict]:
    """Train GradCon member ``name`` on its digit; info records the one-class AUROCs."""
    from tutorial_utils import anomaly, data

    recipe = GRADCON_RECIPES[name]
    ds = data.load_digits()
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
    """Train zoo model ``name`` from its recipe (deterministic); returns ``(model, info)``."""
    if name in GRADCON_RECIPES:
        return _train_gradcon_member(name, progress)
    if name not in ZOO_RECIPES:
        raise _unknown(name)
    recipe = ZOO_RECIPES[name]
    ds = zoo_dataset(name)
    model = build(name, ds)
    members = model.members if isinstance(model, Ensemble) else [model]
    start = time.perf_counter()
    for seed, member in zip(recipe["seeds"], members, strict=True):
        train_classifier(member, ds.x_train, ds.y_train, epochs=recipe["epochs"],
                         batch_size=recipe["batch_size"], lr=recipe["lr"],
                         max_shift=recipe["max_shift"], seed=seed, progress=progress,
                         desc=f"{name} (seed {seed})")
    model.eval()
    info = dict(recipe=recipe, test_accuracy=round(accuracy(model, ds.x_test, ds.y_test), 6),
                train_seconds=round(time.perf_counter() - start, 1),
                parameters=num_parameters(model))
    return model, info


def save_zoo_model(name: str, model: nn.Module, info: dict) -> Path:
    """Write ``data/<name>.pt`` and record its sha256, recipe and accuracy in the manifest."""
    path = data_dir() / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    manifest = read_manifest()
    manifest[name] = dict(file=path.name, sha256=sha256(path), **info)
    _manifest_path().write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load(name: str, device: torch.device | str | None = None, *,
         train_if_missing: bool = True) -> nn.Module:
    """Load zoo member ``name`` (one of :data:`MEMBERS`) in eval mode on ``device`` (default CPU).

    A classifier (:data:`ZOO`) comes back as its ``nn.Module``; ``"gradcon-d"`` as the
    :class:`~tutorial_utils.anomaly.GradCon` detector for normal digit ``d`` (autoencoder +
    reference gradients). The checkpoint's sha256 is verified against ``data/manifest.json``;
    a mismatch raises :class:`ChecksumError`, an unreadable manifest, an entry without a
    checksum or a checkpoint of another architecture :class:`CheckpointError`, each saying
    how to rebuild. A missing checkpoint or manifest entry is trained on the spot (with a
    progress bar) and recorded in ``data/`` (DESIGN §5); with ``train_if_missing=False`` it is
    a ``FileNotFoundError`` naming the rebuild command instead, and nothing is written. An
    existing checkpoint is never rewritten by ``load``.
    """
    if not isinstance(name, str) or name not in MEMBERS:
        raise _unknown(name)
    check_bool(train_if_missing, "train_if_missing")
    device = parse_device(device)
    path = data_dir() / f"{name}.pt"
    entry = read_manifest().get(name)
    if not path.exists() or entry is None:
        if not train_if_missing:
            what = "no checkpoint" if not path.exists() else "no manifest entry"
            raise FileNotFoundError(f"{what} for {name!r} ({path}); {REBUILD_HINT} {name} "
                                    f"(or models.load({name!r}, train_if_missing=True))")
        model, info = train_zoo_model(name)
        save_zoo_model(name, model, info)
    else:
        model = load_verified(build(name), path, entry, name)
    return model.to(device).eval()


def rebuild_zoo(names: tuple[str, ...] = MEMBERS, progress: bool = True) -> dict:
    """Retrain and save every zoo member in ``names`` deterministically; returns the manifest.

    Deterministic algorithms are switched on for the rebuild and restored afterwards."""
    with deterministic_algorithms():
        for name in names:
            _rebuild_one(name, progress)
    return read_manifest()


def _rebuild_one(name: str, progress: bool) -> None:
    model, info = train_zoo_model(name, progress=progress)
    save_zoo_model(name, model, info)
    if "test_auroc" in info:
        result = ", ".join(f"{k} {v:.4f}" for k, v in info["test_auroc"].items())
        print(f"{name}: one-class AUROC {result} ({info['train_seconds']:.0f} s, "
              f"{info['parameters']} parameters)")
    else:
        print(f"{name}: test accuracy {info['test_accuracy']:.4f} "
              f"({info['train_seconds']:.0f} s, {info['parameters']} parameters)")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild the course's model zoo in data/.")
    parser.add_argument("names", nargs="*", default=list(MEMBERS),
                        help=f"members to rebuild (default: all): any of {', '.join(MEMBERS)}, "
                             "or 'gradcon' (the ten detectors) / 'classifiers'")
    args = parser.parse_args(argv)
    names = [m for n in args.names for m in _ALIASES.get(n, (n,))]
    unknown = [n for n in names if n not in MEMBERS]
    if unknown:
        parser.error(f"unknown zoo model(s) {unknown}; valid names: {', '.join(MEMBERS)}, "
                     "gradcon, classifiers")
    rebuild_zoo(tuple(dict.fromkeys(names)))


if __name__ == "__main__":
    main()
