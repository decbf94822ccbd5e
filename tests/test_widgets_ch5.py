"""Chapter 5's dashboard: every control value and the view it shows (redraw times:
``benchmarks/bench_widgets.py``)."""

from __future__ import annotations

import numpy as np
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


@pytest.fixture(scope="module")
def vit_pair(signs):
    from tutorial_utils import models

    vit = models.load("signs-vit", train_if_missing=False)
    fit = data.stratified_indices(signs.y_train, 10, seed=0)
    ref = data.stratified_indices(signs.y_test, 5, seed=0)
    return vit, dashboard.build_reference(vit, signs.x_train[fit], signs.y_train[fit],
                                          signs.x_test[ref])


def test_pair_references_refuses_a_reference_of_another_model(sign_model, reference, vit_pair):
    vit, vit_ref = vit_pair
    pairs = dashboard.pair_references({"CNN": sign_model, "ViT": vit},
                                      {"CNN": reference, "ViT": vit_ref})
    assert pairs["ViT"] == (vit, vit_ref) and pairs["CNN"] == (sign_model, reference)
    assert dashboard.pair_references(sign_model, reference) == {"model": (sign_model, reference)}
    with pytest.raises(ValueError, match=r"references\['ViT'\].*another model"):
        dashboard.pair_references({"CNN": sign_model, "ViT": vit},
                                  {"CNN": reference, "ViT": reference})
    with pytest.raises(ValueError, match="one Reference per model"):
        dashboard.pair_references({"CNN": sign_model, "ViT": vit}, {"CNN": reference})
    with pytest.raises(TypeError, match="references"):
        dashboard.pair_references(sign_model, {"CNN": reference})
    with pytest.raises(TypeError, match="models"):
        dashboard.pair_references([sign_model], [reference])


def test_dashboard_explorer_switches_the_model_and_its_reference(sign_model, reference,
                                                                 vit_pair, picker, signs):
    vit, vit_ref = vit_pair
    go = data.load_ood("go", n=4, seed=0)
    nets, refs = {"CNN": sign_model, "ViT": vit}, {"CNN": reference, "ViT": vit_ref}
    box = widgets.dashboard_explorer(nets, refs, picker, torch.arange(14), signs.classes, go,
                                     sample=8, kind="snow", level=3, contrast=9)
    c = box.controls
    assert c["model"].options == ("CNN", "ViT") and c["model"].value == "CNN"
    x = dashboard.make_input(sign_model, picker[8], 8, "test image", "snow", 3)
    for name in ("ViT", "CNN", "ViT"):
        picture = box.image.value
        c["model"].value = name
        shown = box.state["last"]
        expected = dashboard.dashboard_view(nets[name], refs[name], x, contrast=9)
        assert shown.percentiles == expected.percentiles  # read against this model's reference
        assert shown.scores == pytest.approx(expected.scores, rel=1e-5, abs=1e-6)
        torch.testing.assert_close(shown.probs, expected.probs, atol=1e-6, rtol=0)
        assert box.image.value[:8] == PNG and box.image.value != picture
        assert box.info.value.startswith(f"<code>{name}: P = ")
    # the two models read the same image differently: the switch is not inert
    views = {}
    for name in ("CNN", "ViT"):
        c["model"].value = name
        views[name] = box.state["last"]
    assert views["CNN"].scores != views["ViT"].scores
    for source in c["source"].options:  # every other control still works on the ViT
        c["source"].value = source
        assert box.state["last"] is not None and "ViT: " in box.info.value
    with pytest.raises(ValueError, match="another model"):
        widgets.dashboard_explorer(nets, {"CNN": vit_ref, "ViT": vit_ref}, picker,
                                   torch.arange(14), signs.classes, go)
    with pytest.raises(ValueError, match="model_name"):
        widgets.dashboard_explorer(nets, refs, picker, torch.arange(14), signs.classes, go,
                                   model_name="VGG")
    start = widgets.dashboard_explorer(nets, refs, picker, torch.arange(14), signs.classes, go,
                                       model_name="ViT")
    assert start.controls["model"].value == "ViT"
    single = widgets.dashboard_explorer(sign_model, reference, picker, torch.arange(14),
                                        signs.classes, go)
    assert "model" not in single.controls  # one model: no switch


def test_fixed_layout_picture_equals_a_full_draw(sign_model, reference, picker, signs):
    """The explorer's figure redraws only what a view changes over a saved background; the
    picture must be the one a full draw of the same (frozen) layout gives."""
    import io

    import numpy as np
    from PIL import Image

    from tutorial_utils.plotting.dashboard import DashboardFigure
    from tutorial_utils.plotting.style import to_png

    fast = DashboardFigure(signs.classes, dpi=40, fixed_layout=True)
    for i in (8, 3, 11):  # several views in a row: nothing of an earlier one may stay
        view = dashboard.dashboard_view(sign_model, reference, picker[i:i + 1], contrast=9)
        fast.set_view(view, f"sample {i}")
        picture = fast.png()
    for artist in fast._changing():
        artist.set_animated(False)
    full = to_png(fast.fig)  # every artist, one full draw, same layout

    def pixels(png):
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)

    a, b = pixels(picture), pixels(full)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 0.5 and (np.abs(a - b).max(-1) > 60).mean() < 0.002


def test_percentile_counts_a_reference_score_within_float_rounding_as_a_tie(reference):
    for g in dashboard.GAUGES:
        ref = reference.scores[g]
        v = float(ref[len(ref) // 2])
        exact = reference.percentile(g, v)
        nudged = v - 1e-7 * max(abs(v), 1e-30)  # the same image, another batch's last bits
        assert reference.percentile(g, nudged) == exact
        assert reference.percentile(g, np.array([nudged, v])).tolist() == [exact, exact]
        # a clearly lower score is not a tie
        lower = v - 1e-3 * max(abs(v), 1.0)
        assert reference.percentile(g, lower) <= exact


def test_gauge_percentiles_in_chunks_equal_one_batch(reference, picker):
    whole = dashboard.gauge_percentiles(reference, picker, chunk_size=len(picker))
    chunked = dashboard.gauge_percentiles(reference, picker, chunk_size=3)
    for g in dashboard.GAUGES:
        assert chunked[g] == pytest.approx(whole[g])
        assert whole[g][5] == pytest.approx(reference.percentile(g, float(
            dashboard._gauge_scores(reference.detectors, reference.model, picker[5:6])[g][0])))
    with pytest.raises((ValueError, TypeError), match="chunk_size"):
        dashboard.gauge_percentiles(reference, picker, chunk_size=0)
