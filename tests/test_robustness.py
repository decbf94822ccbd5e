"""Accuracy and confidence under every challenge: the cache and the explorer's data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tutorial_utils import models, plotting, robustness


@pytest.fixture(scope="module")
def sign_cache():
    from tutorial_utils import models
    from tutorial_utils.data import load_signs, stratified_indices

    ds = load_signs()
    model = models.load("signs", train_if_missing=False)
    idx = stratified_indices(ds.y_test, 2)
    x, y = ds.x_test[idx], ds.y_test[idx]
    return robustness.ChallengeCache(model, x, y, ds.classes, seed=0)


def test_cache_computes_each_kind_level_once_and_shares_level_zero(sign_cache):
    before = sign_cache.computed
    a = sign_cache.probs("noise", 2)
    b = sign_cache.probs("noise", 2)
    assert a is b
    sign_cache.probs("rain", 0)
    sign_cache.probs("haze", 0)
    assert sign_cache.computed - before <= 2  # noise 2 and (at most once) the clean set


def test_cache_summary_matches_direct_computation(sign_cache):
    from tutorial_utils.data import apply_challenge

    acc, conf = sign_cache.summary("snow", 3)
    p = models.predict_proba(sign_cache.model, apply_challenge(sign_cache.x, "snow", 3, seed=0))
    assert acc == pytest.approx(float((p.argmax(1) == sign_cache.y).float().mean()))
    assert conf == pytest.approx(float(p.max(1).values.mean()), abs=1e-6)


def test_confidence_stays_above_accuracy_under_strong_noise(sign_cache):
    """The chapter's claim on our data: noise at level 5 costs far more accuracy than confidence."""
    acc0, _ = sign_cache.summary("noise", 0)
    acc5, conf5 = sign_cache.summary("noise", 5)
    assert acc0 > 0.9
    assert acc5 < 0.5
    assert conf5 - acc5 > 0.3


@pytest.mark.parametrize("kind, level, err", [("fog", 1, ValueError), ("snow", 6, ValueError),
                                              ("snow", -1, ValueError), ("snow", 2.0, TypeError),
                                              ("snow", True, TypeError)])
def test_cache_rejects_bad_kind_or_level(sign_cache, kind, level, err):
    with pytest.raises(err):
        sign_cache.probs(kind, level)


def test_challenge_view_contents(sign_cache):
    v = robustness.challenge_view(sign_cache, "haze", 4, index=5, top_k=3)
    assert v.image.shape == (3, 48, 48)
    assert len(v.top_classes) == 3 and v.top_probs == sorted(v.top_probs, reverse=True)
    assert v.accuracy == pytest.approx(v.accuracy_curve[4])
    assert v.confidence == pytest.approx(v.confidence_curve[4])
    assert v.accuracy_curve.shape == (6,) and v.accuracy_curve[0] == pytest.approx(
        sign_cache.summary("snow", 0)[0])
    with pytest.raises(ValueError, match="index"):
        robustness.challenge_view(sign_cache, "haze", 4, index=10_000)
    with pytest.raises(ValueError, match="top_k"):
        robustness.challenge_view(sign_cache, "haze", 4, top_k=0)


def test_table_has_one_row_per_kind_and_level(sign_cache):
    t = sign_cache.table(kinds=("noise", "haze"), levels=(0, 5), progress=False)
    assert len(t) == 4 and set(t.columns) >= {"kind", "level", "accuracy", "confidence", "gap"}
    np.testing.assert_allclose(t.gap, t.confidence - t.accuracy)
    fig = plotting.robustness.plot_level_sweep(t)
    plt.close(fig)
