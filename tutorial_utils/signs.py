"""The generated traffic signs: 14 CURE-TSR-like classes drawn and placed in random scenes.

Each class is drawn once as an RGBA template with matplotlib's Agg renderer (no display, no
font download); :func:`render_signs` then places templates in random scenes — background,
scale, rotation, position, lighting, colour cast and sensor noise — all batched and
deterministic for a seed. The classes differ by parts a contrastive explanation can point at
(no left vs no right: the arrow's direction only; no stopping vs no parking: one bar).

Because the scene is drawn independently of the class, the same scene can be re-rendered with
another sign (:func:`render_signs` with other labels and the same seed): a *counterfactual*
image whose difference to the original is exactly the part that tells the two classes apart.

Data sets built from these scenes (with caching) come from :func:`tutorial_utils.data.load_signs`.

References
----------
- D. Temel, G. Kwon, M. Prabhushankar, G. AlRegib, "CURE-TSR: challenging unreal and real
  environments for traffic sign recognition", NeurIPS Workshop on Machine Learning for
  Intelligent Transportation Systems, 2017.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from tutorial_utils._checks import check_classes, check_positive_int, check_seed

__all__ = [
    "SIGN_SIZE",
    "SIGN_CLASSES",
    "render_templates",
    "render_signs",
    "generate_signs",
    "TEST_SEED_OFFSET",
    "counterfactual_scenes",
    "sign_masks",
]

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


_RED, _BLUE, _WHITE, _BLACK = "#c8102e", "#1f4fa3", "#ffffff", "#111111"
TEST_SEED_OFFSET = 1_000_003
"""Test scenes are rendered with ``seed + TEST_SEED_OFFSET`` (train scenes with ``seed``)."""

DIFFERENCE_THRESHOLD = 0.1
"""A pixel belongs to the difference region when some channel differs by more than this."""

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
    from matplotlib.patches import Circle, Ellipse, FancyArrow, Polygon, Rectangle, RegularPolygon

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
    # near-OOD signs built from familiar parts, never trained on (data.NEAR_OOD_SIGNS)
    elif name == "ring 80":  # the speed-limit ring with a number no class uses
        _prohibitory(ax)
        ax.text(0, -0.03, "80", color=_BLACK, fontsize=30, **text)
    elif name == "blue ahead":  # a blue disc (as bicycle) with an arrow no class uses
        ax.add_patch(Circle((0, 0), 0.96, color=_BLUE))
        ax.add_patch(FancyArrow(0, -0.55, 0, 1.05, width=0.2, head_width=0.5, head_length=0.35,
                                length_includes_head=True, color=_WHITE))
    elif name == "green stop":  # a known sign (stop) in the wrong colour
        ax.add_patch(RegularPolygon((0, 0), 8, radius=1.0, orientation=math.pi / 8, color=_WHITE))
        ax.add_patch(RegularPolygon((0, 0), 8, radius=0.9, orientation=math.pi / 8, color=_GREEN))
        ax.text(0, -0.02, "STOP", color=_WHITE, fontsize=17, **text)
    else:  # pragma: no cover - guarded by callers
        raise ValueError(f"names: unknown sign {name!r}; valid names: {', '.join(SIGN_CLASSES)}")


def render_templates(names: tuple[str, ...] = SIGN_CLASSES, size: int = 64) -> torch.Tensor:
    """Draw each sign on a transparent canvas: RGBA tensor ``(len(names), 4, size, size)``.

    The sign fills the square ``[-1, 1]^2``; channel 3 is its opacity. Drawn with
    matplotlib's Agg renderer (no display, no font download: DejaVu ships with matplotlib).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = check_positive_int(size, "size")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"names must be a sequence of sign names, got {names!r}")
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


