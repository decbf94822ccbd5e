"""Chapter 3 figures: one colour means one thing (blue clean, warm novel, green–purple AUROC,
greys for parts), the decomposition shows the accuracy, the GradCon figure is zoomed and shows
the gain's intervals, and the trust scatter spreads out high confidence."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex

from tutorial_utils.plotting import detection as PD
from tutorial_utils.plotting import trust as PT
from tutorial_utils.plotting.style import HIGHLIGHT, NEUTRAL


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _hex(patch) -> str:
    return to_hex(patch.get_facecolor(), keep_alpha=False).lower()


def test_score_grid_clean_is_blue_and_novel_sets_are_warm():
    g = torch.Generator().manual_seed(0)
    ids = {"MSP": torch.rand(50, generator=g)}
    novel = {name: {"MSP": torch.rand(30, generator=g)} for name in ("GO", "ring", "tex")}
    fig = PD.plot_score_grid(ids, novel, ["MSP"], ncols=1)
    ax = fig.axes[0]
    firsts = []  # the first patch of each histogram, in drawing order
    seen = set()
    for patch in ax.patches:
        label = patch.get_label()
        if label not in seen:
            seen.add(label)
            firsts.append(_hex(patch))
    assert firsts[0] == NEUTRAL.lower()
    assert firsts[1] == HIGHLIGHT.lower()
    assert len(set(firsts)) == 4 and NEUTRAL.lower() not in firsts[1:]
    with pytest.raises(ValueError, match="novel_scores"):
        PD.plot_score_grid(ids, {str(i): {"MSP": torch.rand(5)} for i in range(5)}, ["MSP"])


def test_decomposition_uses_greys_and_draws_the_accuracy():
    rows = [dict(method=m, condition=c, aleatoric=0.2 + 0.1 * i, epistemic=0.05,
                 accuracy=np.nan if c == "GO" else 1 - 0.2 * i)
            for m in ("MC", "ENS") for i, c in enumerate(["clean", "snow 1", "snow 5", "GO"])]
    fig = PD.plot_decomposition(pd.DataFrame(rows))
    twins = [ax for ax in fig.axes if ax.get_ylim() == (0, 1.05)]
    assert len(twins) == 2  # one accuracy axis per method
    line = twins[0].lines[0]
    np.testing.assert_allclose(line.get_ydata()[:3], [1.0, 0.8, 0.6])
    bar_colours = {_hex(p) for p in fig.axes[0].patches}
    assert NEUTRAL.lower() not in bar_colours and HIGHLIGHT.lower() not in bar_colours
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "accuracy (right axis)" in labels
    # without an accuracy column: bars only
    fig = PD.plot_decomposition(pd.DataFrame(rows).drop(columns="accuracy"))
    assert len(fig.axes) == 2


def test_auroc_map_uses_the_green_purple_scale():
    fig = PD.plot_auroc_map(pd.DataFrame([[0.1, 0.9]], columns=["a", "b"]), "t")
    assert fig.axes[0].images[0].get_cmap().name == PD.AUROC_CMAP == "PRGn"


def test_class_aurocs_zoomed_with_gain_intervals():
    table = pd.DataFrame({"gradcon": [0.95, 0.90, 0.97], "reconstruction": [0.93, 0.91, 0.96],
                          "random": [0.50, 0.49, 0.51]})
    gain = pd.DataFrame({"value": [0.02, -0.01, 0.01], "low": [0.01, -0.03, -0.01],
                         "high": [0.03, 0.01, 0.03]})
    fig = PT.plot_class_aurocs(table, reference=0.973, gain=gain)
    top, bottom = fig.axes[:2]
    low, high = top.get_ylim()
    assert 0.8 < low < 0.9 and high > 0.973  # zoomed to the dots and the reference, not from 0
    texts = [t.get_text() for t in top.get_legend().get_texts()]
    assert any("random" in t and "off the axis" in t for t in texts)
    filled = [ln for ln in bottom.lines if ln.get_label() == "interval excludes 0"][0]
    hollow = [ln for ln in bottom.lines if ln.get_label().startswith("within noise")][0]
    np.testing.assert_allclose(filled.get_ydata(), [0.02])
    np.testing.assert_allclose(hollow.get_ydata(), [-0.01, 0.01])
    assert len(PT.plot_class_aurocs(table).axes) == 1


def test_trust_scatter_spreads_high_confidence():
    rng = np.random.default_rng(0)
    conf = 1 - 10 ** rng.uniform(-5, -0.4, 200)
    conf[0] = 1.0  # a float32 softmax of exactly 1 is drawn at the floor
    trust = 10 ** rng.uniform(0, 2, 200)
    ok = rng.random(200) > 0.3
    fig = PT.plot_trust_scatter(trust, conf, ok, float(np.median(trust)), float(np.median(conf)))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.yaxis_inverted()
    correct, wrong = ax.collections[:2]
    assert to_hex(correct.get_facecolor()[0], keep_alpha=False).lower() == NEUTRAL.lower()
    assert to_hex(wrong.get_facecolor()[0], keep_alpha=False).lower() == HIGHLIGHT.lower()
    ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections[:2]])
    assert ys.min() == pytest.approx(1e-6)
    assert fig.legends and ax.get_legend() is None  # the legend sits outside the axes
    with pytest.raises(ValueError, match="floor"):
        PT.plot_trust_scatter(trust, conf, ok, 1.0, 0.9, floor=0.0)
