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

====================  ===========================  ======================================
explorer              controls                     draws
====================  ===========================  ======================================
challenge_explorer    challenge type, level        ``robustness.challenge_view`` (chapter 1)
contrast_explorer     sample, contrast class Q     ``contrast.contrast_state`` (all Q;
                                                   chapter 2)
level_explorer        challenge level              ``introspection.level_view`` (chapter 2)
score_explorer        challenge, level, score      score histograms and AUROC of a corruption
                                                   grid scored beforehand (chapter 3)
threshold_explorer    score, share of ID kept      ``detection.threshold_view`` (chapter 3)
voice_explorer        sample                       precomputed ``trust.voice`` (chapter 3)
masking_explorer      masking threshold τ          ``interventions.masking_view``, structure-wise
                                                   accuracy against τ (chapter 4)
occluder_explorer     box row, column, size        ``interventions.box_landscape`` (every
                                                   placement, computed once; chapter 4)
attack_explorer       attack, ε                    ``interventions.attack_view`` (FGSM / PGD,
                                                   Grad-CAM and ContrastCAM; chapter 4)
dashboard_explorer    image, source, challenge,    ``dashboard.dashboard_view`` (chapter 5)
                      level, contrast class Q,     on the model picked, gauges read against
                      model (CNN / ViT)            that model's own reference set
====================  ===========================  ======================================
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from tutorial_utils._checks import check_class, check_images, check_number
from tutorial_utils.challenges import CHALLENGES, MAX_LEVEL, check_challenge
from tutorial_utils.contrast import contrast_panel, contrast_state
from tutorial_utils.dashboard import SOURCES, dashboard_view, make_input, pair_references
from tutorial_utils.detection import threshold_view
from tutorial_utils.forward import baseline_image, logits
from tutorial_utils.interventions import attack_view, box_landscape, masking_view
from tutorial_utils.introspection import level_view
from tutorial_utils.metrics import detection_auroc
from tutorial_utils.plotting.contrast import ContrastPanelFigure
from tutorial_utils.plotting.dashboard import DashboardFigure
from tutorial_utils.plotting.detection import ScoreChoiceFigure, ThresholdFigure
from tutorial_utils.plotting.evaluation import MaskingFigure
from tutorial_utils.plotting.interventions import AttackFigure, OccluderFigure
from tutorial_utils.plotting.introspection import plot_level_view
from tutorial_utils.plotting.robustness import ChallengeViewFigure
from tutorial_utils.plotting.style import to_png
from tutorial_utils.plotting.trust import VoiceFigure
from tutorial_utils.robustness import ChallengeCache, challenge_view

__all__ = [
    "Explorer",
    "challenge_explorer",
    "contrast_explorer",
    "level_explorer",
    "score_explorer",
    "threshold_explorer",
    "voice_explorer",
    "masking_explorer",
    "occluder_explorer",
    "attack_explorer",
    "dashboard_explorer",
]

WIDGET_DPI = 64  # widget pictures: small enough to encode fast, sharp enough on screen
NOTE = ("Interactive explorer: it comes alive once the cells above have run (Run > Run All "
        "Cells). The picture is a snapshot of its last view.")

Render = Callable[..., tuple[bytes, str, object]]


CONTROL_MIN_WIDTH = {"slider": "280px", "other": "220px"}  # a slider's track stays draggable
ERROR_STYLE = "color: #b00020"


