"""Tests of tutorial_utils.plotting: every function returns a Figure with the right axes."""

import matplotlib

matplotlib.use("Agg")  # tests never open windows (the package itself does not pick a backend)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tutorial_utils import challenges, data, metrics, plotting  # noqa: E402
from tutorial_utils import plotting as P  # noqa: E402


@pytest.fixture(autouse=True)
def _no_figure_left_open():
    yield
    assert plt.get_fignums() == [], "a test left a figure open"


def _check(fig, n_axes):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    fig.canvas.draw()  # the figure actually renders
    plt.close(fig)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 3, 16, 16, generator=g)


def test_show_images_grid(images):
    _check(P.show_images(images, titles=list("abcde"), ncols=3), 5)  # 6 slots, one removed
    _check(P.show_images(images[:, :1]), 5)  # single-channel (B, 1, H, W)
    _check(P.show_images(images[:, 0].numpy(), ncols=8), 5)  # (B, H, W) numpy
    fig = P.show_images(images * 3 - 1)  # values outside [0, 1] are clipped, not an error
    plt.close(fig)


def test_overlay_and_own_axes(images):
    heat = torch.rand(16, 16)
    _check(P.overlay(images[0], heat, title="map"), 1)
    fig, axes = plt.subplots(1, 2)
    out = P.overlay(images[0], heat, ax=axes[1])
    assert out is fig and len(axes[1].images) == 2  # grey image + heatmap
    _check(out, 2)
    _check(P.overlay(images[0, 0], heat * 5 - 2), 1)  # raw signed map on its own scale


def test_heatmap_gallery(images):
    maps = {"Grad-CAM": torch.rand(5, 16, 16), "saliency": np.random.rand(5, 16, 16)}
    _check(P.heatmap_gallery(images, maps, titles=[f"img {i}" for i in range(5)]),
           5 * 3 + 1)  # + the colour bar


def test_plot_curves_and_trust_curves():
    x = np.linspace(0, 1, 11)
    fig = P.plot_curves(x, {"deletion": 1 - x, "insertion": torch.tensor(x)},
                        auc={"deletion": 0.5}, title="Grad-CAM")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["deletion (AUC 0.500)", "insertion"]
    _check(fig, 1)
    rng = np.random.default_rng(0)
    correct = rng.uniform(size=200) < 0.7
    curves = {"softmax": metrics.auac(rng.uniform(size=200), correct),
              "oracle": metrics.auac(correct + 0.0, correct)}
    _check(P.plot_trust_curves(curves), 1)


def test_reliability_diagram_and_roc():
    rng = np.random.default_rng(0)
    probs = torch.softmax(torch.tensor(rng.normal(size=(200, 4)) * 2), dim=1)
    labels = torch.tensor(rng.integers(0, 4, 200))
    fig = P.reliability_diagram(probs, labels, n_bins=10, label="CNN")
    ece = metrics.expected_calibration_error(probs, labels, n_bins=10)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"ECE {ece:.3f}" in t and "CNN" in t for t in legend)
    _check(fig, 1)
    fig, axes = plt.subplots(1, 2)
    P.reliability_diagram(probs.max(1).values, probs.argmax(1) == labels, ax=axes[0])
    _check(fig, 2)
    y = rng.integers(0, 2, 100)
    _check(P.plot_roc(y, {"a": rng.normal(size=100) + y, "b": torch.randn(100)}), 1)
    _check(P.score_histograms({"ID": rng.normal(1, 1, 50), "OOD": rng.normal(0, 1, 60)}), 1)


def test_bar_probabilities_highlights_prediction():
    p = torch.softmax(torch.tensor([0.1, 3.0, 0.5, -1.0]), 0)
    fig = P.bar_probabilities(p, ["a", "b", "c", "d"], top_k=2)
    bars = fig.axes[0].patches
    assert len(bars) == 2
    assert bars[0].get_facecolor() != bars[1].get_facecolor()
    assert bars[0].get_width() == pytest.approx(p.max().item())  # predicted class on top
    _check(fig, 1)
    _check(P.bar_probabilities(p.numpy(), list("abcd")), 1)


def test_class_and_challenge_grids(images):
    _check(P.class_grid(images, [f"class {i}" for i in range(5)], ncols=7), 5)
    grid = torch.rand(3, 6, 3, 8, 8)
    fig = P.challenge_grid(grid, ["rain", "snow", "haze"], levels=range(6))
    assert fig.axes[0].get_title() == "level 0" and fig.axes[0].get_ylabel() == "rain"
    _check(fig, 18)


