"""The checkpointed model zoo: recipes, files, the manifest, checksums and verified loading.

What the zoo *stores* lives here; what *runs* it — the training loop, training a member from
its recipe, :func:`tutorial_utils.models.load` (the front door every notebook uses) and the
rebuild command — lives in :mod:`tutorial_utils.models`, which imports this module. Rebuild
the checkpoints with::

    python -m tutorial_utils.models                 # every member
    python -m tutorial_utils.models signs digits    # some of them
    python -m tutorial_utils.models gradcon         # the ten GradCon detectors

=====================  ==========================================================================
name                   what it is
=====================  ==========================================================================
ZOO_RECIPES, ZOO       the classifiers ``digits``, ``digits05``, ``signs``, ``signs-ensemble``
                       (small CNNs) and ``signs-vit`` (a small vision transformer)
GRADCON_RECIPES        the GradCon anomaly detectors ``gradcon-0`` .. ``gradcon-9`` (one
                       autoencoder per normal digit, :mod:`tutorial_utils.anomaly`)
MEMBERS                every zoo member: the classifiers, then the detectors
data_dir               the folder holding the checkpoints and ``manifest.json`` (``<repo>/data``)
read_manifest          ``manifest.json`` as ``{name: entry}`` (file, sha256, recipe, results)
zoo_dataset            the data set a member is trained and tested on
build                  an untrained member's architecture, initialised from its recipe's seed
load_checkpoint        a member's checkpoint, sha256 verified against the manifest
save_checkpoint        write a member's checkpoint and record it in the manifest
=====================  ==========================================================================

Every failure names the file and the command that rebuilds it: :class:`ChecksumError` for a
checkpoint whose sha256 does not match the manifest, :class:`CheckpointError` for an
unreadable manifest, an entry without a checksum or a checkpoint of another architecture.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from tutorial_utils import data
from tutorial_utils.anomaly import GradCon
from tutorial_utils.architectures import Ensemble, SignViT, SmallCNN

__all__ = [
    "ZOO_RECIPES",
    "ZOO",
    "GRADCON_RECIPES",
    "GRADCON_ZOO",
    "MEMBERS",
    "ALIASES",
    "REBUILD_HINT",
    "CheckpointError",
    "ChecksumError",
    "data_dir",
    "manifest_path",
    "read_manifest",
    "sha256",
    "zoo_dataset",
    "build",
    "check_name",
    "load_checkpoint",
    "missing_reason",
    "save_checkpoint",
]


# --------------------------------------------------------------------------------------
# Recipes
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
    "signs-vit": dict(data="signs", classes=list(range(14)), architecture="vit", patch_size=8,
                      dim=96, depth=4, heads=4, mlp_ratio=2.0, epochs=30, batch_size=64, lr=1e-3,
                      weight_decay=0.05, max_shift=3.0, seeds=[0]),
}
"""How each classifier is trained (recorded in the manifest next to its test accuracy).

A recipe without ``architecture`` is a :class:`~tutorial_utils.architectures.SmallCNN` of the
given ``widths`` (an :class:`~tutorial_utils.architectures.Ensemble` for several seeds);
``architecture="vit"`` is a :class:`~tutorial_utils.architectures.SignViT` with the recipe's
``patch_size, dim, depth, heads, mlp_ratio``. ``weight_decay`` defaults to
:func:`~tutorial_utils.models.train_classifier`'s."""

_VIT_KEYS = ("patch_size", "dim", "depth", "heads", "mlp_ratio")

ZOO: tuple[str, ...] = tuple(ZOO_RECIPES)
"""The zoo's classifiers."""

GRADCON_RECIPES: dict[str, dict] = {
    f"gradcon-{d}": dict(data="digits", normal_class=d, widths=[16, 16, 32, 32], epochs=100,
                         batch_size=32, lr=3e-3, alpha=0.03, beta=0.12, seed=0)
    for d in range(10)
}
"""GradCon detectors: trained on one digit's training images (``anomaly.train_gradcon``),
evaluated one class vs rest on the whole digits test set."""

GRADCON_ZOO: tuple[str, ...] = tuple(GRADCON_RECIPES)
"""The GradCon detectors ``gradcon-0`` .. ``gradcon-9``."""

MEMBERS: tuple[str, ...] = ZOO + GRADCON_ZOO
"""Every zoo member: the classifiers, then the GradCon detectors."""

ALIASES: dict[str, tuple[str, ...]] = {"gradcon": GRADCON_ZOO, "classifiers": ZOO}
"""Names the rebuild command accepts for a group of members."""

_CHANNELS = {"digits": 1, "signs": 3}


# --------------------------------------------------------------------------------------
# Files: paths, manifest, checksums
# --------------------------------------------------------------------------------------


REBUILD_HINT = "Rebuild with: python -m tutorial_utils.models"


class CheckpointError(RuntimeError):
    """A checkpoint or its manifest entry is unusable (the message says how to rebuild it)."""


class ChecksumError(CheckpointError):
    """A checkpoint's sha256 does not match the manifest."""


def data_dir() -> Path:
    """The folder holding the checkpoints and ``manifest.json`` (``<repo>/data``)."""
    return Path(__file__).resolve().parents[1] / "data"