def _png_width(png: bytes) -> int | None:
    """The pixel width in a PNG's header (None for anything else)."""
    if len(png) >= 24 and png[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(png[16:20], "big")
    return None


def _options_text(control: widgets.Widget) -> str:
    if getattr(control, "options", None):
        labels = [o[0] if isinstance(o, tuple) else o for o in control.options]
        return "one of " + ", ".join(str(v) for v in labels)
    if hasattr(control, "min") and hasattr(control, "max"):
        return f"a value from {control.min} to {control.max}"
    return "a valid value"


class Explorer(widgets.VBox):
    """Controls, a picture and a line of text, redrawn by ``render(**values)`` on every change.

    ``render`` receives the current value of every control by name and returns
    ``(png bytes, html text, data)``; ``data`` is kept in ``state["last"]``.

    The controls wrap onto several lines when the output area is narrow, each keeping its width
    (a slider's track never shrinks to nothing); the picture is shown at the pixel size it was
    drawn (never stretched; smaller screens scale it down). A value that cannot be drawn (e.g.
    a dropdown set to ``None``, or a slider that sends an empty value) does not fail silently:
    the explorer's own text line names the control and its valid values, the control goes back
    to the last value drawn, and ``state["errors"]`` keeps the message.
    """

    def __init__(self, controls: Mapping[str, widgets.Widget], render: Render) -> None:
        self.controls = dict(controls)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%",
                                                                       height="auto"))
        self.info = widgets.HTML()
        self.state: dict = {"last": None, "calls": 0, "seconds": [], "errors": []}
        self._render = render
        self._drawn: dict = {}
        for control in self.controls.values():
            kind = "slider" if "Slider" in type(control).__name__ else "other"
            control.layout.flex = "0 0 auto"
            control.layout.min_width = CONTROL_MIN_WIDTH[kind]
            control.layout.max_width = "100%"
        row = widgets.HBox(list(self.controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                 width="100%"))
        super().__init__([row, self.image, self.info])
        for name, control in self.controls.items():
            control.observe(self.update, names="value")
            if isinstance(control, _Recovering):
                control.on_empty_value(lambda w, n=name: self._report(
                    n, w, "the control sent an empty value", w.value))
        self.update()

    def _report(self, name: str, control: widgets.Widget, problem: str, kept: object) -> None:
        message = (f"⚠ {name}: {problem}; it must be {_options_text(control)}. Kept "
                   f"{name} = {kept!r}.")
        self.state["errors"].append(message)
        self.info.value = f'<code style="{ERROR_STYLE}">{message}</code>'

    def update(self, _change: object = None) -> object:
        """Redraw for the controls' current values; returns the data shown (the last data
        drawn when the values cannot be drawn: see the class docstring)."""
        start = time.perf_counter()
        values = {k: w.value for k, w in self.controls.items()}
        try:
            png, text, data = self._render(**values)
        except Exception as err:  # a bad value from the page: say so here, keep the last view
            if not self._drawn:
                raise  # the first view: the arguments of the explorer itself are wrong
            name = next((k for k, w in self.controls.items()
                         if getattr(_change, "owner", None) is w), None) or next(
                k for k in values if values[k] != self._drawn[k])
            control, kept = self.controls[name], self._drawn[name]
            problem = f"{values[name]!r} cannot be shown ({type(err).__name__}: {err})"
            control.unobserve(self.update, names="value")  # back to the view shown, no redraw
            try:
                control.value = kept
            finally:
                control.observe(self.update, names="value")
            self._report(name, control, problem, kept)
            return self.state["last"]
        self.image.value, self.info.value = png, text
        width = _png_width(png)
        if width:
            self.image.layout.width = f"{width}px"  # drawn at the size it is shown
        self._drawn = values
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


class _Recovering:
    """A slider that refuses an empty value from the page (a squeezed slider's drag can send
    ``None``): instead of a ``TraitError`` only the Log Console shows, the value is kept, the
    page is told the kept value again and ``on_empty_value`` callbacks run."""

    def on_empty_value(self, callback: Callable[[widgets.Widget], None]) -> None:
        self.__dict__.setdefault("_empty_callbacks", []).append(callback)

    def set_state(self, sync_data: dict) -> None:
        empty = [k for k in ("value", "index") if k in sync_data and sync_data[k] is None]
        if empty:
            sync_data = {k: v for k, v in sync_data.items() if k not in empty}
        super().set_state(sync_data)
        if empty:
            self.send_state(empty)
            for callback in self.__dict__.get("_empty_callbacks", []):
                callback(self)


class _IntSlider(_Recovering, widgets.IntSlider):
    pass


class _SelectionSlider(_Recovering, widgets.SelectionSlider):
    pass


class _FloatSlider(_Recovering, widgets.FloatSlider):
    pass


def _slider(value: int, high: int, description: str = "level", low: int = 0,
            step: int = 1) -> widgets.IntSlider:
    """An integer slider ``low..high`` that redraws on release."""
    return _IntSlider(value=value, min=low, max=high, step=step, description=description,
                      continuous_update=False)


