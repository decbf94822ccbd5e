"""Figures of the course, in one consistent (seaborn) style.

**Where a figure lives.** Generic figures — style, image grids, heat-map overlays and galleries,
curves, ROC, score histograms, reliability diagrams, probability bars — are available straight
from ``tutorial_utils.plotting`` (defined in ``plotting.style``, ``plotting.images`` and
``plotting.charts``). The figure of a concept module ``tutorial_utils.X`` is
``tutorial_utils.plotting.X.plot_*``: the computation lives in ``X``, its drawing here, so
imports point one way (figures → concepts).

Every function returns the matplotlib ``Figure`` it drew on and never calls ``plt.show()``.
Functions that take ``ax=None`` draw into a new figure, or into the given axes (and then return
``ax.figure``). In a notebook, assign the result (``fig = show_images(...)``) or end the line
with ``;`` so the inline backend does not show the figure twice; close figures you make in a
loop with ``plt.close(fig)``.
"""

from __future__ import annotations

from tutorial_utils.plotting import (  # noqa: F401 - the chapter figure modules
    adaptation,
    cam,
    contrast,
    data,
    evaluation,
    information,
    interventions,
    introspection,
    landscape,
    manifolds,
    models,
    privacy,
    robustness,
)
from tutorial_utils.plotting.charts import (
    bar_probabilities,
    plot_curves,
    plot_roc,
    plot_trust_curves,
    reliability_diagram,
    score_histograms,
)
from tutorial_utils.plotting.images import (
    challenge_grid,
    class_grid,
    heatmap_gallery,
    overlay,
    show_images,
)
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL, set_style, to_jpeg, to_png

__all__ = [
    "set_style",
    "HIGHLIGHT",
    "NEUTRAL",
    "to_png",
    "to_jpeg",
    "show_images",
    "overlay",
    "heatmap_gallery",
    "class_grid",
    "challenge_grid",
    "plot_curves",
    "plot_trust_curves",
    "reliability_diagram",
    "plot_roc",
    "score_histograms",
    "bar_probabilities",
]