def manifest_path() -> Path:
    """``data_dir() / "manifest.json"``."""
    return data_dir() / "manifest.json"


def sha256(path: Path) -> str:
    """Hex sha256 digest of the file at ``path``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest() -> dict:
    """``data/manifest.json`` as ``{name: entry}`` (``{}`` when there is none).

    :class:`CheckpointError`, naming the rebuild command, when it is not valid JSON or not a
    mapping of entries.
    """
    path = manifest_path()
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"manifest {path} is not valid JSON ({error}); restore it with "
                              f"git checkout data/manifest.json. {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise CheckpointError(f"manifest {path} must map each zoo name to an entry "
                              f"{{file, sha256, ...}}. {REBUILD_HINT}")
    return manifest


# --------------------------------------------------------------------------------------
# Members: data sets and architectures
# --------------------------------------------------------------------------------------


def check_name(name: object) -> str:
    """``name`` if it is a zoo member; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in MEMBERS:
        raise ValueError(f"name must be a zoo model, got {name!r}; valid names: "
                         f"{', '.join(ZOO)}, gradcon-0 .. gradcon-9")
    return name


def zoo_dataset(name: str) -> data.ImageDataset:
    """The data set a zoo model is trained and tested on (restricted to its classes).

    A GradCon member gets the whole digits set (it trains on ``x_train`` of its normal
    digit and is tested one class vs rest on all of ``x_test``).
    """
    check_name(name)
    if name in GRADCON_RECIPES:
        return data.load_digits()
    recipe = ZOO_RECIPES[name]
    ds = data.load_digits() if recipe["data"] == "digits" else data.load_signs()
    if len(recipe["classes"]) < ds.num_classes:
        ds = ds.subset(recipe["classes"])
    return ds


def build(name: str, ds: data.ImageDataset | None = None) -> nn.Module:
    """An untrained zoo architecture for ``name``, initialised from the recipe's seed(s).

    With ``ds`` the ``Normalize`` layer takes the training data's statistics; without it
    (when a checkpoint is about to be loaded, which carries them as buffers) placeholders are
    used, so loading never has to touch the data set. The global RNG is left untouched.
    A GradCon member gives an untrained :class:`~tutorial_utils.anomaly.GradCon`.
    """
    check_name(name)
    if name in GRADCON_RECIPES:
        with torch.random.fork_rng(devices=[]):  # placeholder weights; the RNG is untouched
            return GradCon(widths=tuple(GRADCON_RECIPES[name]["widths"]))
    recipe = ZOO_RECIPES[name]
    channels = _CHANNELS[recipe["data"]]
    mean, std = (ds.mean, ds.std) if ds is not None else (None, None)

    def member(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if recipe.get("architecture") == "vit":
                return SignViT(channels, len(recipe["classes"]),
                               **{k: recipe[k] for k in _VIT_KEYS}, mean=mean, std=std)
            return SmallCNN(channels, len(recipe["classes"]), tuple(recipe["widths"]),
                            mean=mean, std=std)

    if len(recipe["seeds"]) == 1:
        return member(recipe["seeds"][0])
    return Ensemble([member(s) for s in recipe["seeds"]])


# --------------------------------------------------------------------------------------
# Checkpoints: verified loading and saving
# --------------------------------------------------------------------------------------


def load_checkpoint(name: str) -> nn.Module | None:
    """Member ``name`` from its checkpoint, sha256 verified, on the CPU in eval mode; ``None``
    when the checkpoint file or its manifest entry is missing.

    :class:`ChecksumError` on a checksum mismatch; :class:`CheckpointError` for an entry
    without a checksum or a file that is not a checkpoint of the member's architecture. Both
    name the rebuild command.
    """
    check_name(name)
    path = data_dir() / f"{name}.pt"
    entry = read_manifest().get(name)
    if not path.exists() or entry is None:
        return None
    hint = f"{REBUILD_HINT} {name}"
    expected = entry.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise CheckpointError(f"the manifest entry of {name!r} has no valid sha256, so the "
                              f"checkpoint cannot be verified; {hint}")
    digest = sha256(path)
    if digest != expected:
        raise ChecksumError(f"checkpoint {path} has sha256 {digest[:12]}… but the manifest "
                            f"records {expected[:12]}…; the file is corrupted or stale. {hint}")
    model = build(name)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # noqa: BLE001 - unpickling and shape errors alike
        first = str(error).strip().splitlines()[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit the architecture of {name!r} "
                              f"({type(error).__name__}: {first}); {hint}") from None
    return model.eval()


def missing_reason(name: str) -> str:
    """What is missing of member ``name``: ``"no checkpoint"`` or ``"no manifest entry"``."""
    return "no checkpoint" if not (data_dir() / f"{name}.pt").exists() else "no manifest entry"


def save_checkpoint(name: str, model: nn.Module, info: dict) -> Path:
    """Write ``data/<name>.pt`` and record its sha256 and ``info`` (recipe, results) in the
    manifest; returns the checkpoint's path."""
    check_name(name)
    path = data_dir() / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    manifest = read_manifest()
    manifest[name] = dict(file=path.name, sha256=sha256(path), **info)
    manifest_path().write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