def _picker(labels: Sequence[str], value: int, description: str) -> widgets.Dropdown:
    """A dropdown over ``labels`` whose value is the index of the picked label."""
    return widgets.Dropdown(options=[(t, i) for i, t in enumerate(labels)], value=value,
                            description=description)


def _freeze_layout(fig) -> None:
    """Lay ``fig`` out once (render it), keep that layout for every redraw, and close it in
    pyplot (the explorer keeps the figure alive and updates it in place)."""
    to_png(fig)
    fig.set_layout_engine("none")
    plt.close(fig)


def challenge_explorer(cache: ChallengeCache, index: int = 0, kind: str = "snow",
                       level: int = 3, top_k: int = 3) -> Explorer:
    """A challenge-type dropdown and a level slider (0–5) over one test image of ``cache``:
    the image, its top-k probabilities, and the test set's accuracy and mean confidence at every
    level (:func:`~tutorial_utils.robustness.challenge_view`). Controls: ``kind``, ``level``."""
    check_challenge(kind, level)
    figure = ChallengeViewFigure(challenge_view(cache, kind, level, index=index, top_k=top_k),
                                 dpi=WIDGET_DPI)
    _freeze_layout(figure.fig)

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
    states: dict = {}  # a sample's maps are computed once, on its first visit

    def render(sample: int, contrast: int):
        if picked["sample"] != sample:
            if sample not in states:
                states[sample] = contrast_state(model, images[sample:sample + 1], layer)
            picked.update(sample=sample, state=states[sample])
            pf.set_sample(picked["state"])
        panel = contrast_panel(picked["state"], contrast, class_names, rep_images)
        pf.set_contrast(panel, None if regions is None else regions[sample, contrast])
        return pf.png(), f"<code>{panel['text']}</code>", panel

    return Explorer({"sample": _picker(labels, sample, "sample"),
                     "contrast": _picker(class_names, contrast, "Q =")}, render)


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


# --------------------------------------------------------------------------------------
# Chapter 3: uncertainty
# --------------------------------------------------------------------------------------


def score_explorer(clean_scores, grid_scores, kind: str = "snow", level: int = 2,
                   score: str = "MSP") -> Explorer:
    """Challenge type × level × score over a corruption grid computed beforehand
    (``grid_scores[(kind, level)][score]``): the histograms of the score on clean and
    challenged images and the AUROC (:class:`~tutorial_utils.plotting.detection.
    ScoreChoiceFigure`). Controls: ``kind``, ``level``, ``score``."""
    kinds = list(dict.fromkeys(k for k, _ in grid_scores))
    levels = sorted({lv for _, lv in grid_scores})
    names = list(clean_scores)
    for value, options, name in ((kind, kinds, "kind"), (level, levels, "level"),
                                 (score, names, "score")):
        if value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")
    figure = ScoreChoiceFigure(dpi=WIDGET_DPI)
    plt.close(figure.fig)

    def render(kind: str, level: int, score: str):
        clean = np.asarray(clean_scores[score], dtype=float)
        novel = np.asarray(grid_scores[(kind, level)][score], dtype=float)
        area = detection_auroc(clean, novel)
        figure.set_choice(clean, novel, f"{kind} {level}", score, area)
        text = f"<code>{score}, {kind} level {level}: AUROC {area:.3f}</code>"
        return to_png(figure.fig), text, area

    return Explorer({"kind": widgets.Dropdown(options=kinds, value=kind, description="challenge"),
                     "level": _slider(level, max(levels), low=min(levels)),
                     "score": widgets.Dropdown(options=names, value=score,
                                               description="score")}, render)


