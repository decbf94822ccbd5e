"""Checkpoint files of the model zoo: the manifest, checksums and verified loading.

Private helpers of :mod:`tutorial_utils.models` (which owns the paths and the recipes). Every
failure names the file and the command that rebuilds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

REBUILD_HINT = "Rebuild with: python -m tutorial_utils.models"


class CheckpointError(RuntimeError):
    """A checkpoint or its manifest entry is unusable (the message says how to rebuild it)."""


class ChecksumError(CheckpointError):
    """A checkpoint's sha256 does not match the manifest."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest_file(path: Path) -> dict:
    """The manifest at ``path`` as ``{name: entry}`` (``{}`` when the file does not exist);
    :class:`CheckpointError` when it is not valid JSON or not a mapping of entries."""
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


def load_verified(model: nn.Module, path: Path, entry: dict, name: str) -> nn.Module:
    """Load ``path`` into ``model`` after checking its sha256 against the manifest ``entry``.

    :class:`ChecksumError` on a mismatch; :class:`CheckpointError` for an entry without a
    checksum or a file that is not a checkpoint of ``model``'s architecture.
    """
    hint = f"{REBUILD_HINT} {name}"
    expected = entry.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise CheckpointError(f"the manifest entry of {name!r} has no valid sha256, so the "
                              f"checkpoint cannot be verified; {hint}")
    digest = sha256(path)
    if digest != expected:
        raise ChecksumError(f"checkpoint {path} has sha256 {digest[:12]}… but the manifest "
                            f"records {expected[:12]}…; the file is corrupted or stale. {hint}")
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # noqa: BLE001 - unpickling and shape errors alike
        first = str(error).strip().splitlines()[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit the architecture of {name!r} "
                              f"({type(error).__name__}: {first}); {hint}") from None
    return model


def parse_device(device: object) -> torch.device:
    """``device`` (``None`` = CPU) as a ``torch.device``; ``ValueError`` naming it otherwise."""
    try:
        return torch.device(device or "cpu")
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch.device or a name like 'cpu' or 'cuda', got "
                         f"{device!r}") from None


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` inside the block only."""
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
