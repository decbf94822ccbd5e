"""Every explorer of the course, driven through every value of its controls."""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from tutorial_utils import contrast, introspection, models, robustness
from tutorial_utils.challenges import CHALLENGES
from tutorial_utils.data import stratified_indices

widgets = pytest.importorskip("tutorial_utils.widgets")


@pytest.fixture(scope="module")
def sign_cache():
    from tutorial_utils import models
    from tutorial_utils.data import load_signs, stratified_indices

    ds = load_signs()
    model = models.load("signs", train_if_missing=False)
    idx = stratified_indices(ds.y_test, 2)
    x, y = ds.x_test[idx], ds.y_test[idx]
    return robustness.ChallengeCache(model, x, y, ds.classes, seed=0)


@pytest.fixture(scope="module")
def explorer(sign_cache):
    pytest.importorskip("ipywidgets")
    return widgets.challenge_explorer(sign_cache, index=3, kind="snow", level=0)


@pytest.mark.parametrize("kind", CHALLENGES)
def test_explorer_redraws_for_every_kind_and_level(explorer, sign_cache, kind):
    explorer.controls["kind"].value = kind
    for level in range(6):
        calls = explorer.state["calls"]
        explorer.controls["level"].value = level
        if explorer.state["calls"] == calls:  # value unchanged -> no event; redraw by hand
            explorer.update()
        view = explorer.state["view"]
        fig = explorer.state["figure"]
        assert (view.kind, view.level) == (kind, level)
        assert len(fig.axes) == 3
        assert f"{kind}, level {level}" in fig.axes[0].get_title()
        acc, conf = sign_cache.summary(kind, level)
        assert view.accuracy == pytest.approx(acc) and view.confidence == pytest.approx(conf)
        assert f"acc {acc:.2f}" in fig.axes[2].get_title()
        expected = robustness.challenge_view(sign_cache, kind, level, index=3)
        assert view.top_classes == expected.top_classes
        torch.testing.assert_close(view.image, expected.image)


def test_explorer_controls_cover_all_values(explorer):
    assert tuple(explorer.controls["kind"].options) == CHALLENGES
    lvl = explorer.controls["level"]
    assert (lvl.min, lvl.max, lvl.step) == (0, 5, 1)


def test_explorer_rejects_bad_initial_values(sign_cache):
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError):
        widgets.challenge_explorer(sign_cache, kind="fog")


@pytest.fixture(scope="module")
def reps(sign_model, signs):
    return signs.x_test[contrast.representatives(sign_model, signs.x_test, signs.y_test)]


def test_contrast_widget_every_value_and_latency(sign_model, signs, picker, reps):
    pytest.importorskip("ipywidgets")
    box = widgets.contrast_explorer(sign_model, picker, signs.classes, rep_images=reps)
    k = len(signs.classes)
    assert [v for _, v in box.sample.options] == list(range(len(picker)))
    assert [v for _, v in box.contrast.options] == list(range(k))
    images = set()
    for s in range(len(picker)):  # every sample in the picker
        box.sample.value = s
        assert box.image.value[:8] == b"\x89PNG\r\n\x1a\n"
        images.add(box.image.value)
    assert len(images) == len(picker)
    box.sample.value = 8  # no left
    times = []
    for rnd in range(2):
        for q in range(k):  # every contrast class, twice (the second round is timed too)
            start = time.perf_counter()
            box.contrast.value = q if rnd == 0 else (k - 1 - q)
            times.append(time.perf_counter() - start)
            assert box.image.value[:4] == b"\x89PNG"
            name = signs.classes[box.contrast.value]
            assert name in box.info.value
    box.contrast.value = 8  # Q = P
    assert "why not" in contrast.contrast_panel(contrast.contrast_state(sign_model, picker[8:9]), 8,
                                         signs.classes)["question"]
    median_ms = 1000 * statistics.median(times)
    print(f"contrast-class update: median {median_ms:.1f} ms over {len(times)} updates")
    assert median_ms <= 150


@pytest.fixture(scope="module")
def small_results(sign_model, signs):
    idx = stratified_indices(signs.y_train, 4, seed=0)
    h, z = models.features_and_logits(sign_model, signs.x_train[idx])
    intro, ff = introspection.build_heads(h.shape[1], 14, hidden=4, seed=0)
    introspection.train_head(intro, h, z, signs.y_train[idx], epochs=2, progress=False)
    introspection.train_head(ff, h, z, signs.y_train[idx], epochs=2, progress=False)
    te = stratified_indices(signs.y_test, 1, seed=0)
    return introspection.evaluate_heads(sign_model, {"feed-forward": ff, "introspective": intro},
                            signs.x_test[te], signs.y_test[te],
                            challenges=("noise", "haze", "snow"), progress=False)


def test_level_widget_every_level(small_results):
    pytest.importorskip("ipywidgets")
    box = widgets.level_explorer(small_results)
    assert (box.level.min, box.level.max) == (0, 5)
    seen = set()
    for level in range(6):  # every level 0-5
        box.level.value = level
        assert box.image.value[:4] == b"\x89PNG"
        assert "introspective" in box.table.value
        seen.add(box.image.value)
    assert len(seen) == 6
