"""Every interactive explorer of the course (ipywidgets), one function per widget.

Each explorer only wires controls to pure, separately tested functions — the data from a concept
module, the figure from :mod:`tutorial_utils.plotting` — and redraws when a control changes.
Every explorer returns an ``ipywidgets.VBox`` whose controls are attributes, so tests (and
learners) can drive it without a browser. ``ipywidgets`` is imported in this module only.

==================  ===========================  ======================================
explorer            controls                     draws
==================  ===========================  ======================================
challenge_explorer  challenge type, level        ``robustness.challenge_view``
contrast_explorer   sample, contrast class Q     ``contrast.contrast_state`` (all Q)
level_explorer      challenge level              ``introspection.level_view``
==================  ===========================  ======================================
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from torch import nn

from tutorial_utils._checks import check_images
from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, check_challenge
from tutorial_utils.contrast import contrast_panel, contrast_state
from tutorial_utils.introspection import level_view
from tutorial_utils.plotting.contrast import ContrastPanelFigure
from tutorial_utils.plotting.introspection import plot_level_view
from tutorial_utils.plotting.robustness import plot_challenge_view
from tutorial_utils.plotting.style import to_png
from tutorial_utils.robustness import ChallengeCache, challenge_view

__all__ = ["challenge_explorer", "contrast_explorer", "level_explorer"]


def challenge_explorer(cache: ChallengeCache, index: int = 0, kind: str = "snow",
                       level: int = 3, top_k: int = 3):
    """An ipywidgets explorer: a challenge-type dropdown and a level slider (0–5).

    Every change calls :func:`challenge_view` and :func:`plot_challenge_view` and redraws the
    figure in an ``Output`` widget. Returns a ``VBox``; ``box.controls`` holds the
    ``kind`` / ``level`` widgets, ``box.state`` the last view and figure, ``box.update()``
    redraws by hand (what the tests drive).
    """
    check_challenge(kind, level)
    kind_w = widgets.Dropdown(options=list(CHALLENGES), value=kind, description="challenge")
    level_w = widgets.IntSlider(value=level, min=0, max=MAX_LEVEL, step=1, description="level",
                                continuous_update=False)
    out = widgets.Output()
    state: dict = {"view": None, "figure": None, "calls": 0}

    def update(*_):
        view = challenge_view(cache, kind_w.value, level_w.value, index=index, top_k=top_k)
        fig = plot_challenge_view(view)
        out.clear_output(wait=True)
        with out:
            display(fig)
        plt.close(fig)
        state.update(view=view, figure=fig, calls=state["calls"] + 1)
        return view

    kind_w.observe(update, names="value")
    level_w.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([kind_w, level_w]), out])
    box.controls = {"kind": kind_w, "level": level_w}
    box.state = state
    box.update = update
    return box


def contrast_explorer(model: nn.Module, images: torch.Tensor, class_names: Sequence[str],
                      labels: Sequence[str] | None = None, rep_images: torch.Tensor | None = None,
                      layer: nn.Module | None = None):
    """Widget: a sample picker and a contrast-class dropdown over Grad-CAM, CounterfactualCAM
    and ContrastCAM ("why P, rather than Q?"; Q = P gives "why not P with 100% confidence?").

    Picking a sample recomputes all maps (one forward + one batched backward); picking a
    contrast class only redraws. Returns an ``ipywidgets.VBox`` with attributes ``sample``,
    ``contrast`` (the two dropdowns), ``image`` (the ``ipywidgets.Image``) and ``info``.
    """
    check_images(images)
    labels = list(labels) if labels is not None else [f"sample {i}" for i in range(len(images))]
    if len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
    pf = ContrastPanelFigure(class_names)
    sample = widgets.Dropdown(options=[(t, i) for i, t in enumerate(labels)], value=0,
                              description="sample")
    contrast = widgets.Dropdown(options=[(n, i) for i, n in enumerate(class_names)],
                                description="Q =")
    image = widgets.Image(format="png")
    info = widgets.HTML()
    box = widgets.VBox([widgets.HBox([sample, contrast]), image, info])
    cache: dict = {}

    def redraw_contrast(_change=None) -> None:
        panel = contrast_panel(cache["state"], contrast.value, class_names, rep_images)
        pf.set_contrast(panel)
        image.value = pf.png()
        info.value = f"<code>{panel['text']}</code>"

    def pick_sample(_change=None) -> None:
        cache["state"] = contrast_state(model, images[sample.value:sample.value + 1], layer)
        pf.set_sample(cache["state"])
        redraw_contrast()

    pick_sample()
    sample.observe(pick_sample, names="value")
    contrast.observe(redraw_contrast, names="value")
    box.sample, box.contrast, box.image, box.info = sample, contrast, image, info
    box.figure = pf.fig
    return box


def level_explorer(results, heads: Sequence[str] = ("feed-forward", "introspective")):
    """Widget: a level slider 0..5 redrawing :func:`plot_level_view`. Returns an
    ``ipywidgets.VBox`` with attributes ``level`` (the slider), ``image`` and ``table``."""
    slider = widgets.IntSlider(value=0, min=0, max=max(results.levels), step=1,
                               description="level", continuous_update=False)
    image = widgets.Image(format="png")
    table = widgets.HTML()
    fig = plt.figure(figsize=(12, 3.6), dpi=72, layout="constrained")
    plt.close(fig)

    def redraw(_change=None) -> None:
        plot_level_view(results, slider.value, heads, fig=fig)
        image.value = to_png(fig)
        table.value = level_view(results, slider.value, heads).loc[["all"]].to_html(
            float_format=lambda v: f"{v:.3f}")

    redraw()
    slider.observe(redraw, names="value")
    box = widgets.VBox([slider, image, table])
    box.level, box.image, box.table = slider, image, table
    return box