@pytest.mark.parametrize("call, exc, name", [
    (lambda x: P.show_images(x[0, 0]), ValueError, "images"),
    (lambda x: P.show_images(x, titles=["a"]), ValueError, "titles"),
    (lambda x: P.show_images(x.tolist()), TypeError, "images"),
    (lambda x: P.show_images(x, ncols=0), ValueError, "ncols"),
    (lambda x: P.show_images(torch.rand(2, 2, 8, 8)), ValueError, "channels"),
    (lambda x: P.overlay(x[0], torch.rand(8, 8)), ValueError, "heatmap"),
    (lambda x: P.overlay(x[0], torch.rand(16, 16), alpha=2), ValueError, "alpha"),
    (lambda x: P.heatmap_gallery(x, {}), ValueError, "maps_by_method"),
    (lambda x: P.heatmap_gallery(x, {"m": torch.rand(4, 16, 16)}), ValueError, "maps_by_method"),
    (lambda x: P.plot_curves([0, 1], {"a": [0, 1, 2]}), ValueError, "curves"),
    (lambda x: P.bar_probabilities([0.5, 0.5], ["a"]), ValueError, "class_names"),
    (lambda x: P.bar_probabilities([3.0, -2.0], ["a", "b"]), ValueError, "probs"),
    (lambda x: P.challenge_grid(torch.rand(2, 3, 3, 8, 8), ["a"], [0, 1, 2]), ValueError,
     "challenge_names"),
    (lambda x: P.challenge_grid(torch.rand(2, 3, 3, 8, 8), ["a", "b"], [0, 1]), ValueError,
     "levels"),
    (lambda x: P.reliability_diagram([0.5, 1.5], [True, False]), ValueError, "probs"),
    (lambda x: P.plot_roc([1, 1], {"a": [0.1, 0.2]}), ValueError, "single class"),
])
def test_bad_input_raises_clear_error(images, call, exc, name):
    with pytest.raises(exc, match=name):
        call(images)
    plt.close("all")


def test_to_jpeg_encodes_and_closes():
    fig, _ = plt.subplots()
    data = P.to_jpeg(fig)
    assert data[:2] == b"\xff\xd8"  # JPEG magic number
    assert not plt.fignum_exists(fig.number)


def test_figure_helpers(signs):
    examples = data.class_examples(signs)
    assert examples.shape == (14, 3, 48, 48)
    assert torch.equal(examples[5], signs.x_test[signs.y_test == 5][0])
    fig = plotting.data.plot_sign_classes(signs)
    assert [ax.get_title() for ax in fig.axes] == list(signs.classes)
    plt.close(fig)
    stack = challenges.challenge_stack(signs.x_test[0], kinds=("noise", "haze"), levels=(0, 5))
    assert stack.shape == (2, 2, 3, 48, 48) and torch.equal(stack[0, 0], signs.x_test[0])
    fig = plotting.data.plot_challenge_grid(signs.x_test[0])
    assert len(fig.axes) == 12 * 6
    plt.close(fig)
    with pytest.raises(ValueError, match="single image"):
        challenges.challenge_stack(signs.x_test[:2])


def test_adaptation_lines_stay_visible_when_methods_coincide():
    """Two methods with equal accuracy (TENT that barely moved on top of BatchNorm) must not
    hide one another: own marker and line style, shifted sideways, legend matching."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from tutorial_utils.plotting.adaptation import plot_accuracy_by_level

    methods = ("none", "tta", "bn", "tent")
    table = pd.DataFrame([{"kind": "snow", "level": lv, "method": m,
                           "accuracy": 0.5 if m in ("bn", "tent") else 0.9 - 0.1 * lv}
                          for m in methods for lv in range(6)])
    fig = plot_accuracy_by_level(table, ["snow"], methods)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == list(methods)
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in lines}) == len(methods)
    bn, tent = lines[2], lines[3]
    assert (tent.get_xdata() - bn.get_xdata()).min() > 0.03  # not drawn on the same points
    legend = fig.axes[0].get_legend()
    assert [h.get_marker() for h in legend.legend_handles] == [ln.get_marker() for ln in lines]
    plt.close(fig)