def threshold_explorer(id_scores, novel_scores, novel_images: torch.Tensor, score: str = "MSP",
                       keep_percent: float = 95.0) -> Explorer:
    """A decision threshold on one score: the share of in-distribution inputs to keep (TPR, %)
    sets the threshold; the figure shows both histograms, the TPR/FPR reached and thumbnails of
    the novel inputs flagged (:func:`~tutorial_utils.detection.threshold_view`). Controls:
    ``score``, ``keep``."""
    check_images(novel_images, "novel_images")
    keep_percent = check_number(keep_percent, "keep_percent", low=0.0, high=100.0, low_open=True)
    if any(len(v) != len(novel_images) for v in novel_scores.values()):
        raise ValueError("novel_images must hold one image per novel score (same length)")
    figures: dict = {}

    def render(score: str, keep: float):
        if score not in figures:
            figures[score] = ThresholdFigure(novel_images, score, dpi=WIDGET_DPI)
            plt.close(figures[score].fig)
        view = threshold_view(id_scores[score], novel_scores[score], keep)
        figures[score].set_view(view)
        text = (f"<code>{score} ≥ {view.threshold:.4g}: keeps {view.tpr:.1%} of in-distribution "
                f"inputs, lets through {view.fpr:.1%} of novel ones "
                f"({len(view.flagged)} flagged)</code>")
        return to_png(figures[score].fig), text, view

    return Explorer({"score": widgets.Dropdown(options=list(id_scores), value=score,
                                               description="score"),
                     "keep": _FloatSlider(value=keep_percent, min=min(50.0, keep_percent),
                                          max=100.0, step=1.0, description="keep ID %",
                                          continuous_update=False)}, render)


def voice_explorer(images: torch.Tensor, voice, labels: Sequence[str]) -> Explorer:
    """A sample picker over precomputed VOICE results (:func:`tutorial_utils.trust.voice`):
    input, explanation, uncertainty of the explanation, IoU and SNR. Control: ``sample``."""
    check_images(images)
    if len(labels) != len(images) or len(voice.iou) != len(images):
        raise ValueError("labels and voice must have one entry per image")
    figure = VoiceFigure(dpi=WIDGET_DPI)
    plt.close(figure.fig)

    def render(sample: int):
        iou, snr = float(voice.iou[sample]), float(voice.snr[sample])
        figure.set_sample(images[sample], voice.explanation[sample], voice.uncertainty[sample],
                          labels[sample], iou, snr)
        text = f"<code>{labels[sample]}: IoU {iou:.3f}, SNR {snr:.3f}</code>"
        return to_png(figure.fig), text, (iou, snr)

    return Explorer({"sample": _picker(labels, 0, "sample")}, render)


# --------------------------------------------------------------------------------------
# Chapter 4: intervenability
# --------------------------------------------------------------------------------------


def masking_explorer(model: nn.Module, image: torch.Tensor, maps: Mapping[str, torch.Tensor],
                     curves: Mapping, threshold: float = 0.5, target=None,
                     baseline: str | float | torch.Tensor = "zeros") -> Explorer:
    """A masking-threshold slider: one image masked by every method's map (H, W) at τ
    (keep the pixels whose map ≥ τ; :func:`~tutorial_utils.interventions.masking_view`) and
    the accuracy of the evaluation set against τ (``curves``: one
    :class:`~tutorial_utils.evaluation.StructureCurve` per method, same names and thresholds).
    Every threshold is computed when the explorer is built (one batched forward each) and
    each picture is kept once drawn. Control: ``threshold``."""
    check_images(image.unsqueeze(0) if image.dim() == 3 else image, "image")
    if list(maps) != list(curves):
        raise ValueError("maps and curves must name the same methods in the same order")
    options = [round(float(t), 6) for t in next(iter(curves.values())).thresholds]
    if round(float(threshold), 6) not in options:
        raise ValueError(f"threshold must be one of the curves' thresholds {options}")
    views = {t: masking_view(model, image, dict(maps), t, target, baseline=baseline)
             for t in options}
    figure = MaskingFigure(image, curves, dpi=WIDGET_DPI)
    figure.set_threshold(options[0], *views[options[0]])
    _freeze_layout(figure.fig)  # titles in place; thresholds only swap pictures and titles
    shown: dict = {}

    def render(threshold: float):
        if threshold not in shown:
            masked, probs, kept = views[threshold]
            figure.set_threshold(threshold, masked, probs, kept)
            data = {name: (float(p), float(k)) for name, p, k in zip(maps, probs, kept,
                                                                    strict=True)}
            accuracy = {name: float(c.accuracy[options.index(threshold)])
                        for name, c in curves.items()}
            best = max(accuracy, key=accuracy.get)
            text = (f"<code>τ = {threshold:.1f}: highest accuracy on the evaluation set: {best} "
                    f"({accuracy[best]:.2f})</code>")
            shown[threshold] = (to_png(figure.fig), text, {"image": data, "accuracy": accuracy})
        return shown[threshold]

    return Explorer({"threshold": _SelectionSlider(
        options=[(f"{t:.1f}", t) for t in options], value=round(float(threshold), 6),
        description="τ", continuous_update=False)}, render)


