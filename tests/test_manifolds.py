"""Manifolds: covariance spectra, effective rank and the joint Isomap."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from tutorial_utils import manifolds, plotting


def test_covariance_spectrum_and_effective_rank():
    gen = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 8, generator=gen)
    s = manifolds.covariance_spectrum(iso)
    assert s.shape == (8,) and np.all(np.diff(s) <= 1e-12) and s.sum() == pytest.approx(1)
    assert manifolds.effective_rank(s) > 7.5
    collapsed = torch.randn(2000, 1, generator=gen) @ torch.randn(1, 8, generator=gen)
    assert manifolds.effective_rank(manifolds.covariance_spectrum(collapsed)) < 1.1
    with pytest.raises(ValueError):
        manifolds.covariance_spectrum(torch.randn(1, 8))
    with pytest.raises(ValueError):
        manifolds.effective_rank(np.array([-1.0, 2.0]))


def test_isomap_embedding_splits_back_by_set():
    gen = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(30, 5, generator=gen), "b": torch.randn(20, 5, generator=gen) + 6}
    emb = manifolds.isomap_embedding(feats, n_neighbors=8)
    assert emb["a"].shape == (30, 2) and emb["b"].shape == (20, 2)
    gap = np.linalg.norm(emb["a"].mean(0) - emb["b"].mean(0))
    assert gap > np.linalg.norm(emb["a"] - emb["a"].mean(0), axis=1).mean()
    with pytest.raises(ValueError):
        manifolds.isomap_embedding({"a": torch.randn(5, 3), "b": torch.randn(5, 4)})
    plt.close(plotting.manifolds.plot_embedding(emb))


# ------------------------------------------------------------------ resampled effective rank


def test_resampled_effective_rank_row_of_ones_equals_the_plain_effective_rank():
    f = np.random.default_rng(0).normal(size=(60, 9)) * np.arange(1, 10)
    got = manifolds.resampled_effective_rank(f, np.ones((3, 60)))
    want = manifolds.effective_rank(manifolds.covariance_spectrum(f))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_resampled_effective_rank_equals_the_rank_of_the_repeated_rows():
    # weights are draw counts: counting row n k times is the same as repeating it k times
    rng = np.random.default_rng(1)
    f = rng.normal(size=(30, 5))
    counts = rng.multinomial(30, np.full(30, 1 / 30), size=4)
    got = manifolds.resampled_effective_rank(f, counts)
    want = [manifolds.effective_rank(manifolds.covariance_spectrum(np.repeat(f, c, axis=0)))
            for c in counts]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_resampled_effective_rank_sees_a_collapse_and_drives_a_claim():
    from tutorial_utils import claims

    rng = np.random.default_rng(2)
    spread = rng.normal(size=(80, 8))                       # 8 equal directions: rank near 8
    collapsed = spread * np.r_[1.0, 0.05 * np.ones(7)]      # one direction left: rank near 1
    r = manifolds.resampled_effective_rank(np.r_[spread, collapsed].reshape(2, 80, 8)[0],
                                           np.ones((1, 80)))
    assert r[0] > 6
    assert manifolds.resampled_effective_rank(collapsed, np.ones((1, 80)))[0] < 2
    claims.greater("the spread set has the higher effective rank", spread, collapsed,
                   statistic=manifolds.resampled_effective_rank)
    with pytest.raises(claims.ClaimError):
        claims.greater("the collapsed set has the higher effective rank", collapsed, spread,
                       statistic=manifolds.resampled_effective_rank)


@pytest.mark.parametrize("weights, match", [
    (np.ones((2, 7)), "weights must be"),
    (-np.ones((2, 10)), "non-negative"),
    (np.zeros((2, 10)), "positive sum"),
    (np.full((2, 10), np.nan), "finite"),
])
def test_resampled_effective_rank_refuses_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        manifolds.resampled_effective_rank(np.ones((10, 3)), weights)