def _scene_draws(n: int, size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every random number of ``n`` scenes, drawn in the renderer's fixed order.

    Pose (scale, rotation, shift), background (coarse colours, grain), lighting (gain, colour
    cast, offset) and sensor noise. None depends on the class, so replaying the draws renders
    the same scene with any sign, and a subset of scenes can be rendered alone.
    """
    return {
        "scale": torch.empty(n).uniform_(0.62, 0.92, generator=gen),
        "angle": torch.empty(n).uniform_(-15, 15, generator=gen) * math.pi / 180,
        "shift": torch.empty(n, 2).uniform_(-0.14, 0.14, generator=gen),
        "coarse": torch.rand(n, 3, 4, 4, generator=gen) * 0.8 + 0.1,
        "grain": torch.randn(n, 1, size, size, generator=gen),
        "gain": torch.empty(n, 1, 1, 1).uniform_(0.55, 1.15, generator=gen),
        "cast": 1 + torch.empty(n, 3, 1, 1).uniform_(-0.08, 0.08, generator=gen),
        "offset": torch.empty(n, 1, 1, 1).uniform_(-0.05, 0.08, generator=gen),
        "noise": torch.randn(n, 3, size, size, generator=gen) * 0.015,
    }


def _backgrounds(d: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Smooth random colour fields with fine texture: ``(n, 3, size, size)`` in [0, 1]."""
    coarse = 0.45 * d["coarse"] + 0.55 * d["coarse"].mean(dim=1, keepdim=True)  # muted colours
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grain = F.avg_pool2d(d["grain"], 3, 1, 1) * 0.08
    return (field + grain).clamp(0, 1)


def _place(templates: torch.Tensor, d: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Warp RGBA templates ``(n, 4, s, s)`` to their poses: scale, rotation, shift."""
    scale, angle, shift = d["scale"], d["angle"], d["shift"]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # output coords -> template coords: R(-angle) (p - shift) / scale
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * shift[:, 0] + sin * shift[:, 1])], dim=1),
        torch.stack([-sin, cos, -(-sin * shift[:, 0] + cos * shift[:, 1])], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, (len(templates), 4, size, size), align_corners=False)
    return F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def render_signs(labels: torch.Tensor, templates: torch.Tensor, seed: int,
                 size: int = SIGN_SIZE, index: torch.Tensor | None = None,
                 signs: torch.Tensor | None = None, alpha_only: bool = False) -> torch.Tensor:
    """Render one scene per label: ``(N, 3, size, size)`` float32 in [0, 1], deterministic.

    With ``index`` (M,) only those scenes are rendered, ``(M, 3, size, size)`` (repeats
    allowed): the random draws of all N scenes are replayed (cheap), the images computed for M
    of them only. ``signs`` (M,) then draws another class into each of those scenes (the
    counterfactual); by default scene ``i`` shows ``labels[i]``. ``alpha_only=True`` returns
    the sign's opacity ``(·, size, size)`` in [0, 1] instead: where the sign is in the scene.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a (N,) tensor of class indices, got "
                        f"{type(labels).__name__}")
    labels = check_classes(labels, labels.numel(), len(templates), "labels")
    size = check_positive_int(size, "size")
    gen = torch.Generator().manual_seed(check_seed(seed))
    if index is not None:
        signs = labels[index] if signs is None else signs
    chunks, positions = [], []
    for start in range(0, len(labels), 2048):
        d = _scene_draws(len(labels[start:start + 2048]), size, gen)
        keep = torch.arange(len(d["scale"]))
        drawn = labels[start:start + 2048]
        if index is not None:
            inside = (index >= start) & (index < start + len(keep))
            keep, positions = index[inside] - start, positions + [inside.nonzero().flatten()]
            drawn = signs[inside]
        d = {k: v[keep] for k, v in d.items()}
        sign = _place(templates[drawn], d, size)
        if alpha_only:
            chunks.append(sign[:, 3])
            continue
        rgb, alpha = sign[:, :3], sign[:, 3:4]
        scene = alpha * rgb + (1 - alpha) * _backgrounds(d, size)
        chunks.append((scene * d["gain"] * d["cast"] + d["offset"] + d["noise"]).clamp(0, 1))
    out = torch.cat(chunks)
    if index is None:
        return out
    ordered = torch.empty_like(out)
    ordered[torch.cat(positions)] = out
    return ordered


def generate_signs(seed: int, n_train: int, n_test: int) -> dict[str, torch.Tensor]:
    """The whole data set as uint8 tensors: ``x_train``, ``y_train``, ``x_test``, ``y_test``.

    Labels are sorted by class; train scenes use ``seed``, test scenes ``seed + TEST_SEED_OFFSET``.
    """
    n_train, n_test = check_positive_int(n_train, "n_train"), check_positive_int(n_test, "n_test")
    seed = check_seed(seed)
    templates = render_templates(SIGN_CLASSES)
    k = len(SIGN_CLASSES)
    y_train = torch.arange(k).repeat_interleave(n_train)
    y_test = torch.arange(k).repeat_interleave(n_test)
    to_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731
    return {
        "x_train": to_u8(render_signs(y_train, templates, seed)),
        "y_train": y_train,
        "x_test": to_u8(render_signs(y_test, templates, seed + TEST_SEED_OFFSET)),
        "y_test": y_test,
    }


@functools.lru_cache(maxsize=1)
def _templates() -> torch.Tensor:
    """The 14 class templates, drawn once per process (about 0.3 s)."""
    return render_templates(SIGN_CLASSES)


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def counterfactual_scenes(labels: torch.Tensor, seed: int, index: torch.Tensor,
                          contrast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scenes ``index`` of a rendered set, re-rendered with sign ``contrast`` instead.

    Args:
        labels: (N,) the labels the whole set was rendered with (e.g. ``ds.y_test``).
        seed: the seed it was rendered with (``seed + TEST_SEED_OFFSET`` for a test split).
        index: (M,) scenes to change (repeats allowed), or one int; contrast: (M,) the class
            drawn into each instead, or one class for all.

    Background, pose, lighting, colour cast and noise are drawn independently of the class, so
    the counterfactual differs from the original only where the two signs differ. Returns
    ``(images (M, 3, H, W), regions (M, H, W) bool)``: the counterfactual images, quantised to
    8 bits like the data set, and the **difference region** — pixels where some channel moves
    by more than :data:`DIFFERENCE_THRESHOLD` — the ground truth of "what tells P from Q here".
    Only the M scenes are rendered (the random draws of the whole set are replayed).
    """
    index = _scene_index(index, labels)
    contrast = check_classes(contrast, len(index), len(SIGN_CLASSES), "contrast")
    templates = _templates()
    both = render_signs(labels, templates, seed, index=torch.cat([index, index]),
                        signs=torch.cat([labels[index], contrast]))
    x, x_cf = (_to_u8(both).float() / 255.0).chunk(2)
    return x_cf, (x_cf - x).abs().amax(dim=1) > DIFFERENCE_THRESHOLD


def sign_masks(labels: torch.Tensor, seed: int, index: torch.Tensor) -> torch.Tensor:
    """Where the sign is in scenes ``index`` of a rendered set: (M, H, W) bool (opacity > ½)."""
    index = _scene_index(index, labels)
    return render_signs(labels, _templates(), seed, index=index, alpha_only=True) > 0.5


def _scene_index(index: object, labels: torch.Tensor) -> torch.Tensor:
    """(M,) long scene indices in ``[0, N)`` from an int or a 1-d sequence / tensor."""
    return check_classes(index, None, len(labels), "index", what="index")
