"""Chapter 4 figures: each returns a Figure with the expected panels, and the persistent
figures (occluder, attack, masking) show exactly the data they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from tutorial_utils import cam, evaluation, interventions
from tutorial_utils.plotting import evaluation as PE
from tutorial_utils.plotting import interventions as PI
from tutorial_utils.plotting import privacy as PP


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_plot_mean_se_and_region_examples(tiny, x8):
    fig = PI.plot_mean_se([5, 10], {"top": (np.array([0.1, 0.2]), np.array([0.01, 0.02]))},
                          "x", "y", legend_outside=True)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 1
    fig = PI.plot_mean_se(["a", "b", "c"], {"m": ([1, 0.5, 0.2], [0, 0.1, 0.1])}, "x", "y",
                          xticklabels=["a", "b", "c"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c"]
    maps = torch.rand(2, 12, 12)
    occluded = {"top": x8[:2], "bottom": x8[:2]}
    fig = PI.plot_region_examples(x8[:2], maps, occluded, {"top": [0.1, 0.2],
                                                           "bottom": [0.9, 0.8]}, [1.0, 1.0])
    assert len(fig.axes) == 2 * 4 and "top: p = 0.10" in fig.axes[2].get_title()


def test_occluder_figure_shows_the_box_and_its_probabilities(tiny, x8):
    sizes, centres = (3, 5), (1, 6, 10)
    land = interventions.box_landscape(tiny, x8[0], sizes, centres, baseline=0.0)
    clean = tiny(x8[:1]).softmax(1)[0].detach()
    names = ["a", "b", "c", "d"]
    fig = PI.OccluderFigure(x8[0], land, clean, sizes, centres, names, target=2,
                            fill=torch.zeros(3, 12, 12))
    data = fig.set_box(6, 10, 5)
    assert data["p_target"] == pytest.approx(float(land[1, 1, 2, 2]))
    shown = fig.axes[0].images[0].get_array()
    box = interventions.box_mask((12, 12), (6, 10), 5).numpy()
    assert np.all(shown[box] == 0) and np.allclose(shown[~box], x8[0].permute(1, 2, 0)
                                                   .numpy()[~box])
    np.testing.assert_allclose(fig.heat.get_array(), land[1, :, :, 2].numpy())
    widths = sorted(b.get_width() for b in fig.bars_box)
    assert widths[-1] == pytest.approx(float(land[1, 1, 2].max()))


def test_attack_figure_and_sweep_plot(tiny, x8):
    view = interventions.attack_view(tiny, x8[0], 1, 0.1)
    fig = PI.AttackFigure(x8[0], ["a", "b", "c", "d"])
    data = fig.set_view(view)
    assert data["p_true"] == pytest.approx(float(view.probs[1]))
    np.testing.assert_allclose(fig.pictures[5].get_array(), view.contrast.numpy())
    sweep = interventions.attack_sweep(tiny, x8, None, [0.0, 0.05], pgd_steps=2)
    ax = PI.plot_attack_sweep(sweep).axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 0.05 * 255])


def test_sanity_maps_grid(x8):
    from tutorial_utils.architectures import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(3, 4).eval()
    check = evaluation.sanity_check(model, x8[:3], lambda m, x, t: cam.grad_cam(m, x, t),
                                       layers=["fc", "last_conv.1"])
    fig = PE.plot_sanity_maps(x8[:3], {"Grad-CAM": check, "again": check}, index=2)
    assert len(fig.axes) == 2 * 4
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), check.maps[1, 2].numpy())
    assert "ρ = " in fig.axes[2].get_title()


def test_evaluation_figures(tiny, x8):
    maps = {"a": torch.rand(8, 12, 12), "random map": torch.rand(8, 12, 12)}
    dels = {n: evaluation.deletion_curve(tiny, x8, m, steps=4) for n, m in maps.items()}
    ins = {n: evaluation.insertion_curve(tiny, x8, m, steps=4) for n, m in maps.items()}
    fig = PE.plot_insertion_deletion(dels, ins, {"a": 0.1, "random map": 0.2})
    assert len(fig.axes) == 2 and fig.axes[0].lines[1].get_linestyle() == "--"
    curves = {n: evaluation.structure_wise_curve(tiny, x8, m, None, (0.0, 0.5))
              for n, m in maps.items()}
    assert len(PE.plot_structure_curves(curves).axes[0].lines) == 2
    mf = PE.MaskingFigure(x8[0], curves)
    masked, probs, kept = interventions.masking_view(tiny, x8[0], {n: m[0] for n, m in
                                                                   maps.items()}, 0.5)
    mf.set_threshold(0.5, masked, probs, kept)
    assert list(mf.marker.get_xdata()) == [0.5, 0.5]
    assert "% kept" in mf.image_axes[0].get_title()
    assert PE.method_colours(["x", "random map"])["random map"] == (0, 0, 0)


def test_grouped_panels_untangle_the_methods(tiny, x8):
    gen = torch.Generator().manual_seed(0)
    names = ["a", "b", "c", "d", "random map", "image itself"]
    maps = {n: torch.rand(8, 12, 12, generator=gen) for n in names}
    dels = {n: evaluation.deletion_curve(tiny, x8, m, steps=4) for n, m in maps.items()}
    ins = {n: evaluation.insertion_curve(tiny, x8, m, steps=4) for n, m in maps.items()}
    groups, controls = {"first": ["a", "b"], "second": ["c", "d"]}, ("random map", "image itself")
    fig = PE.plot_insertion_deletion(dels, ins, {n: 0.1 for n in names}, None, groups=groups,
                                     controls=controls)
    assert len(fig.axes) == 4  # 2 directions × 2 groups
    top_right = fig.axes[1]
    labels = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]  # under the column
    assert labels == ["c (deletion AUC 0.100)", "d (deletion AUC 0.100)",
                      "random map (deletion AUC 0.100)", "image itself (deletion AUC 0.100)"]
    colours = [line.get_color() for line in top_right.get_lines()]
    assert len(set(colours[:2])) == 2 and colours[2] == "k"  # distinct; control black
    assert top_right.get_lines()[2].get_linestyle() == "--"
    np.testing.assert_allclose(top_right.get_lines()[0].get_ydata(), dels["c"].probs.mean(0))
    sw = {n: evaluation.structure_wise_curve(tiny, x8, m, None, (0.0, 0.5)) for n, m in
          maps.items()}
    fig = PE.plot_structure_panels({"insertion": sw, "deletion": sw}, groups, controls,
                                   budget=0.7)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2 + 2 + 1  # methods, controls, the budget line
        assert any(np.allclose(line.get_xdata(), 0.7) for line in ax.get_lines())
    with pytest.raises(ValueError, match="unknown"):
        PE.plot_structure_panels({"insertion": sw}, {"x": ["zzz"]})
    with pytest.raises(ValueError, match="at most"):
        PE.plot_structure_panels({"insertion": sw}, {"x": ["a", "b", "c", "d", "image itself"]})


def test_membership_rocs():
    fpr, tpr = np.array([0, 0.001, 0.01, 1]), np.array([0, 0.0, 0.02, 1])
    fig = PP.plot_membership_rocs({"a": (fpr, tpr)}, {"a": 0.6})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "AUROC 0.600" in ax.get_legend().get_texts()[0].get_text()
    assert ax.get_xlim()[0] == pytest.approx(1e-3)  # the power of ten at the smallest rate, 0.001
    legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    box = ax.get_window_extent(fig.canvas.get_renderer())
    label = next(t for t in ax.texts if "FPR = 1%" in t.get_text())
    assert legend.y1 <= box.y0  # the legend sits under the axes, clear of the 1% label
    assert not legend.overlaps(label.get_window_extent(fig.canvas.get_renderer()))
