"""Information: entropy, mutual information, score vectors and the Fisher identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _helpers import random_images
from sklearn.metrics import mutual_info_score

from tutorial_utils import gradients, information

K = 14


def test_entropy_bits_extremes():
    p = torch.tensor([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(information.entropy(p, unit="bits"), [0.0, 2.0], atol=1e-9)


def test_information_table_identities():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 500)
    t_same = information.information_table(a, a)
    assert t_same["I(A;B)"] == pytest.approx(t_same["H(A)"])
    b = (a + rng.integers(0, 2, 500)) % 4
    t = information.information_table(a, b)
    assert t["I(A;B)"] == pytest.approx(t["H(A)"] + t["H(B)"] - t["H(A,B)"])
    assert t["I(A;B)"] == pytest.approx(mutual_info_score(a, b) / math.log(2))
    assert t["H(A,B)"] >= max(t["H(A)"], t["H(B)"]) - 1e-12
    with pytest.raises(ValueError):
        information.information_table(a, b[:10])
    with pytest.raises(TypeError):
        information.information_table(a.astype(float), b)


def test_all_label_scores_match_closed_form(tiny, x8):
    u, p = information.all_label_scores(tiny, x8)
    h = tiny.penultimate(x8).detach()
    k = p.shape[1]
    e_minus_p = torch.eye(k)[None] - p[:, None, :]
    closed = torch.cat([(e_minus_p[..., None] * h[:, None, None, :]).flatten(2), e_minus_p], 2)
    torch.testing.assert_close(u, closed, atol=1e-5, rtol=1e-4)


def test_all_label_scores_match_score_vectors(tiny, x8):
    u, _ = information.all_label_scores(tiny, x8)
    sv = information.score_vectors(tiny, x8, labels=2)
    torch.testing.assert_close(u[:, 2], sv.u, atol=1e-5, rtol=1e-4)


def test_fisher_variance_equals_second_moment_and_closed_form(tiny, x8):
    u, p = information.all_label_scores(tiny, x8)
    mom = information.score_moments(u, weights=p / len(x8))
    assert float(mom["mean"].norm()) < 1e-5 * float(u.norm())
    assert information.relative_difference(mom["covariance"], mom["second_moment"]) < 1e-5
    exact = information.exact_last_layer_fisher(tiny, x8)
    assert information.relative_difference(mom["second_moment"], exact) < 1e-5


def test_score_moments_unweighted_is_plain_covariance():
    u = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)).double()
    mom = information.score_moments(u)
    assert mom["covariance"].dtype == torch.float64
    torch.testing.assert_close(mom["second_moment"], u.T @ u / 50, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mom["covariance"],
                               torch.cov(u.T, correction=0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        information.score_moments(u, weights=torch.ones(50))
    with pytest.raises(ValueError, match="needs weights"):
        information.score_moments(u[None])


def test_relative_difference():
    a = torch.ones(3, 3)
    assert information.relative_difference(a, a) == 0
    assert information.relative_difference(2 * a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        information.relative_difference(a, torch.ones(2))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_entropy_values():
    k = 5
    np.testing.assert_allclose(information.entropy(np.full((3, k), 1 / k)), np.log(k))
    np.testing.assert_allclose(information.entropy(np.eye(k)), 0.0, atol=1e-12)
    assert information.entropy([0.5, 0.5]) == pytest.approx(np.log(2))
    p = torch.softmax(torch.randn(10, 7), dim=1)
    ref = -(p * p.log()).sum(1).numpy()
    np.testing.assert_allclose(information.entropy(p), ref, rtol=1e-5)
    assert information.entropy(p).shape == (10,)


def test_mutual_information_independent_vs_identical(rng):
    x = rng.uniform(size=20000)
    assert information.mutual_information(x, x, bins=8) == pytest.approx(np.log(8), abs=0.01)
    assert information.mutual_information(x, rng.uniform(size=20000), bins=8) < 0.01
    # a monotone function of x carries as much information as x itself (equal-mass bins;
    # rel tolerance for the few samples that rounding moves across a cubed edge)
    edges = np.linspace(0, 1, 9)
    assert information.mutual_information(x, x**3, bins=[edges, edges**3]) == pytest.approx(
        information.mutual_information(x, x, bins=[edges, edges]), rel=1e-3)


def test_histogram_mi_equals_discrete_mi_on_labels(rng):
    a = rng.integers(0, 4, 3000)
    b = (a + rng.integers(0, 2, 3000)) % 4  # dependent on a
    ref = mutual_info_score(a, b)
    assert mutual_info_score(a, b) == pytest.approx(ref)
    edges = np.arange(-0.5, 4)
    assert information.mutual_information(a, b, bins=[edges, edges]) == pytest.approx(ref)
    assert information.mutual_information(a, b, bins=4) == pytest.approx(ref)  # one integer per bin
    assert mutual_info_score(a, a) == pytest.approx(information.entropy(np.bincount(a) / 3000))


def test_fisher_full_diagonal_equals_diagonal_estimate(small):
    x = random_images(6)
    diag = information.fisher_information(small, x, seed=3)
    full = information.fisher_information(small, x, full=True, seed=3)
    assert diag.shape == (K * 64 + K,) and full.shape == (diag.numel(),) * 2
    torch.testing.assert_close(full.diagonal(), diag)
    torch.testing.assert_close(full, full.T)
    with pytest.raises(ValueError, match="full=True"):
        information.fisher_information(small, x, params="all", full=True)


def test_score_has_zero_mean_under_the_model(small):
    """E_{y~p}[∇ log p(y|x)] = ∇ Σ_y p_y = 0, exactly (all labels enumerated)."""
    x = random_images(2)
    xs = x.repeat_interleave(K, dim=0)
    ys = torch.arange(K).repeat(2)
    sv = information.score_vectors(small, xs, labels=ys)
    p = small(x).softmax(1).detach().reshape(-1, 1)
    mean = (p * sv.u).view(2, K, -1).sum(1)
    assert mean.abs().max() < 1e-6 * sv.u.abs().max()
    # and the score is −∇CE = −(p − e_y) hᵀ for the weight
    g = gradients.contrast_gradients(small, xs[:K])
    torch.testing.assert_close(sv.u[:K, :K * 64].view(K, K, 64), -g[0], atol=1e-6, rtol=1e-5)


def test_sampled_fisher_matches_score_covariance(small):
    x = random_images(384, 16, seed=5)
    sv = information.score_vectors(small, x, seed=0)
    fisher = information.fisher_information(small, x, full=True, seed=0)
    torch.testing.assert_close(fisher, sv.u.T @ sv.u / len(x))
    cov = torch.cov(sv.u.T, correction=0)
    assert (fisher - cov).norm() / fisher.norm() < 0.05
    # given labels change the labels used (empirical Fisher)
    y = torch.zeros(384, dtype=torch.long)
    assert (information.score_vectors(small, x, labels=y).labels == 0).all()
    with pytest.raises(ValueError, match="labels class 99"):
        information.score_vectors(small, x, labels=99)


@pytest.mark.parametrize("call, exc, name", [
    (lambda: information.entropy(np.array([[0.5, 0.7]])), ValueError, "probs"),
    (lambda: information.entropy(np.array([[1, 0]])), TypeError, "probs"),
    (lambda: information.entropy(np.array([0.5, 0.5]), unit="dits"), ValueError, "unit"),
    (lambda: information.mutual_information([0.1, 0.2], [0.3]), ValueError, "same length"),
    (lambda: information.mutual_information([0.1, 0.2], [0.3, 0.1], bins=0), ValueError, "bins"),
    (lambda: information.information_table([1, 2], [np.nan, 1.0]), ValueError, "b"),
])
def test_bad_input_raises_clear_error(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
