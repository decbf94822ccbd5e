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

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SIGN_SIZE", "SIGN_CLASSES", "render_templates", "render_signs", "generate_signs"]

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


def generate_signs(seed: int, n_train: int, n_test: int) -> dict[str, torch.Tensor]:
    """The whole data set as uint8 tensors: ``x_train``, ``y_train``, ``x_test``, ``y_test``.

    Labels are sorted by class; train scenes use ``seed``, test scenes ``seed + 1_000_003``.
    """
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
