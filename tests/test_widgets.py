"""Every explorer of the course, driven through every value of its controls (redraw times:
``benchmarks/bench_widgets.py``)."""

from __future__ import annotations

import base64

import pytest
import torch

from tutorial_utils import contrast, data, models, robustness
from tutorial_utils.challenges import CHALLENGES
from tutorial_utils.data import stratified_indices

widgets = pytest.importorskip("tutorial_utils.widgets")
PNG = b"\x89PNG\r\n\x1a\n"


def test_saved_output_carries_a_snapshot_and_a_note(sign_model, picker, signs):
    box = widgets.contrast_explorer(sign_model, picker[:2], signs.classes)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:8] == PNG
    assert "VBox" not in bundle["text/plain"] and "Run All" in bundle["text/plain"]


@pytest.fixture(scope="module")
def sign_cache(signs, sign_model):
    idx = stratified_indices(signs.y_test, 2)
    return robustness.ChallengeCache(sign_model, signs.x_test[idx], signs.y_test[idx],
                                     signs.classes, seed=0)


@pytest.fixture(scope="module")
def explorer(sign_cache):
    return widgets.challenge_explorer(sign_cache, index=3, kind="snow", level=0)


@pytest.mark.parametrize("kind", CHALLENGES)
def test_challenge_explorer_every_kind_and_level(explorer, sign_cache, kind):
    explorer.controls["kind"].value = kind
    for level in range(6):
        calls = explorer.state["calls"]
        explorer.controls["level"].value = level
        if explorer.state["calls"] == calls:  # value unchanged -> no event; redraw by hand
            explorer.update()
        view = explorer.state["last"]
        assert (view.kind, view.level) == (kind, level)
        assert explorer.image.value[:8] == PNG
        acc, conf = sign_cache.summary(kind, level)
        assert view.accuracy == pytest.approx(acc) and view.confidence == pytest.approx(conf)
        assert f"{kind}, level {level}" in explorer.info.value
        expected = robustness.challenge_view(sign_cache, kind, level, index=3)
        assert view.top_classes == expected.top_classes
        torch.testing.assert_close(view.image, expected.image)


def test_challenge_explorer_shows_the_classified_image(sign_cache):
    """The image drawn is the one whose probabilities are shown (challenged as part of the set)."""
    view = robustness.challenge_view(sign_cache, "rain", 4, index=5)
    p = models.predict_proba(sign_cache.model, view.image[None])[0]
    assert int(p.argmax()) == view.top_classes[0]
    assert float(p.max()) == pytest.approx(view.top_probs[0], abs=0.02)  # 8-bit storage


def test_challenge_explorer_controls(explorer):
    assert tuple(explorer.controls["kind"].options) == CHALLENGES
    lvl = explorer.controls["level"]
    assert (lvl.min, lvl.max, lvl.step) == (0, 5, 1)
    explorer.controls["kind"].value = "snow"
    for level in (5, 4, 3, 2, 1, 0, 1, 2):  # revisits: the computation is cached, only redraws
        explorer.controls["level"].value = level


def test_challenge_explorer_rejects_bad_initial_values(sign_cache):
    with pytest.raises(ValueError):
        widgets.challenge_explorer(sign_cache, kind="fog")


@pytest.fixture(scope="module")
def reps(sign_model, signs):
    return signs.x_test[contrast.representatives(sign_model, signs.x_test, signs.y_test)]


def test_contrast_explorer_every_value(sign_model, signs, picker, reps):
    first = [int(torch.nonzero(signs.y_test == k)[0]) for k in range(len(signs.classes))]
    k = len(signs.classes)
    _, regions = data.counterfactual(signs, torch.tensor(first).repeat_interleave(k),
                                     torch.arange(k).repeat(k))
    box = widgets.contrast_explorer(sign_model, picker, signs.classes, rep_images=reps,
                                    regions=regions.view(k, k, 48, 48))
    sample, contrast_w = box.controls["sample"], box.controls["contrast"]
    assert [v for _, v in sample.options] == list(range(len(picker)))
    assert [v for _, v in contrast_w.options] == list(range(k))
    images = set()
    for s in range(len(picker)):  # every sample in the picker
        sample.value = s
        assert box.image.value[:8] == PNG
        images.add(box.image.value)
    assert len(images) == len(picker)
    sample.value = 8  # no left
    for rnd in range(2):
        for q in range(k):  # every contrast class, twice
            contrast_w.value = q if rnd == 0 else (k - 1 - q)
            assert box.image.value[:8] == PNG
            assert signs.classes[contrast_w.value] in box.info.value
    contrast_w.value = 8  # Q = P
    assert "why not" in box.state["last"]["question"]
    with pytest.raises(ValueError, match="regions"):
        widgets.contrast_explorer(sign_model, picker, signs.classes, regions=regions[:3])


def test_level_explorer_every_level(small_results):
    box = widgets.level_explorer(small_results)
    slider = box.controls["level"]
    assert (slider.min, slider.max) == (0, 5)
    seen = set()
    for level in (1, 2, 3, 4, 5, 0):  # every level 0-5
        slider.value = level
        assert box.image.value[:8] == PNG
        assert "introspective" in box.info.value
        assert list(box.state["last"].index)[-1] == "all"
        seen.add(box.image.value)
    assert len(seen) == 6