def occluder_explorer(model: nn.Module, image: torch.Tensor, class_names: Sequence[str],
                      target: int | None = None, sizes: Sequence[int] = (8, 12, 16, 24),
                      step: int = 4, row: int | None = None, col: int | None = None,
                      size: int = 12, baseline: str | float | torch.Tensor = "mean"
                      ) -> Explorer:
    """A box "prompt" placed with sliders: the image with a grey box (filled with the
    ``baseline``), the class probability for every placement of a box of this size (computed
    once for all sizes: :func:`~tutorial_utils.interventions.box_landscape`) and the top-5
    probabilities without and with the box. Box centres lie on a grid of ``step`` pixels.
    Controls: ``row``, ``col`` (box centre), ``size``."""
    x = image.unsqueeze(0) if image.dim() == 3 else image
    check_images(x, "image")
    if size not in sizes:
        raise ValueError(f"size must be one of sizes {tuple(sizes)}, got {size}")
    h = x.shape[-2]
    centres = list(range(step // 2, h, step))
    clean = logits(model, x).softmax(1)[0].cpu()
    target = int(clean.argmax()) if target is None else check_class(target, len(clean), "target")
    land = box_landscape(model, x, sizes, centres, baseline=baseline)
    row = centres[len(centres) // 2] if row is None else row
    col = centres[len(centres) // 2] if col is None else col
    for value, name in ((row, "row"), (col, "col")):
        if value not in centres:
            raise ValueError(f"{name} must be a box centre on the grid {centres}, got {value}")
    fill = baseline_image(x, baseline, model)[0]
    figure = OccluderFigure(x[0], land, clean, sizes, centres, class_names, target, fill=fill,
                            dpi=WIDGET_DPI)
    figure.set_box(row, col, size)
    _freeze_layout(figure.fig)  # labels in place; moving the box keeps the layout

    def render(row: int, col: int, size: int):
        data = figure.set_box(row, col, size)
        text = (f"<code>{size}×{size} box at ({row}, {col}): p({class_names[target]}) "
                f"{data['p_clean']:.2f} → {data['p_target']:.2f}; prediction "
                f"{data['prediction']}</code>")
        return to_png(figure.fig), text, data

    def slider(value: int, name: str) -> widgets.IntSlider:
        return _slider(value, centres[-1], name, low=centres[0], step=step)

    return Explorer({"row": slider(row, "row"), "col": slider(col, "col"),
                     "size": _SelectionSlider(options=list(sizes), value=size,
                                                     description="size",
                                                     continuous_update=False)}, render)


def attack_explorer(model: nn.Module, image: torch.Tensor, label: int,
                    class_names: Sequence[str], epsilons: Sequence[float],
                    epsilon: float | None = None, attack: str = "FGSM") -> Explorer:
    """An ε slider (pixel units, shown as grey levels /255) and an FGSM/PGD switch over one
    image: the attacked image, the perturbation and how Grad-CAM and ContrastCAM ("why the new
    prediction, rather than the true class?") move
    (:func:`~tutorial_utils.interventions.attack_view`). Every (attack, ε) is computed when the
    explorer is built (a few forward/backward passes of one image each), so a move only
    redraws. Controls: ``attack``, ``epsilon``."""
    epsilons = [float(e) for e in epsilons]
    epsilon = epsilons[len(epsilons) // 2] if epsilon is None else float(epsilon)
    if epsilon not in epsilons:
        raise ValueError(f"epsilon must be one of epsilons {epsilons}, got {epsilon}")
    views = {(a, e): attack_view(model, image, label, e, a) for a in ("FGSM", "PGD")
             for e in epsilons}
    figure = AttackFigure(image, class_names, dpi=WIDGET_DPI)
    figure.set_view(views[(attack, epsilon)])
    _freeze_layout(figure.fig)  # two-line titles in place

    def render(attack: str, epsilon: float):
        key = (attack, epsilon)
        data = figure.set_view(views[key])
        text = (f"<code>{attack}, ε = {255 * epsilon:g}/255: {data['clean']} → "
                f"{data['attacked']}; p(true class) = {data['p_true']:.2f}</code>")
        return to_png(figure.fig), text, views[key]

    return Explorer({"attack": widgets.ToggleButtons(options=["FGSM", "PGD"], value=attack,
                                                     description="attack"),
                     "epsilon": _SelectionSlider(
                         options=[(f"{255 * e:g}/255", e) for e in epsilons], value=epsilon,
                         description="ε", continuous_update=False)}, render)


# --------------------------------------------------------------------------------------
# Chapter 5: the dashboard
# --------------------------------------------------------------------------------------


def dashboard_explorer(model: nn.Module | Mapping[str, nn.Module], reference,
                       images: torch.Tensor, labels: torch.Tensor,
                       class_names: Sequence[str], go: torch.Tensor,
                       sample_labels: Sequence[str] | None = None, sample: int = 0,
                       kind: str = "snow", level: int = 0, contrast: int = 1,
                       source: str = "test image", model_name: str | None = None) -> Explorer:
    """Chapter 5's one-image dashboard (:func:`tutorial_utils.dashboard.dashboard_view`, drawn
    by :class:`~tutorial_utils.plotting.dashboard.DashboardFigure`). Controls: ``sample``,
    ``source`` (test image / GO sign / FGSM / PGD), ``kind`` and ``level`` of a challenge,
    ``contrast`` (the class Q of the ContrastCAM) and, when ``model`` is a mapping name →
    model (``reference`` then one reference per name, each built for its own model:
    :func:`~tutorial_utils.dashboard.pair_references`), ``model``: which model the dashboard
    runs, starting at ``model_name`` (default: the first). Switching the model switches the
    reference set its gauges' percentiles are read against, and attacks target that model."""
    check_images(images)
    check_challenge(kind, level)
    pairs = pair_references(dict(model) if isinstance(model, Mapping) else model,
                            dict(reference) if isinstance(reference, Mapping) else reference)
    choice = next(iter(pairs)) if model_name is None else model_name
    if choice not in pairs:
        raise ValueError(f"model_name must be one of {list(pairs)}, got {model_name!r}")
    names = list(sample_labels) if sample_labels is not None else [
        f"sample {i}" for i in range(len(images))]
    figure = DashboardFigure(class_names, dpi=WIDGET_DPI, image_size=tuple(images.shape[-2:]),
                             fixed_layout=True)
    plt.close(figure.fig)
    several = len(pairs) > 1

    def render(sample: int, source: str, kind: str, level: int, contrast: int,
               model: str = choice):
        net, ref = pairs[model]
        x = make_input(net, images[sample], int(labels[sample]), source, kind, level,
                       go=go[sample % len(go)])
        view = dashboard_view(net, ref, x, contrast=contrast)
        title = source if source != "test image" else (
            f"{kind}, level {level}" if level else "clean test image")
        figure.set_view(view, f"{model}: {title}" if several else title)
        flagged = [g for g, p in view.percentiles.items() if p < 5]
        text = (f"<code>{model + ': ' if several else ''}P = {class_names[view.pred]} "
                f"({float(view.probs[view.pred]):.2f}); gauges below the 5th percentile "
                f"(of this model's clean reference signs): {', '.join(flagged) or 'none'}"
                f"</code>")
        return figure.png(), text, view

    controls = {
        "sample": _picker(names, sample, "image"),
        "source": widgets.Dropdown(options=list(SOURCES), value=source, description="source"),
        "kind": widgets.Dropdown(options=list(CHALLENGES), value=kind, description="challenge"),
        "level": _slider(level, MAX_LEVEL),
        "contrast": _picker(class_names, contrast, "Q =")}
    if several:
        controls["model"] = widgets.Dropdown(options=list(pairs), value=choice,
                                             description="model")
    box = Explorer(controls, render)

    def challenge_applies(_change: object = None) -> None:
        # the GO sign is shown as it is: challenge and level would be inert, so they say so
        off = box.controls["source"].value == "GO sign"
        box.controls["kind"].disabled = box.controls["level"].disabled = off

    box.controls["source"].observe(challenge_applies, names="value")
    challenge_applies()
    return box
