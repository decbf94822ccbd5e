"""Figures of :mod:`tutorial_utils.adaptation`: accuracy against the challenge level per method."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from tutorial_utils.plotting.style import _style

__all__ = [
    "plot_accuracy_by_level",
]


def plot_accuracy_by_level(table, kinds: Sequence[str], methods: Sequence[str]):
    """One panel per challenge kind: accuracy against level for every test-time method.

    ``table`` is the long DataFrame of :func:`tutorial_utils.adaptation.evaluate_by_level`
    (columns ``kind``, ``level``, ``method``, ``accuracy``), possibly concatenated over kinds.
    """
    _style()
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.2),
                             layout="constrained", sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for method in methods:
            rows = table[(table.kind == kind) & (table.method == method)]
            ax.plot(rows.level, rows.accuracy, "o-", label=method)
        ax.set(title=kind, xlabel="challenge level", ylabel="accuracy", ylim=(0, 1.02))
    axes[0, 0].legend(frameon=False, fontsize="small")
    return fig
