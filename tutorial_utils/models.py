"""The course's model zoo: small CNNs, one seeded training loop, checksummed checkpoints.

Every zoo classifier has the same anatomy (DESIGN §5)::

    features  -> last_conv (the CAM target layer, map >= 6x6) -> global average pool
              -> dropout -> fc (the single final nn.Linear, weights W of shape (K, D))

``model.penultimate(x)`` returns the pooled features ``h`` of shape ``(B, D)`` so that
``model.fc(h) == model(x)`` in eval mode.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (same padding) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),
    )


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the model's first layer.

    Keeping normalisation inside the model lets every course function work in one image
    space: pixels in ``[0, 1]``, the range that data loaders, challenges and plots use.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A small VGG-style classifier.

    Args:
        in_channels: 1 for digits, 3 for signs.
        num_classes: K, the number of outputs of ``fc``.
        widths: channels of the three stages; stages 1 and 2 end with 2x2 max pooling,
            stage 3 is ``last_conv`` and keeps the resolution (input / 4).
        dropout: dropout probability before ``fc``.
        mean, std: per-channel statistics of the training images (``Normalize`` layer).

    Input ``(B, in_channels, H, W)`` images with pixels in ``[0, 1]``; output logits ``(B, K)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int] = (16, 32, 64),
        dropout: float = 0.3,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.normalize = Normalize(mean or (0.5,) * in_channels, std or (0.25,) * in_channels)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, w1),
            nn.MaxPool2d(2),
            conv_bn_relu(w1, w2),
            conv_bn_relu(w2, w2),
            nn.MaxPool2d(2),
        )
        self.last_conv = nn.Sequential(conv_bn_relu(w2, w3), conv_bn_relu(w3, w3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w3, num_classes)

    @property
    def target_layer(self) -> nn.Module:
        """The default layer for CAM methods: the last convolutional block."""
        return self.last_conv

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``h`` of shape ``(B, D)``, before dropout and ``fc``."""
        return self.pool(self.last_conv(self.features(self.normalize(x)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.penultimate(x)))


class Ensemble(nn.Module):
    """Deep ensemble (Lakshminarayanan et al. 2017) of classifiers with the same classes.

    ``forward`` returns ``log(mean_m softmax(z_m))`` of shape ``(B, K)``, so that
    ``softmax(forward(x))`` is the ensemble's predictive distribution; the members'
    own logits are ``member_logits(x)`` of shape ``(M, B, K)``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("members must hold at least one model")
        self.members = nn.ModuleList(members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = self.member_logits(x).log_softmax(dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


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
    of up to ``max_shift`` px) and dropout by ``seed``. Shows a ``tqdm.auto`` progress bar.
    """
    from tqdm.auto import tqdm

    device = x.device
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    history = []
    model.train()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
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
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def num_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    return (predict_logits(model, x).argmax(1) == y.to(x.device)).float().mean().item()


# --------------------------------------------------------------------------------------
# The zoo: recipes, checkpoints with sha256, load / rebuild
# --------------------------------------------------------------------------------------

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


class ChecksumError(RuntimeError):
    """A checkpoint's sha256 does not match the manifest."""


def data_dir() -> Path:
    """The folder holding the checkpoints and ``manifest.json`` (``<repo>/data``)."""
    return Path(__file__).resolve().parents[1] / "data"


def _manifest_path() -> Path:
    return data_dir() / "manifest.json"


def read_manifest() -> dict:
    path = _manifest_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zoo_dataset(name: str):
    """The data set a zoo model is trained and tested on (restricted to its classes)."""
    from tutorial_utils import data

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
    """
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


def train_zoo_model(name: str, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train zoo model ``name`` from its recipe (deterministic); returns ``(model, info)``."""
    if name not in ZOO_RECIPES:
        raise ValueError(f"unknown zoo model {name!r}; valid names: {', '.join(ZOO)}")
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
    manifest[name] = dict(file=path.name, sha256=_sha256(path), **info)
    _manifest_path().write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def load(name: str, device: torch.device | str | None = None, *,
         train_if_missing: bool = True) -> nn.Module:
    """Load zoo model ``name`` (one of :data:`ZOO`) in eval mode on ``device`` (default CPU).

    The checkpoint's sha256 is verified against ``data/manifest.json``; a mismatch raises
    :class:`ChecksumError` saying how to rebuild. A missing checkpoint is trained on the spot
    (with a progress bar) and recorded, unless ``train_if_missing=False``.
    """
    if name not in ZOO_RECIPES:
        raise ValueError(f"unknown zoo model {name!r}; valid names: {', '.join(ZOO)}")
    path = data_dir() / f"{name}.pt"
    entry = read_manifest().get(name)
    if not path.exists() or entry is None:
        if not train_if_missing:
            raise FileNotFoundError(f"no checkpoint for {name!r} at {path}; {_REBUILD_HINT}")
        model, info = train_zoo_model(name)
        save_zoo_model(name, model, info)
    else:
        digest = _sha256(path)
        if digest != entry["sha256"]:
            raise ChecksumError(
                f"checkpoint {path} has sha256 {digest[:12]}… but the manifest records "
                f"{entry['sha256'][:12]}…; the file is corrupted or stale. {_REBUILD_HINT} "
                f"(or: python -m tutorial_utils.models {name})"
            )
        model = build(name)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device or "cpu").eval()


_REBUILD_HINT = "Rebuild the zoo with: python -m tutorial_utils.models"


def rebuild_zoo(names: tuple[str, ...] = ZOO, progress: bool = True) -> dict:
    """Retrain and save every zoo model in ``names`` deterministically; returns the manifest."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    for name in names:
        model, info = train_zoo_model(name, progress=progress)
        save_zoo_model(name, model, info)
        print(f"{name}: test accuracy {info['test_accuracy']:.4f} "
              f"({info['train_seconds']:.0f} s, {info['parameters']} parameters)")
    return read_manifest()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild the course's model zoo in data/.")
    parser.add_argument("names", nargs="*", default=list(ZOO), help=f"subset of {ZOO}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ZOO_RECIPES]
    if unknown:
        parser.error(f"unknown zoo model(s) {unknown}; valid names: {', '.join(ZOO)}")
    rebuild_zoo(tuple(args.names))


if __name__ == "__main__":
    main()
