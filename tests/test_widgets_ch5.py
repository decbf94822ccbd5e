"""Chapter 5's dashboard: every control value and the view it shows (redraw times:
``benchmarks/bench_widgets.py``)."""

from __future__ import annotations

import pytest
import torch

from tutorial_utils import dashboard, data, explainers

widgets = pytest.importorskip("tutorial_utils.widgets")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reference(sign_model, signs):
    fit = data.stratified_indices(signs.y_train, 10, seed=0)
    ref = data.stratified_indices(signs.y_test, 5, seed=0)
    return dashboard.build_reference(sign_model, signs.x_train[fit], signs.y_train[fit],
                                     signs.x_test[ref])


def test_dashboard_view_is_consistent(sign_model, reference, picker):
    view = dashboard.dashboard_view(sign_model, reference, picker[8:9], contrast=9)
    assert view.pred == 8 and view.contrast == 9
    assert set(view.percentiles) == set(dashboard.GAUGES)
    assert all(0 <= p <= 100 for p in view.percentiles.values())
    assert view.deletion_probs[0] == pytest.approx(float(view.probs[8]), abs=1e-5)
    for m in (view.gradcam, view.contrastcam, view.uncertainty):
        assert m.shape == (48, 48) and 0 <= float(m.min()) and float(m.max()) <= 1
    batch = dashboard.gauge_percentiles(reference, picker[8:10])
    assert batch["MSP"][0] == pytest.approx(view.percentiles["MSP"])
    with pytest.raises(ValueError, match="one image"):
        dashboard.dashboard_view(sign_model, reference, picker[:2])
    with pytest.raises(ValueError, match="source"):
        dashboard.make_input(sign_model, picker[0], 0, "webcam")


def test_dashboard_maps_equal_the_registry_calls(sign_model, reference, picker):
    """The dashboard computes its maps together from one layer view; they are the registry's."""
    x = picker[8:9]
    view = dashboard.dashboard_view(sign_model, reference, x, contrast=9)
    maps = {"Grad-CAM": view.gradcam, "ContrastCAM": view.contrastcam}
    assert tuple(maps) == dashboard.EXPLANATIONS
    torch.testing.assert_close(maps["Grad-CAM"], explainers.explain("Grad-CAM", sign_model, x)[0],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(maps["ContrastCAM"], explainers.explain(
        "ContrastCAM", sign_model, x, contrast=9)[0], atol=1e-5, rtol=0)


def test_dashboard_explorer_every_value(sign_model, reference, picker, signs):
    go = data.load_ood("go", n=4, seed=0)
    labels = torch.arange(14)
    box = widgets.dashboard_explorer(sign_model, reference, picker, labels, signs.classes, go,
                                     sample=8, kind="snow", level=0, contrast=9)
    c = box.controls
    for source in c["source"].options:
        c["source"].value = source
        assert box.image.value[:8] == PNG
    c["source"].value = "test image"
    for kind in c["kind"].options:
        c["kind"].value = kind
    for level in range(6):
        c["level"].value = level
    for s in range(len(picker)):
        c["sample"].value = s
    for q in range(14):
        c["contrast"].value = q
        assert box.state["last"].contrast == q
