"""Every interactive explorer of the course (ipywidgets), one function per widget.

Each explorer only wires controls to pure, separately tested functions — the data from a concept
module, the figure from :mod:`tutorial_utils.plotting` — and redraws a PNG when a control
changes. All of them are an :class:`Explorer`: a ``VBox`` of controls, the picture and a line of
text, with ``explorer.controls`` (name → widget) so tests and learners can drive it without a
browser, ``explorer.update()`` to redraw by hand and ``explorer.state`` (the last data shown,
the number of redraws and their durations in seconds). ``ipywidgets`` is imported in this module
only.

A saved notebook cannot run Python: in JupyterLab the widget comes alive once the cells above
it have run. Until then every explorer's saved output carries a PNG snapshot of its last view
and a one-line note (see :meth:`Explorer._repr_mimebundle_`), never a raw ``VBox(...)``.

==================  ===========================  ======================================
explorer            controls                     draws
==================  ===========================  ======================================
challenge_explorer  challenge type, level        ``robustness.challenge_view``
contrast_explorer   sample, contrast class Q     ``contrast.contrast_state`` (all Q)
level_explorer      challenge level              ``introspection.level_view``
==================  ===========================  ======================================
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import nn

from tutorial_utils._checks import check_images
from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, check_challenge
from tutorial_utils.contrast import contrast_panel, contrast_state
from tutorial_utils.introspection import level_view
from tutorial_utils.plotting.contrast import ContrastPanelFigure
from tutorial_utils.plotting.introspection import plot_level_view
from tutorial_utils.plotting.robustness import ChallengeViewFigure
from tutorial_utils.plotting.style import to_png
from tutorial_utils.robustness import ChallengeCache, challenge_view

__all__ = ["Explorer", "challenge_explorer", "contrast_explorer", "level_explorer"]

WIDGET_DPI = 64  # widget pictures: small enough to encode fast, sharp enough on screen
NOTE = ("Interactive explorer: it comes alive once the cells above have run (Run > Run All "
        "Cells). The picture is a snapshot of its last view.")

Render = Callable[..., tuple[bytes, str, object]]


class Explorer(widgets.VBox):
    """Controls, a picture and a line of text, redrawn by ``render(**values)`` on every change.

    ``render`` receives the current value of every control by name and returns
    ``(png bytes, html text, data)``; ``data`` is kept in ``state["last"]``.
    """

    def __init__(self, controls: Mapping[str, widgets.Widget], render: Render) -> None:
        self.controls = dict(controls)
        self.image = widgets.Image(format="png")
        self.info = widgets.HTML()
        self.state: dict = {"last": None, "calls": 0, "seconds": []}
        self._render = render
        super().__init__([widgets.HBox(list(self.controls.values())), self.image, self.info])
        for control in self.controls.values():
            control.observe(self.update, names="value")
        self.update()

    def update(self, _change: object = None) -> object:
        """Redraw for the controls' current values; returns the data shown."""
        start = time.perf_counter()
        png, text, data = self._render(**{k: w.value for k, w in self.controls.items()})
        self.image.value, self.info.value = png, text
        self.state["seconds"].append(time.perf_counter() - start)
        self.state.update(last=data, calls=self.state["calls"] + 1)
        return data

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The widget view plus, for readers whose front end has no kernel yet, a PNG snapshot
        and a plain-text note (JupyterLab shows them instead of ``VBox(...)``)."""
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = NOTE
        if self.image.value:
            data["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        return data


def _slider(value: int, high: int, description: str = "level") -> widgets.IntSlider:
    return widgets.IntSlider(value=value, min=0, max=high, step=1, description=description,
                             continuous_update=False)


def challenge_explorer(cache: ChallengeCache, index: int = 0, kind: str = "snow",
                       level: int = 3, top_k: int = 3) -> Explorer:
    """A challenge-type dropdown and a level slider (0–5) over one test image of ``cache``:
    the image, its top-k probabilities, and the test set's accuracy and mean confidence at every
    level (:func:`~tutorial_utils.robustness.challenge_view`). Controls: ``kind``, ``level``."""
    check_challenge(kind, level)
    figure = ChallengeViewFigure(challenge_view(cache, kind, level, index=index, top_k=top_k),
                                 dpi=WIDGET_DPI)
    to_png(figure.fig)  # lay the figure out once; redraws keep the layout
    figure.fig.set_layout_engine("none")
    plt.close(figure.fig)

    def render(kind: str, level: int):
        view = challenge_view(cache, kind, level, index=index, top_k=top_k)
        figure.set_view(view)
        text = (f"<code>{kind}, level {level}: this image → "
                f"{view.class_names[view.top_classes[0]]} ({view.top_probs[0]:.2f}); test set "
                f"accuracy {view.accuracy:.2f}, mean confidence {view.confidence:.2f}</code>")
        return to_png(figure.fig), text, view

    return Explorer({"kind": widgets.Dropdown(options=list(CHALLENGES), value=kind,
                                              description="challenge"),
                     "level": _slider(level, MAX_LEVEL)}, render)


def contrast_explorer(model: nn.Module, images: torch.Tensor, class_names: Sequence[str],
                      labels: Sequence[str] | None = None, rep_images: torch.Tensor | None = None,
                      layer: nn.Module | None = None, regions: torch.Tensor | None = None,
                      sample: int = 0, contrast: int = 0) -> Explorer:
    """A sample picker and a contrast-class dropdown over Grad-CAM, CounterfactualCAM and
    ContrastCAM ("why P, rather than Q?"; Q = P gives "why not P with 100% confidence?").

    Picking a sample computes every map once (one forward + one batched backward); picking a
    contrast class only swaps pictures. ``regions`` (S, K, H, W) bool, optional: the true
    difference region of sample s against class k (:func:`tutorial_utils.data.counterfactual`),
    outlined on the ContrastCAM. Controls: ``sample``, ``contrast``.
    """
    check_images(images)
    labels = list(labels) if labels is not None else [f"sample {i}" for i in range(len(images))]
    if len(labels) != len(images):
        raise ValueError(f"labels must have one entry per image ({len(images)}), got {len(labels)}")
    if regions is not None and tuple(regions.shape[:2]) != (len(images), len(class_names)):
        raise ValueError(f"regions must be (S, K, H, W) = ({len(images)}, {len(class_names)}, "
                         f"H, W), got {tuple(regions.shape)}")
    pf = ContrastPanelFigure(class_names, dpi=WIDGET_DPI)
    picked: dict = {"sample": None}

    def render(sample: int, contrast: int):
        if picked["sample"] != sample:
            picked.update(sample=sample, state=contrast_state(model, images[sample:sample + 1],
                                                              layer))
            pf.set_sample(picked["state"])
        panel = contrast_panel(picked["state"], contrast, class_names, rep_images)
        pf.set_contrast(panel, None if regions is None else regions[sample, contrast])
        return pf.png(), f"<code>{panel['text']}</code>", panel

    return Explorer({"sample": widgets.Dropdown(options=[(t, i) for i, t in enumerate(labels)],
                                                value=sample, description="sample"),
                     "contrast": widgets.Dropdown(options=[(n, i) for i, n in
                                                           enumerate(class_names)],
                                                  value=contrast, description="Q =")}, render)


def level_explorer(results, heads: Sequence[str] = ("feed-forward", "introspective")
                   ) -> Explorer:
    """A level slider 0..5 over :func:`~tutorial_utils.plotting.introspection.plot_level_view`
    (accuracy per challenge and pooled reliability diagrams of the heads). The six pictures are
    drawn once, when the explorer is built, so moving the slider only swaps them. Control:
    ``level``."""
    fig = plt.figure(figsize=(12, 3.6), dpi=WIDGET_DPI, layout="constrained")
    plt.close(fig)
    pictures = {}
    for level in range(max(results.levels) + 1):
        plot_level_view(results, level, heads, fig=fig)
        table = level_view(results, level, heads)
        pooled = table.loc[["all"]].copy()
        pooled.columns = [f"{metric} ({head})" for metric, head in pooled.columns]
        pooled.index = ["all challenges" if level else "clean"]
        pictures[level] = (to_png(fig), pooled.to_html(float_format=lambda v: f"{v:.3f}"), table)

    def render(level: int):
        return pictures[level]

    return Explorer({"level": _slider(0, max(results.levels))}, render)
