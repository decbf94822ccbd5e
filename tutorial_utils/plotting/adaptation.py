"""Figures of :mod:`tutorial_utils.adaptation`: accuracy against the challenge level per method."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from tutorial_utils.plotting.style import _style

__all__ = [
    "plot_accuracy_by_level",
]


STYLES: tuple[tuple[str, str], ...] = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."),
                                        ("v", "-"), ("P", "--"))
"""(marker, line style) of the methods in order: lines that coincide stay distinguishable."""

OFFSET = 0.07
"""Sideways shift (in levels) between neighbouring methods, so equal accuracies do not hide
one line under another (levels are integers: the shift cannot be misread)."""


def plot_accuracy_by_level(table, kinds: Sequence[str], methods: Sequence[str]):
    """One panel per challenge kind: accuracy against level for every test-time method.

    ``table`` is the long DataFrame of :func:`tutorial_utils.adaptation.evaluate_by_level`
    (columns ``kind``, ``level``, ``method``, ``accuracy``), possibly concatenated over kinds.
    Each method has its own colour, marker and line style, and is shifted sideways by
    :data:`OFFSET` levels from its neighbour, so a method whose accuracy equals another's
    (e.g. TENT that barely moved, on top of BatchNorm adaptation) stays visible; the legend
    shows the same markers and styles.
    """
    _style()
    methods = list(methods)
    if len(methods) > len(STYLES):
        raise ValueError(f"methods must name at most {len(STYLES)} methods, got {len(methods)}")
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.2),
                             layout="constrained", sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, method in enumerate(methods):
            rows = table[(table.kind == kind) & (table.method == method)]
            marker, style = STYLES[i]
            shift = (i - (len(methods) - 1) / 2) * OFFSET
            ax.plot(rows.level + shift, rows.accuracy, marker=marker, ls=style, ms=5,
                    mfc="none", mew=1.3, lw=1.5, label=method)
        ax.set(title=kind, xlabel="challenge level (methods shifted sideways to stay visible)",
               ylabel="accuracy", ylim=(0, 1.02))
    axes[0, 0].legend(frameon=False, fontsize="small")
    return fig
