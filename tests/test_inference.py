"""Tests of tutorial_utils.inference (chapter 1): analytic identities, invariances, bad input,
and every value of the challenge explorer's controls."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from tutorial_utils import gradients, metrics
from tutorial_utils import inference as inf
from tutorial_utils.data import CHALLENGES, SIGN_CLASSES


class TinyNet(nn.Module):
    """A small CNN with the zoo anatomy (penultimate + fc), fast enough for exact checks."""

    def __init__(self, k: int = 4, c: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, k)

    def penultimate(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)

    def forward(self, x):
        return self.fc(self.penultimate(x))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture
def x8():
    return torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ basics
def test_predict_proba_rows_sum_to_one_and_match_softmax(tiny, x8):
    p = inf.predict_proba(tiny, x8, batch_size=3)
    assert p.shape == (8, 4)
    torch.testing.assert_close(p.sum(1), torch.ones(8))
    torch.testing.assert_close(p, tiny(x8).softmax(1).detach())


def test_predict_proba_restores_training_mode(tiny, x8):
    tiny.train()
    inf.predict_proba(tiny, x8)
    assert tiny.training


def test_decision_is_argmax_and_softmax(tiny, x8):
    d = inf.decision(tiny, x8[2])
    z = tiny(x8[2:3])[0].detach()
    torch.testing.assert_close(d.logits, z)
    assert d.pred == int(z.argmax())
    assert d.confidence == pytest.approx(float(z.softmax(0).max()))


@pytest.mark.parametrize("bad, err", [(torch.rand(2, 3, 12, 12), ValueError),
                                      (torch.zeros(3, 12, 12, dtype=torch.long), TypeError),
                                      (np.zeros((3, 12, 12)), TypeError)])
def test_decision_rejects_bad_images(tiny, bad, err):
    with pytest.raises(err):
        inf.decision(tiny, bad)


def test_plot_decision_draws_three_panels(tiny, x8):
    d = inf.decision(tiny, x8[0])
    fig = inf.plot_decision(x8[0], d, ["a", "b", "c", "d"])
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="class_names"):
        inf.plot_decision(x8[0], d, ["a", "b"])


def test_stratified_indices_takes_first_n_of_each_class():
    from tutorial_utils.data import stratified_indices

    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    idx = stratified_indices(y, 2)
    assert y[idx].tolist() == [0, 0, 1, 1, 2, 2]
    assert idx.tolist() == [0, 2, 1, 4, 3, 6]
    with pytest.raises(ValueError, match="per_class"):
        stratified_indices(y, 0)


# ------------------------------------------------------------------ challenge cache & view
@pytest.fixture(scope="module")
def sign_cache():
    from tutorial_utils import models
    from tutorial_utils.data import load_signs, stratified_indices

    ds = load_signs()
    model = models.load("signs", train_if_missing=False)
    idx = stratified_indices(ds.y_test, 2)
    x, y = ds.x_test[idx], ds.y_test[idx]
    return inf.ChallengeCache(model, x, y, ds.classes, seed=0)


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
    p = inf.predict_proba(sign_cache.model, apply_challenge(sign_cache.x, "snow", 3, seed=0))
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
    v = inf.challenge_view(sign_cache, "haze", 4, index=5, top_k=3)
    assert v.image.shape == (3, 48, 48)
    assert len(v.top_classes) == 3 and v.top_probs == sorted(v.top_probs, reverse=True)
    assert v.accuracy == pytest.approx(v.accuracy_curve[4])
    assert v.confidence == pytest.approx(v.confidence_curve[4])
    assert v.accuracy_curve.shape == (6,) and v.accuracy_curve[0] == pytest.approx(
        sign_cache.summary("snow", 0)[0])
    with pytest.raises(ValueError, match="index"):
        inf.challenge_view(sign_cache, "haze", 4, index=10_000)
    with pytest.raises(ValueError, match="top_k"):
        inf.challenge_view(sign_cache, "haze", 4, top_k=0)


def test_table_has_one_row_per_kind_and_level(sign_cache):
    t = sign_cache.table(kinds=("noise", "haze"), levels=(0, 5), progress=False)
    assert len(t) == 4 and set(t.columns) >= {"kind", "level", "accuracy", "confidence", "gap"}
    np.testing.assert_allclose(t.gap, t.confidence - t.accuracy)
    fig = inf.plot_level_sweep(t)
    plt.close(fig)


# ------------------------------------------------------------------ the widget, every value
@pytest.fixture(scope="module")
def explorer(sign_cache):
    pytest.importorskip("ipywidgets")
    return inf.challenge_explorer(sign_cache, index=3, kind="snow", level=0)


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
        expected = inf.challenge_view(sign_cache, kind, level, index=3)
        assert view.top_classes == expected.top_classes
        torch.testing.assert_close(view.image, expected.image)


def test_explorer_controls_cover_all_values(explorer):
    assert tuple(explorer.controls["kind"].options) == CHALLENGES
    lvl = explorer.controls["level"]
    assert (lvl.min, lvl.max, lvl.step) == (0, 5, 1)


def test_explorer_rejects_bad_initial_values(sign_cache):
    pytest.importorskip("ipywidgets")
    with pytest.raises(ValueError):
        inf.challenge_explorer(sign_cache, kind="fog")


# ------------------------------------------------------------------ information
def test_entropy_bits_extremes():
    p = torch.tensor([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(inf.entropy_bits(p), [0.0, 2.0], atol=1e-9)


def test_information_table_identities():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 500)
    t_same = inf.information_table(a, a)
    assert t_same["I(A;B)"] == pytest.approx(t_same["H(A)"])
    b = (a + rng.integers(0, 2, 500)) % 4
    t = inf.information_table(a, b)
    assert t["I(A;B)"] == pytest.approx(t["H(A)"] + t["H(B)"] - t["H(A,B)"])
    assert t["I(A;B)"] == pytest.approx(metrics.discrete_mutual_information(a, b) / math.log(2))
    assert t["H(A,B)"] >= max(t["H(A)"], t["H(B)"]) - 1e-12
    with pytest.raises(ValueError):
        inf.information_table(a, b[:10])
    with pytest.raises(TypeError):
        inf.information_table(a.astype(float), b)


# ------------------------------------------------------------------ Fisher
def test_all_label_scores_match_closed_form(tiny, x8):
    u, p = inf.all_label_scores(tiny, x8)
    h = tiny.penultimate(x8).detach()
    k = p.shape[1]
    e_minus_p = torch.eye(k)[None] - p[:, None, :]
    closed = torch.cat([(e_minus_p[..., None] * h[:, None, None, :]).flatten(2), e_minus_p], 2)
    torch.testing.assert_close(u, closed, atol=1e-5, rtol=1e-4)


def test_all_label_scores_match_score_vectors(tiny, x8):
    u, _ = inf.all_label_scores(tiny, x8)
    sv = gradients.score_vectors(tiny, x8, labels=2)
    torch.testing.assert_close(u[:, 2], sv.u, atol=1e-5, rtol=1e-4)


def test_fisher_variance_equals_second_moment_and_closed_form(tiny, x8):
    u, p = inf.all_label_scores(tiny, x8)
    mom = inf.score_moments(u, weights=p / len(x8))
    assert float(mom["mean"].norm()) < 1e-5 * float(u.norm())
    assert inf.relative_difference(mom["covariance"], mom["second_moment"]) < 1e-5
    exact = inf.exact_last_layer_fisher(tiny, x8)
    assert inf.relative_difference(mom["second_moment"], exact) < 1e-5


def test_score_moments_unweighted_is_plain_covariance():
    u = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)).double()
    mom = inf.score_moments(u)
    assert mom["covariance"].dtype == torch.float64
    torch.testing.assert_close(mom["second_moment"], u.T @ u / 50, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mom["covariance"],
                               torch.cov(u.T, correction=0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        inf.score_moments(u, weights=torch.ones(50))
    with pytest.raises(ValueError, match="needs weights"):
        inf.score_moments(u[None])


def test_relative_difference():
    a = torch.ones(3, 3)
    assert inf.relative_difference(a, a) == 0
    assert inf.relative_difference(2 * a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        inf.relative_difference(a, torch.ones(2))


# ------------------------------------------------------------------ manifolds
def test_covariance_spectrum_and_effective_rank():
    gen = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 8, generator=gen)
    s = inf.covariance_spectrum(iso)
    assert s.shape == (8,) and np.all(np.diff(s) <= 1e-12) and s.sum() == pytest.approx(1)
    assert inf.effective_rank(s) > 7.5
    collapsed = torch.randn(2000, 1, generator=gen) @ torch.randn(1, 8, generator=gen)
    assert inf.effective_rank(inf.covariance_spectrum(collapsed)) < 1.1
    with pytest.raises(ValueError):
        inf.covariance_spectrum(torch.randn(1, 8))
    with pytest.raises(ValueError):
        inf.effective_rank(np.array([-1.0, 2.0]))


def test_isomap_embedding_splits_back_by_set():
    gen = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(30, 5, generator=gen), "b": torch.randn(20, 5, generator=gen) + 6}
    emb = inf.isomap_embedding(feats, n_neighbors=8)
    assert emb["a"].shape == (30, 2) and emb["b"].shape == (20, 2)
    gap = np.linalg.norm(emb["a"].mean(0) - emb["b"].mean(0))
    assert gap > np.linalg.norm(emb["a"] - emb["a"].mean(0), axis=1).mean()
    with pytest.raises(ValueError):
        inf.isomap_embedding({"a": torch.randn(5, 3), "b": torch.randn(5, 4)})
    plt.close(inf.plot_embedding(emb))


def test_penultimate_features_feed_the_head(tiny, x8):
    h = inf.penultimate_features(tiny, x8, batch_size=3)
    torch.testing.assert_close(tiny.fc(h), tiny(x8), atol=1e-6, rtol=1e-5)
    with pytest.raises(TypeError):
        inf.penultimate_features(nn.Sequential(nn.Flatten(), nn.Linear(432, 2)), x8)


# ------------------------------------------------------------------ gradients at inference
def test_directional_change_first_order_and_steepest(tiny, x8):
    dc = inf.directional_change(tiny, x8[0], alphas=[1e-2, 3e-2], n_random=16)
    # tiny steps: the actual change matches the Taylor prediction -alpha |g|^2
    np.testing.assert_allclose(dc.gradient, dc.first_order, rtol=5e-2)
    # no random direction of the same length decreases the loss more than -g (to first order)
    assert (dc.random.min(axis=0) >= dc.gradient - 1e-7).all()
    assert dc.random.shape == (16, 2)
    assert dc.label == int(tiny(x8[:1]).argmax())


def test_directional_change_default_alphas_and_all_params(tiny, x8):
    dc = inf.directional_change(tiny, x8[1], n_random=4, params=[tiny.conv, tiny.fc])
    assert len(dc.alphas) == 16
    assert dc.gradient[-1] <= 0  # a long step along -g still lowers the loss
    assert dc.gradient[-1] >= -dc.loss - 1e-6  # but cross-entropy cannot fall below 0
    plt.close(inf.plot_directional_change(dc))
    with pytest.raises(ValueError, match="label"):
        inf.directional_change(tiny, x8[1], label=9)
    with pytest.raises(ValueError, match="n_random"):
        inf.directional_change(tiny, x8[1], n_random=0)


def test_loss_plane_descends_along_negative_gradient(tiny, x8):
    plane = inf.loss_plane(tiny, x8[0], steps=21)
    assert plane.values.shape == (21, 21)
    centre = plane.values[10, 10]
    assert abs(centre) < 1e-6
    small = 0.1 * plane.coords.max()
    down = inf.plane_value(plane, small, 0.0)
    up = inf.plane_value(plane, -small, 0.0)
    side = inf.plane_value(plane, 0.0, small)
    assert down < side < up or down < min(side, up)
    assert down < 0 < up
    plt.close(inf.plot_loss_plane(plane))
    with pytest.raises(ValueError):
        inf.plane_value(plane, 10 * plane.coords.max(), 0.0)
    with pytest.raises(ValueError, match="steps"):
        inf.loss_plane(tiny, x8[0], steps=2)


def test_functions_restore_model_state(tiny, x8):
    tiny.train()
    flags = [p.requires_grad for p in tiny.parameters()]
    inf.directional_change(tiny, x8[0], n_random=2)
    inf.loss_plane(tiny, x8[0], steps=5)
    inf.all_label_scores(tiny, x8)
    assert tiny.training
    assert [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters())


def test_sign_classes_available():
    assert len(SIGN_CLASSES) == 14
